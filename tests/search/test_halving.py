"""The rungs of ASHA and Hyperband, and how their options are checked."""

from __future__ import annotations

from collections import Counter

import pytest

from smptune.config import config_from_dict
from smptune.errors import ConfigError
from smptune.search.halving import Halving
from smptune.search.specs import PrunerSpec


def _halving(max_epochs: int = 27, **options: object) -> Halving:
    return Halving.from_spec(PrunerSpec.parse({"type": "asha", **options}), max_epochs)


def test_asha_rungs_grow_by_the_reduction_factor_below_max_epochs():
    halving = _halving(27)
    assert halving.rung_epochs() == [1, 3, 9]
    assert [halving.rung(e) for e in (1, 2, 3, 9, 27)] == [0, None, 1, 2, None]
    assert _halving(20, min_resource=2, reduction_factor=2).rung_epochs() == [2, 4, 8, 16]
    assert _halving(27, max_resource=10).rung_epochs() == [1, 3, 9]
    # the best third of the trials at a rung go on, and at least one
    assert [halving.kept(n) for n in (1, 2, 3, 8, 9)] == [1, 1, 1, 2, 3]


def test_hyperband_brackets_start_their_rungs_later_and_get_fewer_trials():
    spec = PrunerSpec.parse({"type": "hyperband", "min_resource": 1, "reduction_factor": 3})
    halving = Halving.from_spec(spec, 27)
    assert halving.brackets == 4
    assert [halving.rung_epochs(b) for b in range(4)] == [[1, 3, 9], [3, 9], [9], []]
    drawn = Counter(halving.bracket(7, n) for n in range(4000))
    # Hyperband's shares: 27/4, 9/3, 3/2, 1/1 of the trials
    assert drawn[0] > drawn[1] > drawn[2] > drawn[3] > 0
    assert drawn == Counter(halving.bracket(7, n) for n in range(4000))  # reproducible
    assert _halving(27).bracket(7, 5) == 0


@pytest.mark.parametrize(
    ("pruner", "training", "fragment"),
    [
        ({"type": "asha", "min_resource": 10}, {"max_epochs": 10}, "must be below max_resource"),
        ({"type": "asha", "max_resource": 50}, {"max_epochs": 10}, "more than training.max_epochs"),
        ({"type": "asha", "reduction_factor": 1}, {}, "an integer >= 2"),
        ({"type": "hyperband", "min_resource": 0}, {}, "an integer >= 1"),
        ({"type": "asha", "max_resource": "all"}, {}, "'auto'"),
        ({"type": "asha", "grace_period": 2}, {}, "unknown option for asha"),
        ({"type": "median", "at": "batch"}, {}, "'fold' or 'epoch'"),
    ],
)
def test_bad_pruner_options_name_the_key(pruner, training, fragment):
    raw = {
        "trainable": "smptune.testing:LearningCurveTrainable",
        "metric": "score",
        "pruner": pruner,
        "training": training,
        "hyperparameters": {"x": {"low": 0.0, "high": 1.0}},
    }
    with pytest.raises(ConfigError, match="pruner") as info:
        config_from_dict(raw)
    assert fragment in str(info.value)


def test_pruner_specs_round_trip_and_say_where_they_decide():
    for raw, at in (
        ("asha", "epoch"),
        ("hyperband", "epoch"),
        ("median", "fold"),
        ({"type": "median", "at": "epoch"}, "epoch"),
        ("wilcoxon", "fold"),
    ):
        spec = PrunerSpec.parse(raw)
        assert spec.at == at and PrunerSpec.parse(spec.to_config()) == spec
