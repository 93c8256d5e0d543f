"""The config's multi-objective keys: read, round-tripped, and refused with what they
cannot go with."""

from __future__ import annotations

import pytest

from smptune.config import config_from_dict
from smptune.errors import ConfigError

BASE = {
    "trainable": "smptune.fakes:LatencyTrainable",
    "metrics": ["iou", "latency_ms"],
    "hyperparameters": {"x": {"low": 0.0, "high": 1.5}},
}


def test_metrics_with_a_select_rule_round_trip_and_score_by_the_first():
    config = config_from_dict(
        {**BASE, "sampler": "nsga2", "select": {"max": "iou", "where": "latency_ms <= 20"}}
    )
    assert config.objectives is not None
    assert config.objectives.names == ("iou", "latency_ms")
    assert config.modes == ["max", "min"]
    # the first objective ranks trials and picks each run's best epoch
    assert config.scoring.names == ("iou",) and config.scoring.mode == "max"
    # the trainable is told every objective to report
    assert config.settings().objectives == ("iou", "latency_ms")
    data = config.to_dict()
    assert "metric" not in data and "combine" not in data
    assert data["select"] == {"max": "iou", "where": "latency_ms <= 20"}
    again = config_from_dict(data)
    assert again == config and again.objectives == config.objectives


def test_a_single_metric_sweep_has_no_objectives():
    config = config_from_dict({**BASE, "metrics": None, "metric": "iou"})
    assert config.objectives is None and "metrics" not in config.to_dict()


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        ({"metric": "iou"}, "metrics: give metrics (with modes) or metric, not both"),
        ({"combine": "min"}, "metrics: give metrics (with modes) or combine, not both"),
        ({"mode": "max"}, "metrics: give metrics (with modes) or mode, not both"),
        ({"metrics": ["iou"]}, "metrics: names 1 metric"),
        ({"pruner": "asha"}, "pruner: 'asha' compares one score"),
        ({"pruner": "hyperband"}, "pruner: 'hyperband' compares one score"),
        ({"sampler": "gp"}, "sampler: 'gp' searches one objective"),
        ({"sampler": "cmaes"}, "sampler: 'cmaes' searches one objective"),
        ({"metrics": None, "select": {"max": "iou"}}, "select: goes with metrics"),
        ({"metrics": None, "modes": ["max"]}, "modes: goes with metrics"),
    ],
)
def test_metrics_are_refused_with_what_they_cannot_go_with(extra, needle):
    with pytest.raises(ConfigError) as raised:
        config_from_dict({**BASE, **extra})
    assert needle in str(raised.value)
    assert raised.value.exit_code == 2
