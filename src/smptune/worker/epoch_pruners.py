"""The pruners a trial asks inside its runs, after each epoch: ASHA or Hyperband at their
rungs (:class:`HalvingPruner`), and Optuna's median rule per epoch (:class:`MedianPerEpoch`).
"""

from __future__ import annotations

import math

from smptune.params import ParamsView
from smptune.queue.rungs import Rungs
from smptune.search.halving import Halving
from smptune.search.scoring import trial_score
from smptune.worker.run_watch import RunOwner, RunWatch, best_so_far

__all__ = ["HalvingPruner", "MedianPerEpoch"]


class HalvingPruner:
    """ASHA or Hyperband for one trial: its bracket, and a decision at each of its rungs
    (see :mod:`smptune.search.halving`): inside the first run after an epoch, at the end of a
    later run once it is recorded."""

    def __init__(self, owner: RunOwner) -> None:
        config = owner.config
        self.owner = owner
        self.halving = Halving.from_spec(config.pruner_spec, owner.max_epochs, config.n_runs)
        self.bracket = self.halving.bracket(config.seed, owner.trial)
        self.plan = self.halving.rungs(self.bracket)
        self.rungs: Rungs = owner.db.rungs(owner.sweep_id, self.halving, config.scoring.mode)

    def decide(self, watch: RunWatch, epoch: int, score: float) -> str | None:
        """At a rung of the first run: rank the run's best score so far."""
        if watch.index != 0:
            return None
        rung = next((r for r in self.plan if r.epoch == epoch), None)
        if rung is None:
            return None
        best = best_so_far(watch.scores, self.owner.config.scoring.mode)
        value = math.nan if best is None else best  # no finite epoch: ranked as unstable
        decision = self.rungs.decide(self.owner.trial, self.bracket, rung.index, value)
        return None if decision.keep else decision.describe()

    def after_run(self, run: int, epochs_run: int) -> str | None:
        """Once run ``run`` is recorded: the first run's rungs it ended before (early
        stopping), on its best score, then the rung at its end, on the trial's mean over its
        runs so far; why the trial stops, or None."""
        owner = self.owner
        scoring = owner.config.scoring
        n_repeats = owner.n_randoms
        for rung in self.plan:
            if rung.epoch is not None and run == 0 and rung.epoch > epochs_run:
                value = scoring.run_score(owner.done[0]["metrics"])
                where = f"at {rung.where(n_repeats)} (its run ended at epoch {epochs_run})"
            elif rung.epoch is None and rung.run == run:
                mean, _, unstable = trial_score({i: owner.done[i] for i in range(run + 1)}, scoring)
                value = math.nan if unstable or mean is None else mean
                where = f"{rung.where(n_repeats)}, on the mean of its first {run + 1} runs"
            else:
                continue
            decision = self.rungs.decide(owner.trial, self.bracket, rung.index, value)
            if not decision.keep:
                return f"{where}: {decision.describe()}"
        return None


class MedianPerEpoch:
    """Optuna's median rule asked after every epoch, on the complete trials' values at that
    epoch (O(log trials), see :func:`smptune.search.adaptive.median_prunes`)."""

    def __init__(self, owner: RunOwner, params: ParamsView) -> None:
        self.owner = owner
        self.params = params

    def decide(self, watch: RunWatch, epoch: int, score: float) -> str | None:
        from smptune.search.adaptive import should_prune_epoch

        owner = self.owner
        curves = {watch.index: tuple(watch.scores)}
        complete = owner.db.complete_trials(owner.sweep_id, owner.config.scoring.mode)
        if should_prune_epoch(
            complete, owner.config, self.params, owner.done, curves, owner.n_randoms
        ):
            return "below the median of the complete trials at this epoch"
        return None
