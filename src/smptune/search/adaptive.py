"""Optuna on the worker: ask an adaptive sampler for a configuration when a trial starts, and
ask a pruner after each fold whether the trial should stop.

Nothing is kept in an Optuna storage: each decision rebuilds an in-memory study from the sweep
store (finished trials with their values, running ones as RUNNING so that the sampler's
constant liar keeps parallel trials apart), so any worker can decide and none can disagree
with what Redis recorded. Asks are serialised per sweep by a Redis lock.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping
from typing import Any

from smptune.config import SweepConfig
from smptune.queue.store import SweepStore
from smptune.search.scoring import run_scores
from smptune.search.space import Distribution, is_active, leaf, with_defaults

log = logging.getLogger("smptune.adaptive")

_STEP_MEAN_PRUNERS = ("median",)


def optuna_name(name: str, dist: Distribution, config: Mapping[str, Any]) -> str:
    """The Optuna parameter name of entry ``name`` in ``config``: a case-dependent entry gets
    one name per case, since Optuna needs one distribution per name."""
    parent = getattr(dist, "parent", None)
    if parent is None:
        return name
    return f"{name}|{parent}={json.dumps(config.get(parent), sort_keys=True)}"


def _observed(config: SweepConfig, params: Mapping[str, Any]) -> tuple[dict, dict]:
    """Optuna's view of a configuration: internal values and distributions of its active,
    non-fixed entries."""
    values: dict[str, Any] = {}
    distributions: dict[str, Any] = {}
    for name, dist in config.hyperparameters.items():
        if not is_active(dist, params) or name not in params:
            continue
        chosen = leaf(dist, params)
        if chosen.kind == "value":
            continue
        key = optuna_name(name, dist, params)
        distributions[key] = chosen.to_optuna()
        values[key] = chosen.to_optuna_value(params[name])
    return values, distributions


def fold_values(runs: Mapping[int, Mapping[str, Any]], config: SweepConfig) -> dict[int, float]:
    """Score of each fold (mean of its seeds' stable runs), by fold index."""
    n_randoms = int(config.cv["n_randoms"])
    scores = dict(zip(sorted(runs), run_scores(runs, config.scoring), strict=True))
    by_fold: dict[int, list[float]] = {}
    for run, score in scores.items():
        if not math.isnan(score):
            by_fold.setdefault(run // n_randoms, []).append(score)
    return {fold: sum(v) / len(v) for fold, v in sorted(by_fold.items())}


def intermediate_values(
    runs: Mapping[int, Mapping[str, Any]], config: SweepConfig
) -> dict[int, float]:
    """What the pruner sees at step ``fold``: the running mean over folds ``0..fold`` for the
    median pruner, each fold's own score for the Wilcoxon pruner (it pairs folds)."""
    per_fold = fold_values(runs, config)
    if config.pruner_spec.kind not in _STEP_MEAN_PRUNERS:
        return per_fold
    out: dict[int, float] = {}
    seen: list[float] = []
    for fold, value in per_fold.items():
        seen.append(value)
        out[fold] = sum(seen) / len(seen)
    return out


def _study(
    db: SweepStore,
    config: SweepConfig,
    sweep_id: str,
    sampler: Any = None,
    pruner: Any = None,
    exclude: int | None = None,
) -> Any:
    """An in-memory study of the sweep's trials that have a configuration; trials not yet
    finished enter only for a sampler (its constant liar), a pruner needs finished ones."""
    import optuna
    from optuna.trial import TrialState, create_trial

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        direction="maximize" if config.scoring.mode == "max" else "minimize",
        sampler=sampler,
        pruner=pruner,
    )
    for t in db.trials(sweep_id):
        if t["trial"] == exclude or not t["params"]:
            continue
        values, distributions = _observed(config, t["params"])
        steps = intermediate_values(t["folds"], config)
        status, score = t["status"], t.get("score")
        if status == "complete" and score is not None and math.isfinite(score):
            state, value = TrialState.COMPLETE, score
        elif status in ("pruned", "stopped") and steps:
            state, value = TrialState.PRUNED, None
        elif status in ("running", "requeued", "pending"):
            if sampler is None:
                continue
            state, value, steps = TrialState.RUNNING, None, {}
        else:
            state, value, steps = TrialState.FAIL, None, {}
        study.add_trial(
            create_trial(
                state=state,
                value=value,
                params=values,
                distributions=distributions,
                intermediate_values=steps,
                user_attrs={"trial": t["trial"]},
            )
        )
    return study


def ask(
    db: SweepStore,
    config: SweepConfig,
    sweep_id: str,
    trial: int,
    defaults: Mapping[str, Any],
) -> dict[str, Any]:
    """The configuration of ``trial``, chosen now by the sweep's adaptive sampler from every
    trial recorded so far (recorded once: a second copy of the trial gets the same)."""
    with db.ask_lock(sweep_id):
        recorded = db.params_or_none(sweep_id, trial)
        if recorded is not None:
            return recorded
        sampler = config.sampler_spec.build(seed=config.seed * 100_003 + trial)
        study = _study(db, config, sweep_id, sampler=sampler, exclude=trial)
        asked = study.ask()
        chosen: dict[str, Any] = {}
        for name, dist in config.hyperparameters.items():
            if not is_active(dist, chosen):
                continue
            entry = leaf(dist, chosen)
            if entry.kind == "value":
                chosen[name] = entry.sample(None)
                continue
            internal = _suggest(asked, optuna_name(name, dist, chosen), entry.to_optuna())
            chosen[name] = entry.from_optuna(internal)
        params = with_defaults(config.hyperparameters, defaults, chosen)
        return db.set_params_once(sweep_id, trial, params)


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


def should_prune(
    db: SweepStore,
    config: SweepConfig,
    sweep_id: str,
    trial: int,
    params: Mapping[str, Any],
    runs: Mapping[int, Mapping[str, Any]],
) -> bool:
    """Whether the sweep's pruner stops ``trial`` now, given the runs it has finished."""
    from optuna.trial import TrialState, create_trial

    steps = intermediate_values(runs, config)
    if not steps:
        return False
    study = _study(db, config, sweep_id, exclude=trial)
    values, distributions = _observed(config, params)
    study.add_trial(
        create_trial(
            state=TrialState.RUNNING,
            params=values,
            distributions=distributions,
            intermediate_values=steps,
        )
    )
    return bool(config.pruner_spec.build().prune(study, study.trials[-1]))
