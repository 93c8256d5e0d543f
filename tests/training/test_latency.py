"""Measuring a model's latency per image and its parameter count on the run's device."""

from __future__ import annotations

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
