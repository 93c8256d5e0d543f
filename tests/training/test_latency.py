"""Measuring a model's latency per image and its parameter count on the run's device."""

from __future__ import annotations

import pytest
import torch

from smptune.training.latency import cost_metrics, measure


def test_latency_is_per_image_and_the_model_is_put_back_as_it_was():
    model = torch.nn.Conv2d(3, 4, 3, padding=1)
    model.train()
    costs = measure(model, torch.zeros(2, 3, 16, 16), torch.device("cpu"), warmup=1, repeats=2)
    assert costs["param_count"] == 3 * 4 * 9 + 4
    assert costs["latency_ms"] > 0.0
    assert model.training and next(model.parameters()).device.type == "cpu"


def test_costs_are_measured_only_when_an_objective_names_one():
    model = torch.nn.Conv2d(1, 1, 1)
    batches = [(torch.zeros(4, 1, 40, 40), torch.zeros(4, 1, 40, 40))]
    assert cost_metrics(model, batches, ("iou", "dice")) == {}
    costs = cost_metrics(model, batches, ("iou", "latency_ms"), size=8)
    assert set(costs) == {"latency_ms", "param_count"} and costs["param_count"] == 2.0


@pytest.mark.usefixtures("isolated_cache")
def test_a_segmentation_run_of_a_two_objective_sweep_reports_its_latency_and_size(tmp_path):
    from smptune.search.scoring import Scoring
    from smptune.trainable import FoldContext, SweepSettings
    from smptune.training import SegmentationTrainable

    # Given a sweep searching iou against latency and size, on tiny synthetic data
    settings = SweepSettings(
        seed=7,
        metric="iou",
        mode="max",
        scoring=Scoring.from_config("iou"),
        data={"synthetic": {"n_images": 16, "size": 32, "seed": 3}, "test_fraction": 0.25},
        cv={"n_folds": 2},
        training={"max_epochs": 1, "early_stopping_patience": 0},
        objectives=("iou", "latency_ms", "param_count"),
    )
    context = FoldContext("sweep", 0, 0, 2, settings, output_dir=tmp_path)

    # When a run trains
    result = SegmentationTrainable().train_fold({"batch_size": 4}, context)

    # Then it reports both costs beside its validation metrics
    assert result.metrics["latency_ms"] > 0.0 and result.metrics["param_count"] > 1e5
    assert "iou" in result.metrics
