"""What adaptive samplers and per-epoch pruners see of a trial's epochs."""

from __future__ import annotations

import math
import random

import numpy as np
import optuna
import pytest

from smptune.config import config_from_dict
from smptune.records import PartialRun, TrialRecord, TrialStatus
from smptune.search.adaptive import (
    _study,
    ask,
    epoch_values,
    median_prunes,
    optuna_prunes,
    pruner_steps,
    should_prune_epoch,
)


class _Listed:
    """The complete trials of a list of records as a pruner reads them, computed as the
    store's sorted sets hold them (smptune.queue.medians) but with numpy."""

    def __init__(self, trials: list[TrialRecord], config, n_randoms: int = 1) -> None:
        self.complete = [
            t
            for t in trials
            if t.status is TrialStatus.COMPLETE and t.score is not None and math.isfinite(t.score)
        ]
        self.steps = [pruner_steps(t.folds, t.curves, config, n_randoms) for t in self.complete]
        self.mode = config.scoring.mode

    def count(self) -> int:
        return len(self.complete)

    def percentile(self, step: int, q: float, n_min: int) -> float:
        values = [steps[step] for steps in self.steps if step in steps]
        return float(np.percentile(values, q)) if len(values) >= max(n_min, 1) else math.nan

    def best(self) -> TrialRecord | None:
        pick = max if self.mode == "max" else min
        return pick(self.complete, key=lambda t: t.score) if self.complete else None


def _config(**overrides: object):
    raw = {
        "trainable": "smptune.fakes:LearningCurveTrainable",
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
    complete = _Listed(trials, config)
    assert should_prune_epoch(complete, config, {"x": 0.1}, {}, low, 1)
    assert not should_prune_epoch(complete, config, {"x": 0.1}, {}, high, 1)


@pytest.mark.parametrize("mode", ["max", "min"])
def test_the_median_rule_on_sorted_sets_decides_as_optunas_median_pruner(mode: str):
    """300 random studies: complete, pruned and failed trials with noisy curves of random
    lengths, a running trial; our rule on the complete trials' step values and Optuna's
    MedianPruner on the whole study agree every time."""
    rng = random.Random(7)
    decisions = []
    for case in range(300):
        options = {"n_startup_trials": rng.randint(0, 4), "n_warmup_steps": rng.randint(0, 3)}
        options["n_min_trials"] = rng.randint(1, 3)
        config = _config(pruner={"type": "median", "at": "epoch", **options}, mode=mode)
        trials = []
        for n in range(rng.randint(0, 12)):
            curve = tuple(rng.random() for _ in range(rng.randint(1, 4)))
            status = rng.choice(
                [TrialStatus.COMPLETE] * 3 + [TrialStatus.PRUNED, TrialStatus.FAILED]
            )
            score = max(curve) if mode == "max" else min(curve)
            trials.append(
                TrialRecord(n, status, params={"x": rng.random()}, score=score, curves={0: curve})
            )
        running = {0: tuple(rng.random() for _ in range(rng.randint(1, 4)))}
        steps = epoch_values({}, running, config.scoring, config.max_epochs)
        ours = median_prunes(_Listed(trials, config), config, steps)
        pruner = optuna.pruners.MedianPruner(**options)
        theirs = optuna_prunes(pruner, _study(trials, config, 1), config, {"x": 0.5}, steps)
        assert ours == theirs, (case, options, trials, running)
        decisions.append(ours)
    assert 0 < sum(decisions) < len(decisions)  # both outcomes were exercised


@pytest.mark.parametrize("sampler", ["tpe", "nsga2"])
def test_a_multi_objective_study_holds_each_trials_means_and_its_constraints(sampler: str):
    # Given a two-objective sweep with two complete trials and one out of memory
    config = config_from_dict(
        {
            "trainable": "smptune.fakes:LatencyTrainable",
            "n_trials": 10,
            "sampler": sampler,
            "metrics": ["iou", "latency_ms"],
            "cv": {"n_folds": 2},
            "hyperparameters": {"x": {"low": 0.0, "high": 1.5}},
        }
    )

    def runs(iou: float, latency: float) -> dict:
        metrics = {"iou": iou, "latency_ms": latency}
        return {k: {"metrics": metrics, "best_epoch": 1, "epochs_run": 1} for k in (0, 1)}

    trials = [
        TrialRecord(0, TrialStatus.COMPLETE, {"x": 0.2}, runs(0.6, 9.0), score=0.6),
        TrialRecord(1, TrialStatus.COMPLETE, {"x": 1.0}, runs(0.9, 25.0), score=0.9),
        TrialRecord(2, TrialStatus.INFEASIBLE, {"x": 1.4}),
    ]

    # When its study is built for the sampler
    study = _study(trials, config, 1, sampler=config.sampler_spec.build(seed=0))

    # Then it searches both directions, each complete trial valued by its means
    assert [d.name for d in study.directions] == ["MAXIMIZE", "MINIMIZE"]
    held = study.get_trials(deepcopy=False)
    assert [t.values for t in held[:2]] == [[0.6, 9.0], [0.9, 25.0]]
    # and the out-of-memory trial enters with its constraint violated
    assert [t.system_attrs["constraints"] for t in held] == [(0.0,), (0.0,), (1.0,)]
    # and the sampler asks a configuration from it
    assert 0.0 <= ask(trials, config, 3, {"x": 0.5})["x"] <= 1.5
