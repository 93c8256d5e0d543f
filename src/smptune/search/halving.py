"""Successive halving over epochs: the rungs of ASHA and Hyperband and their promotion rule.

A rung is an epoch ``min_resource × reduction_factor**k`` below ``max_resource``. When a run
reaches a rung it records its score there and goes on only if it is among the best
``max(1, n // reduction_factor)`` of the ``n`` trials that reached that rung so far (ASHA's
rule, Li et al. 2020): a decision never waits for other trials. Until ``bootstrap_count``
trials have reached a rung, it stops nobody.

Trials are compared at the same epoch of the same run (fold × seed). The first run (fold 0,
seed 0) is ranked among every trial's first run. A later run would be ranked among trials that
already survived the first, which would stop most of them, so it is ranked on the first run's
scale instead: its score less the median gap between that run and the first run over the
trials that reached it (how much harder this fold is), against the first run's rung.

Hyperband runs several such brackets, each starting its rungs ``reduction_factor`` times
later; a trial's bracket is drawn from the sweep seed and its number, weighted as Hyperband
allots trials to brackets.

Hand-written rather than Optuna's ``SuccessiveHalvingPruner``/``HyperbandPruner``: those decide
from a study holding every trial's intermediate values, which a worker would rebuild from the
store at each rung (O(trials × epochs)); here each rung is a Redis sorted set and a decision is
O(log trials) (:mod:`smptune.queue.rungs`).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from smptune.errors import ConfigError
from smptune.search.specs import PrunerSpec

__all__ = ["Halving", "RungDecision"]


@dataclass(frozen=True)
class RungDecision:
    """What a rung said: go on or stop, with the figures behind it."""

    keep: bool
    #: Trials that reached the rung (this one included).
    reached: int
    #: Of them, how many scored better than this one.
    better: int
    #: How many of them go on.
    kept: int

    def describe(self, epoch: int) -> str:
        return (
            f"at epoch {epoch} it ranked {self.better + 1} of {self.reached}; "
            f"the best {self.kept} go on"
        )


@dataclass(frozen=True)
class Halving:
    """The rungs of a successive-halving pruner (``brackets`` 1: ASHA)."""

    min_resource: int
    reduction_factor: int
    max_resource: int
    bootstrap_count: int = 0
    brackets: int = 1

    @classmethod
    def from_spec(cls, spec: PrunerSpec, max_epochs: int) -> Halving:
        """The rungs ``spec`` (``asha`` or ``hyperband``) asks for; ``max_resource: auto`` is
        ``max_epochs``. Raises :class:`ConfigError` when no rung fits below it."""
        options = spec.options
        top = options.get("max_resource", "auto")
        max_resource = max_epochs if top == "auto" else int(top)
        min_resource = int(options.get("min_resource", 1))
        factor = int(options.get("reduction_factor", 3))
        if max_resource > max_epochs:
            raise ConfigError(
                f"pruner.max_resource: {max_resource} is more than training.max_epochs "
                f"({max_epochs}); a run never trains that long"
            )
        if min_resource >= max_resource:
            raise ConfigError(
                f"pruner.min_resource: {min_resource} must be below max_resource "
                f"({max_resource}), or {spec.kind} never decides"
            )
        brackets = 1
        if spec.kind == "hyperband":
            brackets = math.floor(math.log(max_resource / min_resource, factor) + 1e-9) + 1
        bootstrap = int(options.get("bootstrap_count", 0))
        return cls(min_resource, factor, max_resource, bootstrap, brackets)

    def rung_epochs(self, bracket: int = 0) -> list[int]:
        """The epochs at which a run of ``bracket`` is ranked."""
        epochs = []
        epoch = self.min_resource * self.reduction_factor**bracket
        while epoch < self.max_resource:
            epochs.append(epoch)
            epoch *= self.reduction_factor
        return epochs

    def rung(self, epoch: int, bracket: int = 0) -> int | None:
        """The rung index of ``epoch`` in ``bracket``, or None when it is not a rung."""
        epochs = self.rung_epochs(bracket)
        return epochs.index(epoch) if epoch in epochs else None

    def kept(self, reached: int) -> int:
        """How many of ``reached`` trials at a rung go on."""
        return max(1, reached // self.reduction_factor)

    def bracket(self, seed: int, trial: int) -> int:
        """The bracket of ``trial``: 0 for ASHA; for Hyperband drawn from ``seed`` and the
        trial number, bracket ``b`` (``s = brackets - 1 - b`` halvings) weighted by
        ``reduction_factor**s / (s + 1)``, the share Hyperband gives it."""
        if self.brackets == 1:
            return 0
        weights = []
        for b in range(self.brackets):
            s = self.brackets - 1 - b
            weights.append(self.reduction_factor**s / (s + 1))
        draw = random.Random(f"hyperband/{seed}/{trial}").random() * sum(weights)
        for b, weight in enumerate(weights):
            draw -= weight
            if draw < 0:
                return b
        return self.brackets - 1
