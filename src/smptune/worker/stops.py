"""How a trial ends: :class:`TrialStopped` (before its last run), raised where that is found
and recorded in one place (:meth:`smptune.worker.trial_run.TrialRun.run`); the final record
it ends with (:class:`TrialOutcome`) and its share of the chord's result; how a record states
an error."""

from __future__ import annotations

from typing import TypedDict

from celery.exceptions import SoftTimeLimitExceeded

from smptune.errors import SmptuneError
from smptune.records import TrialStatus

__all__ = [
    "LOST_LEASE",
    "RESUMABLE",
    "TrialOutcome",
    "TrialShare",
    "TrialStopped",
    "describe_error",
]


class _Status(TypedDict):
    status: str


class TrialOutcome(_Status, total=False):
    """A trial's final record, as :meth:`~smptune.queue.trials.TrialRecords.finish_trial`
    writes it: its status, and what it has of the rest."""

    error: str
    #: the run it was stopped in (:class:`~smptune.records.PartialRun`), as JSON
    partial: str
    score: float | None
    score_std: float | None
    unstable: bool
    duration_s: float
    #: what it tried when it ran out of memory (:class:`~smptune.records.OutOfMemory`), JSON
    out_of_memory: str
    #: the batch size its runs ran with, once ``on_oom: halve_batch`` halved it
    batch_size: int


class TrialShare(TypedDict):
    """A trial's share of its chord's result (what ``cv_trial`` returns)."""

    trial: int
    status: str
    score: float | None


def describe_error(exc: BaseException) -> str:
    """An exception as a trial or sweep record states it."""
    if isinstance(exc, SoftTimeLimitExceeded):
        return "time limit exceeded"
    if isinstance(exc, SmptuneError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


class TrialStopped(SmptuneError):
    """A trial ends before its last run: raised where that is found, recorded in one place
    (:meth:`TrialRun.run`), as Optuna's ``TrialPruned``.

    ``status`` is the record's: ``cancelled``; ``skipped`` or ``stopped`` (the time budget);
    ``pruned``; ``failed``; ``infeasible`` (out of memory). ``requeued``: its worker is being
    preempted, and the trial is queued again at once, uncounted. None: this copy lost the
    trial's lease to another copy, and records nothing.
    """

    def __init__(self, status: TrialStatus | None, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


#: Stops after which a run is continued later, from a checkpoint saved as it stops.
RESUMABLE = (TrialStatus.REQUEUED, TrialStatus.CANCELLED, TrialStatus.STOPPED)

#: How a copy that lost its trial's lease to another says so.
LOST_LEASE = "this copy lost the trial's lease to another copy"
