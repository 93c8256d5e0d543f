"""Rung decisions in Redis: ASHA's rule, the bootstrap, one decision per trial and rung."""

from __future__ import annotations

import math

from smptune.queue.store import SweepStore
from smptune.search.halving import Halving
from smptune.search.specs import PrunerSpec


def _rungs(store: SweepStore, mode: str = "max", **options: object):
    options = {"min_resource": 1, "bootstrap_count": 0, **options}
    halving = Halving.from_spec(PrunerSpec.parse({"type": "asha", **options}), 27)
    return store.rungs("s", halving, mode)


def test_a_trial_goes_on_while_it_is_in_the_best_third_of_its_rung(store: SweepStore):
    rungs = _rungs(store)
    # the first trial at a rung is its best; the second, worse, is not in the best 1 of 2
    assert rungs.decide(0, 0, 0, 0.5).keep
    second = rungs.decide(1, 0, 0, 0.4)
    assert not second.keep and (second.reached, second.better, second.kept) == (2, 1, 1)
    assert rungs.decide(2, 0, 0, 0.6).keep  # better than both
    # of 6, the best 2 go on
    for n, score in enumerate((0.1, 0.2, 0.3), start=3):
        rungs.decide(n, 0, 0, score)
    assert rungs.decide(6, 0, 0, 0.55).keep  # 2nd of 7
    third = rungs.decide(7, 0, 0, 0.52)
    assert not third.keep and third.describe() == "it ranked 3 of 8; the best 2 go on"
    # rungs of another epoch or bracket are apart
    assert rungs.decide(8, 0, 1, 0.01).keep and rungs.decide(9, 1, 0, 0.01).keep


def test_lower_is_better_and_unstable_scores_rank_last(store: SweepStore):
    rungs = _rungs(store, mode="min")
    assert rungs.decide(0, 0, 0, 0.5).keep
    assert rungs.decide(1, 0, 0, 0.2).keep  # a lower loss is better
    assert not rungs.decide(2, 0, 0, math.nan).keep
    assert not rungs.decide(3, 0, 0, 0.9).keep


def test_no_trial_is_stopped_until_the_bootstrap_count_reached_the_rung(store: SweepStore):
    rungs = _rungs(store, bootstrap_count=3)
    assert all(rungs.decide(n, 0, 0, 1.0 - n / 10).keep for n in range(3))
    assert not rungs.decide(3, 0, 0, 0.1).keep


def test_a_trial_is_decided_once_at_a_rung_and_the_counts_say_what_each_rung_did(
    store: SweepStore,
):
    rungs = _rungs(store)
    assert rungs.decide(0, 0, 0, 0.9).keep  # alone at the rung
    assert not any(rungs.decide(n, 0, 0, 0.9 - n / 10).keep for n in range(1, 9))
    # a copy of trial 0 reaching the rung again (queued again, restarted) is told the same,
    # with its first score, however it scores now
    again = rungs.decide(0, 0, 0, 0.05)
    assert again.keep and (again.reached, again.better) == (9, 0)
    assert not rungs.decide(1, 0, 0, 0.99).keep  # and a stopped one stays stopped
    counts = {(c.bracket, c.rung.index): c for c in rungs.counts()}
    first = counts[(0, 0)]
    assert (first.reached, first.promoted, first.stopped) == (9, 1, 8)
    assert first.rung.where() == "fold 0, epoch 1"
    assert (counts[(0, 1)].reached, counts[(0, 1)].promoted) == (0, 0)
    scores, stopped = rungs.members(0, 0)
    assert scores[0] == 0.9 and math.isclose(scores[8], 0.1) and stopped == set(range(1, 9))


def test_whatever_order_trials_arrive_in_the_first_to_reach_each_rung_goes_on(
    store: SweepStore,
):
    # Given 40 sweeps of 20 trials each meeting 3 rungs, their decisions interleaved in a
    # random order (asynchronous workers), with noisy scores and no bootstrap
    import random

    for seed in range(40):
        draw = random.Random(seed)
        rungs = store.rungs(f"s{seed}", _rungs(store).halving, "max")
        alive = {t: 0 for t in range(20)}  # trial -> the next rung it meets
        finished = []
        while alive:
            trial = draw.choice(sorted(alive))
            rung = alive[trial]
            if not rungs.decide(trial, 0, rung, draw.random()).keep:
                del alive[trial]
            elif rung == 2:
                finished.append(trial)
                del alive[trial]
            else:
                alive[trial] = rung + 1
        # Then every sweep has a trial that passed all three: pruning alone never leaves none
        assert finished, seed
