"""The rungs of ASHA and Hyperband, and how their options are checked."""

from __future__ import annotations

from collections import Counter

import pytest

from smptune.config import config_from_dict
from smptune.errors import ConfigError
from smptune.search.halving import Halving
from smptune.search.specs import PrunerSpec


def _halving(max_epochs: int = 27, n_runs: int = 1, **options: object) -> Halving:
    options = {"min_resource": 1, "bootstrap_count": 0, **options}
    return Halving.from_spec(PrunerSpec.parse({"type": "asha", **options}), max_epochs, n_runs)


def _where(halving: Halving, bracket: int = 0) -> list[str]:
    return [rung.where() for rung in halving.rungs(bracket)]


def test_asha_rungs_grow_by_the_reduction_factor_below_max_epochs():
    halving = _halving(27)
    assert halving.rung_epochs() == [1, 3, 9]
    assert _halving(20, min_resource=2, reduction_factor=2).rung_epochs() == [2, 4, 8, 16]
    assert _halving(27, max_resource=10).rung_epochs() == [1, 3, 9]
    # the best third of the trials at a rung go on, and at least one
    assert [halving.kept(n) for n in (1, 2, 3, 8, 9)] == [1, 1, 1, 2, 3]


def test_rungs_past_the_first_run_move_to_the_end_of_the_run_they_fall_in():
    # Given 3 folds of 15 epochs: one axis of 45 epochs, rungs at 1, 3, 9 and 27
    halving = _halving(15, n_runs=3)
    # Then 1, 3 and 9 are read inside fold 0, and 27 (inside fold 1) at the end of fold 1,
    # on the two complete folds; nothing is read at the end of the last fold
    assert _where(halving) == ["fold 0, epoch 1", "fold 0, epoch 3", "fold 0, epoch 9",
                               "after fold 1"]  # fmt: skip
    assert [r.resource for r in halving.rungs()] == [1, 3, 9, 30]
    # a rung that falls at a fold's end is read there; two in one fold are read once
    assert _where(_halving(9, n_runs=2)) == ["fold 0, epoch 1", "fold 0, epoch 3", "after fold 0"]
    assert _where(_halving(2, n_runs=5, reduction_factor=2)) == [
        "fold 0, epoch 1",
        "after fold 0",
        "after fold 1",
        "after fold 3",
    ]
    # with seeds, a run is a fold's seed
    assert halving.rungs()[-1].where(n_repeats=2) == "after fold 0 seed 1"


def test_auto_defaults_start_a_third_into_the_first_run_and_bootstrap_three_trials():
    spec = PrunerSpec.parse("asha")
    halving = Halving.from_spec(spec, 15, 3)
    assert halving.min_resource == 5 and halving.bootstrap_count == 3
    assert _where(halving) == ["fold 0, epoch 5", "after fold 0"]
    assert Halving.from_spec(spec, 27, 1).rung_epochs() == [9]
    assert Halving.from_spec(spec, 4, 1).rung_epochs() == [1, 3]
    assert _where(Halving.from_spec(spec, 10, 5)) == ["fold 0, epoch 3", "fold 0, epoch 9",
                                                      "after fold 2"]  # fmt: skip


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
    # over folds, the last bracket still has no rung
    folds = Halving.from_spec(spec, 9, 2)
    assert [_where(folds, b) for b in range(folds.brackets)] == [
        ["fold 0, epoch 1", "fold 0, epoch 3", "after fold 0"],
        ["fold 0, epoch 3", "after fold 0"],
        ["after fold 0"],
        [],
    ]


@pytest.mark.parametrize(
    ("pruner", "training", "fragment"),
    [
        ({"type": "asha", "min_resource": 100}, {"max_epochs": 10}, "must be below max_resource"),
        ({"type": "asha", "max_resource": 500}, {"max_epochs": 10}, "more than a trial trains"),
        ({"type": "asha", "reduction_factor": 1}, {}, "an integer >= 2"),
        ({"type": "hyperband", "min_resource": 0}, {}, "an integer >= 1"),
        ({"type": "asha", "max_resource": "all"}, {}, "'auto'"),
        ({"type": "asha", "grace_period": 2}, {}, "unknown option for asha"),
        ({"type": "median", "at": "batch"}, {}, "'fold' or 'epoch'"),
    ],
)
def test_bad_pruner_options_name_the_key(pruner, training, fragment):
    raw = {
        "trainable": "smptune.fakes:LearningCurveTrainable",
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
