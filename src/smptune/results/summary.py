"""The sweep's results as one typed record: :func:`summarize` ranks what the store holds into
a :class:`SweepResults`, which ``to_dict`` writes as results.json (and the store's
``results`` field) holds it and ``from_dict`` reads back.

The store below keeps plain JSON data; everything in :mod:`smptune.results` and above reads
these records by attribute.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from smptune.config import SweepConfig
from smptune.params import Params, ParamsView
from smptune.queue.store import SweepStore
from smptune.records import (
    OUTCOMES,
    OutOfMemory,
    PartialRun,
    SavedCheckpoint,
    TrialRecord,
    TrialStatus,
)
from smptune.results.json_reads import (
    count,
    flag,
    items,
    maybe_number,
    maybe_real,
    maybe_text,
    maybe_whole,
    number,
    real,
    record,
    text,
    whole,
)
from smptune.results.pareto import Pareto, pareto_of
from smptune.search.halving import Halving
from smptune.search.scoring import (
    CvAtEpochs,
    Scoring,
    best_epochs,
    cv_versus_test,
    direction,
    may_be_best,
    rank_trials,
    retrain_floor,
    run_scores,
    score_at_epoch,
    scores_by_run,
)

__all__ = [
    "MODEL_FOLDERS",
    "BestTrial",
    "CvAtEpochs",
    "FoldEnsemble",
    "LearningCurve",
    "RankedTrial",
    "RetrainCheck",
    "RungResult",
    "RungTrial",
    "SweepResults",
    "current_results",
    "retrain_check",
    "stored_results",
    "summarize",
]

#: How many of the best complete trials, and of the trials stopped inside a run, the report
#: draws the learning curves of.
CURVES_TOP, CURVES_STOPPED = 5, 10


@dataclass(frozen=True)
class BestTrial:
    """The sweep's answer: its trial, score, configuration and the retrain's epochs."""

    trial: int
    status: TrialStatus
    score: float | None
    score_std: float | None
    params: ParamsView
    epochs: int
    #: The folds at the retrain's epoch count, beside each at its best epoch.
    cv_at_epochs: CvAtEpochs | None = None

    def to_dict(self) -> dict[str, object]:
        return {
            "trial": self.trial,
            "status": self.status.value,
            "score": self.score,
            "score_std": self.score_std,
            "params": dict(self.params),
            "epochs": self.epochs,
            "cv_at_epochs": self.cv_at_epochs.to_dict() if self.cv_at_epochs else None,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> BestTrial:
        at = data.get("cv_at_epochs")
        return cls(
            trial=whole(data["trial"]),
            status=TrialStatus(data.get("status", "complete")),
            score=maybe_number(data.get("score")),
            score_std=maybe_number(data.get("score_std")),
            params=dict(record(data.get("params"))),
            epochs=whole(data.get("epochs", 1)),
            cv_at_epochs=CvAtEpochs.from_dict(record(at)) if at else None,
        )


_RECORD_FIELDS = tuple(f.name for f in dataclasses.fields(TrialRecord) if f.name != "curves")


@dataclass(frozen=True)
class RankedTrial(TrialRecord):
    """A row of the ranking: the trial's record (without its curves), its rank (1 is the
    best) and each run's score in run order (NaN for an unstable run)."""

    rank: int = 0
    fold_scores: tuple[float, ...] = ()

    @classmethod
    def of(cls, record: TrialRecord, rank: int, fold_scores: Sequence[float]) -> RankedTrial:
        kept = {name: getattr(record, name) for name in _RECORD_FIELDS}
        return cls(**kept, rank=rank, fold_scores=tuple(fold_scores))

    @property
    def run_scores(self) -> dict[int, float]:
        """Run index -> score of its recorded runs."""
        return scores_by_run(self.folds, self.fold_scores)

    def to_dict(self) -> dict[str, object]:
        out = TrialRecord.to_dict(self)
        del out["rank"], out["fold_scores"]  # after device_s, as results.json has them
        return {**out, "rank": self.rank, "fold_scores": list(self.fold_scores)}

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> RankedTrial:
        """A row of results.json's ranking; a field of the trial's record it lacks keeps
        its default."""
        get = data.get
        partial, checkpoint, oom = get("partial"), get("checkpoint"), get("out_of_memory")
        return cls(
            trial=count(data["trial"]),
            status=TrialStatus(get("status", "pending")),
            params=dict(record(get("params"))),
            folds={whole(k): dict(record(v)) for k, v in record(get("folds")).items()},
            worker=maybe_text(get("worker")),
            device=maybe_text(get("device")),
            fold=maybe_whole(get("fold")),
            pid=maybe_whole(get("pid")),
            attempts=count(get("attempts", 0)),
            error=maybe_text(get("error")),
            started=maybe_real(get("started")),
            finished=maybe_real(get("finished")),
            requeues=count(get("requeues", 0)),
            unstable=flag(get("unstable", False)),
            score=maybe_real(get("score")),
            score_std=maybe_real(get("score_std")),
            duration_s=maybe_real(get("duration_s")),
            requeued_at=maybe_real(get("requeued_at")),
            partial=PartialRun.from_dict(record(partial)) if partial else None,
            preemptions=count(get("preemptions", 0)),
            checkpoint=SavedCheckpoint.from_dict(record(checkpoint)) if checkpoint else None,
            out_of_memory=OutOfMemory.from_dict(record(oom)) if oom else None,
            batch_size=maybe_whole(get("batch_size")),
            rank=whole(get("rank") or 0),
            fold_scores=tuple(number(s) for s in items(get("fold_scores"))),
        )


@dataclass(frozen=True)
class LearningCurve:
    """The validation score per epoch of each run (by run index) of one trial."""

    trial: int
    rank: int
    status: TrialStatus
    partial: PartialRun | None
    curves: Mapping[int, tuple[float, ...]]

    def to_dict(self) -> dict[str, object]:
        return {
            "trial": self.trial,
            "rank": self.rank,
            "status": self.status.value,
            "partial": self.partial.to_dict() if self.partial else None,
            "curves": {str(run): list(curve) for run, curve in self.curves.items()},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> LearningCurve:
        partial = data.get("partial")
        curves = record(data.get("curves"))
        return cls(
            trial=whole(data["trial"]),
            rank=whole(data.get("rank") or 0),
            status=TrialStatus(data.get("status", "complete")),
            partial=PartialRun.from_dict(record(partial)) if partial else None,
            curves={whole(k): tuple(real(x) for x in items(v)) for k, v in curves.items()},
        )


@dataclass(frozen=True)
class RungTrial:
    """A trial at a rung: its score there (None for an unstable one) and whether it went on."""

    trial: int
    score: float | None
    promoted: bool

    def to_dict(self) -> dict[str, object]:
        return {"trial": self.trial, "score": self.score, "promoted": self.promoted}

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> RungTrial:
        return cls(whole(data["trial"]), maybe_number(data.get("score")), bool(data["promoted"]))


@dataclass(frozen=True)
class RungResult:
    """What one rung of a successive-halving pruner decided: where it is read, how many
    trials reached it, were promoted and stopped there, and each trial there."""

    bracket: int
    rung: int
    where: str
    resource: int
    reached: int
    promoted: int
    stopped: int
    trials: tuple[RungTrial, ...]

    def to_dict(self) -> dict[str, object]:
        out: dict[str, object] = {f: getattr(self, f) for f in _RUNG_COUNTS}
        out["trials"] = [t.to_dict() for t in self.trials]
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> RungResult:
        return cls(
            bracket=count(data["bracket"]),
            rung=count(data["rung"]),
            where=text(data["where"]),
            resource=count(data["resource"]),
            reached=count(data["reached"]),
            promoted=count(data["promoted"]),
            stopped=count(data["stopped"]),
            trials=tuple(RungTrial.from_dict(record(t)) for t in items(data.get("trials"))),
        )


_RUNG_COUNTS = ("bracket", "rung", "where", "resource", "reached", "promoted", "stopped")


@dataclass(frozen=True)
class FoldEnsemble:
    """The best trial's fold models tested together: its trial, members, test metrics and
    folder, or the error that stopped it."""

    trial: int | None = None
    members: tuple[str, ...] = ()
    test_metrics: Mapping[str, float] | None = None
    dir: str | None = None
    error: str | None = None

    def to_dict(self) -> dict[str, object]:
        if self.error is not None:
            return {"error": self.error}
        return {
            "trial": self.trial,
            "members": list(self.members),
            "test_metrics": None if self.test_metrics is None else dict(self.test_metrics),
            "dir": self.dir,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> FoldEnsemble:
        metrics = data.get("test_metrics")
        return cls(
            trial=maybe_whole(data.get("trial")),
            members=tuple(text(m) for m in items(data.get("members"))),
            test_metrics=None
            if metrics is None
            else {k: real(v) for k, v in record(metrics).items()},
            dir=maybe_text(data.get("dir")),
            error=maybe_text(data.get("error")),
        )


@dataclass(frozen=True)
class SweepResults:
    """The ranking and the best trial of a sweep, as results.json holds them (``to_dict``)."""

    sweep_id: str
    name: str
    #: The score's label (``iou``, ``harmonic(iou, 1/loss)``).
    metric: str
    mode: Literal["max", "min"]
    n_trials: int
    n_folds: int
    #: The searched and fixed hyperparameters' names, in config order.
    hyperparameters: tuple[str, ...]
    n_randoms: int
    scoring: Scoring
    #: The config's ``sampler`` and ``pruner``, as it gives them.
    sampler: object
    pruner: object
    class_names: tuple[str, ...] | None
    #: Trials that ended in each final status (every one of :data:`OUTCOMES`).
    counts: Mapping[TrialStatus, int]
    no_best: str | None
    best: BestTrial | None
    ranking: tuple[RankedTrial, ...] = ()
    learning_curves: tuple[LearningCurve, ...] = ()
    #: None without a successive-halving pruner.
    rungs: tuple[RungResult, ...] | None = None
    #: Set by retrain-and-test once it tested the fold models together.
    fold_ensemble: FoldEnsemble | None = None
    #: A multi-objective sweep's front; its ``best`` is the trial ``select`` chose.
    pareto: Pareto | None = None

    def count(self, status: TrialStatus) -> int:
        return int(self.counts.get(status, 0))

    @property
    def best_params(self) -> Params | None:
        """Optuna's ``study.best_params``: the best trial's searched and fixed parameters."""
        if self.best is None:
            return None
        params = self.best.params
        return {k: params[k] for k in self.hyperparameters if k in params}

    @property
    def best_value(self) -> float | None:
        """Optuna's ``study.best_value``."""
        return None if self.best is None else self.best.score

    @property
    def direction(self) -> Literal["minimize", "maximize"]:
        return direction(self.mode)

    @property
    def ensemble_metrics(self) -> Mapping[str, float] | None:
        """The fold ensemble's test metrics, when it was tested."""
        return self.fold_ensemble.test_metrics if self.fold_ensemble else None

    @property
    def default_model(self) -> Literal["fold_ensemble", "retrained_model"]:
        """``fold_ensemble`` when the fold ensemble was exported and tested, else
        ``retrained_model``: what ``producer predict`` runs and the report leads with."""
        return "fold_ensemble" if self.ensemble_metrics else "retrained_model"

    def trial(self, number: int) -> RankedTrial | None:
        """The ranking's row of trial ``number``."""
        return next((t for t in self.ranking if t.trial == number), None)

    def cv_versus_test(
        self, test_metrics: Mapping[str, float]
    ) -> tuple[float, float | None, float] | None:
        """:func:`~smptune.search.scoring.cv_versus_test` of the best trial."""
        if self.best is None:
            return None
        return cv_versus_test(test_metrics, self.scoring, self.best.score, self.best.cv_at_epochs)

    def retrain_floor(self) -> float | None:
        """:func:`~smptune.search.scoring.retrain_floor` of the best trial."""
        return None if self.best is None else retrain_floor(self.best.cv_at_epochs, self.mode)

    def to_dict(self) -> dict[str, object]:
        """results.json's content (before the results writer adds the test figures)."""
        out: dict[str, object] = {
            "sweep_id": self.sweep_id,
            "name": self.name,
            "metric": self.metric,
            "mode": self.mode,
            "n_trials": self.n_trials,
            "n_folds": self.n_folds,
            "hyperparameters": list(self.hyperparameters),
            "n_randoms": self.n_randoms,
            "scoring": self.scoring.to_dict(),
            "sampler": self.sampler,
            "pruner": self.pruner,
            "class_names": None if self.class_names is None else list(self.class_names),
            **{status.counter: self.count(status) for status in OUTCOMES},
            "no_best": self.no_best,
            "best": self.best.to_dict() if self.best else None,
            # Optuna's names for the same answer (study.best_params, best_value, direction)
            "best_params": self.best_params,
            "best_value": self.best_value,
            "direction": self.direction,
            "ranking": [t.to_dict() for t in self.ranking],
            "learning_curves": [c.to_dict() for c in self.learning_curves],
            "rungs": None if self.rungs is None else [r.to_dict() for r in self.rungs],
        }
        if self.fold_ensemble is not None:
            out["fold_ensemble"] = self.fold_ensemble.to_dict()
        return out | (self.pareto.to_dict() if self.pareto else {})

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> SweepResults:
        """Read results.json (or the store's ``results``) back; the keys the results writer
        adds (test metrics, default model, per class) are left out."""
        scoring = data.get("scoring") or {"metrics": [data.get("metric") or "score"]}
        names, best = data.get("class_names"), data.get("best")
        rungs, ensemble = data.get("rungs"), data.get("fold_ensemble")
        return cls(
            sweep_id=str(data.get("sweep_id", "")),
            name=str(data.get("name") or "sweep"),
            metric=str(data.get("metric") or "score"),
            mode="min" if data.get("mode") == "min" else "max",
            n_trials=whole(data.get("n_trials") or 0),
            n_folds=whole(data.get("n_folds") or 1),
            hyperparameters=tuple(text(h) for h in items(data.get("hyperparameters"))),
            n_randoms=whole(data.get("n_randoms") or 1),
            scoring=Scoring.from_dict(record(scoring)),
            sampler=data.get("sampler"),
            pruner=data.get("pruner"),
            class_names=None if names is None else tuple(text(n) for n in items(names)),
            counts={s: whole(data.get(s.counter) or 0) for s in OUTCOMES},
            no_best=maybe_text(data.get("no_best")),
            best=BestTrial.from_dict(record(best)) if best else None,
            ranking=tuple(RankedTrial.from_dict(record(t)) for t in items(data.get("ranking"))),
            learning_curves=tuple(
                LearningCurve.from_dict(record(c)) for c in items(data.get("learning_curves"))
            ),
            rungs=None
            if rungs is None
            else tuple(RungResult.from_dict(record(r)) for r in items(rungs)),
            fold_ensemble=FoldEnsemble.from_dict(record(ensemble)) if ensemble else None,
            pareto=Pareto.from_dict(data) if data.get("objectives") else None,
        )


#: The model smptune gives by default, and where it is: the fold ensemble when there is one
#: (on real data it scored at least as well as the retrained model in 10 of 12 measured
#: settings, docs/performance.md), else the retrained model.
MODEL_FOLDERS = {"fold_ensemble": "final/ensemble", "retrained_model": "final/model"}


@dataclass(frozen=True)
class RetrainCheck:
    """results.json's ``retrain_check``: the retrained model's test score against
    :func:`~smptune.search.scoring.retrain_floor` (``below``: it scored worse)."""

    test: float
    floor: float
    below: bool

    def to_dict(self) -> dict[str, object]:
        return {"test": self.test, "floor": self.floor, "below": self.below}


def retrain_check(results: SweepResults, test_metrics: Mapping[str, float]) -> RetrainCheck | None:
    """How the retrained model's ``test_metrics`` compare with its floor; None when a figure
    is missing."""
    figures = results.cv_versus_test(test_metrics)
    floor = results.retrain_floor()
    if figures is None or floor is None:
        return None
    test = figures[2]
    below = test < floor if results.mode == "max" else test > floor
    return RetrainCheck(test=test, floor=floor, below=below)


def summarize(db: SweepStore, sweep_id: str) -> SweepResults:
    """The ranking and the best trial of what the store holds now."""
    sweep = db.get_sweep(sweep_id)
    config = sweep.config
    ranked = rank_trials(db.trials(sweep_id), config.scoring.mode)
    best = next((t for t in ranked if may_be_best(t)), None)
    counts = {status: sweep.count(status) for status in OUTCOMES}
    pareto = None if config.objectives is None else pareto_of(ranked, config.objectives)
    if pareto is not None:  # the trial select chose
        best = next((t for t in ranked if t.trial == pareto.selected), None)
    no_best = None if best is not None else no_best_reason(counts)
    return SweepResults(
        sweep_id=sweep_id,
        name=config.name,
        metric=config.scoring.label,
        mode=config.scoring.mode if config.mode is None else config.mode,
        n_trials=sweep.n_trials,
        n_folds=sweep.n_folds,
        hyperparameters=tuple(config.hyperparameters),
        n_randoms=config.cv_settings.n_randoms,
        scoring=config.scoring,
        sampler=config.sampler,
        pruner=config.pruner,
        class_names=None if config.class_names is None else tuple(config.class_names),
        counts=counts,
        no_best=pareto.no_selection if pareto and pareto.points and not best else no_best,
        best=None if best is None else _best(best, config),
        ranking=tuple(
            RankedTrial.of(t, rank, run_scores(t.folds, config.scoring))
            for rank, t in enumerate(ranked, start=1)
        ),
        learning_curves=learning_curves(ranked),
        rungs=rung_results(db, sweep_id, config),
        pareto=pareto,
    )


def stored_results(db: SweepStore, sweep_id: str) -> SweepResults | None:
    """The results its finalize recorded, or None before it has."""
    data = db.sweep_results(sweep_id)
    return SweepResults.from_dict(data) if data else None


def current_results(db: SweepStore, sweep_id: str) -> SweepResults:
    """The recorded results, else the sweep ranked now."""
    return stored_results(db, sweep_id) or summarize(db, sweep_id)


def _best(best: TrialRecord, config: SweepConfig) -> BestTrial:
    epochs = best_epochs(best.folds, config.retrain_epochs)
    return BestTrial(
        trial=best.trial,
        status=best.status,
        score=best.score,
        score_std=best.score_std,
        params=dict(best.params),
        epochs=epochs,
        cv_at_epochs=score_at_epoch(best.curves, epochs),
    )


def rung_results(
    db: SweepStore, sweep_id: str, config: SweepConfig
) -> tuple[RungResult, ...] | None:
    """What each rung of a successive-halving pruner decided; None without such a pruner."""
    if not config.pruner_spec.halving:
        return None
    halving = Halving.from_spec(config.pruner_spec, config.max_epochs, config.n_runs)
    rungs = db.rungs(sweep_id, halving, config.scoring.mode)
    out = []
    for bracket in range(halving.brackets):
        for rung in halving.rungs(bracket):
            scores, stopped = rungs.members(bracket, rung.index)
            trials = tuple(
                RungTrial(trial, score if math.isfinite(score) else None, trial not in stopped)
                for trial, score in sorted(scores.items())
            )
            out.append(
                RungResult(
                    bracket=bracket,
                    rung=rung.index,
                    where=rung.where(config.cv_settings.n_randoms),
                    resource=rung.resource,
                    reached=len(scores),
                    promoted=len(scores.keys() - stopped),
                    stopped=len(scores.keys() & stopped),
                    trials=trials,
                )
            )
    return tuple(out)


def no_best_reason(counts: Mapping[TrialStatus, int]) -> str:
    """Why a sweep has no best configuration, in one line: no trial finished its
    cross-validation stably (``8 pruned, 2 failed``)."""
    ended = ", ".join(f"{counts[s]} {s}" for s in OUTCOMES if counts.get(s))
    return (
        f"no trial finished its cross-validation ({ended or 'no trials'}), so there is no "
        "best configuration and nothing is retrained"
    )


def learning_curves(ranked: Sequence[TrialRecord]) -> tuple[LearningCurve, ...]:
    """The curves of the best complete trials and of those stopped inside a run (up to where
    they stopped), best first; none for a trainable that reports no epochs."""
    top = [t for t in ranked if t.status is TrialStatus.COMPLETE and t.curves][:CURVES_TOP]
    stopped = [t for t in ranked if t.partial is not None and t.curves][:CURVES_STOPPED]
    rank = {t.trial: n for n, t in enumerate(ranked, start=1)}
    return tuple(
        LearningCurve(
            trial=t.trial,
            rank=rank[t.trial],
            status=t.status,
            partial=t.partial,
            curves={run: tuple(curve) for run, curve in t.curves.items()},
        )
        for t in (*top, *stopped)
    )
