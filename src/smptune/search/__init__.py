"""The search: pure, importing neither Redis nor Celery.

:mod:`.distributions` (the search-space value objects), :mod:`.conditions` (``when``, case
tables, and the checks between entries), :mod:`.dialects` (reading every config dialect into
them), :mod:`.sampling` (seeded random and grid configurations), :mod:`.samplers` (the
samplers, by name), :mod:`.specs` (pruner settings), :mod:`.scoring` (run and trial scores, the
ranking), :mod:`.adaptive` (Optuna's samplers and pruners, handed the trials they need).
"""

from smptune.search.conditions import Cases, check_space
from smptune.search.dialects import parse_distribution
from smptune.search.distributions import (
    Choice,
    Distribution,
    FloatRange,
    IntRange,
    IntUniform,
    LogUniform,
    QLogUniform,
    QUniform,
    ReversedLogUniform,
    Space,
    Uniform,
    Value,
)
from smptune.search.samplers import Sampler, parse_sampler
from smptune.search.sampling import grid_configurations, sample_configurations
from smptune.search.scoring import MetricSpec, Scoring
from smptune.search.specs import PrunerSpec

__all__ = [
    "Cases",
    "Choice",
    "Distribution",
    "FloatRange",
    "IntRange",
    "IntUniform",
    "LogUniform",
    "MetricSpec",
    "PrunerSpec",
    "QLogUniform",
    "QUniform",
    "ReversedLogUniform",
    "Sampler",
    "Scoring",
    "Space",
    "Uniform",
    "Value",
    "check_space",
    "grid_configurations",
    "parse_distribution",
    "parse_sampler",
    "sample_configurations",
]
