"""A worker machine frozen past the lease TTL (GC, a paused VM, SIGSTOP) and thawed once
another machine took its trial over: the stale copy notices at its next epoch or record,
stops, and writes nothing, neither a run nor a checkpoint. Real Redis, real ``workers
start`` processes, the real producer."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from contextlib import contextmanager

from smptune.queue.store import SweepStore

from conftest import WorkersProcess, submit_in_background, wait_for, write_config

LEASE_TTL = "3"  # seconds; production uses 30
#: What a copy that lost its trial's lease to another says as it stops.
LOST = "this copy lost the trial's lease"


def _sweep_id(store: SweepStore) -> str:
    return wait_for(lambda: store.active_sweeps() and store.active_sweeps()[0], 30)


def _on(store: SweepStore, sweep_id: str, host: str, fold: int = 0) -> bool:
    """Whether trial 0 runs on ``host``, at ``fold`` or later."""
    trial = store.trials(sweep_id, [0])[0]
    on_host = bool(trial.worker and trial.worker.endswith(f"@{host}"))
    return on_host and trial.status == "running" and (trial.fold or 0) >= fold


@contextmanager
def _frozen(workers: WorkersProcess) -> Iterator[None]:
    """``workers``' whole machine stopped (SIGSTOP to its process group) until the block
    ends, then thawed, whatever happens in between."""
    os.killpg(workers.process.pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.killpg(workers.process.pid, signal.SIGCONT)


def _recorded_once(store: SweepStore, sweep_id: str) -> None:
    sweep = store.get_sweep(sweep_id)
    assert sweep.status == "done" and sweep.finalize_runs == 1
    assert store.r.smembers(f"smptune:sweep:{sweep_id}:finished") == {"0"}
    assert sweep.count("complete") == 1 and sweep.n_trials == 1


def test_a_copy_thawed_after_another_took_its_trial_over_stops_and_records_no_run(
    tmp_path, redis_server, store, start_workers
):
    # Given one trial of 3 folds of 3 s each on host-a (each fold's result names the
    # process that trained it), and host-b started beside it once it runs
    def machine(host: str) -> WorkersProcess:
        return start_workers(
            *("--cpu", "1", "--hostname", host, "--no-preload"),
            *("--allow-trainable", "user_trainables.plain:ImportReporter"),
            name=host,
            SMPTUNE_LEASE_TTL=LEASE_TTL,
        )

    a = machine("host-a")
    config = write_config(
        tmp_path / "s.yaml",
        trainable="user_trainables.plain:ImportReporter",
        n_trials=1,
        cv={"n_folds": 3},
        hyperparameters={"x": 1.0, "sleep": 3.0},
    )
    producer = submit_in_background(config, redis_server.url, tmp_path / "artifacts")
    sweep_id = _sweep_id(store)
    wait_for(lambda: _on(store, sweep_id, "host-a"), 60, 0.05)
    machine("host-b")
    wait_for(lambda: _on(store, sweep_id, "host-a", fold=1), 60, 0.05)
    stale_pid = store.trials(sweep_id, [0])[0].pid

    # When host-a freezes in its second fold past the TTL, host-b takes the trial over, and
    # host-a thaws (its fold's sleep long over) as host-b starts that fold
    with _frozen(a):
        wait_for(lambda: _on(store, sweep_id, "host-b", fold=1), 60, 0.05)
    _, stderr = producer.communicate(timeout=120)

    # Then every fold host-a had not recorded before it froze is host-b's
    assert producer.returncode == 0, stderr
    trial = store.trials(sweep_id, [0])[0]
    assert trial.worker.endswith("@host-b") and trial.pid != stale_pid
    pids = {run: int(f["metrics"]["pid"]) for run, f in trial.folds.items()}
    assert pids == {0: stale_pid, 1: trial.pid, 2: trial.pid}, (
        f"host-a's stale copy (pid {stale_pid}) recorded a run: {pids}"
    )
    # and the stale copy said why it stopped; the sweep counted the trial once
    wait_for(lambda: LOST in a.logs(), 30)
    _recorded_once(store, sweep_id)
    assert store.get_sweep(sweep_id).folds_done == 3


def test_a_copy_thawed_after_another_finished_its_trial_writes_no_checkpoint(
    tmp_path, redis_server, store, start_workers
):
    # Given one trial of 2 folds × 10 epochs of 0.5 s on host-a, checkpointing every epoch
    # and keeping each run's last checkpoint
    a = start_workers(
        *("--cpu", "1", "--hostname", "host-a", "--no-preload"),
        name="a",
        SMPTUNE_LEASE_TTL=LEASE_TTL,
    )
    config = write_config(
        tmp_path / "s.yaml",
        trainable="smptune.fakes:LearningCurveTrainable",
        n_trials=1,
        cv={"n_folds": 2},
        training={"max_epochs": 10, "keep_checkpoints": True},
        hyperparameters={"x": 0.6, "y": 0.3, "z": 0.5, "epoch_s": 0.5},
    )
    artifacts = tmp_path / "artifacts"
    producer = submit_in_background(config, redis_server.url, artifacts)
    sweep_id = _sweep_id(store)
    wait_for(lambda: _on(store, sweep_id, "host-a"), 60, 0.05)
    start_workers(
        *("--cpu", "1", "--hostname", "host-b", "--no-preload"),
        name="b",
        SMPTUNE_LEASE_TTL=LEASE_TTL,
    )

    def saved_after(epoch: int) -> bool:
        saved = store.checkpoint(sweep_id, 0)
        return saved is not None and saved.run == 0 and saved.epoch >= epoch

    wait_for(lambda: saved_after(3), 60, 0.02)

    # When host-a freezes mid-fold past the TTL, host-b resumes the trial from host-a's
    # checkpoint and finishes the sweep, and only then host-a thaws
    with _frozen(a):
        _, stderr = producer.communicate(timeout=120)
        assert producer.returncode == 0, stderr
        folder = artifacts / sweep_id / "trials" / "0" / "checkpoints"
        before = {p.name: p.stat().st_mtime_ns for p in folder.iterdir()}
        assert sorted(before) == ["fold_0_seed_0.ckpt", "fold_1_seed_0.ckpt"]

    # Then the stale copy stops at its next epoch boundary without a save: the live copy's
    # checkpoints stay as it left them, and none is recorded again
    def changed() -> bool:
        return {p.name: p.stat().st_mtime_ns for p in folder.iterdir()} != before

    wait_for(lambda: LOST in a.logs() or changed(), 30, 0.05)
    assert not changed(), "host-a's stale copy wrote a checkpoint after it thawed"
    assert LOST in a.logs()
    assert store.checkpoint(sweep_id, 0) is None
    trial = store.trials(sweep_id, [0])[0]
    assert trial.worker.endswith("@host-b") and trial.folds[0]["epochs_run"] == 10
    _recorded_once(store, sweep_id)
    assert store.get_sweep(sweep_id).folds_done == 2
