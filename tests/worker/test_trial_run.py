"""A trial's work on a worker, in pieces: keeping the fold models only of the trials that can
still be best (the fold ensemble's candidates)."""

from __future__ import annotations

import time
from pathlib import Path

from smptune.config import load_config
from smptune.fakes import QuadraticTrainable
from smptune.queue.store import SweepStore
from smptune.worker.trial_run import ENSEMBLE_CANDIDATES, TrialRun

from conftest import write_config


def _models(artifacts: Path, sweep_id: str, trial: int) -> list[Path]:
    return sorted((artifacts / sweep_id / "trials" / str(trial)).glob("logs/*/best_model"))


def test_fold_models_are_kept_only_for_the_best_few_trials(store: SweepStore, tmp_path):
    # Given a sweep whose trials finish one by one, each with two saved fold models
    config = load_config(write_config(tmp_path / "s.yaml", n_trials=6, cv={"n_folds": 2}))
    params = [{**QuadraticTrainable.defaults, "x": float(i)} for i in range(6)]
    store.create_sweep("s1", config.to_dict(), params, 2, str(tmp_path))
    scores = [0.5, 0.9, 0.1, 0.7, 0.95, 0.2]
    for trial, score in enumerate(scores):
        for fold in range(2):
            (
                tmp_path
                / "s1"
                / "trials"
                / str(trial)
                / "logs"
                / f"fold_{fold}_seed_0"
                / "best_model"
            ).mkdir(parents=True)
        lease = store.lease("s1", trial, host="h")
        assert lease.try_acquire()
        run = TrialRun(store, config, lease, "s1", trial, "cpu0@h")
        run.started = time.perf_counter()
        # When each is recorded complete with its score
        run._finish({"status": "complete", "score": score, "duration_s": 1.0})

    # Then only the best ENSEMBLE_CANDIDATES trials keep their fold models
    kept = [t for t in range(6) if _models(tmp_path, "s1", t)]
    assert ENSEMBLE_CANDIDATES == 3
    assert kept == [1, 3, 4]
    assert all(len(_models(tmp_path, "s1", t)) == 2 for t in kept)
