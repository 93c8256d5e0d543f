"""Every sampler by the name a config gives it, and the one reading of ``sampler:``.

Adding a sampler: its module beside this one (a :class:`~.base.Sampler` subclass) and one
line below. The first is the default.
"""

from __future__ import annotations

from typing import Any

from smptune.search.options import read_kind
from smptune.search.samplers.base import Sampler
from smptune.search.samplers.grid import GridSampler
from smptune.search.samplers.nsga2 import NSGA2Sampler
from smptune.search.samplers.optuna import CmaEsSampler, GPSampler, TPESampler
from smptune.search.samplers.random import RandomSampler

__all__ = ["SAMPLERS", "default_sampler", "n_trials_words", "parse_sampler"]

#: name -> sampler class, the default first.
SAMPLERS: dict[str, type[Sampler]] = {
    RandomSampler.name: RandomSampler,
    GridSampler.name: GridSampler,
    TPESampler.name: TPESampler,
    GPSampler.name: GPSampler,
    CmaEsSampler.name: CmaEsSampler,
    NSGA2Sampler.name: NSGA2Sampler,
}


def parse_sampler(raw: Any) -> Sampler:
    """The sampler ``sampler: <raw>`` names (a name, or ``{type: <name>, <option>: ...}``;
    None: the default), its options checked."""
    name, options = read_kind("sampler", raw, tuple(SAMPLERS))
    return SAMPLERS[name].from_options(options)


def default_sampler(n_trials: Any) -> str:
    """The sampler of a config that names none: the one whose word ``n_trials`` is
    (``n_trials: grid``), else the default."""
    named = [n for n, cls in SAMPLERS.items() if cls.n_trials_word == n_trials]
    return named[0] if named else next(iter(SAMPLERS))


def n_trials_words() -> tuple[str, ...]:
    """The words ``n_trials`` may be instead of a number (``grid``)."""
    return tuple(cls.n_trials_word for cls in SAMPLERS.values() if cls.n_trials_word)
