"""How a trial ends before its last run: :class:`TrialStopped`, raised where that is found
and recorded in one place (:meth:`smptune.worker.trial_run.TrialRun.run`), and how a record
states an error."""

from __future__ import annotations

from celery.exceptions import SoftTimeLimitExceeded

from smptune.errors import SmptuneError
from smptune.records import TrialStatus

__all__ = ["LOST_LEASE", "RESUMABLE", "TrialStopped", "describe_error"]


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
    ``pruned``; ``failed``. ``requeued``: its worker is being preempted, and the trial is
    queued again at once, uncounted. None: this copy lost the trial's lease to another copy,
    and records nothing.
    """

    def __init__(self, status: TrialStatus | None, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


#: Stops after which a run is continued later, from a checkpoint saved as it stops.
RESUMABLE = (TrialStatus.REQUEUED, TrialStatus.CANCELLED, TrialStatus.STOPPED)

#: How a copy that lost its trial's lease to another says so.
LOST_LEASE = "this copy lost the trial's lease to another copy"
