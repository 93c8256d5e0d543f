"""A sweep mirrored into an Optuna study: for optuna-dashboard, Optuna's plots and its
importance evaluators, also while the sweep runs.

Each searched (non-fixed) parameter keeps its distribution; a trial's intermediate value at
step ``k`` is the score of its run ``k`` (fold × seeds + seed). Complete trials are
``COMPLETE`` with their score (an unstable one, which smptune ranks below every stable trial,
is ``FAIL``, as Optuna records an objective that returned NaN); pruned trials are ``PRUNED``
and failed ones ``FAIL``, both with the runs they finished; running trials are ``RUNNING``
with the runs they finished so far; stopped, skipped, cancelled and queued trials are left
out. A multi-objective sweep's study has its ``directions`` and each complete trial its
objectives' means as ``values``. ``user_attrs`` hold smptune's trial number, status, rank,
worker and run scores.

Mirroring again brings the study up to date: trials that ended or started since are added,
and a trial mirrored while it ran gets its new runs and its final state. Optuna never
changes a finished trial, and neither does the mirror.
"""

from __future__ import annotations

import datetime
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from smptune.config import SweepConfig
from smptune.errors import ConfigError
from smptune.records import TrialStatus
from smptune.results.summary import RankedTrial, SweepResults
from smptune.search.adaptive import observe
from smptune.search.distributions import Distribution
from smptune.urls import mask_url


def search_space(config: SweepConfig) -> dict[str, Distribution]:
    """The sweep's distributions by name (:mod:`smptune.search.distributions` objects), in
    config order."""
    return dict(config.hyperparameters)


def user_view(dist: Any, value: Any) -> tuple[Any, Any]:
    """The Optuna distribution of a plain :mod:`smptune.search.distributions` entry and
    ``value`` in it, in the user's terms: ``to_optuna()``, except where that works in another
    space (the adaptive samplers' reversed-loguniform ``n - x``, choices held as indices) —
    there a reversed-loguniform is ``FloatDistribution(low, high)`` and such choices JSON
    strings."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution

    if dist.kind == "reversed-loguniform":
        return FloatDistribution(dist.low, dist.high), float(value)
    optuna_dist = dist.to_optuna()
    choices = tuple(getattr(dist, "choices", ()))
    if isinstance(optuna_dist, CategoricalDistribution) and [
        (type(c), c) for c in optuna_dist.choices
    ] != [(type(c), c) for c in choices]:
        encoded = list(dict.fromkeys(json.dumps(c, sort_keys=True) for c in choices))
        return CategoricalDistribution(encoded), json.dumps(value, sort_keys=True)
    return optuna_dist, dist.to_optuna_value(value)


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and math.isfinite(value)


def _time(value: Any) -> datetime.datetime | None:
    return datetime.datetime.fromtimestamp(float(value)) if _finite(value) else None


def _user_attrs(trial: RankedTrial, scores: Mapping[int, float]) -> dict[str, object]:
    attrs = {
        "smptune_trial": trial.trial,
        "status": trial.status.value,
        "rank": trial.rank,
        "worker": trial.worker,
        "fold_scores": [s if math.isfinite(s) else None for s in scores.values()],
        "score": trial.score if _finite(trial.score) else None,
        "score_std": trial.score_std if _finite(trial.score_std) else None,
        "unstable": bool(trial.unstable),
        "duration_s": trial.duration_s,
        "error": trial.error,
    }
    return {k: v for k, v in attrs.items() if v is not None}


def study_trials(results: SweepResults, config: SweepConfig, details: bool = True) -> list[Any]:
    """The sweep's trials as Optuna ``FrozenTrial`` objects, in smptune trial order;
    ``details=False`` leaves out user attributes and intermediate values (faster to add)."""
    from optuna.trial import TrialState, create_trial

    space = search_space(config)
    pareto = results.pareto
    out = []
    for t in sorted(results.ranking, key=lambda t: t.trial):
        status, score = t.status, t.score
        value: list[float] | None = None
        point = None if pareto is None else pareto.point(t.trial)
        if pareto is not None and point is not None:  # several objectives: their means
            state, value = TrialState.COMPLETE, pareto.objectives.ordered(point.values)
        elif (
            status is TrialStatus.COMPLETE
            and score is not None
            and _finite(score)
            and not t.unstable
            and pareto is None
        ):
            state, value = TrialState.COMPLETE, [float(score)]
        elif status is TrialStatus.PRUNED:
            state = TrialState.PRUNED
        elif status in (TrialStatus.COMPLETE, TrialStatus.FAILED, TrialStatus.INFEASIBLE):
            state = TrialState.FAIL
        elif status is TrialStatus.RUNNING and t.params:
            state = TrialState.RUNNING
        else:  # stopped, skipped, cancelled, queued: left out
            continue
        scores = t.run_scores
        values, distributions = observe(space, t.params, view=user_view)
        frozen = create_trial(
            state=state,
            values=value,
            params=values,
            distributions=distributions,
            user_attrs=_user_attrs(t, scores) if details else None,
            intermediate_values=scores if details else None,
        )
        started, finished = _time(t.started), _time(t.finished)
        if state is TrialState.RUNNING and started is not None:
            frozen.datetime_start = started
        elif started is not None and finished is not None and started <= finished:
            frozen.datetime_start, frozen.datetime_complete = started, finished
        out.append(frozen)
    return out


def open_storage(url: str) -> Any:
    """An Optuna storage: an RDB URL (``sqlite:///sweeps.db``, ``postgresql://...``) or a
    journal file path; :class:`ConfigError` (exit 2) when it cannot be opened."""
    import optuna
    from optuna.storages.journal import JournalFileBackend

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if not url or not url.strip():
        raise ConfigError("--optuna-storage: give an RDB URL (sqlite:///FILE.db) or a file path")
    if "://" in url:
        try:
            return optuna.storages.RDBStorage(url)
        except Exception as exc:
            reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise ConfigError(f"--optuna-storage: cannot open {mask_url(url)}: {reason}") from None
    path = Path(url).expanduser()
    if path.is_dir():
        raise ConfigError(f"--optuna-storage: {url} is a folder; give a journal file path")
    if not path.parent.is_dir():
        raise ConfigError(f"--optuna-storage: the folder of {url} does not exist")
    try:
        return optuna.storages.JournalStorage(JournalFileBackend(str(path)))
    except Exception as exc:
        raise ConfigError(f"--optuna-storage: cannot open journal file {url}: {exc}") from None


@dataclass(frozen=True)
class Mirrored:
    """What one pass of :func:`mirror_study` did: trials added, trials brought up to date,
    and how many the study holds, of them still running."""

    added: int
    updated: int
    total: int
    running: int


def mirror_study(
    results: SweepResults, config: SweepConfig, storage: Any, study_name: str
) -> Mirrored:
    """Create or bring up to date study ``study_name`` in ``storage`` (an Optuna storage or
    its URL) from the sweep's ``results``. A study of that name made from another sweep is
    refused with :class:`ConfigError`."""
    import optuna
    from optuna.trial import TrialState

    if isinstance(storage, str):
        url, storage = storage, open_storage(storage)
    else:
        url = "the storage"
    trials = study_trials(results, config)  # built first: a bad sweep leaves no empty study
    wanted = [results.direction] if results.pareto is None else results.pareto.objectives.directions
    study = optuna.create_study(
        storage=storage, study_name=study_name, directions=wanted, load_if_exists=True
    )
    owner = study.user_attrs.get("sweep_id")
    if owner is not None and owner != results.sweep_id:
        raise ConfigError(
            f"--optuna-storage: {mask_url(url)} already holds a study named {study_name!r} of "
            f"sweep {owner}; pass --optuna-study NAME to export under another name"
        )
    held = [d.name.lower() for d in study.directions]
    if held != wanted:
        raise ConfigError(
            f"--optuna-storage: study {study_name!r} in {mask_url(url)} is set to "
            f"{', '.join(held)}, the sweep to {', '.join(wanted)}"
        )
    for key in ("sweep_id", "name", "metric", "mode", "n_trials", "n_folds", "n_randoms"):
        value = getattr(results, key)
        if value is not None and study.user_attrs.get(key) != value:
            study.set_user_attr(key, value)
    before = study.get_trials(deepcopy=False)
    mirrored = {t.user_attrs.get("smptune_trial"): t for t in before}
    states = [t.state for t in before]  # the study's trial states after this pass
    added = updated = 0
    for trial in trials:
        number = trial.user_attrs["smptune_trial"]
        existing = mirrored.get(number)
        if existing is None:
            study.add_trial(trial)
            states.append(trial.state)
            added += 1
        elif existing.state is TrialState.RUNNING and _update(storage, existing, trial):
            states[existing.number] = trial.state
            updated += 1
    running = sum(state is TrialState.RUNNING for state in states)
    return Mirrored(added=added, updated=updated, total=len(states), running=running)


def _update(storage: Any, existing: Any, trial: Any) -> bool:
    """Bring a trial mirrored while it ran up to date: its new runs, attributes and, once it
    has ended, its state and value. Whether anything changed."""
    from optuna.trial import TrialState

    trial_id = existing._trial_id
    changed = False
    for step, value in trial.intermediate_values.items():
        if existing.intermediate_values.get(step) != value:
            storage.set_trial_intermediate_value(trial_id, step, value)
            changed = True
    for key, value in trial.user_attrs.items():
        if existing.user_attrs.get(key) != value:
            storage.set_trial_user_attr(trial_id, key, value)
            changed = True
    if trial.state is not TrialState.RUNNING:
        storage.set_trial_state_values(trial_id, trial.state, trial.values)
        changed = True
    return changed


def follow(
    store: Any,
    sweep_id: str,
    storage_url: str,
    study_name: str,
    every_s: float,
    report: Any,
    stop: Any = None,
) -> Mirrored:
    """Mirror the sweep every ``every_s`` seconds until it has ended (one last pass then),
    or until ``stop()`` is true; ``report(Mirrored)`` after each pass that changed the
    study. The last pass's counts."""
    import time

    from smptune.results.summary import stored_results, summarize

    storage = open_storage(storage_url)
    while True:
        sweep = store.get_sweep(sweep_id)
        ended = sweep.status.terminal
        final = stored_results(store, sweep_id) if ended else None
        results = final or summarize(store, sweep_id)
        done = mirror_study(results, sweep.config, storage, study_name)
        if done.added or done.updated:
            report(done)
        if ended or (stop is not None and stop()):
            return done
        time.sleep(every_s)
