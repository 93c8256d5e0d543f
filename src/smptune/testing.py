"""A fast trainable without torch, for queue tests, benchmarks and demos.

Its score peaks at ``x = 1, y = -2``; ``sleep`` seconds pass per fold; ``fail`` makes the
trial raise, as a configuration that cannot train would; ``crash`` kills the worker process
that runs it, as a segfault or the OOM killer would; ``noise`` adds Gaussian noise of that
standard deviation to each run's score, drawn from the run's seed (a fold noise model:
reproducible per trial, fold and seed).
"""

from __future__ import annotations

import json
import os
import random
import time
from collections.abc import Mapping
from typing import Any

from smptune.errors import ConfigError, TrialError
from smptune.trainable import FoldContext, FoldResult, SweepSettings


class QuadraticTrainable:
    """``score = 1 / (1 + (x - 1)² + (y + 2)²)`` plus a small deterministic fold offset."""

    defaults: Mapping[str, Any] = {
        "x": 0.0,
        "y": 0.0,
        "sleep": 0.0,
        "fail": False,
        "crash": False,
        "fold_noise": 0.0,
        "noise": 0.0,
    }
    metrics = ("score", "loss")

    def _complete(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """``params`` with the defaults for the names it lacks (an inactive conditional)."""
        return {**self.defaults, **params}

    def validate(self, params: Mapping[str, Any], settings: SweepSettings) -> None:
        params = self._complete(params)
        for key in ("x", "y", "sleep", "fold_noise", "noise"):
            value = params[key]
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ConfigError(f"hyperparameters.{key}: must be a number, got {value!r}")
        if params["sleep"] < 0:
            raise ConfigError(f"hyperparameters.sleep: must be >= 0, got {params['sleep']!r}")
        if settings.metric not in self.metrics:
            raise ConfigError(
                f"metric: {settings.metric!r} is not reported by this trainable; "
                f"choose one of {', '.join(self.metrics)}"
            )

    @staticmethod
    def _evaluate(params: Mapping[str, Any], offset: float) -> dict[str, float]:
        loss = (params["x"] - 1.0) ** 2 + (params["y"] + 2.0) ** 2
        return {"score": 1.0 / (1.0 + loss) + offset, "loss": loss}

    def train_fold(self, params: Mapping[str, Any], context: FoldContext) -> FoldResult:
        start = time.perf_counter()
        params = self._complete(params)
        if params["crash"]:
            os._exit(70)
        if params["fail"]:
            raise TrialError(f"configured to fail (fail={params['fail']!r})")
        if params["sleep"]:
            time.sleep(float(params["sleep"]))
        offset = float(params["fold_noise"]) * ((context.fold % 3) - 1)
        if params["noise"]:
            draw = random.Random(f"{context.sweep_id}/{context.trial}/{context.run_seed}")
            offset += draw.gauss(0.0, float(params["noise"]))
        return FoldResult(
            metrics=self._evaluate(params, offset),
            best_epoch=1 + context.fold % 2,
            epochs_run=2,
            duration_s=time.perf_counter() - start,
        )

    def retrain_and_test(
        self, params: Mapping[str, Any], epochs: int, context: FoldContext
    ) -> dict[str, float]:
        metrics = self._evaluate(self._complete(params), 0.0)
        if context.output_dir is not None:
            context.output_dir.mkdir(parents=True, exist_ok=True)
            model = {"params": dict(params), "epochs": epochs}
            (context.output_dir / "model.json").write_text(json.dumps(model, indent=2))
        return metrics
