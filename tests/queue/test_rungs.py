"""Rung decisions in Redis: ASHA's rule, the bootstrap, later runs on the first run's scale."""

from __future__ import annotations

import math

from smptune.queue.store import SweepStore
from smptune.search.halving import Halving
from smptune.search.specs import PrunerSpec


def _rungs(store: SweepStore, mode: str = "max", **options: object):
    halving = Halving.from_spec(PrunerSpec.parse({"type": "asha", **options}), 27)
    return store.rungs("s", halving, mode)


def test_a_trial_goes_on_while_it_is_in_the_best_third_of_its_rung(store: SweepStore):
    rungs = _rungs(store)
    # the first trial at a rung is its best; the second, worse, is not in the best 1 of 2
    assert rungs.decide(0, 0, 0, 0, 0.5).keep
    second = rungs.decide(1, 0, 0, 0, 0.4)
    assert not second.keep and (second.reached, second.better, second.kept) == (2, 1, 1)
    assert rungs.decide(2, 0, 0, 0, 0.6).keep  # better than both
    # of 6, the best 2 go on
    for n, score in enumerate((0.1, 0.2, 0.3), start=3):
        rungs.decide(n, 0, 0, 0, score)
    assert rungs.decide(6, 0, 0, 0, 0.55).keep  # 2nd of 7
    third = rungs.decide(7, 0, 0, 0, 0.52)
    assert not third.keep and third.describe(1) == "at epoch 1 it ranked 3 of 8; the best 2 go on"
    # rungs of another epoch or bracket are apart
    assert rungs.decide(8, 0, 1, 0, 0.01).keep and rungs.decide(9, 1, 0, 0, 0.01).keep


def test_lower_is_better_and_unstable_scores_rank_last(store: SweepStore):
    rungs = _rungs(store, mode="min")
    assert rungs.decide(0, 0, 0, 0, 0.5).keep
    assert rungs.decide(1, 0, 0, 0, 0.2).keep  # a lower loss is better
    assert not rungs.decide(2, 0, 0, 0, math.nan).keep
    assert not rungs.decide(3, 0, 0, 0, 0.9).keep


def test_no_trial_is_stopped_until_the_bootstrap_count_reached_the_rung(store: SweepStore):
    rungs = _rungs(store, bootstrap_count=3)
    assert all(rungs.decide(n, 0, 0, 0, 1.0 - n / 10).keep for n in range(3))
    assert not rungs.decide(3, 0, 0, 0, 0.1).keep


def test_a_later_run_is_ranked_on_the_first_runs_scale(store: SweepStore):
    rungs = _rungs(store)
    # nine trials' first runs at rung 0 score 0.1 .. 0.9; their second fold is 0.2 harder
    for n in range(9):
        rungs.decide(n, 0, 0, 0, 0.1 * (n + 1))
        rungs.decide(n, 0, 0, 1, 0.1 * (n + 1) - 0.2, 0.1 * (n + 1))
    # a trial whose second run scores 0.65 (0.85 on the first run's scale) is in the best 3
    assert rungs.decide(9, 0, 0, 1, 0.65, 0.8).keep
    # one that lost more than the fold's 0.2 falls out (0.45 ~ 0.65: 4th of 10 or worse)
    assert not rungs.decide(10, 0, 0, 1, 0.45, 0.9).keep
    # compared on the raw second-run scores, that one (0.45) would rank in the best 3
    assert sum(1 for n in range(9) if 0.1 * (n + 1) - 0.2 > 0.45) <= 3
