"""Grid search: every combination of the entries' grid values, planned at submit.

``sampler: grid`` and ``n_trials: grid`` say the same: the grid lists its own trials
(:func:`~smptune.search.sampling.grid_configurations`), so it takes no other ``n_trials``
and no ``enqueue``.
"""

from __future__ import annotations

from typing import ClassVar

from smptune.errors import ConfigError
from smptune.params import Params
from smptune.search.samplers.base import PlanSettings, Sampler
from smptune.search.sampling import grid_configurations

__all__ = ["GridSampler"]


class GridSampler(Sampler):
    """Every combination of the space's grid values."""

    name: ClassVar[str] = "grid"
    n_trials_word: ClassVar[str | None] = "grid"
    enqueue_refused: ClassVar[str | None] = "a grid trains every combination already"

    def check_n_trials(self, n_trials: int | str | None) -> None:
        if n_trials != self.n_trials_word:
            raise ConfigError(
                f"sampler: 'grid' conflicts with n_trials: {n_trials!r} (a grid runs "
                "every combination; drop n_trials or set it to 'grid')"
            )

    def plan(self, search: PlanSettings) -> list[Params]:
        return grid_configurations(search.hyperparameters)
