"""Fast trainables without torch, for queue tests, benchmarks and demos.

:class:`QuadraticTrainable` trains a run in one step; :class:`LearningCurveTrainable` in
epochs, reporting each (see :class:`~smptune.trainable.FoldContext`);
:class:`RecordedCurvesTrainable` replays learning curves recorded from real training;
:class:`LatencyTrainable` adds a latency to the quadratic (two objectives).

The quadratic's score peaks at ``x = 1, y = -2``; ``sleep`` seconds pass per fold (and
``retrain_sleep`` in retrain-and-test); ``fail``
makes the trial raise, as a configuration that cannot train would; ``crash`` kills the
worker process that runs it, as a segfault or the OOM killer would; ``noise`` adds Gaussian
noise of that standard deviation to each run's score, drawn from the run's seed (a fold noise
model: reproducible per trial, fold and seed). :class:`MemoryBoundTrainable` runs out of
memory as a GPU would when its batch is too large (:class:`OutOfMemoryError`, named as
torch's), or holds host memory while it reports an epoch.
"""

from __future__ import annotations

import functools
import json
import math
import os
import random
import time
from collections.abc import Mapping
from importlib import resources
from typing import Any

from smptune.errors import ConfigError, TrialError
from smptune.params import Params, ParamsView
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
        "retrain_sleep": 0.0,
    }
    metrics: tuple[str, ...] = ("score", "loss")

    def _complete(self, params: ParamsView) -> Params:
        """``params`` with the defaults for the names it lacks (an inactive conditional)."""
        return {**self.defaults, **params}

    def validate(self, params: ParamsView, settings: SweepSettings) -> None:
        params = self._complete(params)
        for key in ("x", "y", "sleep", "fold_noise", "noise", "retrain_sleep"):
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
    def _evaluate(params: ParamsView, offset: float) -> dict[str, float]:
        loss = (params["x"] - 1.0) ** 2 + (params["y"] + 2.0) ** 2
        return {"score": 1.0 / (1.0 + loss) + offset, "loss": loss}

    def train_fold(self, params: ParamsView, context: FoldContext) -> FoldResult:
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
        self, params: ParamsView, epochs: int, context: FoldContext
    ) -> dict[str, float]:
        params = self._complete(params)
        if params["retrain_sleep"]:
            time.sleep(float(params["retrain_sleep"]))
        metrics = self._evaluate(params, 0.0)
        if context.output_dir is not None:
            context.output_dir.mkdir(parents=True, exist_ok=True)
            model = {"params": dict(params), "epochs": epochs}
            (context.output_dir / "model.json").write_text(json.dumps(model, indent=2))
        return metrics


class LatencyTrainable(QuadraticTrainable):
    """The quadratic with a cost, for multi-objective sweeps: ``iou`` is its score, and a
    larger ``x`` is slower, ``latency_ms = 5 + 20·|x|`` with ``param_count = 10⁶·(1 +
    |x|)`` (so up to ``x = 1`` a better ``iou`` costs latency: a Pareto front)."""

    metrics = ("iou", "latency_ms", "param_count", "score", "loss")

    def validate(self, params: ParamsView, settings: SweepSettings) -> None:
        super().validate(params, settings)
        unknown = [n for n in settings.objectives if n not in self.metrics]
        if unknown:
            raise ConfigError(
                f"metrics: {unknown[0]!r} is not reported by this trainable; "
                f"choose from {', '.join(self.metrics)}"
            )

    @staticmethod
    def _evaluate(params: ParamsView, offset: float) -> dict[str, float]:
        metrics = QuadraticTrainable._evaluate(params, offset)
        cost = abs(float(params["x"]))
        return {
            **metrics,
            "iou": metrics["score"],
            "latency_ms": 5.0 + 20.0 * cost,
            "param_count": 1e6 * (1.0 + cost),
        }


class OutOfMemoryError(RuntimeError):
    """Out of memory, named as ``torch.cuda.OutOfMemoryError`` (no torch needed)."""


class MemoryBoundTrainable(QuadraticTrainable):
    """The quadratic, on a device of ``memory`` units: a run whose ``batch_size × width``
    is over it raises :class:`OutOfMemoryError`, as CUDA does when a batch does not fit.
    ``host_mb`` megabytes of host memory are held while the run reports its one epoch (for
    ``training.max_host_memory_gb``)."""

    defaults: Mapping[str, Any] = {
        **QuadraticTrainable.defaults,
        "batch_size": 16,
        "width": 1.0,
        "memory": 64.0,
        "host_mb": 0,
    }

    def train_fold(self, params: ParamsView, context: FoldContext) -> FoldResult:
        params = self._complete(params)
        need = float(params["batch_size"]) * float(params["width"])
        if need > float(params["memory"]):
            raise OutOfMemoryError(
                f"CUDA out of memory: batch_size {params['batch_size']} x width "
                f"{params['width']} needs {need:g} of {params['memory']:g} units"
            )
        held = b"\x01" * (int(params["host_mb"]) * 2**20)  # touched, so resident
        result = super().train_fold(params, context)
        if held:
            context.report(1, result.metrics)
            return FoldResult(result.metrics, 1, 1, result.duration_s)
        return result


class LearningCurveTrainable:
    """Runs whose validation score climbs epoch by epoch to a level, as training does.

    ``score(epoch) = level · (1 − exp(−rate · epoch))`` plus noise: ``level`` peaks at
    ``x = 0.7, y = 0.35, z = 0.5`` and falls with the distance to it; ``rate`` grows as ``y``
    falls, so fast starters near the peak are overtaken by slower, better ones (curves cross).
    ``noise`` is the standard deviation of Gaussian noise on each epoch's score (drawn from
    the trial, run and epoch); ``early_noise`` adds noise of that standard deviation at the
    first epoch, halving every two epochs (early epochs on real data jump about: validation
    IoU 0.25–0.45 at epoch 1 for configurations that reach 0.9); ``fold_noise`` is that of a
    per-fold offset shared by every trial (some folds are harder), ``run_noise`` that of an
    offset per trial and run (a configuration suits one fold better than another). An epoch
    takes ``epoch_s`` seconds; a run trains
    ``training.max_epochs`` epochs unless its context stops it, saving and resuming its
    epochs as its context's checkpoint says (a JSON file). :meth:`true_score` is a
    configuration's noise-free score after a full run.
    """

    defaults: Mapping[str, Any] = {
        "x": 0.5,
        "y": 0.5,
        "z": 0.5,
        "epoch_s": 0.0,
        "noise": 0.0,
        "early_noise": 0.0,
        "fold_noise": 0.0,
        "run_noise": 0.0,
    }
    metrics = ("score", "loss")

    def validate(self, params: ParamsView, settings: SweepSettings) -> None:
        params = {**self.defaults, **params}
        for key in self.defaults:
            value = params[key]
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ConfigError(f"hyperparameters.{key}: must be a number, got {value!r}")
            if key not in ("x", "y", "z") and value < 0:
                raise ConfigError(f"hyperparameters.{key}: must be >= 0, got {value!r}")
        if settings.metric not in self.metrics:
            raise ConfigError(
                f"metric: {settings.metric!r} is not reported by this trainable; "
                f"choose one of {', '.join(self.metrics)}"
            )

    @staticmethod
    def level_and_rate(params: ParamsView) -> tuple[float, float]:
        x, y, z = (float(params.get(k, 0.5)) for k in ("x", "y", "z"))
        level = max(0.1, 0.9 - 2.5 * ((x - 0.7) ** 2 + (y - 0.35) ** 2 + (z - 0.5) ** 2))
        rate = 0.25 + 0.15 * (1.0 - min(max(y, 0.0), 1.0))
        return level, rate

    @classmethod
    def true_score(cls, params: ParamsView, epochs: int) -> float:
        """The noise-free score of ``params`` after ``epochs`` epochs."""
        level, rate = cls.level_and_rate(params)
        return level * (1.0 - math.exp(-rate * epochs))

    def train_fold(self, params: ParamsView, context: FoldContext) -> FoldResult:
        start = time.perf_counter()
        params = {**self.defaults, **params}
        epochs = int(context.settings.training.get("max_epochs", 10))
        offset = random.Random(f"{context.sweep_id}/fold/{context.fold}").gauss(
            0.0, float(params["fold_noise"])
        )
        offset += random.Random(f"{context.sweep_id}/{context.trial}/run/{context.fold}").gauss(
            0.0, float(params["run_noise"])
        )
        checkpoint = context.checkpoint
        history: list[dict[str, float]] = []
        if checkpoint is not None and checkpoint.resume_epoch and checkpoint.path.is_file():
            saved = json.loads(checkpoint.path.read_text())
            history = saved["history"][: checkpoint.resume_epoch]
        for epoch in range(len(history) + 1, epochs + 1):
            if params["epoch_s"]:
                time.sleep(float(params["epoch_s"]))
            draw = random.Random(f"{context.sweep_id}/{context.trial}/{context.run_seed}/{epoch}")
            score = self.true_score(params, epoch) + offset
            score += draw.gauss(0.0, float(params["noise"]))
            score += draw.gauss(0.0, float(params["early_noise"]) * 0.5 ** ((epoch - 1) / 2))
            history.append({"score": score, "loss": 1.0 - score})
            context.report(epoch, history[-1])
            if checkpoint is not None and checkpoint.due(epoch):
                partial = checkpoint.path.with_name(checkpoint.path.name + ".partial")
                partial.write_text(json.dumps({"epoch": epoch, "history": history}))
                os.replace(partial, checkpoint.path)
                checkpoint.saved(epoch)
            if context.should_stop():
                break
        return best_epoch_result(history, context, start)

    def retrain_and_test(
        self, params: ParamsView, epochs: int, context: FoldContext
    ) -> dict[str, float]:
        score = self.true_score({**self.defaults, **params}, epochs)
        return {"score": score, "loss": 1.0 - score}


#: The curves :class:`RecordedCurvesTrainable` replays (see ``benchmarks/record_curves.py``).
NUCLEI_CURVES = "nuclei_curves.json"


@functools.cache
def recorded_curves(name: str = NUCLEI_CURVES) -> dict[str, Any]:
    """The recorded curves ``name`` shipped in ``smptune/data``."""
    text = resources.files("smptune").joinpath("data").joinpath(name).read_text()
    return dict(json.loads(text))


class RecordedCurvesTrainable:
    """Replays validation curves recorded from real training (``benchmarks/record_curves.py``:
    the built-in trainable on StarDist's hand-labelled nuclei, 3 folds of 15 epochs, for each
    configuration of a grid): a pruner or a sampler meets real curves, noisy early epochs and
    folds that differ included, at the cost of ``epoch_s`` seconds an epoch.

    Hyperparameters: ``learning_rate`` (snapped to the nearest recorded one on a log scale),
    ``model_arch`` and ``loss`` (recorded values). Fold ``k`` replays fold ``k``'s curve;
    ``training.early_stopping_patience`` stops a run as the built-in trainable would.
    Metrics: ``iou`` and ``loss`` (``1 - iou``); retrain-and-test returns the configuration's
    recorded test metrics. :meth:`record` is a configuration's recording.
    """

    defaults: Mapping[str, Any] = {
        "learning_rate": 1e-3,
        "model_arch": "Unet",
        "loss": "dice",
        "epoch_s": 0.0,
    }
    metrics = ("iou", "loss")

    @staticmethod
    def record(params: ParamsView) -> dict[str, Any]:
        """The recorded configuration nearest to ``params``."""
        data = recorded_curves()
        params = {**RecordedCurvesTrainable.defaults, **params}
        arch, loss = params["model_arch"], params["loss"]
        configs = data["configs"]
        same = [
            c for c in configs if c["params"]["model_arch"] == arch and c["params"]["loss"] == loss
        ]
        if not same:
            known = sorted({(c["params"]["model_arch"], c["params"]["loss"]) for c in configs})
            raise ConfigError(
                f"hyperparameters: no recorded curves for model_arch={arch!r}, loss={loss!r} "
                f"(recorded: {known})"
            )
        log_lr = math.log(float(params["learning_rate"]))
        return dict(min(same, key=lambda c: abs(math.log(c["params"]["learning_rate"]) - log_lr)))

    @staticmethod
    def cv_score(params: ParamsView, epochs: int | None = None) -> float:
        """A configuration's CV score after full training: the mean over its folds of each
        fold's best epoch (within the first ``epochs``)."""
        folds = RecordedCurvesTrainable.record(params)["folds"]
        score: float = sum(max(f[:epochs]) for f in folds) / len(folds)
        return score

    def validate(self, params: ParamsView, settings: SweepSettings) -> None:
        data = recorded_curves()
        lr = {**self.defaults, **params}["learning_rate"]
        if isinstance(lr, bool) or not isinstance(lr, int | float) or lr <= 0:
            raise ConfigError(f"hyperparameters.learning_rate: must be a number > 0, got {lr!r}")
        self.record(params)
        if settings.metric not in self.metrics:
            raise ConfigError(
                f"metric: {settings.metric!r} is not reported by this trainable; "
                f"choose one of {', '.join(self.metrics)}"
            )
        epochs = int(settings.training.get("max_epochs", 10))
        if epochs > data["max_epochs"]:
            raise ConfigError(
                f"training.max_epochs: {epochs} is more than the {data['max_epochs']} epochs "
                "recorded"
            )
        folds = int(settings.cv.get("n_folds", 1))
        if folds > data["n_folds"]:
            raise ConfigError(f"cv.n_folds: {folds} is more than the {data['n_folds']} recorded")

    def train_fold(self, params: ParamsView, context: FoldContext) -> FoldResult:
        start = time.perf_counter()
        params = {**self.defaults, **params}
        curve = self.record(params)["folds"][context.fold]
        epochs = int(context.settings.training.get("max_epochs", 10))
        patience = int(context.settings.training.get("early_stopping_patience", 0))
        history: list[dict[str, float]] = []
        best, since_best = -math.inf, 0
        for epoch in range(1, epochs + 1):
            if params["epoch_s"]:
                time.sleep(float(params["epoch_s"]))
            iou = float(curve[epoch - 1])
            history.append({"iou": iou, "loss": 1.0 - iou})
            context.report(epoch, history[-1])
            best, since_best = (iou, 0) if iou > best else (best, since_best + 1)
            if context.should_stop() or (patience and since_best >= patience):
                break
        return best_epoch_result(history, context, start)

    def retrain_and_test(
        self, params: ParamsView, epochs: int, context: FoldContext
    ) -> dict[str, float]:
        iou = float(self.record(params)["test"]["iou"])
        return {"iou": iou, "loss": 1.0 - iou}


def best_epoch_result(
    history: list[dict[str, float]], context: FoldContext, start: float
) -> FoldResult:
    """A run's result at its best epoch by the sweep's scoring (the last without one)."""
    scoring = context.settings.scoring
    chosen = scoring.best_index(history) if scoring is not None else len(history) - 1
    return FoldResult(
        metrics=history[chosen],
        best_epoch=chosen + 1,
        epochs_run=len(history),
        duration_s=time.perf_counter() - start,
    )
