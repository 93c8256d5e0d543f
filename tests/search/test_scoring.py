"""Scores: several metrics combined per run, then averaged; unstable runs flagged; ranking."""

from __future__ import annotations

import math

import pytest

from smptune.errors import ConfigError
from smptune.records import PartialRun, TrialRecord, TrialStatus
from smptune.search.samplers import parse_sampler
from smptune.search.scoring import Scoring, may_be_best, rank_tier, rank_trials, trial_score
from smptune.search.specs import PrunerSpec


def _runs(*metrics: dict[str, float]) -> dict[int, dict]:
    return {i: {"metrics": m} for i, m in enumerate(metrics)}


@pytest.mark.parametrize(
    ("combine", "expected"),
    [
        ("harmonic", 2 / (1 / 0.5 + 1 / 4.0)),
        ("arithmetic", (0.5 + 4.0) / 2),
        ("geometric", math.sqrt(0.5 * 4.0)),
        ("min", 0.5),
    ],
)
def test_several_metrics_combine_per_run_with_lower_entering_as_its_inverse(combine, expected):
    scoring = Scoring.from_config(["iou", "loss:lower"], combine=combine)
    assert scoring.mode == "max"
    assert scoring.run_score({"iou": 0.5, "loss": 0.25, "f1": 0.1}) == pytest.approx(expected)


def test_a_trial_score_is_the_mean_of_its_runs_combined_first():
    # harmonic(0.5, 1/0.25) per run, then the mean: not the harmonic of the mean metrics
    scoring = Scoring.from_config(["iou", "loss:lower"])
    runs = _runs({"iou": 0.5, "loss": 0.25}, {"iou": 0.9, "loss": 1.0})
    per_run = [2 / (1 / 0.5 + 1 / 4.0), 2 / (1 / 0.9 + 1.0)]
    mean, std, unstable = trial_score(runs, scoring)
    assert mean == pytest.approx(sum(per_run) / 2)
    assert std == pytest.approx(abs(per_run[0] - per_run[1]) / 2)
    assert unstable is False


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf, 0.0])
def test_nan_inf_or_zero_in_a_combined_metric_makes_the_run_unstable(bad):
    scoring = Scoring.from_config(["iou", "loss:lower"])
    runs = _runs({"iou": 0.5, "loss": 0.25}, {"iou": 0.7, "loss": bad})
    mean, _, unstable = trial_score(runs, scoring)
    assert unstable is True
    assert mean == pytest.approx(2 / (1 / 0.5 + 1 / 4.0))  # the stable run alone


def test_a_single_metric_may_be_zero_but_not_nan():
    scoring = Scoring.from_config("iou")
    assert scoring.run_score({"iou": 0.0}) == 0.0
    assert math.isnan(scoring.run_score({"iou": math.nan}))
    assert Scoring.from_config("loss:lower").mode == "min"
    assert Scoring.from_config("loss", "min").mode == "min"


def test_best_epoch_follows_the_combined_score_and_never_picks_an_unstable_one():
    scoring = Scoring.from_config(["iou", "loss:lower"], combine="arithmetic")
    history = [
        {"iou": 0.4, "loss": 0.5},  # 1.2
        {"iou": 0.6, "loss": 0.0},  # unstable
        {"iou": 0.5, "loss": 0.4},  # 1.5
        {"iou": 0.6, "loss": 1.0},  # 0.8
    ]
    assert scoring.best_index(history) == 2
    assert Scoring.from_config("loss:lower").best_index([{"loss": 3}, {"loss": 1}]) == 1


def test_round_trip_and_errors():
    scoring = Scoring.from_config(["iou", "loss:lower"], combine="geometric")
    assert Scoring.from_dict(scoring.to_dict()) == scoring
    assert scoring.label == "geometric(iou, 1/loss)"
    with pytest.raises(ConfigError, match="not among the reported metrics"):
        scoring.run_score({"iou": 0.5})


def test_ranking_tiers_complete_then_pruned_then_unstable_then_unscored():
    run = {"metrics": {"iou": 0.5}, "best_epoch": 1, "epochs_run": 1}
    partial = PartialRun(0, 0, 3, 0.9, "pruned by asha at fold 0, epoch 3")
    trials = [
        TrialRecord(0, TrialStatus.FAILED, score=None),
        TrialRecord(1, TrialStatus.PRUNED, score=0.99, folds={0: run}),
        TrialRecord(2, TrialStatus.COMPLETE, score=0.5),
        TrialRecord(3, TrialStatus.COMPLETE, score=0.95, unstable=True),
        TrialRecord(4, TrialStatus.COMPLETE, score=0.7),
        TrialRecord(5, TrialStatus.STOPPED, score=0.6, folds={0: run, 1: run}),
        TrialRecord(6, TrialStatus.SKIPPED, score=None),
        TrialRecord(7, TrialStatus.PRUNED, score=0.95, partial=partial),
        TrialRecord(8, TrialStatus.PRUNED, score=0.97, partial=PartialRun(0, 0, 1, 0.97, "")),
    ]
    ranked = rank_trials(trials, "max")
    # partial trials: the further they trained, the higher, whatever their partial score
    assert [t.trial for t in ranked] == [4, 2, 5, 1, 3, 7, 8, 0, 6]
    assert [rank_tier(t) for t in ranked] == [0, 0, 1, 1, 2, 3, 3, 4, 4]
    # the answer is a complete trial; a stopped one (time budget, cancel) only when none is,
    # and a pruned one never, however high its partial score
    assert [t.trial for t in ranked if may_be_best(t)] == [4, 2, 5]
    no_complete = [t for t in ranked if t.status is not TrialStatus.COMPLETE]
    assert next(t.trial for t in no_complete if may_be_best(t)) == 5
    assert not any(may_be_best(t) for t in ranked if t.status is TrialStatus.PRUNED)


def test_sampler_and_pruner_specs_round_trip_with_their_defaults():
    tpe = parse_sampler({"type": "TPE", "n_startup_trials": 3})
    assert tpe.adaptive and tpe.options["n_startup_trials"] == 3
    assert parse_sampler(tpe.to_config()) == tpe
    assert not parse_sampler("grid").adaptive
    wilcoxon = PrunerSpec.parse("wilcoxon")
    assert wilcoxon.enabled and PrunerSpec.parse(wilcoxon.to_config()) == wilcoxon
    assert not PrunerSpec.parse(None).enabled
    assert type(wilcoxon.build()).__name__ == "WilcoxonPruner"
    assert type(tpe.build(seed=1)).__name__ == "TPESampler"
