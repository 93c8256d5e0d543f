"""The Pareto front of a multi-objective sweep's trials and its round trip."""

from __future__ import annotations

import math
import random

import pytest

from smptune.records import TrialRecord, TrialStatus
from smptune.results.pareto import Pareto, ParetoPoint, non_dominated, pareto_of
from smptune.search.objectives import Objectives


def _trial(n: int, iou: float, latency: float, status=TrialStatus.COMPLETE) -> TrialRecord:
    runs = {0: {"metrics": {"iou": iou, "latency_ms": latency}, "best_epoch": 1}}
    return TrialRecord(trial=n, status=status, score=iou, folds=runs)


OBJECTIVES = Objectives.from_config(
    ["iou", "latency_ms"], None, {"max": "iou", "where": "latency_ms <= 20"}
)


def test_the_front_holds_the_trials_no_other_dominates():
    trials = [
        _trial(0, 0.9, 30.0),
        _trial(1, 0.8, 15.0),
        _trial(2, 0.7, 18.0),  # dominated by 1
        _trial(3, 0.6, 5.0),
        _trial(4, 0.95, 40.0, TrialStatus.FAILED),  # not complete: no point
    ]
    pareto = pareto_of(trials, OBJECTIVES)
    assert [p.trial for p in pareto.points] == [0, 1, 2, 3]
    assert pareto.front == (0, 1, 3)
    # and select chose the best iou within the latency bound
    assert pareto.selected == 1


def test_no_trial_meeting_where_selects_none_and_says_why():
    pareto = pareto_of([_trial(0, 0.9, 30.0)], OBJECTIVES)
    assert pareto.front == (0,) and pareto.selected is None
    assert "select.where (latency_ms <= 20)" in pareto.no_selection


def test_equal_points_are_both_on_the_front():
    points = [
        ParetoPoint(0, {"iou": 0.5, "latency_ms": 9.0}),
        ParetoPoint(1, {"iou": 0.5, "latency_ms": 9.0}),
    ]
    assert non_dominated(points, OBJECTIVES) == (0, 1)


@pytest.mark.parametrize("modes", [["max", "min"], ["min", "min", "max"]])
def test_the_front_is_the_pairwise_non_dominated_set_for_many_points_with_ties(modes):
    # Given many points on a coarse grid (so many tie on some objective) and one NaN mean
    names = ["iou", "latency_ms", "param_count"][: len(modes)]
    objectives = Objectives.from_config(names, modes, None)
    rng = random.Random(len(modes))
    points = [ParetoPoint(n, {m: rng.randint(0, 12) / 4 for m in names}) for n in range(400)]
    points.append(ParetoPoint(400, {m: math.nan for m in names}))

    # Then the front is exactly the trials no other point dominates, checked pair by pair
    pairwise = tuple(
        p.trial
        for p in points
        if not any(
            objectives.dominates(objectives.ordered(q.values), objectives.ordered(p.values))
            for q in points
            if q.trial != p.trial
        )
    )
    assert non_dominated(points, objectives) == pairwise
    assert 400 in pairwise and 1 < len(pairwise) < 400


def test_the_pareto_record_round_trips_through_results_json():
    pareto = pareto_of(
        [_trial(0, 0.9, 30.0), _trial(1, 0.8, 15.0), _trial(2, 0.7, 18.0)], OBJECTIVES
    )
    data = pareto.to_dict()
    assert data["pareto_front"] == [
        {"trial": 0, "iou": 0.9, "latency_ms": 30.0},
        {"trial": 1, "iou": 0.8, "latency_ms": 15.0},
    ]
    assert Pareto.from_dict(data) == pareto


def test_the_front_reads_in_one_line():
    pareto = pareto_of(
        [_trial(0, 0.9, 30.0), _trial(1, 0.8, 15.0), _trial(2, 0.7, 18.0)], OBJECTIVES
    )
    assert pareto.front_line() == (
        "Pareto front (iou max, latency_ms min): trial 0 (0.9, 30); trial 1 (0.8, 15); "
        "selected: trial 1 (max iou where latency_ms <= 20)"
    )
