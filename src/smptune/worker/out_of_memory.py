"""Out of memory on a worker: told from other errors, and recorded as a trial ``infeasible``.

A run is out of memory when its trainable raises CUDA's ``torch.cuda.OutOfMemoryError`` (any
exception class named ``OutOfMemoryError``, so torch is never imported here) or Python's
``MemoryError``, or when the process's resident memory is over ``training.max_host_memory_gb``
after one of its epochs or at its end (read from ``/proc/self/statm``). That says nothing of
the configuration's quality: the trial ends ``infeasible`` with what it tried
(:class:`~smptune.records.OutOfMemory`), and an adaptive sampler sees it as a violated
constraint. Under ``on_oom: halve_batch`` the trial trains its unfinished runs once more with
half its ``batch_size``, each run so recorded with the batch size it ran with.
"""

from __future__ import annotations

import json
import logging
import os
from typing import Any

from smptune.config import SweepConfig
from smptune.params import Params, ParamsView
from smptune.records import OutOfMemory, RunResults, TrialStatus
from smptune.worker.stops import TrialOutcome, TrialStopped, describe_error

__all__ = ["MemoryGuard", "is_out_of_memory", "resident_gb"]

log = logging.getLogger("smptune.worker.tasks")

#: The exception class names that mean out of memory (torch's CUDA one, Python's own).
OOM_NAMES = ("OutOfMemoryError", "MemoryError")


def is_out_of_memory(exc: BaseException) -> bool:
    """Whether ``exc`` (or an exception it was raised from) is out of memory: by class name,
    so torch's ``torch.cuda.OutOfMemoryError`` is told without importing torch."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, MemoryError):
            return True
        if any(cls.__name__ in OOM_NAMES for cls in type(current).__mro__):
            return True
        current = current.__cause__ or current.__context__
    return False


def resident_gb() -> float | None:
    """This process's resident memory in GB (10⁹ bytes), or None where ``/proc`` has none."""
    try:
        with open("/proc/self/statm") as statm:
            pages = int(statm.read().split()[1])
    except (OSError, IndexError, ValueError):
        return None
    return pages * os.sysconf("SC_PAGE_SIZE") / 1e9


class MemoryGuard:
    """One trial copy's out-of-memory handling: the stop it ends with, the one retry with
    half the batch size (``on_oom: halve_batch``), and what its record says of it."""

    def __init__(self, config: SweepConfig) -> None:
        self.halve = config.on_oom == "halve_batch"
        limit = config.training.get("max_host_memory_gb")
        self.limit_gb = None if limit is None else float(limit)
        #: The run in progress: ``(fold, seed, batch size)``.
        self.run: tuple[int, int, int | None] = (0, 0, None)
        #: What it tried when it last ran out of memory.
        self.hit: OutOfMemory | None = None
        #: The halved batch size its runs train with from now on (None: their own).
        self.batch_size: int | None = None

    def params(self, params: ParamsView, done: RunResults) -> Params:
        """``params`` with the halved batch size, once halved by this copy or by an earlier
        one (its recorded runs say so)."""
        if self.batch_size is None:
            earlier = [r["batch_size"] for r in done.values() if r.get("batch_size")]
            self.batch_size = int(earlier[-1]) if earlier else None
        if self.batch_size is None:
            return dict(params)
        return {**params, "batch_size": self.batch_size}

    def starts(self, fold: int, repeat: int, params: ParamsView) -> None:
        """Run ``fold`` seed ``repeat`` starts with ``params``."""
        size = params.get("batch_size")
        self.run = (fold, repeat, size if isinstance(size, int) else None)

    def stop(self, exc: BaseException) -> TrialStopped | None:
        """The stop ``exc`` ends the trial with: itself if it is one, ``infeasible`` if it is
        out of memory, None for any other error."""
        if isinstance(exc, TrialStopped):
            return exc
        if not is_out_of_memory(exc):
            return None
        return self._infeasible(describe_error(exc))

    def host_stop(self) -> TrialStopped | None:
        """``infeasible`` when the process's resident memory is over the host limit."""
        if self.limit_gb is None:
            return None
        used = resident_gb()
        if used is None or used <= self.limit_gb:
            return None
        return self._infeasible(
            f"host memory {used:.2f} GB is over training.max_host_memory_gb {self.limit_gb:g}"
        )

    def _infeasible(self, error: str) -> TrialStopped:
        """Out of memory in the run in progress: after a retry with half the batch, the
        record keeps the batch size it first ran out with and the halved one."""
        fold, repeat, size = self.run
        retried = None if self.hit is None else self.hit.retried_batch_size
        if retried is not None and self.hit is not None:
            size = self.hit.batch_size
        self.hit = OutOfMemory(fold, repeat, size, error, retried)
        return TrialStopped(
            TrialStatus.INFEASIBLE, f"out of memory at {self.hit.describe()}: {error}"
        )

    def retries(self, stop: TrialStopped, where: str) -> bool:
        """Whether the trial trains its unfinished runs once more with half the batch size
        after ``stop`` (out of memory, ``on_oom: halve_batch``, not halved yet, a batch size
        of 2 or more); says so in the log."""
        hit = self.hit
        if stop.status is not TrialStatus.INFEASIBLE or not self.halve or hit is None:
            return False
        if hit.retried_batch_size is not None or self.batch_size is not None:
            return False  # once only: this copy, or an earlier one, halved it already
        if hit.batch_size is None or hit.batch_size < 2:
            return False
        half = hit.batch_size // 2
        self.hit = OutOfMemory(hit.fold, hit.repeat, hit.batch_size, hit.error, half)
        self.batch_size = half
        _free_memory()
        log.warning("%s: %s; on_oom: halve_batch tries it with batch_size %d", where, stop, half)
        return True

    def mark(self, result: dict[str, Any]) -> None:
        """A run's result as recorded: with the batch size it ran with, once halved."""
        if self.batch_size is not None:
            result["batch_size"] = self.batch_size

    def add_to(self, record: TrialOutcome) -> None:
        """Add to the trial's ``record`` what it tried when out of memory, and the batch size
        its runs ran with once halved."""
        if self.hit is not None:
            record["out_of_memory"] = json.dumps(self.hit.to_dict())
        if self.batch_size is not None:
            record["batch_size"] = self.batch_size


def _free_memory() -> None:
    """Give back what the run that ran out held: Python's garbage, and CUDA's cached blocks
    when the trainable has imported torch."""
    import gc
    import sys

    gc.collect()
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()
