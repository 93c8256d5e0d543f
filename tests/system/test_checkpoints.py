"""Checkpointed folds and preemptible machines: a fold whose worker is lost continues from its
last epoch on another machine; SIGTERM to a preemptible machine gives its trials back at once.
Real Redis, real ``workers start`` processes, the real producer."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from smptune.fakes import LearningCurveTrainable
from smptune.queue.store import SweepStore

from conftest import run_cli, submit_in_background, wait_for, write_config

EPOCH_S = 0.6
PARAMS = {"x": 0.6, "y": 0.3, "z": 0.5}


def _curve_config(path: Path, **overrides: object) -> Path:
    """One trial of the learning-curve trainable: 2 folds of 10 epochs of EPOCH_S each."""
    settings: dict[str, object] = {
        "trainable": "smptune.fakes:LearningCurveTrainable",
        "n_trials": 1,
        "cv": {"n_folds": 2},
        "training": {"max_epochs": 10},
        "hyperparameters": {**PARAMS, "epoch_s": EPOCH_S},
    }
    return write_config(path, **{**settings, **overrides})


def _sweep_id(store: SweepStore) -> str:
    return wait_for(lambda: store.active_sweeps() and store.active_sweeps()[0], 30)


def _on(store: SweepStore, sweep_id: str, host: str, epoch: int = 0) -> bool:
    """Whether trial 0 runs on ``host`` and its first run has reported ``epoch``."""
    trial = store.trials(sweep_id, [0])[0]
    curve = trial.curves.get(0, ())
    return bool(trial.worker and trial.worker.endswith(f"@{host}")) and len(curve) >= epoch


@pytest.mark.parametrize("visible", [True, False], ids=["checkpoint-seen", "checkpoint-unseen"])
def test_a_fold_whose_machine_is_lost_at_epoch_6_of_10_resumes_at_epoch_7_on_another(
    visible, tmp_path, redis_server, store, start_workers
):
    # Given one trial of 2 folds × 10 epochs training on host-a, checkpointing every epoch
    a = start_workers("--cpu", "1", "--hostname", "host-a", name="a", SMPTUNE_LEASE_TTL="3")
    artifacts = tmp_path / "artifacts"
    producer = submit_in_background(_curve_config(tmp_path / "s.yaml"), redis_server.url, artifacts)
    sweep_id = _sweep_id(store)
    wait_for(lambda: _on(store, sweep_id, "host-a"), 60, 0.05)
    b = start_workers("--cpu", "1", "--hostname", "host-b", name="b", SMPTUNE_LEASE_TTL="3")

    # When host-a is killed with -9 once its first fold has saved its checkpoint after
    # epoch 6 (and, for a machine that cannot see host-a's disk, the file is gone)
    def saved_after_6():
        saved = store.checkpoint(sweep_id, 0)
        return saved is not None and saved.run == 0 and saved.epoch >= 6 and saved

    wait_for(saved_after_6, 60, 0.02)
    os.killpg(a.process.pid, signal.SIGKILL)
    saved = store.checkpoint(sweep_id, 0)
    assert saved is not None and Path(saved.path).is_file()
    killed_at = saved.epoch  # 6, or 7 when this test was too slow to see epoch 6 alone
    if not visible:
        Path(saved.path).unlink()
    _, stderr = producer.communicate(timeout=120)

    # Then host-b finishes the sweep; with the checkpoint it trained the fold's remaining
    # epochs only, without it the whole fold again, and says which in its log
    assert producer.returncode == 0, stderr
    trial = store.trials(sweep_id, [0])[0]
    assert trial.status == "complete" and trial.worker.endswith("@host-b")
    assert (trial.attempts, trial.requeues) == (2, 1)
    first = trial.folds[0]
    assert first["epochs_run"] == 10
    # the resumed fold ends exactly where an uninterrupted one does (noise-free curves)
    assert first["metrics"]["score"] == pytest.approx(LearningCurveTrainable.true_score(PARAMS, 10))
    assert trial.curves[0] == pytest.approx(
        [LearningCurveTrainable.true_score(PARAMS, e) for e in range(1, 11)]
    )
    logs = b.logs()
    if visible:
        assert f"resumes fold 0 seed 0 at epoch {killed_at + 1} from its checkpoint" in logs
        assert first["duration_s"] < (10 - killed_at + 1.5) * EPOCH_S
    else:
        assert f"restarts fold 0 seed 0 from epoch 1: its checkpoint after epoch {killed_at}" in (
            logs
        )
        assert "is not on this machine" in logs
        assert first["duration_s"] > 9 * EPOCH_S
    # and once each fold is recorded its checkpoint is gone, from Redis and from disk
    assert store.checkpoint(sweep_id, 0) is None
    assert list((artifacts / sweep_id / "trials" / "0" / "checkpoints").iterdir()) == []


def test_sigterm_to_a_preemptible_machine_gives_its_trial_back_at_once(
    tmp_path, redis_server, store, start_workers
):
    # Given a trial training on a preemptible host-a with a 10 s grace, and leases of 30 s
    # (so that the reaper, which waits for a lease to expire, cannot be what moves it)
    grace = 10.0
    a = start_workers("--cpu", "1", "--hostname", "host-a", "--preempt-grace", str(grace), name="a")
    config = _curve_config(
        tmp_path / "s.yaml", training={"max_epochs": 10, "keep_checkpoints": True}
    )
    artifacts = tmp_path / "artifacts"
    producer = submit_in_background(config, redis_server.url, artifacts)
    sweep_id = _sweep_id(store)
    wait_for(lambda: _on(store, sweep_id, "host-a", epoch=3), 60, 0.05)

    # When host-a gets its preemption notice (SIGTERM)
    noticed = time.time()
    a.process.send_signal(signal.SIGTERM)

    # Then its trial checkpoints at the next epoch boundary and is queued again within the
    # grace; host-a's supervisor exits cleanly within it too
    requeued_at = wait_for(lambda: store.trials(sweep_id, [0])[0].requeued_at, grace, 0.05)
    assert requeued_at - noticed < grace
    assert a.process.wait(grace + 5) == 0
    assert "0 trial(s) given back by the supervisor" in a.logs()  # it gave itself back
    status = run_cli("producer", "status", sweep_id, "--broker", redis_server.url)
    assert "queued again: trial 0 (preempted 1×)" in status.stdout, status.stdout
    assert "0 failed" in status.stdout

    b = start_workers("--cpu", "1", "--hostname", "host-b", name="b")
    # and host-b continues it from that checkpoint; the sweep never shows it failed, and
    # the preemption is not counted as an attempt
    _, stderr = producer.communicate(timeout=120)
    assert producer.returncode == 0, stderr
    trial = store.trials(sweep_id, [0])[0]
    assert trial.status == "complete" and trial.worker.endswith("@host-b")
    assert (trial.attempts, trial.preemptions, trial.requeues) == (1, 1, 0)
    assert "its worker was preempted at fold 0, epoch" in a.logs()
    assert "resumes fold 0 seed 0 at epoch" in b.logs()
    sweep = store.get_sweep(sweep_id)
    assert sweep.status == "done" and sweep.count("failed") == 0
    # keep_checkpoints: each run's last checkpoint stays on disk once it is recorded
    kept = sorted(p.name for p in (artifacts / sweep_id / "trials" / "0" / "checkpoints").iterdir())
    assert kept == ["fold_0_seed_0.ckpt", "fold_1_seed_0.ckpt"]


def test_a_preempted_trial_that_reaches_no_boundary_within_the_grace_is_given_back_at_its_end(
    tmp_path, redis_server, store, start_workers
):
    # Given a trial whose folds report no epochs and take 8 s each, on a preemptible host-a
    # with a 2 s grace
    grace = 2.0
    a = start_workers("--cpu", "1", "--hostname", "host-a", "--preempt-grace", str(grace), name="a")
    config = write_config(
        tmp_path / "s.yaml", n_trials=1, cv={"n_folds": 2}, hyperparameters={"x": 1.0, "sleep": 8}
    )
    producer = submit_in_background(config, redis_server.url, tmp_path / "artifacts")
    sweep_id = _sweep_id(store)
    wait_for(lambda: _on(store, sweep_id, "host-a"), 60, 0.05)
    start_workers("--cpu", "1", "--hostname", "host-b", name="b")
    time.sleep(1)

    # When host-a gets its preemption notice
    noticed = time.time()
    a.process.send_signal(signal.SIGTERM)

    # Then the supervisor stops its worker when the grace ends and queues the trial again
    # itself, without counting the attempt
    requeued_at = wait_for(lambda: store.trials(sweep_id, [0])[0].requeued_at, grace + 15, 0.05)
    assert requeued_at - noticed < grace + 5
    assert a.process.wait(10) == 0
    assert "1 trial(s) given back by the supervisor" in a.logs()
    _, stderr = producer.communicate(timeout=120)
    assert producer.returncode == 0, stderr
    trial = store.trials(sweep_id, [0])[0]
    assert trial.status == "complete" and trial.worker.endswith("@host-b")
    assert (trial.attempts, trial.preemptions) == (1, 1)
    assert sorted(trial.folds) == [0, 1]
