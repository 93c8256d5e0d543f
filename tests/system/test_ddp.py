"""Trials bigger than one device, through the CLI: ``training.devices_per_trial: 2`` on a
worker started with ``--devices-per-worker 2`` trains each fold as two DDP processes (gloo on
CPU) and records each run once; a rank killed mid-epoch leaves no half record and the trial is
recovered as a lost worker's. Real Redis, real workers, the segmentation trainable."""

from __future__ import annotations

import math
import os
import signal
from pathlib import Path

import yaml

from smptune.queue.store import SweepStore

from conftest import submit_and_wait, submit_in_background, wait_for

LEASE_TTL = "3"  # seconds; production uses 30
RANK_MODULE = "smptune.training.ddp_rank"


def _config(path: Path, max_epochs: int = 1) -> Path:
    path.write_text(
        yaml.safe_dump(
            {
                "name": path.stem,
                "n_trials": 1,
                "seed": 5,
                "data": {
                    "synthetic": {"n_images": 12, "size": 32, "seed": 4},
                    "test_fraction": 0.25,
                },
                "cv": {"n_folds": 2},
                "training": {
                    "max_epochs": max_epochs,
                    "early_stopping_patience": 0,
                    "devices_per_trial": 2,
                },
                "retrain_and_test": False,
                "hyperparameters": {
                    "batch_size": 2,
                    "model_encoder": "resnet18",
                    "model_encoder_weights": None,
                    "augment": False,
                },
            }
        )
    )
    return path


def _rank_processes() -> dict[int, int]:
    """Running DDP ranks on this machine: pid by rank (rank 0 is handed the pipes' fds)."""
    ranks: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().decode().split("\0")
        except OSError:
            continue
        if RANK_MODULE in argv:
            rank = 0 if argv[-2] != "-1" else 1
            ranks[rank] = int(entry.name)
    return ranks


def test_a_two_device_trial_trains_each_fold_with_ddp_and_records_each_run_once(
    tmp_path, redis_server, store: SweepStore, start_workers
):
    # Given one CPU worker that owns two devices
    workers = start_workers("--cpu", "1", "--devices-per-worker", "2")
    # When a sweep whose trials take two devices each is submitted and waited for
    sweep_id, result = submit_and_wait(
        _config(tmp_path / "ddp.yaml"), redis_server.url, tmp_path / "out"
    )
    assert result.returncode == 0, result.stderr + workers.logs()
    # Then the trial completed with one record per run, each scored over the whole fold
    sweep = store.get_sweep(sweep_id)
    assert sweep.status == "done", sweep.error
    (trial,) = store.trials(sweep_id)
    assert trial.status == "complete", trial.error
    assert trial.attempts == 1
    assert sorted(trial.folds) == [0, 1]
    assert sweep.folds_done == 2
    for fold in trial.folds.values():
        assert fold["epochs_run"] == 1
        assert math.isfinite(fold["metrics"]["iou"]) and math.isfinite(fold["metrics"]["loss"])
    # and its runs' epoch logs were written once, by rank 0
    logs = tmp_path / "out" / sweep_id / "trials" / "0" / "logs"
    assert sorted(p.name for p in logs.glob("fold_*_seed_0")) == ["fold_0_seed_0", "fold_1_seed_0"]
    assert not _rank_processes(), "a rank outlived its run"


def test_a_rank_killed_mid_epoch_records_nothing_and_the_trial_is_recovered(
    tmp_path, redis_server, store: SweepStore, start_workers
):
    # Given a two-device trial of three epochs a fold on a worker that owns two devices
    workers = start_workers("--cpu", "1", "--devices-per-worker", "2", SMPTUNE_LEASE_TTL=LEASE_TTL)
    producer = submit_in_background(
        _config(tmp_path / "kill.yaml", max_epochs=3), redis_server.url, tmp_path / "out"
    )
    sweep_id = wait_for(lambda: store.active_sweeps() and store.active_sweeps()[0], 60)

    # When rank 1 of its second fold's run is killed in that run's second epoch
    wait_for(lambda: len(store.curves(sweep_id, 0).get(1, ())) >= 1, 120, 0.05)
    victim = wait_for(lambda: _rank_processes().get(1), 30, 0.05)
    os.kill(victim, signal.SIGKILL)
    # Then nothing of that run is recorded while the trial waits to be queued again
    wait_for(lambda: "was lost" in workers.logs(), 30)
    (lost,) = store.trials(sweep_id)
    assert sorted(lost.folds) == [0] and lost.status in ("running", "requeued")

    # and the trial runs again and completes, each run recorded once
    _, stderr = producer.communicate(timeout=180)
    assert producer.returncode == 0, stderr + workers.logs()
    (trial,) = store.trials(sweep_id)
    assert trial.status == "complete", trial.error
    assert trial.attempts == 2
    assert sorted(trial.folds) == [0, 1]
    assert store.get_sweep(sweep_id).folds_done == 2  # fold 0 was not trained twice
    assert trial.folds[1]["epochs_run"] == 3
    assert not _rank_processes(), "a rank outlived its run"
