"""What adaptive samplers and per-epoch pruners see of a trial's epochs."""

from __future__ import annotations

import math

import pytest

from smptune.config import config_from_dict
from smptune.records import PartialRun, TrialRecord, TrialStatus
from smptune.search.adaptive import _study, ask, epoch_values, should_prune_epoch


def _config(**overrides: object):
    raw = {
        "trainable": "smptune.testing:LearningCurveTrainable",
        "metric": "score",
        "n_trials": 40,
        "sampler": {"type": "tpe", "n_startup_trials": 4},
        "cv": {"n_folds": 2},
        "training": {"max_epochs": 4},
        "hyperparameters": {"x": {"low": 0.0, "high": 1.0}},
        **overrides,
    }
    return config_from_dict(raw)


def _run(score: float) -> dict:
    return {"metrics": {"score": score, "loss": 1 - score}, "best_epoch": 4, "epochs_run": 4}


def test_epoch_steps_mix_the_earlier_runs_with_this_runs_best_epoch_so_far():
    config = _config()
    runs = {0: _run(0.8)}
    curves = {0: (0.2, 0.5, 0.4, 0.8), 1: (0.4, math.nan, 0.6, 0.5)}
    steps = epoch_values(runs, curves, config.scoring, 4)
    # fold 0: its best epoch so far (the dip at epoch 3 reads as 0.5); fold 1 (steps 4..7):
    # the mean of fold 0's score and fold 1's best epoch so far
    assert steps == pytest.approx({0: 0.2, 1: 0.5, 2: 0.5, 3: 0.8, 4: 0.6, 6: 0.7, 7: 0.7})
    # a later run whose earlier run is missing has no comparable steps
    assert epoch_values({}, {1: (0.4,)}, config.scoring, 4) == {}


def test_the_sampler_sees_pruned_trials_by_how_far_they_got():
    config = _config(pruner="asha")
    complete = TrialRecord(
        0,
        TrialStatus.COMPLETE,
        params={"x": 0.7},
        folds={0: _run(0.8), 1: _run(0.82)},
        score=0.81,
        curves={0: (0.3, 0.6, 0.7, 0.8), 1: (0.3, 0.6, 0.7, 0.82)},
    )
    pruned = TrialRecord(
        1,
        TrialStatus.PRUNED,
        params={"x": 0.1},
        score=0.2,
        partial=PartialRun(0, 0, 1, 0.2, "pruned by asha at fold 0, epoch 1"),
        curves={0: (0.2,)},
    )
    study = _study([complete, pruned], config, 1, sampler=object())
    by_trial = {t.user_attrs["trial"]: t for t in study.trials}
    assert by_trial[1].state.name == "PRUNED" and by_trial[1].intermediate_values == {0: 0.2}
    assert by_trial[0].state.name == "COMPLETE" and len(by_trial[0].intermediate_values) == 8


def test_tpe_steers_away_from_where_trials_were_pruned_early():
    config = _config()
    # four trials: one good complete near x = 0.7, three pruned at epoch 1 at small x
    trials = [
        TrialRecord(
            0,
            TrialStatus.COMPLETE,
            params={"x": 0.7},
            folds={0: _run(0.8), 1: _run(0.8)},
            score=0.8,
            curves={0: (0.3, 0.6, 0.7, 0.8), 1: (0.3, 0.6, 0.7, 0.8)},
        )
    ]
    for n, x in enumerate((0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4), start=1):
        partial = PartialRun(0, 0, 1, 0.1, "pruned")
        trials.append(
            TrialRecord(n, TrialStatus.PRUNED, params={"x": x}, partial=partial, curves={0: (0.1,)})
        )
    asked = [ask(trials, config, 100 + k, {"x": 0.5})["x"] for k in range(12)]
    assert sum(x > 0.4 for x in asked) >= 9, asked


def test_the_median_pruner_per_epoch_stops_a_run_below_the_complete_trials_median():
    config = _config(pruner={"type": "median", "at": "epoch", "n_startup_trials": 2})
    trials = [
        TrialRecord(
            n,
            TrialStatus.COMPLETE,
            params={"x": 0.6 + n / 10},
            folds={0: _run(0.8), 1: _run(0.8)},
            score=0.8,
            curves={0: (0.3, 0.6, 0.7, 0.8), 1: (0.3, 0.6, 0.7, 0.8)},
        )
        for n in range(3)
    ]
    low, high = {0: (0.1, 0.2)}, {0: (0.3, 0.65)}
    assert should_prune_epoch(trials, config, 9, {"x": 0.1}, {}, low, 1)
    assert not should_prune_epoch(trials, config, 9, {"x": 0.1}, {}, high, 1)
