"""Optuna on the worker: ask an adaptive sampler for a configuration when a trial starts, and
ask a pruner after each fold (or epoch) whether the trial should stop.

The sampler sees every trial's validation score per epoch where the trainable reports epochs
(the fold scores otherwise), pruned trials included: TPE ranks a pruned trial by how far it
got and its last value, so with ASHA it learns as BOHB does from the rungs, not only from the
few trials that finish.

Nothing is kept in an Optuna storage: a sampler asks an in-memory study of the trials it is
handed (finished trials with their values, running ones as RUNNING so that the sampler's
constant liar keeps parallel trials apart), which a worker keeps between asks and updates
with what changed (:mod:`smptune.search.study_view`), so any worker can decide and none can
disagree with what the sweep store recorded. A pruner reads only O(log trials) figures of
the complete trials (:class:`CompleteTrials`). This module never opens the store, as Optuna's
samplers are handed a study and never open its storage.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol, TypeAlias

from smptune.params import Params, ParamsView
from smptune.records import RunResults, TrialRecord, TrialStatus
from smptune.search.conditions import is_active, leaf
from smptune.search.distributions import Distribution, with_defaults
from smptune.search.objectives import Objectives
from smptune.search.samplers.base import Sampler
from smptune.search.scoring import Scoring, run_scores
from smptune.search.specs import PrunerSpec

if TYPE_CHECKING:
    from optuna.distributions import BaseDistribution

__all__ = [
    "OOM_CONSTRAINT",
    "CompleteTrials",
    "SearchSettings",
    "ask",
    "epoch_values",
    "fold_values",
    "frozen_trial",
    "intermediate_values",
    "median_prunes",
    "new_study",
    "observe",
    "optuna_name",
    "optuna_prunes",
    "pruner_steps",
    "sampler_for",
    "sampler_view",
    "should_prune",
    "should_prune_epoch",
    "suggest_all",
    "worst_score",
]

log = logging.getLogger("smptune.adaptive")

_STEP_MEAN_PRUNERS = ("median",)
#: Optuna's system attribute of a trial's constraints (``optuna.samplers._base.
#: _CONSTRAINTS_KEY``; Optuna 4 and 5 both read this form): ``(1.0,)`` out of memory, ``(0.0,)``
#: for every other complete trial (Optuna's GP needs the same constraints on all of them).
OOM_CONSTRAINT = "constraints"

#: How a distribution and a value in it look to Optuna: ``(distribution, internal value)``.
OptunaView = Callable[[Distribution, Any], tuple[Any, Any]]
#: A configuration as Optuna holds it: Optuna parameter name -> internal value.
OptunaParams: TypeAlias = Params
#: Optuna parameter name -> its ``optuna.distributions.BaseDistribution``.
OptunaDistributions: TypeAlias = "dict[str, BaseDistribution]"


class SearchSettings(Protocol):
    """What adaptive search reads of a sweep's config (a :class:`~smptune.config.SweepConfig`
    is one)."""

    @property
    def hyperparameters(self) -> Mapping[str, Distribution]: ...
    @property
    def scoring(self) -> Scoring: ...
    @property
    def sampler_spec(self) -> Sampler: ...
    @property
    def pruner_spec(self) -> PrunerSpec: ...
    @property
    def seed(self) -> int: ...
    @property
    def max_epochs(self) -> int: ...
    @property
    def objectives(self) -> Objectives | None: ...


def optuna_name(name: str, dist: Distribution, config: ParamsView) -> str:
    """The Optuna parameter name of entry ``name`` in ``config``: a case-dependent entry gets
    one name per case, since Optuna needs one distribution per name."""
    parent = getattr(dist, "parent", None)
    if parent is None:
        return name
    return f"{name}|{parent}={json.dumps(config.get(parent), sort_keys=True)}"


def sampler_view(dist: Distribution, value: Any) -> tuple[Any, Any]:
    """The distribution and value as the adaptive samplers search them."""
    return dist.to_optuna(), dist.to_optuna_value(value)


def observe(
    space: Mapping[str, Distribution], params: ParamsView, view: OptunaView = sampler_view
) -> tuple[OptunaParams, OptunaDistributions]:
    """Optuna's view of a configuration: ``(values, distributions)`` of its active, searched
    (not fixed) entries, keyed by Optuna parameter name; ``view`` converts each entry (the
    export passes one in the user's terms)."""
    values: OptunaParams = {}
    distributions: OptunaDistributions = {}
    for name, dist in space.items():
        if name not in params or not is_active(dist, params):
            continue
        chosen = leaf(dist, params)
        if chosen.kind == "value":
            continue
        key = optuna_name(name, dist, params)  # a case-dependent entry: one name per case
        distributions[key], values[key] = view(chosen, params[name])
    return values, distributions


def fold_values(runs: RunResults, scoring: Scoring, n_randoms: int) -> dict[int, float]:
    """Score of each fold (mean of its seeds' stable runs), by fold index."""
    scores = dict(zip(sorted(runs), run_scores(runs, scoring), strict=True))
    by_fold: dict[int, list[float]] = {}
    for run, score in scores.items():
        if not math.isnan(score):
            by_fold.setdefault(run // n_randoms, []).append(score)
    return {fold: sum(v) / len(v) for fold, v in sorted(by_fold.items())}


def intermediate_values(
    runs: RunResults, search: SearchSettings, n_randoms: int
) -> dict[int, float]:
    """What the pruner sees at step ``fold``: the running mean over folds ``0..fold`` for the
    median pruner, each fold's own score for the Wilcoxon pruner (it pairs folds)."""
    per_fold = fold_values(runs, search.scoring, n_randoms)
    if search.pruner_spec.kind not in _STEP_MEAN_PRUNERS:
        return per_fold
    out: dict[int, float] = {}
    seen: list[float] = []
    for fold, value in per_fold.items():
        seen.append(value)
        out[fold] = sum(seen) / len(seen)
    return out


def epoch_values(
    runs: RunResults, curves: Mapping[int, Sequence[float]], scoring: Scoring, max_epochs: int
) -> dict[int, float]:
    """What a sampler or per-epoch pruner sees of a trial's epochs: at step ``run ×
    max_epochs + epoch − 1``, the mean of the scores of the runs before ``run`` and of
    ``run``'s best score up to ``epoch`` (a step of every trial mixes the same runs and
    epoch). The best so far rather than the epoch's own score, as the halving rungs read a
    run: on real data one epoch's validation score jumps about, and a run that dipped is
    judged by what it has shown."""
    scores = dict(zip(sorted(runs), run_scores(runs, scoring), strict=True))
    better = max if scoring.mode == "max" else min
    out: dict[int, float] = {}
    for run, curve in sorted(curves.items()):
        before = [scores.get(i, math.nan) for i in range(run)]
        if not all(math.isfinite(v) for v in before):
            continue  # an earlier run is missing or unstable: no comparable steps
        best = math.nan
        for epoch, value in enumerate(curve[:max_epochs], 1):
            if math.isfinite(value):
                best = value if math.isnan(best) else better(best, value)
                out[run * max_epochs + epoch - 1] = (sum(before) + best) / (run + 1)
    return out


def frozen_trial(
    t: TrialRecord,
    search: SearchSettings,
    n_randoms: int,
    for_sampler: bool = True,
    by_epoch: bool = True,
    infeasible_value: float = 0.0,
) -> Any:
    """Optuna's view of a recorded trial (None for a trial without a configuration): a
    trial not yet finished enters only ``for_sampler`` (as RUNNING, for its constant liar),
    a pruner needs finished ones. With ``by_epoch`` a trial whose runs reported epochs
    enters with :func:`epoch_values`, else with its fold values
    (:func:`intermediate_values`). For a sampler that honours constraints an ``infeasible``
    (out-of-memory) trial enters COMPLETE with ``infeasible_value`` (the worst score known)
    and :data:`OOM_CONSTRAINT` violated, and every other complete trial with it met; for one
    that does not, as FAIL. In a multi-objective sweep (``search.objectives``) a complete
    trial enters with its objectives' means as ``values`` and no steps, a partial one as
    FAIL."""
    from optuna.trial import TrialState, create_trial

    if not t.params:
        return None
    values, distributions = observe(search.hyperparameters, t.params)
    if by_epoch and t.curves:
        steps = epoch_values(t.folds, t.curves, search.scoring, search.max_epochs)
    else:
        steps = intermediate_values(t.folds, search, n_randoms)
    score: float | list[float] | None = t.score
    objectives = search.objectives
    if objectives is not None:  # several objectives: their means, no steps
        means = objectives.values(t.folds) if t.status is TrialStatus.COMPLETE else None
        score = None if means is None else objectives.ordered(means)
        steps = {}
        # placeholders: multi-objective TPE and NSGA-II rank an infeasible trial by its
        # violated constraint alone (below every feasible one), never by these values
        infeasible: float | list[float] = [infeasible_value] * len(objectives.names)
    else:
        infeasible = infeasible_value
    constrained = search.sampler_spec.honours_constraints
    constraints = None
    if t.status is TrialStatus.COMPLETE and score is not None and _finite(score):
        state, value = TrialState.COMPLETE, score
        constraints = {OOM_CONSTRAINT: (0.0,)} if constrained else None
    elif t.status is TrialStatus.INFEASIBLE and constrained:
        state, value, steps = TrialState.COMPLETE, infeasible, {}
        constraints = {OOM_CONSTRAINT: (1.0,)}
    elif t.status.partial and steps:
        state, value = TrialState.PRUNED, None
    elif not t.status.finished:
        if not for_sampler:
            return None
        state, value, steps = TrialState.RUNNING, None, {}
    else:
        state, value, steps = TrialState.FAIL, None, {}
    return create_trial(
        state=state,
        value=None if isinstance(value, list) else value,
        values=value if isinstance(value, list) else None,
        params=values,
        distributions=distributions,
        intermediate_values=steps,
        user_attrs={"trial": t.trial},
        system_attrs=constraints,
    )


def _finite(score: float | list[float]) -> bool:
    return all(math.isfinite(v) for v in (score if isinstance(score, list) else [score]))


def worst_score(scores: Iterable[float | None], mode: str, known: float | None = None) -> float:
    """The worst finite score of ``scores`` and ``known`` (0.0 when there is none): the value
    an infeasible trial enters a constrained study with (Optuna's GP fits it; TPE reads only
    the constraint)."""
    finite = [s for s in (*scores, known) if s is not None and math.isfinite(s)]
    if not finite:
        return 0.0
    return min(finite) if mode == "max" else max(finite)


def new_study(search: SearchSettings, sampler: Any = None, pruner: Any = None) -> Any:
    """An empty in-memory study in the sweep's direction."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if search.objectives is not None:
        directions = search.objectives.directions
        return optuna.create_study(directions=directions, sampler=sampler, pruner=pruner)
    return optuna.create_study(
        direction="maximize" if search.scoring.mode == "max" else "minimize",
        sampler=sampler,
        pruner=pruner,
    )


def _study(
    trials: Iterable[TrialRecord],
    search: SearchSettings,
    n_randoms: int,
    sampler: Any = None,
    pruner: Any = None,
    exclude: int | None = None,
    by_epoch: bool = True,
) -> Any:
    """An in-memory study of the trials that have a configuration (see
    :func:`frozen_trial`), ``exclude`` left out."""
    study = new_study(search, sampler, pruner)
    trials = list(trials)
    complete = (t.score for t in trials if t.status is TrialStatus.COMPLETE)
    worst = worst_score(complete, search.scoring.mode)
    for t in trials:
        if t.trial == exclude:
            continue
        frozen = frozen_trial(t, search, n_randoms, sampler is not None, by_epoch, worst)
        if frozen is not None:
            study.add_trial(frozen)
    return study


def ask(
    trials: Iterable[TrialRecord],
    search: SearchSettings,
    trial: int,
    defaults: ParamsView,
    n_randoms: int = 1,
) -> Params:
    """The configuration of ``trial``, chosen now by the sweep's adaptive sampler from the
    other ``trials`` (finished and running), completed with the trainable's ``defaults``."""
    study = _study(trials, search, n_randoms, sampler=sampler_for(search, trial), exclude=trial)
    return suggest_all(study.ask(), search, defaults)


def sampler_for(search: SearchSettings, trial: int) -> Any:
    """The sweep's sampler, seeded for ``trial``: asks of different trials differ even
    when they see the same study."""
    return search.sampler_spec.build(seed=search.seed * 100_003 + trial)


def suggest_all(asked: Any, search: SearchSettings, defaults: ParamsView) -> Params:
    """The configuration an asked Optuna trial suggests, entry by entry (a case-dependent
    entry once its parent is chosen), completed with the trainable's ``defaults``."""
    chosen: Params = {}
    for name, dist in search.hyperparameters.items():
        if not is_active(dist, chosen):
            continue
        entry = leaf(dist, chosen)
        if entry.kind == "value":
            chosen[name] = entry.grid_values()[0]  # a fixed value
            continue
        internal = _suggest(asked, optuna_name(name, dist, chosen), entry.to_optuna())
        chosen[name] = entry.from_optuna(internal)
    return with_defaults(search.hyperparameters, defaults, chosen)


def _suggest(trial: Any, name: str, distribution: Any) -> Any:
    """Ask ``trial`` for ``name`` through Optuna's public suggest API."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution

    if isinstance(distribution, CategoricalDistribution):
        return trial.suggest_categorical(name, distribution.choices)
    if isinstance(distribution, FloatDistribution):
        return trial.suggest_float(
            name, distribution.low, distribution.high, step=distribution.step, log=distribution.log
        )
    return trial.suggest_int(
        name, distribution.low, distribution.high, step=distribution.step, log=distribution.log
    )


class CompleteTrials(Protocol):
    """What a pruner reads of the sweep's complete trials, each read O(log trials): their
    count, a percentile of their values at a step, the best of them."""

    def count(self) -> int: ...
    def percentile(self, step: int, q: float, n_min: int) -> float: ...
    def best(self) -> TrialRecord | None: ...


def should_prune(
    complete: CompleteTrials,
    search: SearchSettings,
    params: ParamsView,
    runs: RunResults,
    n_randoms: int = 1,
) -> bool:
    """Whether the sweep's pruner stops a trial now, given the runs it has finished and the
    sweep's ``complete`` trials."""
    steps = intermediate_values(runs, search, n_randoms)
    if not steps:
        return False
    return _prune_running(complete, search, params, steps, n_randoms, by_epoch=False)


def should_prune_epoch(
    complete: CompleteTrials,
    search: SearchSettings,
    params: ParamsView,
    runs: RunResults,
    curves: Mapping[int, Sequence[float]],
    n_randoms: int = 1,
) -> bool:
    """Whether the median pruner (``at: epoch``) stops a trial after its latest epoch,
    given its recorded ``runs``, the epochs of the run in progress (``curves``) and the
    sweep's ``complete`` trials."""
    steps = epoch_values(runs, curves, search.scoring, search.max_epochs)
    if not steps:
        return False
    return _prune_running(complete, search, params, steps, n_randoms, by_epoch=True)


def pruner_steps(
    runs: RunResults,
    curves: Mapping[int, Sequence[float]],
    search: SearchSettings,
    n_randoms: int,
) -> dict[int, float]:
    """A finished trial's steps as the median pruner compares them (per epoch with ``at:
    epoch``, else per fold): what its final record adds to the steps' sorted sets."""
    spec = search.pruner_spec
    if spec.kind != "median":
        return {}
    if spec.at == "epoch" and curves:
        return epoch_values(runs, curves, search.scoring, search.max_epochs)
    return intermediate_values(runs, search, n_randoms)


def median_prunes(
    complete: CompleteTrials, search: SearchSettings, steps: Mapping[int, float]
) -> bool:
    """Optuna's ``MedianPruner`` rule (its ``PercentilePruner`` at 50, one step per
    interval) on a trial running with ``steps``.

    Hand-written because Optuna's pruner reads every complete trial of a study at each
    decision (O(trials) per epoch across a fleet); here the percentile at the trial's last
    step comes from the sorted sets its final records fill (:mod:`smptune.queue.medians`),
    O(log trials). tests/search/test_adaptive.py checks it against Optuna's on the same
    trials.
    """
    options = search.pruner_spec.options
    n_complete = complete.count()
    if n_complete == 0 or n_complete < int(options.get("n_startup_trials", 5)):
        return False
    step = max(steps)
    if step < int(options.get("n_warmup_steps", 0)):
        return False
    finite = [v for v in steps.values() if not math.isnan(v)]
    if not finite:
        return True
    maximize = search.scoring.mode == "max"
    best = max(finite) if maximize else min(finite)
    median = complete.percentile(step, 50.0, int(options.get("n_min_trials", 1)))
    if math.isnan(median):
        return False
    return best < median if maximize else best > median


def _prune_running(
    complete: CompleteTrials,
    search: SearchSettings,
    params: ParamsView,
    steps: Mapping[int, float],
    n_randoms: int,
    by_epoch: bool,
) -> bool:
    """Ask the sweep's pruner about a trial running with ``steps``: the median rule on the
    steps' sorted sets, the Wilcoxon pruner (which compares a trial only with the best) on
    a study of the best complete trial."""
    if search.pruner_spec.kind == "median":
        return median_prunes(complete, search, steps)
    best = complete.best()
    study = _study([] if best is None else [best], search, n_randoms, by_epoch=by_epoch)
    return optuna_prunes(search.pruner_spec.build(), study, search, params, steps)


def optuna_prunes(
    pruner: Any,
    study: Any,
    search: SearchSettings,
    params: ParamsView,
    steps: Mapping[int, float],
) -> bool:
    """Whether Optuna's ``pruner`` stops a trial of configuration ``params`` running with
    ``steps``, added to ``study`` as RUNNING."""
    from optuna.trial import TrialState, create_trial

    values, distributions = observe(search.hyperparameters, params)
    study.add_trial(
        create_trial(
            state=TrialState.RUNNING,
            params=values,
            distributions=distributions,
            intermediate_values=dict(steps),
        )
    )
    return bool(pruner.prune(study, study.trials[-1]))
