"""Which final model a sweep gives by default, and the check of the retrained model against
the CV after its epochs less twice the runs' spread."""

from __future__ import annotations

import pytest

from smptune.results.summary import SweepResults, retrain_check

SCORING = {"metrics": ["iou"]}


def _results(cv_at_epochs: dict | None, ensemble: dict | None = None, mode: str = "max") -> dict:
    return {
        "metric": "iou",
        "mode": mode,
        "scoring": SCORING,
        "best": {"trial": 0, "score": 0.6, "epochs": 8, "cv_at_epochs": cv_at_epochs},
        "fold_ensemble": {"test_metrics": ensemble} if ensemble else {"error": "none kept"},
    }


def test_the_fold_ensemble_is_the_default_model_when_it_was_tested():
    assert SweepResults.from_dict(_results(None, {"iou": 0.61})).default_model == "fold_ensemble"
    assert SweepResults.from_dict(_results(None)).default_model == "retrained_model"


def test_the_floor_is_the_cv_after_the_retrains_epochs_less_twice_the_spread():
    results = _results({"epochs": 8, "score": 0.5, "std": 0.04, "per_run": {}})
    assert SweepResults.from_dict(results).retrain_floor() == pytest.approx(0.42)
    # an error metric minimised: the floor is above the CV
    loss = _results({"epochs": 8, "score": 0.3, "std": 0.05, "per_run": {}}, mode="min")
    assert SweepResults.from_dict(loss).retrain_floor() == pytest.approx(0.4)
    assert SweepResults.from_dict(_results(None)).retrain_floor() is None


def test_a_retrained_model_below_its_floor_is_flagged():
    at = {"epochs": 8, "score": 0.5, "std": 0.04, "per_run": {}}
    results = SweepResults.from_dict(_results(at, {"iou": 0.61}))
    # the nuclei sweep at 8 epochs: a retrained model of 0.33
    below = retrain_check(results, {"iou": 0.33})
    assert below is not None
    assert below.to_dict() == {
        "test": pytest.approx(0.33),
        "floor": pytest.approx(0.42),
        "below": True,
    }
    assert retrain_check(results, {"iou": 0.45}).below is False
    assert retrain_check(SweepResults.from_dict(_results(None)), {"iou": 0.45}) is None
