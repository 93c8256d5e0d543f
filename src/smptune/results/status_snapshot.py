"""The typed records of a sweep's progress snapshot (``producer status``), and its JSON:
``StatusSnapshot.to_dict`` is what ``producer status --json`` prints."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from smptune.queue.routing import FleetWorker
from smptune.records import OUTCOMES, SweepStatus, TrialStatus

#: Trial outcomes in the order they are shown: complete and failed first, always.
SHOWN_OUTCOMES = (
    TrialStatus.COMPLETE,
    TrialStatus.FAILED,
    *(s for s in OUTCOMES if s not in (TrialStatus.COMPLETE, TrialStatus.FAILED)),
)


@dataclass(frozen=True)
class RunningTrial:
    """A trial on a worker now: its worker and share of its machine, the fold under way,
    when it started, its runs recorded, its parameters as text and how long it has run
    (``runs_done`` None and ``params`` empty once the sweep has ended)."""

    trial: int
    worker: str
    started: float
    share: str = ""
    fold: int = 0
    runs_done: int | None = None
    params: str = ""
    running_s: float | None = None

    def to_dict(self) -> dict[str, object]:
        return {
            "trial": self.trial,
            "worker": self.worker,
            "share": self.share,
            "fold": self.fold,
            "started": self.started,
            "runs_done": self.runs_done,
            "params": self.params,
            "running_s": self.running_s,
        }


@dataclass(frozen=True)
class RequeuedTrial:
    """A trial waiting to run again, and how often it was preempted or lost its worker."""

    trial: int
    preemptions: int
    requeues: int

    def to_dict(self) -> dict[str, object]:
        return {"trial": self.trial, "preemptions": self.preemptions, "requeues": self.requeues}


@dataclass(frozen=True)
class EtaBasis:
    """What an ETA rests on: the runs timed, their mean and the workers busy now."""

    runs_measured: int
    mean_run_s: float | None
    workers_busy: int

    def to_dict(self) -> dict[str, object]:
        return {
            "runs_measured": self.runs_measured,
            "mean_run_s": self.mean_run_s,
            "workers_busy": self.workers_busy,
        }


@dataclass(frozen=True)
class Eta:
    """Seconds until every trial has finished (None until a run has), and its basis."""

    eta_s: float | None = None
    eta_basis: EtaBasis | None = None


@dataclass(frozen=True)
class RungCount:
    """One rung of a successive-halving pruner: where it is read, how many trials reached
    it, were promoted and were stopped there."""

    bracket: int
    where: str
    reached: int
    promoted: int
    stopped: int

    def to_dict(self) -> dict[str, object]:
        return {
            "bracket": self.bracket,
            "where": self.where,
            "reached": self.reached,
            "promoted": self.promoted,
            "stopped": self.stopped,
        }


@dataclass(frozen=True)
class BestSoFar:
    """The best complete trial so far and its score."""

    trial: int
    score: float

    def to_dict(self) -> dict[str, object]:
        return {"trial": self.trial, "score": self.score}


@dataclass(frozen=True)
class WaitingForCapability:
    """Trials that wait for what no live worker has (``needs``: its text)."""

    needs: str
    trials: int

    def to_dict(self) -> dict[str, object]:
        return {"needs": self.needs, "trials": self.trials}


@dataclass(frozen=True)
class StatusSnapshot:
    """A sweep's state at one moment: counts, best so far, who runs which trial and fold,
    the ETA, what waits to run again, the rungs, and what has stalled."""

    sweep_id: str
    name: str
    status: SweepStatus
    folds_done: int
    folds_total: int
    n_folds: int
    n_runs: int
    trials_total: int
    open_ended: bool
    deadline: float | None
    #: Trials that ended in each of :data:`SHOWN_OUTCOMES`.
    counts: Mapping[TrialStatus, int]
    trials_finished: int
    best: BestSoFar | None
    #: The config's ``metric``, as it gives it (a name or a list of names).
    metric: str | Sequence[str]
    mode: str
    elapsed_s: float
    eta: Eta
    running: tuple[RunningTrial, ...]
    requeued: tuple[RequeuedTrial, ...]
    test_metrics: Mapping[str, float] | None
    class_names: tuple[str, ...] | None
    error: str | None
    finalize_runs: int
    rungs: tuple[RungCount, ...]
    stalled: str | None
    #: The live workers with their capabilities (see :mod:`smptune.queue.routing`).
    fleet: tuple[FleetWorker, ...] = ()
    waiting_for: tuple[WaitingForCapability, ...] = ()

    @property
    def eta_s(self) -> float | None:
        return self.eta.eta_s

    def count(self, status: TrialStatus) -> int:
        return int(self.counts.get(status, 0))

    def to_dict(self) -> dict[str, object]:
        """The snapshot as ``producer status --json`` prints it."""
        basis = self.eta.eta_basis
        metric = self.metric if isinstance(self.metric, str) else list(self.metric)
        return {
            "sweep_id": self.sweep_id,
            "name": self.name,
            "status": self.status.value,
            "folds_done": self.folds_done,
            "folds_total": self.folds_total,
            "n_folds": self.n_folds,
            "n_runs": self.n_runs,
            "trials_total": self.trials_total,
            "open_ended": self.open_ended,
            "deadline": self.deadline,
            **{o.counter: self.count(o) for o in SHOWN_OUTCOMES},
            "trials_finished": self.trials_finished,
            "best": None if self.best is None else self.best.to_dict(),
            "metric": metric,
            "mode": self.mode,
            "elapsed_s": self.elapsed_s,
            "eta_s": self.eta.eta_s,
            "eta_basis": None if basis is None else basis.to_dict(),
            "running": [r.to_dict() for r in self.running],
            "requeued": [r.to_dict() for r in self.requeued],
            "test_metrics": None if self.test_metrics is None else dict(self.test_metrics),
            "class_names": None if self.class_names is None else list(self.class_names),
            "error": self.error,
            "finalize_runs": self.finalize_runs,
            "rungs": [r.to_dict() for r in self.rungs],
            "stalled": self.stalled,
            **({"fleet": [w.to_dict() for w in self.fleet]} if self.fleet else {}),
            **(
                {"waiting_for": [w.to_dict() for w in self.waiting_for]} if self.waiting_for else {}
            ),
        }
