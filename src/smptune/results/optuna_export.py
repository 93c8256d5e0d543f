"""A sweep as an Optuna study: for Optuna's dashboard, plots and importance evaluators.

Each searched (non-fixed) parameter keeps its distribution; a trial's intermediate value at
step ``k`` is the score of its run ``k`` (fold × seeds + seed). Complete trials are
``COMPLETE`` with their score (an unstable one, which smptune ranks below every stable trial,
is ``FAIL``, as Optuna records an objective that returned NaN); pruned trials are ``PRUNED``
and failed ones ``FAIL``, both with the runs they finished; stopped, skipped, cancelled and
unfinished trials are left out. ``user_attrs`` hold smptune's trial number, status, rank,
worker and run scores.
"""

from __future__ import annotations

import datetime
import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from smptune.errors import ConfigError
from smptune.records import TrialStatus
from smptune.search.adaptive import observe
from smptune.urls import mask_url


def search_space(config: Mapping[str, Any]) -> dict[str, Any]:
    """The sweep's distributions by name (:mod:`smptune.search.distributions` objects), in
    config order."""
    from smptune.config import config_from_dict

    return dict(config_from_dict(config).hyperparameters)


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


def run_scores(trial: Mapping[str, Any]) -> dict[int, float]:
    """Run index → score of the trial's runs (NaN for an unstable run)."""
    runs = sorted(int(k) for k in (trial.get("folds") or {}))
    return {r: float(s) for r, s in zip(runs, trial.get("fold_scores") or [], strict=False)}


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and math.isfinite(value)


def _time(value: Any) -> datetime.datetime | None:
    return datetime.datetime.fromtimestamp(float(value)) if _finite(value) else None


def _user_attrs(trial: Mapping[str, Any], scores: Mapping[int, float]) -> dict[str, Any]:
    attrs = {
        "smptune_trial": trial["trial"],
        "status": trial.get("status"),
        "rank": trial.get("rank"),
        "worker": trial.get("worker"),
        "fold_scores": [s if math.isfinite(s) else None for s in scores.values()],
        "score": trial.get("score") if _finite(trial.get("score")) else None,
        "score_std": trial.get("score_std") if _finite(trial.get("score_std")) else None,
        "unstable": bool(trial.get("unstable")),
        "duration_s": trial.get("duration_s"),
        "error": trial.get("error"),
    }
    return {k: v for k, v in attrs.items() if v is not None}


def study_trials(
    results: Mapping[str, Any], config: Mapping[str, Any], details: bool = True
) -> list[Any]:
    """The sweep's trials as Optuna ``FrozenTrial`` objects, in smptune trial order;
    ``details=False`` leaves out user attributes and intermediate values (faster to add)."""
    from optuna.trial import TrialState, create_trial

    space = search_space(config)
    out = []
    for t in sorted(results.get("ranking") or [], key=lambda t: int(t["trial"])):
        status = TrialStatus(t.get("status", "pending"))
        score = t.get("score")
        value = None
        if status is TrialStatus.COMPLETE and _finite(score) and not t.get("unstable"):
            state, value = TrialState.COMPLETE, float(score)
        elif status is TrialStatus.PRUNED:
            state = TrialState.PRUNED
        elif status in (TrialStatus.COMPLETE, TrialStatus.FAILED):  # unstable or no score
            state = TrialState.FAIL
        else:  # stopped, skipped, cancelled, unfinished: left out
            continue
        scores = run_scores(t)
        values, distributions = observe(space, t.get("params") or {}, view=user_view)
        frozen = create_trial(
            state=state,
            value=value,
            params=values,
            distributions=distributions,
            user_attrs=_user_attrs(t, scores) if details else None,
            intermediate_values=scores if details else None,
        )
        started, finished = _time(t.get("started")), _time(t.get("finished"))
        if started is not None and finished is not None and started <= finished:
            frozen.datetime_start, frozen.datetime_complete = started, finished
        out.append(frozen)
    return out


def direction(results: Mapping[str, Any]) -> Literal["minimize", "maximize"]:
    return "minimize" if results.get("mode") == "min" else "maximize"


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


def export_study(
    results: Mapping[str, Any], config: Mapping[str, Any], storage_url: str, study_name: str
) -> int:
    """Write the sweep as a new study ``study_name`` in ``storage_url``; returns the number
    of trials written. ConfigError when the storage already holds a study of that name."""
    import optuna

    storage = open_storage(storage_url)
    trials = study_trials(results, config)  # built first: a bad sweep leaves no empty study
    try:
        study = optuna.create_study(
            storage=storage, study_name=study_name, direction=direction(results)
        )
    except optuna.exceptions.DuplicatedStudyError:
        raise ConfigError(
            f"--optuna-storage: {mask_url(storage_url)} already holds a study named "
            f"{study_name!r}; pass --optuna-study NAME to export under another name"
        ) from None
    for key in ("sweep_id", "name", "metric", "mode", "n_trials", "n_folds", "n_randoms"):
        if results.get(key) is not None:
            study.set_user_attr(key, results[key])
    study.add_trials(trials)
    return len(trials)
