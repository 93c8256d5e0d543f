"""The samplers: one interface (:mod:`.base`), one module per family (:mod:`.random`,
:mod:`.grid`, :mod:`.optuna`), and :mod:`.registry` naming each."""

from smptune.search.samplers.base import Sampler
from smptune.search.samplers.registry import SAMPLERS, parse_sampler

__all__ = ["SAMPLERS", "Sampler", "parse_sampler"]
