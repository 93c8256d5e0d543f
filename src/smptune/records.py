"""The states and records of sweeps and trials: one status enum each, frozen typed records.

The sweep store (:mod:`smptune.queue.store`) decodes what Redis holds into these records once;
everything above it reads attributes, never raw hash fields. Like Optuna's ``TrialState``
and ``FrozenTrial``: small value objects that know which states are final and which carry a
score, so no module keeps its own tuple of status names.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING, Any

from smptune.messages import TrialRequest
from smptune.params import ParamsView

if TYPE_CHECKING:  # config.py reaches this module through the search package
    from smptune.config import SweepConfig

__all__ = [
    "OUTCOMES",
    "FullSweepRecord",
    "OutOfMemory",
    "PartialRun",
    "RunResults",
    "SavedCheckpoint",
    "SweepRecord",
    "SweepStatus",
    "SweepSummary",
    "TrialRecord",
    "TrialStatus",
]

#: A trial's recorded runs: run index (fold × seeds + seed) -> the run's result as recorded.
RunResults = Mapping[int, Mapping[str, Any]]


def _int(value: object) -> int:
    """A stored JSON number (or its string) as an int; anything else is a ``ValueError``."""
    if isinstance(value, int | float | str) and not isinstance(value, bool):
        return int(value)
    raise ValueError(f"expected an integer, got {value!r}")


def _float(value: object) -> float:
    """A stored JSON number (or its string) as a float; anything else is a ``ValueError``."""
    if isinstance(value, int | float | str) and not isinstance(value, bool):
        return float(value)
    raise ValueError(f"expected a number, got {value!r}")


class _Status(str, Enum):
    """A status that is its own string value: in JSON, Redis, f-strings and comparisons."""

    def __str__(self) -> str:
        return str(self.value)

    def __format__(self, spec: str) -> str:
        return format(str(self.value), spec)


class TrialStatus(_Status):
    """Where a trial stands. The last seven are final and counted as ``trials_<status>``;
    ``infeasible``: it ran out of memory (GPU or the host's limit), which says nothing of
    its configuration's quality (:class:`OutOfMemory` holds what it tried)."""

    PENDING = "pending"
    RUNNING = "running"
    REQUEUED = "requeued"
    COMPLETE = "complete"
    PRUNED = "pruned"
    STOPPED = "stopped"
    SKIPPED = "skipped"
    FAILED = "failed"
    CANCELLED = "cancelled"
    INFEASIBLE = "infeasible"

    @property
    def finished(self) -> bool:
        """A final record is written; the trial never runs again."""
        return self in OUTCOMES

    @property
    def scored(self) -> bool:
        """The record carries a score: complete, or partial (pruned, stopped)."""
        return self in (TrialStatus.COMPLETE, TrialStatus.PRUNED, TrialStatus.STOPPED)

    @property
    def partial(self) -> bool:
        """Stopped before its last run, with a score from the runs it finished."""
        return self in (TrialStatus.PRUNED, TrialStatus.STOPPED)

    @property
    def counter(self) -> str:
        """The sweep hash field that counts trials ending in this status."""
        return f"trials_{self.value}"


#: The final trial statuses, in the order the sweep's counters and results list them.
OUTCOMES: tuple[TrialStatus, ...] = (
    TrialStatus.COMPLETE,
    TrialStatus.PRUNED,
    TrialStatus.STOPPED,
    TrialStatus.SKIPPED,
    TrialStatus.FAILED,
    TrialStatus.CANCELLED,
    TrialStatus.INFEASIBLE,
)


class SweepStatus(_Status):
    """Where a sweep stands; the last three are final."""

    QUEUED = "queued"
    RUNNING = "running"
    RETRAINING = "retraining"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def terminal(self) -> bool:
        return self in (SweepStatus.DONE, SweepStatus.FAILED, SweepStatus.CANCELLED)


@dataclass(frozen=True)
class PartialRun:
    """The run a trial was stopped in between two epochs (pruned, cancelled, out of time):
    recorded with the epochs it trained and why it stopped, never counted as a complete run.
    ``score`` is its best epoch's."""

    fold: int
    repeat: int
    epochs: int
    score: float | None
    reason: str
    duration_s: float = 0.0

    def to_dict(self) -> dict[str, object]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> PartialRun:
        score = data.get("score")
        return cls(
            fold=_int(data["fold"]),
            repeat=_int(data.get("repeat", 0)),
            epochs=_int(data["epochs"]),
            score=None if score is None else _float(score),
            reason=str(data.get("reason", "")),
            duration_s=_float(data.get("duration_s", 0.0)),
        )

    def describe(self) -> str:
        """``fold 1, epoch 3``: how far it got."""
        return f"fold {self.fold}, epoch {self.epochs}"


@dataclass(frozen=True)
class OutOfMemory:
    """What a trial tried when it ran out of memory: the run (fold, seed), the batch size it
    ran with (None: its configuration has none), the error, and the halved batch size it
    was tried again with under ``on_oom: halve_batch`` (None: not tried again)."""

    fold: int
    repeat: int
    batch_size: int | None
    error: str
    retried_batch_size: int | None = None

    def to_dict(self) -> dict[str, object]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> OutOfMemory:
        size, retried = data.get("batch_size"), data.get("retried_batch_size")
        return cls(
            fold=_int(data["fold"]),
            repeat=_int(data.get("repeat", 0)),
            batch_size=None if size is None else _int(size),
            error=str(data.get("error", "")),
            retried_batch_size=None if retried is None else _int(retried),
        )

    def describe(self) -> str:
        """``fold 0 seed 0 with batch_size 32``: where it ran out."""
        size = "" if self.batch_size is None else f" with batch_size {self.batch_size}"
        return f"fold {self.fold} seed {self.repeat}{size}"


@dataclass(frozen=True)
class SavedCheckpoint:
    """The last training checkpoint of a trial's run in progress: which run, after which
    epoch, and where (a path on the machines that share the artifacts directory)."""

    run: int
    epoch: int
    path: str

    def to_dict(self) -> dict[str, object]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> SavedCheckpoint:
        return cls(run=_int(data["run"]), epoch=_int(data["epoch"]), path=str(data["path"]))


@dataclass(frozen=True)
class TrialRecord:
    """One trial as the store holds it: its configuration, state and recorded runs."""

    trial: int
    status: TrialStatus = TrialStatus.PENDING
    params: ParamsView = field(default_factory=dict)
    folds: RunResults = field(default_factory=dict)
    worker: str | None = None
    device: str | None = None
    fold: int | None = None
    pid: int | None = None
    attempts: int = 0
    error: str | None = None
    started: float | None = None
    finished: float | None = None
    requeues: int = 0
    unstable: bool = False
    score: float | None = None
    score_std: float | None = None
    duration_s: float | None = None
    requeued_at: float | None = None
    #: The run it was stopped in between epochs, if any.
    partial: PartialRun | None = None
    #: Times its worker was preempted and it was queued again (not counted as attempts).
    preemptions: int = 0
    #: The last checkpoint of its run in progress, while it has one.
    checkpoint: SavedCheckpoint | None = None
    #: Validation score per epoch of each run (finished or partial), by run index.
    curves: Mapping[int, tuple[float, ...]] = field(default_factory=dict)
    #: The run it ran out of memory in and what it tried, if it did.
    out_of_memory: OutOfMemory | None = None
    #: The batch size its runs ran with when ``on_oom: halve_batch`` changed its
    #: configuration's (None: its configuration's own).
    batch_size: int | None = None

    @property
    def progress(self) -> tuple[int, int]:
        """How far it trained: ``(complete runs, epochs of its partial run)``."""
        return len(self.folds), self.partial.epochs if self.partial else 0

    @property
    def device_s(self) -> float:
        """Seconds its runs trained, the partial one included."""
        done = sum(float(run.get("duration_s", 0.0)) for run in self.folds.values())
        return done + (self.partial.duration_s if self.partial else 0.0)

    def to_dict(self) -> dict[str, object]:
        """The record as ``results.json`` and ``trials.csv`` hold it (status as its string;
        the curves left out: the report draws them; ``device_s`` added)."""
        out: dict[str, object] = {
            f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "curves"
        }
        out["status"] = self.status.value
        out["params"] = dict(self.params)
        out["folds"] = {k: dict(v) for k, v in self.folds.items()}
        out["partial"] = self.partial.to_dict() if self.partial else None
        out["checkpoint"] = self.checkpoint.to_dict() if self.checkpoint else None
        out["out_of_memory"] = self.out_of_memory.to_dict() if self.out_of_memory else None
        out["device_s"] = self.device_s
        return out


@dataclass(frozen=True)
class SweepRecord:
    """One sweep as its hash holds it: small, the same size for any number of trials.
    ``counts`` has every final trial status. :class:`FullSweepRecord` adds its results."""

    id: str
    name: str
    #: Its validated config, decoded once by the store.
    config: SweepConfig
    status: SweepStatus
    created: float
    n_trials: int
    n_folds: int
    n_runs: int
    artifacts_dir: str
    folds_done: int = 0
    counts: Mapping[TrialStatus, int] = field(default_factory=dict)
    finalize_runs: int = 0
    finalize_duplicates: int = 0
    finalize_fallback: float | None = None
    started: float | None = None
    finished: float | None = None
    last_finished: float | None = None
    #: When the finalize of its generation took its lease, and when it wrote its status.
    finalize_started: float | None = None
    finalized_at: float | None = None
    deadline: float | None = None
    #: ``4`` for ``time_budget: 4x``: the deadline is set by the first complete trial.
    budget_factor: float | None = None
    #: No ``n_trials``: a trial is added each time one starts, until the deadline.
    open_ended: bool = False
    #: When its producer recorded it and began sending its chord; None once it is sent.
    submitting: float | None = None
    #: How many times it was resumed or extended after it ended.
    generation: int = 0
    #: How many times retrain-and-test has started.
    retrain_attempts: int = 0
    #: The size its current chord was sent with (Celery's ``<group>.s``): every trial at
    #: submit, the trials run again at a resume or extend.
    chord_size: int | None = None
    #: Finalize and retrain messages sent and taken by a worker (the reaper sends one again
    #: only while none waits: sends <= takes).
    finalize_sends: int = 0
    finalize_takes: int = 0
    retrain_sends: int = 0
    retrain_takes: int = 0
    #: When the reaper last sent its retrain-and-test again.
    retrain_requeued_at: float | None = None
    #: The trial whose retrain-and-test the test metrics are of.
    retrained_trial: int | None = None
    cancel_requested: float | None = None
    error: str | None = None
    test_metrics: Mapping[str, Any] | None = None
    #: The request all its trials share (group, chord, queue, limits), once every trial's
    #: message is sent.
    trial_request: TrialRequest | None = None
    final_model_dir: str | None = None

    def count(self, status: TrialStatus | str) -> int:
        """How many trials ended in ``status``."""
        return int(self.counts.get(TrialStatus(status), 0))

    @property
    def n_finished(self) -> int:
        return sum(self.counts.values())


@dataclass(frozen=True)
class FullSweepRecord(SweepRecord):
    """A sweep with what its hash leaves out because it grows with its trials or its data:
    its results (the ranking of every trial), its splits' samples and its final model's
    sample predictions. Read with ``get_sweep(sweep_id, full=True)``."""

    results: Mapping[str, Any] | None = None
    splits: Mapping[str, Any] | None = None
    #: The final model's sample predictions, base64 PNG.
    predictions_png: str | None = None


@dataclass(frozen=True)
class SweepSummary:
    """A line of ``producer list``: a sweep's name, state and trial counts (an open-ended
    sweep's ``n_trials`` counts the trials started so far)."""

    id: str
    name: str
    status: SweepStatus
    created: float
    n_trials: int
    trials_complete: int
    trials_failed: int

    def to_dict(self) -> dict[str, object]:
        return {**dataclasses.asdict(self), "status": self.status.value}
