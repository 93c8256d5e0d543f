"""Optuna's NSGA-II: a genetic sampler for several objectives (``metrics:``), asked when each
trial starts as the other Optuna samplers are; out-of-memory trials enter as a violated
constraint (constrained domination)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

from smptune.search.options import INT, Check, OptionValue
from smptune.search.samplers.optuna import OptunaSampler

__all__ = ["NSGA2Sampler"]


class NSGA2Sampler(OptunaSampler):
    """Optuna's ``NSGAIISampler``; a small population, as a sweep has few trials."""

    name: ClassVar[str] = "nsga2"
    optuna_class: ClassVar[str] = "NSGAIISampler"
    honours_constraints: ClassVar[bool] = True
    option_checks: ClassVar[Mapping[str, Check]] = {"population_size": INT}
    option_defaults: ClassVar[Mapping[str, OptionValue]] = {"population_size": 8}
