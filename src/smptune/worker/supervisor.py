"""The supervisor of a machine's workers: one ``celery worker`` process per device, kept
alive, shut down in stages, and given back on preemption.

:func:`worker_specs` turns :class:`WorkerOptions` into one :class:`WorkerSpec` per worker:
pinned to its device with ``CUDA_VISIBLE_DEVICES``, concurrency 1, prefork, events on,
named ``gpu<N>@<host>`` or ``cpu<N>@<host>`` (``gpu<N>-<slot>@<host>`` with several slots
per device, ``gpu<N>+<M>@<host>`` owning several GPUs), with its share of the machine (see
:mod:`smptune.worker.host_share`).
:class:`Supervisor` restarts a worker that dies (not one that keeps exiting at start) and,
on SIGTERM/SIGINT, asks each for a warm shutdown, then a cold one, then kills what is left;
with a :class:`Preemption`, SIGTERM gives the running trials back to the queue instead.
The ``workers`` command (:mod:`smptune.cli.workers`) parses its options and runs this.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from types import FrameType
from typing import TYPE_CHECKING

from smptune.errors import ConfigError, ExitCode
from smptune.lifecycle import crash_point
from smptune.messages import DEFAULT_QUEUE
from smptune.queue.lease import lease_ttl_s
from smptune.retries import (
    DEFAULT_PREEMPT_GRACE_S,
    MAX_QUICK_EXITS,
    QUICK_EXIT_S,
    restart_backoff_s,
)
from smptune.trainable import ALLOWED_TRAINABLES_ENV, PRELOAD_ENV, PRELOAD_MODULES
from smptune.urls import BROKER_ENV
from smptune.worker.capabilities import capabilities_env
from smptune.worker.devices import DEVICES_ENV
from smptune.worker.host_share import (
    CPUS_ENV,
    MEMORY_FRACTION_ENV,
    CpuShare,
    available_cpus,
    describe_share,
    gpu_local_cpus,
    share_cpus,
    share_env,
)

if TYPE_CHECKING:
    from smptune.queue.recovery import Reaper
    from smptune.queue.store import SweepStore

# the ``workers`` command's log: its lines keep the name they had before the supervisor
# moved here
log = logging.getLogger("smptune.cli.workers")


def visible_gpus() -> list[str]:
    """GPU indices this machine shows (``CUDA_VISIBLE_DEVICES`` first, else nvidia-smi)."""
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env is not None:
        return [d.strip() for d in env.split(",") if d.strip() and d.strip() != "-1"]
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return []
    try:
        out = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [str(i) for i, line in enumerate(out.splitlines()) if line.startswith("GPU ")]


@dataclass(frozen=True)
class WorkerOptions:
    """What the workers of one machine are to be (``workers start``'s options, checked)."""

    #: GPU indices, one worker (or ``slots_per_device``) each; None: every visible GPU
    devices: tuple[str, ...] | None = None
    #: this many CPU workers instead of GPU workers
    cpu: int | None = None
    slots_per_device: int = 1
    #: cores per worker: ``"auto"`` (an equal share), ``"all"`` (every core) or a count
    cpus_per_worker: str | int = "auto"
    queues: str = DEFAULT_QUEUE
    loglevel: str = "INFO"
    #: host part of the worker names; None: this host's name
    hostname: str | None = None
    max_tasks_per_child: int = 0
    max_memory_per_child_mib: int = 16384
    logfile_dir: str | None = None
    allow_trainable: tuple[str, ...] = ()
    #: import the training stack before forking the pool child; None: for GPU workers
    preload: bool | None = None
    #: devices each worker owns (``training.devices_per_trial`` up to this): that many GPUs
    #: in its ``CUDA_VISIBLE_DEVICES``, or on a CPU worker that many DDP processes
    devices_per_worker: int = 1
    #: what the workers advertise (``--tag``, ``--gpu-memory-gb``; None: detected)
    tags: tuple[str, ...] = ()
    gpu_memory_gb: float | None = None


@dataclass
class WorkerSpec:
    """One worker process: its name, the device it sees, its cores, its command line."""

    name: str
    cuda_visible_devices: str
    argv: list[str]
    env: dict[str, str]
    cpus: CpuShare | None = None

    @property
    def share_text(self) -> str:
        """What the start log says of the worker's share of the machine."""
        share = describe_share(self.env) or "every core"
        return f"CUDA_VISIBLE_DEVICES={self.cuda_visible_devices!r}, {share}"


@dataclass
class Preemption:
    """How a preemptible machine's supervisor gives its trials back on SIGTERM."""

    store: SweepStore
    app: object
    grace_s: float = DEFAULT_PREEMPT_GRACE_S

    def notify(self, workers: list[str]) -> None:
        """Ask the trials ``workers`` run to checkpoint and queue themselves again."""
        self.store.preempt(workers, hold_s=self.grace_s + 60)

    def release(self, workers: list[str]) -> list[tuple[str, int]]:
        """Record the trials ``workers`` still run as given back (uncounted), before their
        cold shutdown puts their messages back in the queue."""
        from smptune.queue.recovery import give_back

        given = [
            (sweep_id, trial)
            for sweep_id, trial, worker in self.store.running_on(workers)
            if give_back(self.store, self.app, sweep_id, trial, worker, send=False)
        ]
        if given:
            crash_point("supervisor.given_back")
        return given

    def put_back(self, trials: list[tuple[str, int]]) -> None:
        """``trials``' workers stopped in time: Celery put their messages back."""
        for sweep_id, trial in trials:
            self.store.sent_again(sweep_id, trial)

    def send(self, trials: list[tuple[str, int]]) -> None:
        """Queue ``trials`` again ourselves: their workers were killed before Celery could."""
        from smptune.queue.recovery import send_again

        for sweep_id, trial in trials:
            send_again(self.store, self.app, sweep_id, trial, "given back by its supervisor")

    def done(self, workers: list[str]) -> None:
        self.store.preempted(workers)


@dataclass
class Supervised:
    spec: WorkerSpec
    process: subprocess.Popen[bytes] | None = None
    started: float = 0.0
    restarts: int = 0
    backoff_s: float = 1.0
    next_start: float = 0.0
    exits: list[int] = field(default_factory=list)
    #: exits in a row, each soon after its start (see :data:`MAX_QUICK_EXITS`)
    quick_exits: int = 0
    given_up: bool = False


def _devices(options: WorkerOptions) -> list[tuple[str, str, str]]:
    """``(kind, label, CUDA_VISIBLE_DEVICES)`` of each worker: ``slots_per_device`` per GPU."""
    if options.cpu is not None:
        return [("cpu", str(i), "") for i in range(options.cpu)]
    gpus = list(options.devices) if options.devices else visible_gpus()
    if not gpus:
        return [("cpu", "0", "")]
    if options.devices_per_worker > 1:
        return gpu_groups(gpus, options.devices_per_worker)
    slots = options.slots_per_device
    return [("gpu", d if slots == 1 else f"{d}-{slot}", d) for d in gpus for slot in range(slots)]


def gpu_groups(gpus: list[str], per_worker: int) -> list[tuple[str, str, str]]:
    """``(kind, label, CUDA_VISIBLE_DEVICES)`` of workers owning ``per_worker`` GPUs each:
    ``gpu0+1`` sees ``0,1``; GPUs left over after the last whole group get no worker."""
    whole = len(gpus) - len(gpus) % per_worker
    if whole == 0:
        raise ConfigError(
            f"--devices-per-worker: {per_worker} is more than the {len(gpus)} GPUs this "
            f"machine shows ({','.join(gpus)})"
        )
    if whole < len(gpus):
        log.warning(
            "--devices-per-worker %d: GPUs %s get no worker", per_worker, ",".join(gpus[whole:])
        )
    groups = [gpus[i : i + per_worker] for i in range(0, whole, per_worker)]
    return [("gpu", "+".join(group), ",".join(group)) for group in groups]


def _shares(options: WorkerOptions, devices: list[tuple[str, str, str]]) -> list[CpuShare | None]:
    """Each worker's cores: an equal share of this process's (``cpus_per_worker`` to say
    how many), those near its GPU first; ``all``: every worker on every core."""
    if options.cpus_per_worker == "all":
        return [None] * len(devices)
    per_worker = None if options.cpus_per_worker == "auto" else int(options.cpus_per_worker)
    gpus = dict.fromkeys(cuda for kind, _, cuda in devices if kind == "gpu")  # once per GPU
    near = {cuda: gpu_local_cpus(cuda.split(",")[0]) for cuda in gpus}  # a group: its first
    local = [near.get(cuda) if kind == "gpu" else None for kind, _, cuda in devices]
    return list(share_cpus(available_cpus(), len(devices), per_worker, local))


def worker_specs(options: WorkerOptions, broker_url: str) -> list[WorkerSpec]:
    """One :class:`WorkerSpec` per worker ``options`` ask for, on the broker ``broker_url``."""
    host = options.hostname or socket.gethostname()
    devices = _devices(options)
    shares = _shares(options, devices)
    slots = options.slots_per_device
    fraction = 1.0 / slots if slots > 1 else None
    specs = []
    for (kind, index, cuda), share in zip(devices, shares, strict=True):
        name = f"{kind}{index}@{host}"
        argv = [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "smptune.worker.app",
            "worker",
            "--hostname",
            name,
            "--concurrency",
            "1",
            "--pool",
            "prefork",
            "--events",
            "--queues",
            options.queues,
            "--prefetch-multiplier",
            "1",
            "--loglevel",
            options.loglevel,
            "--without-gossip",
            "--without-mingle",
        ]
        if options.max_tasks_per_child:
            argv += ["--max-tasks-per-child", str(options.max_tasks_per_child)]
        if options.max_memory_per_child_mib:
            argv += ["--max-memory-per-child", str(options.max_memory_per_child_mib * 1024)]
        if options.logfile_dir:
            argv += ["--logfile", os.path.join(options.logfile_dir, f"{name}.log")]
        env = {k: v for k, v in os.environ.items() if k not in (CPUS_ENV, MEMORY_FRACTION_ENV)}
        env.update(
            {
                "CUDA_VISIBLE_DEVICES": cuda,
                BROKER_ENV: broker_url,
                ALLOWED_TRAINABLES_ENV: ",".join(options.allow_trainable),
                "SMPTUNE_WORKER_NAME": name,
            }
        )
        env.update(share_env(share, fraction if kind == "gpu" else None))
        env[DEVICES_ENV] = str(options.devices_per_worker)
        memory, queues = options.gpu_memory_gb, options.queues
        env.update(capabilities_env(kind, cuda, slots, memory, options.tags, queues))
        if options.preload if options.preload is not None else kind == "gpu":
            env[PRELOAD_ENV] = PRELOAD_MODULES
        else:
            env.pop(PRELOAD_ENV, None)
        specs.append(WorkerSpec(name, cuda, argv, env, share))
    return specs


class Supervisor:
    """Keeps one process per :class:`WorkerSpec` alive until asked to stop."""

    def __init__(
        self,
        specs: list[WorkerSpec],
        shutdown_timeout_s: float,
        reaper: Reaper | None = None,
        preemption: Preemption | None = None,
    ) -> None:
        self.workers = [Supervised(spec) for spec in specs]
        self.shutdown_timeout_s = shutdown_timeout_s
        self.stopping = False
        self.stop_signal: int | None = None
        self.reaper = reaper
        self.preemption = preemption
        self.reap_interval_s = max(1.0, lease_ttl_s() / 6)
        self._next_reap = 0.0

    def _reap(self, now: float) -> None:
        if self.reaper is None or now < self._next_reap:
            return
        self._next_reap = now + self.reap_interval_s
        try:
            self.reaper.scan(now)
        except Exception as exc:  # Redis away or a bad record: the next pass tries again
            log.warning("reaper pass failed: %s", exc)

    def _start(self, w: Supervised) -> None:
        cpus = w.spec.cpus
        pin = None if cpus is None else lambda: os.sched_setaffinity(0, cpus.cpus)
        w.process = subprocess.Popen(w.spec.argv, env=w.spec.env, preexec_fn=pin)
        w.started = time.monotonic()
        log.info("started %s (pid %d, %s)", w.spec.name, w.process.pid, w.spec.share_text)

    def request_stop(self, signum: int, _frame: FrameType | None = None) -> None:
        if self.stopping:
            log.warning("second signal: cold shutdown")
            self._signal_all(signal.SIGQUIT)
            return
        log.info("received %s: shutting the workers down", signal.Signals(signum).name)
        self.stopping = True
        self.stop_signal = signum

    def _signal_all(self, sig: int) -> None:
        for w in self.workers:
            if w.process is not None and w.process.poll() is None:
                w.process.send_signal(sig)

    def _wait_all(self, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if all(w.process is None or w.process.poll() is not None for w in self.workers):
                return True
            time.sleep(0.1)
        return False

    def run(self) -> int:
        for w in self.workers:
            self._start(w)
        while not self.stopping:
            now = time.monotonic()
            for w in self.workers:
                if w.given_up:
                    continue
                if w.process is None:
                    if now >= w.next_start:
                        self._start(w)
                    continue
                code = w.process.poll()
                if code is None:
                    if now - w.started > 60:
                        w.backoff_s = 1.0
                    continue
                w.exits.append(code)
                w.process = None
                w.quick_exits = w.quick_exits + 1 if now - w.started < QUICK_EXIT_S else 1
                if w.quick_exits >= MAX_QUICK_EXITS:
                    w.given_up = True
                    log.error(
                        "%s exited %d times in a row within %.0f s of starting (exit codes %s): "
                        "not starting it again; its output above says why",
                        w.spec.name,
                        w.quick_exits,
                        QUICK_EXIT_S,
                        ", ".join(map(str, w.exits[-w.quick_exits :])),
                    )
                    continue
                w.restarts += 1
                w.next_start = now + w.backoff_s
                log.warning(
                    "%s exited with code %s; restarting in %.0f s", w.spec.name, code, w.backoff_s
                )
                w.backoff_s = restart_backoff_s(w.backoff_s)
            if all(w.given_up for w in self.workers):
                log.error("every worker keeps exiting at start: the supervisor stops")
                return ExitCode.FAILURE
            self._reap(now)
            time.sleep(0.2)
        if self.preemption is not None and self.stop_signal == signal.SIGTERM:
            return self._preempted(self.preemption)
        self._signal_all(signal.SIGTERM)
        if not self._wait_all(self.shutdown_timeout_s):
            log.warning("workers still busy after %.0f s: cold shutdown", self.shutdown_timeout_s)
            self._signal_all(signal.SIGQUIT)
            if not self._wait_all(10.0):
                self._signal_all(signal.SIGKILL)
                self._wait_all(5.0)
        log.info("all workers stopped")
        return ExitCode.OK

    def _preempted(self, preemption: Preemption) -> int:
        """The machine is going away: trials checkpoint and give themselves back within the
        grace; the rest are killed and given back."""
        names = [w.spec.name for w in self.workers]
        started = time.monotonic()
        log.warning(
            "preempted: trials checkpoint and go back to the queue (%.0f s grace)",
            preemption.grace_s,
        )
        preemption.notify(names)
        self._signal_all(signal.SIGTERM)  # warm: no new trial starts here
        given: list[tuple[str, int]] = []
        if not self._wait_all(max(0.0, preemption.grace_s - 1.0)):
            log.warning("grace spent: cold shutdown of the workers that still train")
            given = preemption.release(names)
            self._signal_all(signal.SIGQUIT)  # Celery puts their messages back as it stops
            if self._wait_all(3.0):
                preemption.put_back(given)
            else:
                self._signal_all(signal.SIGKILL)
                self._wait_all(5.0)
                preemption.send(given)
        preemption.done(names)
        for sweep_id, trial in given:
            log.warning("sweep %s trial %d: queued again", sweep_id, trial)
        log.info(
            "all workers stopped after %.1f s; %d trial(s) given back by the supervisor",
            time.monotonic() - started,
            len(given),
        )
        return ExitCode.OK
