"""Sweeps the queue tests write straight into a store: an adaptive one, recorded trials."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

from smptune.config import load_config
from smptune.fakes import QuadraticTrainable
from smptune.queue.store import SweepStore
from smptune.records import TrialStatus

from conftest import write_config

SWEEP = "adaptive"


def adaptive_sweep(store: SweepStore, tmp_path: Path, n_trials: int, **overrides: Any) -> str:
    """A TPE sweep (unless ``overrides`` say otherwise) of ``n_trials`` over the quadratic
    trainable's ``x``, nothing run."""
    overrides = {
        "sampler": {"type": "tpe", "n_startup_trials": 5},
        "hyperparameters": {"x": {"low": -3.0, "high": 3.0}},
        **overrides,
    }
    path = write_config(tmp_path / "adaptive.yaml", n_trials=n_trials, **overrides)
    config = load_config(path).to_dict()
    store.create_sweep(SWEEP, config, [], 3, str(tmp_path), n_trials=n_trials)
    return SWEEP


def record_trials(store: SweepStore, sweep_id: str, numbers: range, seed: int = 0) -> None:
    """Record ``numbers`` as finished trials of the quadratic (x near 1 scores best): a
    configuration, three folds and a final record each, as a worker writes them."""
    rng = random.Random(seed)
    for n in numbers:
        x = rng.uniform(-3, 3)
        store.set_params_once(sweep_id, n, {**QuadraticTrainable.defaults, "x": x})
        score = 1 / (1 + (x - 1) ** 2 + 4)
        for fold in range(3):
            result = {"metrics": {"score": score}, "best_epoch": 1, "epochs_run": 1}
            store.record_fold(sweep_id, n, fold, {**result, "duration_s": 0.0})
        status = TrialStatus.COMPLETE if n % 10 else TrialStatus.FAILED
        record = {"status": status.value, "score": score if n % 10 else None}
        store.finish_trial(sweep_id, n, record)
