"""The cost of a trained model, measured on the run's device for multi-objective sweeps:
``latency_ms`` (one image through the model in eval mode, without gradients, after a few
warm-up passes; CUDA synchronised around the timed ones) and ``param_count``."""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

import torch

from smptune.training.metrics import COST_METRICS

__all__ = ["cost_metrics", "measure", "run_device"]

WARMUP, REPEATS = 3, 10


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def run_device() -> torch.device:
    """The device a run trains on: this process's GPU when there is one, else the CPU."""
    if torch.cuda.is_available():
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def measure(
    model: torch.nn.Module,
    sample: torch.Tensor,
    device: torch.device,
    warmup: int = WARMUP,
    repeats: int = REPEATS,
) -> dict[str, float]:
    """``latency_ms`` per image of ``sample`` (a batch) through ``model`` on ``device``, and
    ``param_count``; the model is put back where and as it was."""
    params = list(model.parameters())
    original = params[0].device if params else torch.device("cpu")
    was_training = model.training
    model.to(device).eval()
    batch = sample.to(device)
    try:
        with torch.no_grad():
            for _ in range(warmup):
                model(batch)
            _sync(device)
            start = time.perf_counter()
            for _ in range(repeats):
                model(batch)
            _sync(device)
            elapsed = time.perf_counter() - start
    finally:
        model.to(original).train(was_training)
    per_image = 1000.0 * elapsed / (repeats * max(1, int(batch.shape[0])))
    return {"latency_ms": per_image, "param_count": float(sum(p.numel() for p in params))}


def cost_metrics(
    model: torch.nn.Module, batches: Iterable[Any], wanted: Iterable[str], size: int | None = None
) -> dict[str, float]:
    """:func:`measure` on one image of the first of ``batches`` (``(images, masks)``; cut to
    ``size``×``size``, a sliding window's, when given) on the run's device, when ``wanted``
    (a sweep's objectives) names a cost metric; else nothing."""
    if not set(COST_METRICS) & set(wanted):
        return {}
    images = next(iter(batches))[0][:1]
    if size is not None:
        images = images[..., :size, :size]
    return measure(model, images, run_device())
