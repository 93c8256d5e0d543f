"""The objectives record: reading metrics, modes and select, trial means, domination, the
select rule."""

from __future__ import annotations

import math

import pytest

from smptune.errors import ConfigError
from smptune.search.objectives import Objectives, SelectRule, Where


def test_modes_default_to_min_for_costs_and_max_otherwise():
    objectives = Objectives.from_config(["iou", "latency_ms", "param_count"])
    assert objectives.modes == ("max", "min", "min")
    assert objectives.directions == ["maximize", "minimize", "minimize"]
    # and select defaults to the first metric in its mode, with no filter
    assert objectives.select == SelectRule("iou", "max")


def test_objectives_round_trip_through_their_dict():
    objectives = Objectives.from_config(
        ["dice", "latency_ms"], ["max", "min"], {"max": "dice", "where": "latency_ms < 12.5"}
    )
    assert Objectives.from_dict(objectives.to_dict()) == objectives
    assert objectives.to_dict()["select"] == {"max": "dice", "where": "latency_ms < 12.5"}


@pytest.mark.parametrize(
    ("metrics", "modes", "select", "needle"),
    [
        (["iou"], None, None, "metrics: names 1 metric"),
        ("iou", None, None, "metrics: must be a list"),
        (["iou", "iou"], None, None, "metrics: 'iou' is named twice"),
        (["iou", "latency_ms"], ["max"], None, "modes: must be a list of one mode per metric"),
        (["iou", "latency_ms"], ["max", "down"], None, "modes[1]: must be 'max' or 'min'"),
        (["iou", "latency_ms"], None, {"max": "dice"}, "select.max: 'dice' is not one of"),
        (["iou", "latency_ms"], None, {"where": "iou > 1"}, "select: give exactly one of"),
        (["iou", "latency_ms"], None, {"max": "iou", "by": 1}, "select.by: unknown key"),
        (["iou", "latency_ms"], None, {"max": "iou", "where": "latency_ms = 2"}, "select.where"),
        (["iou", "latency_ms"], None, {"max": "iou", "where": "dice < 2"}, "select.where: 'dice'"),
        (["iou", "latency_ms"], None, {"max": "iou", "where": "__import__('os')"}, "select.where"),
    ],
)
def test_bad_objectives_are_refused_naming_the_key(metrics, modes, select, needle):
    with pytest.raises(ConfigError) as raised:
        Objectives.from_config(metrics, modes, select)
    assert needle in str(raised.value)


@pytest.mark.parametrize(
    ("text", "value", "holds"),
    [
        ("latency_ms <= 20", 20.0, True),
        ("latency_ms < 20", 20.0, False),
        ("latency_ms>=1e1", 10.0, True),
        ("latency_ms > -3", -3.0, False),
        ("latency_ms <= 20", math.nan, False),
    ],
)
def test_where_reads_its_comparison_without_eval(text, value, holds):
    assert Where.parse(text).holds({"latency_ms": value}) is holds


def test_select_takes_the_best_of_the_trials_that_meet_where():
    rule = SelectRule("iou", "max", Where("latency_ms", "<=", 20.0))
    values = {
        0: {"iou": 0.9, "latency_ms": 30.0},  # the best iou, too slow
        1: {"iou": 0.7, "latency_ms": 15.0},
        2: {"iou": 0.8, "latency_ms": 20.0},
        3: {"iou": 0.8, "latency_ms": 10.0},  # ties trial 2: the lower number wins
    }
    assert rule.choose(values) == 2
    assert SelectRule("latency_ms", "min").choose(values) == 3
    assert rule.choose({0: values[0]}) is None


def test_trial_values_are_the_run_means_and_none_when_a_run_lacks_one():
    objectives = Objectives.from_config(["iou", "latency_ms"])
    runs = {
        0: {"metrics": {"iou": 0.6, "latency_ms": 10.0}},
        1: {"metrics": {"iou": 0.8, "latency_ms": 14.0}},
    }
    assert objectives.values(runs) == pytest.approx({"iou": 0.7, "latency_ms": 12.0})
    assert objectives.values({0: {"metrics": {"iou": 0.6}}}) is None
    assert objectives.values({0: {"metrics": {"iou": 0.6, "latency_ms": math.inf}}}) is None


def test_domination_follows_each_objectives_mode():
    objectives = Objectives.from_config(["iou", "latency_ms"])
    assert objectives.dominates([0.8, 10.0], [0.7, 10.0])
    assert objectives.dominates([0.8, 9.0], [0.8, 10.0])
    assert not objectives.dominates([0.8, 10.0], [0.8, 10.0])
    assert not objectives.dominates([0.9, 20.0], [0.8, 10.0])
