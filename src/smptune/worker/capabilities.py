"""A worker's capabilities: read from what its supervisor set, advertised in Redis while it
lives, and the capability queues whose needs it meets consumed (never one it does not meet).

The supervisor (``workers start``) sets each worker's device kind, GPU memory
(``--gpu-memory-gb``, else what ``nvidia-smi`` reports for its GPU, shared by its slots) and
tags (``--tag``) in its environment. Once the Celery worker is ready, a thread of its main
process renews its advertisement every :data:`INTERVAL_S` seconds and, for each recorded
capability queue of a queue it consumes whose needs it meets, asks the worker itself to
consume it (Celery's ``add_consumer`` control command, handled in its own event loop).
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import threading
from collections.abc import Iterable, Mapping
from typing import Any

from celery.signals import worker_ready, worker_shutting_down

from smptune.requirements import Capabilities, Needs, parse_tags
from smptune.urls import BROKER_ENV

__all__ = [
    "DEVICE_ENV",
    "MEMORY_ENV",
    "QUEUES_ENV",
    "TAGS_ENV",
    "capabilities_env",
    "capabilities_from_env",
    "detected_gpu_memory_gb",
    "to_consume",
]

log = logging.getLogger("smptune.worker.capabilities")

DEVICE_ENV = "SMPTUNE_WORKER_DEVICE"
MEMORY_ENV = "SMPTUNE_WORKER_GPU_MEMORY_GB"
TAGS_ENV = "SMPTUNE_WORKER_TAGS"
QUEUES_ENV = "SMPTUNE_WORKER_QUEUES"
#: Seconds between a worker's advertisements (and its looks for new capability queues).
INTERVAL_S = 2.0


def detected_gpu_memory_gb(index: str) -> float | None:
    """GPU ``index``'s memory in GB as ``nvidia-smi`` reports it (None without one)."""
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return None
    query = [smi, "--query-gpu=memory.total", "--format=csv,noheader,nounits", "-i", index]
    try:
        out = subprocess.run(query, capture_output=True, text=True, timeout=10).stdout
        return round(float(out.split()[0]) / 1024, 1)  # MiB
    except (OSError, subprocess.SubprocessError, ValueError, IndexError):
        return None


def capabilities_env(
    kind: str, cuda: str, slots: int, gpu_memory_gb: float | None, tags: Iterable[str], queues: str
) -> dict[str, str]:
    """The environment that tells a worker what it has (``kind``: ``gpu`` or ``cpu``)."""
    memory = gpu_memory_gb
    if memory is None and kind == "gpu" and cuda:
        found = detected_gpu_memory_gb(cuda.split(",")[0])
        memory = None if found is None else round(found / max(1, slots), 1)
    return {
        DEVICE_ENV: "cuda" if kind == "gpu" else "cpu",
        MEMORY_ENV: "" if memory is None else f"{memory:g}",
        TAGS_ENV: ",".join(sorted(set(tags))),
        QUEUES_ENV: queues,
    }


def capabilities_from_env(env: Mapping[str, str]) -> Capabilities:
    """What the worker whose environment is ``env`` has."""
    memory = env.get(MEMORY_ENV, "")
    tags = [t for t in env.get(TAGS_ENV, "").split(",") if t]
    return Capabilities(
        "cuda" if env.get(DEVICE_ENV) == "cuda" else "cpu",
        float(memory) if memory else None,
        parse_tags("--tag", tags),
    )


def to_consume(
    capabilities: Capabilities,
    queues: Iterable[str],
    known: Mapping[str, tuple[str, Needs]],
    consuming: Iterable[str],
) -> list[str]:
    """The capability queues (of ``known``: queue -> its sweep's queue, needs) of the
    ``queues`` a worker consumes whose needs it meets and that it does not consume yet."""
    bases, have = set(queues), set(consuming)
    return sorted(
        q
        for q, (base, needs) in known.items()
        if base in bases and q not in have and capabilities.meets(needs)
    )


class Advertiser(threading.Thread):
    """The worker's thread that advertises it and consumes the queues it meets."""

    def __init__(self, consumer: Any, env: Mapping[str, str]) -> None:
        super().__init__(name="smptune-capabilities", daemon=True)
        self.app = consumer.app
        self.hostname = str(consumer.hostname)
        self.capabilities = capabilities_from_env(env)
        given = [q for q in env.get(QUEUES_ENV, "").split(",") if q]
        self.queues = tuple(given or [q.name for q in consumer.task_consumer.queues])
        self.broker_url = env.get(BROKER_ENV) or str(self.app.conf.broker_url)
        self.stopped = threading.Event()
        self.consuming: set[str] = set()

    def run(self) -> None:
        from smptune.queue.routing import FleetWorker, advertise, capability_queues
        from smptune.queue.store import SweepStore

        r = SweepStore.from_url(self.broker_url).r
        worker = FleetWorker(self.hostname, self.capabilities, self.queues)
        while not self.stopped.is_set():
            try:
                advertise(r, worker)
                for queue in to_consume(
                    self.capabilities, self.queues, capability_queues(r), self.consuming
                ):
                    replies = self.app.control.add_consumer(
                        queue, destination=[self.hostname], reply=True, timeout=2.0
                    )
                    if replies:
                        self.consuming.add(queue)
                        log.info("%s consumes %s (it meets its needs)", self.hostname, queue)
            except Exception as exc:  # Redis away: the next round tries again
                log.warning("advertising %s failed: %s", self.hostname, exc)
            self.stopped.wait(INTERVAL_S)

    def stop(self) -> None:
        from smptune.queue.routing import withdraw
        from smptune.queue.store import SweepStore

        self.stopped.set()
        try:
            withdraw(SweepStore.from_url(self.broker_url).r, self.hostname)
        except Exception as exc:
            log.warning("withdrawing %s failed: %s", self.hostname, exc)


_running: list[Advertiser] = []


@worker_ready.connect  # type: ignore[untyped-decorator]  # celery ships no types
def _advertise(sender: Any = None, **_: Any) -> None:
    if sender is None or _running:
        return
    advertiser = Advertiser(sender, os.environ)
    _running.append(advertiser)
    advertiser.start()


@worker_shutting_down.connect  # type: ignore[untyped-decorator]  # celery ships no types
def _withdraw(**_: Any) -> None:
    while _running:
        _running.pop().stop()
