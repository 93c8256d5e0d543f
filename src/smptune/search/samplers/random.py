"""Random search: ``n_trials`` seeded samples of the space, planned at submit.

Configuration ``i`` is the ``i``-th draw of ``numpy.random.default_rng(seed)``
(:func:`~smptune.search.sampling.sample_configurations`), after the enqueued ones. An
open-ended sweep (no ``n_trials``) plans only its enqueued ones: each trial that starts draws
the seeded sample of its number.
"""

from __future__ import annotations

from typing import ClassVar

from smptune.params import Params
from smptune.search.samplers.base import Asking, PlanSettings, Sampler
from smptune.search.sampling import sample_configurations
from smptune.search.values import with_defaults

__all__ = ["RandomSampler"]


class RandomSampler(Sampler):
    """Seeded random configurations (the default sampler)."""

    name: ClassVar[str] = "random"

    def plan(self, search: PlanSettings) -> list[Params]:
        enqueued = super().plan(search)
        if not isinstance(search.n_trials, int):
            return enqueued  # open-ended: each trial draws its own when it starts
        sampled = sample_configurations(
            search.hyperparameters, search.n_trials - len(enqueued), search.seed
        )
        return [*enqueued, *sampled]

    def planned_after(self, search: PlanSettings, drawn: int, n: int) -> list[Params]:
        """The seeded stream continued: draws ``drawn ..`` (``drawn + n`` drawn in all)."""
        return sample_configurations(search.hyperparameters, drawn + n, search.seed)[drawn:]

    def ask(self, search: PlanSettings, asking: Asking) -> Params:
        """The seeded sample of the trial's number (an open-ended sweep)."""
        trial = asking.trial
        sample = sample_configurations(search.hyperparameters, trial + 1, search.seed)[trial]
        return asking.record(with_defaults(search.hyperparameters, asking.defaults, sample))
