"""The Optuna-backed adaptive samplers: TPE, GP and CMA-ES (NSGA-II in :mod:`.nsga2`), asked
when each trial starts; TPE searches several objectives too (``metrics:``).

Each asks this worker's view of the sweep's study (:mod:`smptune.search.study_view`: every
trial recorded so far, updated with what changed since its last ask; no fleet-wide lock),
with Optuna's sampler seeded for the trial (:func:`smptune.search.adaptive.sampler_for`),
and records the configuration once: a second copy of the trial gets the same. At submit
they plan only the enqueued configurations.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from smptune.params import Params
from smptune.search.options import BOOL, INT, Check, OptionValue, quiet_optuna
from smptune.search.samplers.base import Asking, PlanSettings, Sampler

__all__ = ["CmaEsSampler", "GPSampler", "OptunaSampler", "TPESampler"]


class OptunaSampler(Sampler):
    """An Optuna sampler, built on the worker for each ask."""

    adaptive: ClassVar[bool] = True
    #: Its class in ``optuna.samplers``.
    optuna_class: ClassVar[str]

    def ask(self, search: PlanSettings, asking: Asking) -> Params:
        recorded = asking.recorded()
        if recorded is not None:
            return recorded
        view = asking.view()
        chosen, asked = view.ask(asking.trial, asking.defaults)
        recorded = asking.record(chosen)
        view.settle(asking.trial, asked, chosen, recorded)
        return recorded

    def build(self, seed: int) -> Any:
        import optuna

        options: dict[str, object] = dict(self.options)
        if self.honours_constraints and int(optuna.__version__.split(".")[0]) < 5:
            options["constraints_func"] = _recorded_constraints  # Optuna 5 reads them itself
        with quiet_optuna():
            return getattr(optuna.samplers, self.optuna_class)(seed=seed, **options)


class TPESampler(OptunaSampler):
    """Optuna's ``TPESampler``, multivariate with the constant liar by default."""

    name: ClassVar[str] = "tpe"
    optuna_class: ClassVar[str] = "TPESampler"
    honours_constraints: ClassVar[bool] = True
    option_checks: ClassVar[Mapping[str, Check]] = {
        "n_startup_trials": INT,
        "n_ei_candidates": INT,
        "multivariate": BOOL,
        "constant_liar": BOOL,
    }
    #: A sweep has few trials, so start learning early.
    option_defaults: ClassVar[Mapping[str, OptionValue]] = {
        "n_startup_trials": 5,
        "constant_liar": True,
        "multivariate": True,
    }


class GPSampler(OptunaSampler):
    """Optuna's ``GPSampler``; past the GP limit it asks a subset of the trials."""

    name: ClassVar[str] = "gp"
    optuna_class: ClassVar[str] = "GPSampler"
    asks_a_subset: ClassVar[bool] = True
    honours_constraints: ClassVar[bool] = True
    option_checks: ClassVar[Mapping[str, Check]] = {"n_startup_trials": INT}
    option_defaults: ClassVar[Mapping[str, OptionValue]] = {"n_startup_trials": 5}


class CmaEsSampler(OptunaSampler):
    """Optuna's ``CmaEsSampler`` (no constraints: an out-of-memory trial enters as failed)."""

    name: ClassVar[str] = "cmaes"
    optuna_class: ClassVar[str] = "CmaEsSampler"
    option_checks: ClassVar[Mapping[str, Check]] = {"n_startup_trials": INT}
    option_defaults: ClassVar[Mapping[str, OptionValue]] = {"n_startup_trials": 5}


def _recorded_constraints(trial: Any) -> Any:
    """The constraints a trial entered its study with (Optuna 4's ``constraints_func``)."""
    return trial.system_attrs.get("constraints", (0.0,))
