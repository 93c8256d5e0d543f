"""Successive halving inside cross-validation: the rungs of ASHA and Hyperband on one
fidelity per trial, and their promotion rule.

A trial's resource is what it has trained: epochs over all its runs (folds × seeds), the
first run's first. Rungs sit at ``min_resource × reduction_factor**k`` on that axis, below
``max_resource`` (every run's epochs). A rung inside the first run is read at that epoch of
the first run; a rung past it moves to the end of the run it falls in and is read on the
trial's complete runs so far. So every trial at a rung is compared on the same runs at the
same point, and a trial that passed a rung is never judged again on less evidence than it
showed there: after the first run, only on more complete folds. Scores at a rung are
*higher is better* (a ``min`` metric negated):

- inside the first run, the run's best score up to that epoch, not the epoch's own score: on
  real data an epoch's validation score jumps about, and the best so far ranks runs by where
  they will end more faithfully (``docs/performance.md`` measures both on recorded curves);
- at the end of run ``j``, the mean of runs ``0..j`` at their best epochs (the trial's CV
  score on those runs). A run that stopped early (``early_stopping_patience``) before a rung
  of the first run is read there with its best score, once it has ended.

The rule is ASHA's (Li et al. 2020): a trial reaching a rung goes on if it is among the best
``max(1, n // reduction_factor)`` of the ``n`` trials that reached it so far, and a decision
never waits for others. Until more than ``bootstrap_count`` trials have reached a rung, it
stops nobody. The first trial at a rung is its best, so the best at every rung goes on and a
sweep always has a trial that finishes its cross-validation.

Hyperband runs several such brackets, each starting its rungs ``reduction_factor`` times
later, the last with none; a trial's bracket is drawn from the sweep seed and its number,
weighted as Hyperband allots trials to brackets.

Hand-written rather than Optuna's ``SuccessiveHalvingPruner``/``HyperbandPruner``: those
compare every trial at one step of one study, which has no notion of runs that restart at
epoch 1, and decide from a study holding every trial's intermediate values, which a worker
would rebuild from the store at each rung (O(trials × epochs)); here each rung is a Redis
sorted set and a decision is O(log trials) (:mod:`smptune.queue.rungs`).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from smptune.errors import ConfigError
from smptune.search.specs import PrunerSpec

__all__ = ["Halving", "Rung", "RungDecision"]


@dataclass(frozen=True)
class Rung:
    """One rung of a bracket: where on the trial's resource axis it sits, and where it is
    read: at ``epoch`` of the first run, or (``epoch`` None) at the end of run ``run``."""

    index: int
    #: Epochs trained over the trial's runs when it is read.
    resource: int
    #: The run it is read in (0 inside the first run), or whose end it is read at.
    run: int
    #: The epoch of the first run it is read at; None at the end of run ``run``.
    epoch: int | None

    def where(self, n_repeats: int = 1) -> str:
        """``fold 0, epoch 3`` or ``after fold 1`` (``fold 1 seed 0`` with seeds)."""
        fold, repeat = divmod(self.run, n_repeats)
        run = f"fold {fold}" + (f" seed {repeat}" if n_repeats > 1 else "")
        return f"{run}, epoch {self.epoch}" if self.epoch is not None else f"after {run}"


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

    def describe(self) -> str:
        return f"it ranked {self.better + 1} of {self.reached}; the best {self.kept} go on"


@dataclass(frozen=True)
class Halving:
    """The rungs of a successive-halving pruner (``brackets`` 1: ASHA) over trials of
    ``n_runs`` runs of ``run_epochs`` epochs each."""

    min_resource: int
    reduction_factor: int
    max_resource: int
    run_epochs: int
    n_runs: int = 1
    bootstrap_count: int = 0
    brackets: int = 1

    @classmethod
    def from_spec(cls, spec: PrunerSpec, max_epochs: int, n_runs: int = 1) -> Halving:
        """The rungs ``spec`` (``asha`` or ``hyperband``) asks for over trials of ``n_runs``
        runs of ``max_epochs`` epochs; ``max_resource: auto`` is all of them. Raises
        :class:`ConfigError` when no rung fits below it."""
        options = spec.options
        total = max_epochs * n_runs
        top = options.get("max_resource", "auto")
        max_resource = total if top == "auto" else int(top)
        factor = int(options.get("reduction_factor", 3))
        raw_min = options.get("min_resource", "auto")
        min_resource = auto_min_resource(max_epochs, factor) if raw_min == "auto" else int(raw_min)
        if max_resource > total:
            raise ConfigError(
                f"pruner.max_resource: {max_resource} is more than a trial trains "
                f"(training.max_epochs {max_epochs} × {n_runs} runs = {total} epochs)"
            )
        if min_resource >= max_resource:
            raise ConfigError(
                f"pruner.min_resource: {min_resource} must be below max_resource "
                f"({max_resource}), or {spec.kind} never decides"
            )
        raw_bootstrap = options.get("bootstrap_count", "auto")
        bootstrap = factor if raw_bootstrap == "auto" else int(raw_bootstrap)
        halving = cls(int(min_resource), factor, max_resource, max_epochs, n_runs, bootstrap)
        if spec.kind == "hyperband":  # one bracket per rung of the first, and one with none
            return cls(
                halving.min_resource,
                factor,
                max_resource,
                max_epochs,
                n_runs,
                bootstrap,
                len(halving.rungs()) + 1,
            )
        return halving

    def rungs(self, bracket: int = 0) -> list[Rung]:
        """The rungs of ``bracket``, in the order a trial meets them."""
        out: list[Rung] = []
        resource = self.min_resource * self.reduction_factor**bracket
        while resource < self.max_resource:
            if resource < self.run_epochs:
                out.append(Rung(len(out), resource, 0, resource))
            else:  # the end of the run it falls in, read on the complete runs
                run = math.ceil(resource / self.run_epochs) - 1
                end = (run + 1) * self.run_epochs
                if run >= self.n_runs - 1 or end > self.max_resource:
                    break
                if not out or out[-1].epoch is not None or out[-1].run != run:
                    out.append(Rung(len(out), end, run, None))
            resource *= self.reduction_factor
        return out

    def rung_epochs(self, bracket: int = 0) -> list[int]:
        """The epochs of the first run at which a run of ``bracket`` is ranked."""
        return [r.epoch for r in self.rungs(bracket) if r.epoch is not None]

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


def auto_min_resource(max_epochs: int, reduction_factor: int) -> int:
    """``min_resource: auto``: the first rung a ``reduction_factor``-th of the way through the
    first run (rounded, at least 1). On real curves the first epochs say little of where a
    run ends: over 24 configurations recorded on real nuclei, fold 0's best score so far
    ranks them by their full CV score with Spearman's ρ 0.08 after epoch 1, 0.30 after 2,
    0.71 after 5 of 15 (``benchmarks/search_real_data.py``)."""
    return max(1, round(max_epochs / reduction_factor))
