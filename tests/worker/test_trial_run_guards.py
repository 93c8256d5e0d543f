"""A trial's copy on a worker that must not write: one that lost its lease stops at its next
epoch, records no run, saves and deletes no checkpoint; a retrain that lost its lease
records nothing; checkpoint paths read from Redis stay inside the trial's folder. And what
must happen once: a rung decided before a run stops at it, an open-ended sweep topped up
once per trial."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from celery.exceptions import Ignore

from smptune.config import config_from_dict, load_config
from smptune.fakes import LearningCurveTrainable, QuadraticTrainable
from smptune.messages import TrialRequest
from smptune.queue.store import SweepStore
from smptune.records import SavedCheckpoint, SweepStatus, TrialStatus
from smptune.trainable import FoldResult
from smptune.worker import tasks
from smptune.worker.trial_run import RunWatch, TrialRun, TrialStopped

from conftest import write_config

WORKER = "cpu0@host-a"
LIVE = "host-b:7:live"


def _sweep(store: SweepStore, tmp_path: Path, **overrides: Any):
    config = load_config(
        write_config(tmp_path / "s.yaml", n_trials=2, cv={"n_folds": 2}, **overrides)
    )
    params = [{**QuadraticTrainable.defaults, "x": float(i)} for i in range(2)]
    store.create_sweep("s1", config.to_dict(), params, 2, str(tmp_path / "artifacts"))
    return config


def _copy(store: SweepStore, config, trial: int = 0, host: str = "host-a") -> TrialRun:
    """A copy of ``trial`` that took its lease and started."""
    lease = store.lease("s1", trial, host=host)
    assert lease.try_acquire()
    store.trial_started("s1", trial, f"cpu0@{host}", "")
    run = TrialRun(store, config, lease, "s1", trial, f"cpu0@{host}")
    run.started = time.perf_counter()
    return run


def _take_over(store: SweepStore, trial: int = 0) -> None:
    """Another copy takes the lease (this one was frozen past the TTL)."""
    store.r.set(store.lease_key("s1", trial), LIVE)


def _trial_dir(tmp_path: Path, trial: int = 0) -> Path:
    folder = tmp_path / "artifacts" / "s1" / "trials" / str(trial)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def test_a_run_stops_at_its_next_epoch_once_the_heartbeat_finds_the_lease_lost(
    store: SweepStore, tmp_path
):
    run = _copy(store, _sweep(store, tmp_path))
    watch = RunWatch(run, 0, 0)
    assert not watch.should_stop()

    run.lease.lost.set()  # the heartbeat's renewal failed

    assert watch.should_stop(), "a copy that lost its lease trains on"
    assert watch.stop is not None and watch.stop.status is None  # records nothing


def test_a_stale_copy_that_wakes_writes_no_epoch_saves_no_checkpoint_and_stops(
    store: SweepStore, tmp_path
):
    # Given a copy frozen mid-epoch past the TTL, whose trial another copy took over
    run = _copy(store, _sweep(store, tmp_path))
    watch = RunWatch(run, 0, 0)
    _take_over(store)

    # When it wakes and reports the epoch it was training
    watch.report(1, {"score": 0.5, "loss": 0.5})

    # Then it writes no curve point, saves no checkpoint, and stops recording nothing
    assert watch.stop is not None and watch.stop.status is None, watch.stop
    assert store.curves("s1", 0) == {}
    assert not watch.checkpoint_due(1)
    assert watch.should_stop()


def test_a_copy_whose_lease_was_taken_checks_it_before_it_saves_a_checkpoint(
    store: SweepStore, tmp_path
):
    # Given a live copy whose checkpoints are due every epoch
    run = _copy(store, _sweep(store, tmp_path))
    watch = RunWatch(run, 0, 0)
    watch.report(1, {"score": 0.5, "loss": 0.5})
    assert watch.checkpoint_due(1)

    # When another copy takes the lease before the heartbeat noticed
    _take_over(store)

    # Then the next save is not due (the live copy's file is not overwritten), and the run
    # stops recording nothing
    assert not watch.checkpoint_due(2)
    assert run.lease.lost.is_set() and watch.should_stop()
    assert watch.stop is not None and watch.stop.status is None


def test_a_stale_copy_records_no_run_and_deletes_no_checkpoint(store: SweepStore, tmp_path):
    # Given a stale copy that finished a run after another copy took its trial over, and the
    # live copy's checkpoint of that run (same path, on a shared disk)
    config = _sweep(store, tmp_path)
    run = _copy(store, config)
    checkpoint = _trial_dir(tmp_path) / "checkpoints" / "fold_0_seed_0.ckpt"
    checkpoint.parent.mkdir()
    checkpoint.write_text("{}")
    _take_over(store)
    saved = SavedCheckpoint(0, 4, str(checkpoint))
    store.checkpointed("s1", 0, saved)  # by the live copy
    result = FoldResult({"score": 0.5, "loss": 0.5}, best_epoch=1, epochs_run=1, duration_s=1.0)

    # When it records the run, Then it is stopped recording nothing
    with pytest.raises(TrialStopped) as stopped:
        run._record_run(0, 0, result)
    assert stopped.value.status is None
    assert store.folds("s1", 0) == {} and store.get_sweep("s1").folds_done == 0
    # and it deletes neither the live copy's checkpoint file nor its record
    run._drop_checkpoint(checkpoint)
    assert checkpoint.is_file()
    assert store.checkpoint("s1", 0) == saved


def test_checkpoint_paths_read_from_redis_stay_inside_the_trials_folder(
    store: SweepStore, tmp_path
):
    # Given a Redis writer that names a file outside the trial's folder as its checkpoint
    config = _sweep(store, tmp_path)
    run = _copy(store, config)
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    folder = _trial_dir(tmp_path)
    for path in (victim, folder / ".." / ".." / ".." / ".." / "victim.txt"):
        store.checkpointed("s1", 0, SavedCheckpoint(0, 3, str(path)))
        run.saved = store.checkpoint("s1", 0)

        # When the copy resumes the run, Then it neither loads nor resumes from that file
        watch = RunWatch(run, 0, 0)
        resumed = run._run_checkpoint(watch, folder)
        assert resumed is not None
        assert resumed.resume_epoch == 0
        assert resumed.path == folder / "checkpoints" / "fold_0_seed_0.ckpt"

        # and when it drops the run's checkpoint, the file survives
        run._drop_checkpoint()
        assert victim.read_text() == "keep me", f"{path} was unlinked"


def _open_ended(tmp_path: Path):
    raw = yaml.safe_load(write_config(tmp_path / "s.yaml", time_budget="1h").read_text())
    raw.pop("n_trials")
    return config_from_dict(raw)


def test_an_open_ended_trial_tops_up_its_sweep_once_however_often_it_is_preempted(
    store: SweepStore, tmp_path, monkeypatch
):
    # Given an open-ended sweep of 2 queued trials whose chord waits for both
    from smptune.worker.app import app

    config = _open_ended(tmp_path)
    store.create_sweep(
        "s1", config.to_dict(), [], 3, str(tmp_path / "a"), n_trials=2, open_ended=True
    )
    store.r.set(app.backend.get_key_for_group("g-1", ".s"), 2)
    sent: list[int] = []
    monkeypatch.setattr("smptune.messages.send_trial", lambda _app, _s, n, *a, **k: sent.append(n))
    request = TrialRequest(id="s1-trial-0", group="g-1", group_index=0)

    # When trial 0 starts, is preempted (its attempt given back), and starts again, twice
    for _ in range(3):
        lease = store.lease("s1", 0, host="host-a")
        assert lease.try_acquire()
        run = TrialRun(store, config, lease, "s1", 0, WORKER)
        try:
            run._start(request)
        finally:
            lease.release()
        assert run.attempt == 1
        assert store.requeue_preempted("s1", 0, WORKER, lease.value)

    # Then the sweep grew by one trial, not one per start
    assert store.get_sweep("s1").n_trials == 3, "a preemption added a trial"
    assert sent == [2]
    assert store.r.get(app.backend.get_key_for_group("g-1", ".t")) == "1"


def _curves_config(tmp_path: Path):
    return load_config(
        write_config(
            tmp_path / "s.yaml",
            trainable="smptune.fakes:LearningCurveTrainable",
            n_trials=2,
            cv={"n_folds": 2},
            training={"max_epochs": 9},
            pruner={"type": "asha", "min_resource": 1, "reduction_factor": 3},
            hyperparameters={"x": [0.6, 0.7], "y": 0.3},
        )
    )


def _epoch(watch: RunWatch, params: dict, epoch: int) -> None:
    score = LearningCurveTrainable.true_score(params, epoch)
    watch.report(epoch, {"score": score, "loss": 1 - score})


def test_a_run_preempted_at_a_rung_is_decided_there_and_its_resumed_copy_faces_the_later_ones(
    store: SweepStore, tmp_path
):
    # Given an ASHA sweep whose runs train 9 epochs (rungs at epochs 1 and 3 of the first
    # run, then at its end) and a copy of trial 0 training its first run
    config = _curves_config(tmp_path)
    params = {**LearningCurveTrainable.defaults, "x": 0.6, "y": 0.3}
    store.create_sweep("s1", config.to_dict(), [params, params], 2, str(tmp_path / "a"))
    first = _copy(store, config)
    first.epoch_pruner = first._build_epoch_pruner(params)
    pruner = first.epoch_pruner
    plan = [(r.index, r.epoch) for r in pruner.plan]
    assert plan == [(0, 1), (1, 3), (2, None)]
    rungs = store.rungs("s1", pruner.halving, "max")
    watch = RunWatch(first, 0, 0)
    for epoch in (1, 2):
        _epoch(watch, params, epoch)

    # When its worker is preempted while it trains epoch 3, the second rung
    store.preempt([WORKER], hold_s=30)
    _epoch(watch, params, 3)

    # Then it stops to be continued, and that rung was decided before it stopped
    assert watch.stop is not None and watch.stop.status is TrialStatus.REQUEUED
    assert 0 in rungs.members(pruner.bracket, 1)[0], "the rung at epoch 3 was skipped"
    assert store.requeue_preempted("s1", 0, WORKER, first.lease.value)
    store.preempted([WORKER])

    # and the copy that resumes after epoch 3 faces the rung at the end of the run
    second = _copy(store, config, host="host-b")
    second.epoch_pruner = second._build_epoch_pruner(params)
    resumed = RunWatch(second, 0, 0)
    resumed.resume_after(3)
    for epoch in range(4, 10):
        _epoch(resumed, params, epoch)
    assert resumed.stop is None
    second.done[0] = {"metrics": {"score": LearningCurveTrainable.true_score(params, 9)}}
    assert isinstance(second.epoch_pruner, type(pruner))
    assert second.epoch_pruner.after_run(0, 9) is None
    assert 0 in rungs.members(pruner.bracket, 2)[0]


class _Retrainer(QuadraticTrainable):
    """Retrains while another copy takes the retrain's lease (this one was frozen); says
    what the context's ``should_stop`` answered after that."""

    def __init__(self, lease: Any, seen: list[bool]) -> None:
        self.lease = lease
        self.seen = seen

    def retrain_and_test(self, params: Any, epochs: int, context: Any) -> dict[str, float]:
        self.lease.client.set(self.lease.key, LIVE)
        self.lease.renew()  # the heartbeat's next beat
        self.seen.append(context.should_stop())
        return super().retrain_and_test(params, epochs, context)


def test_a_retrain_that_lost_its_lease_stops_and_records_nothing(
    store: SweepStore, tmp_path, monkeypatch
):
    # Given a sweep retraining its best trial on a copy that holds the retrain's lease
    config = _sweep(store, tmp_path)
    best = {"trial": 0, "params": {**QuadraticTrainable.defaults, "x": 1.0}, "epochs": 2}
    store.set_sweep_fields("s1", status=SweepStatus.RETRAINING.value, results={"best": best})
    lease = store.retrain_lease("s1", host="host-a")
    assert lease.try_acquire()
    seen: list[bool] = []
    written: list[str] = []
    monkeypatch.setattr(
        tasks, "_write_results", lambda sweep_id, _results: written.append(sweep_id)
    )
    monkeypatch.setattr(tasks, "load_trainable", lambda *a, **k: _Retrainer(lease, seen))

    # When another copy takes the lease while it trains
    try:
        with pytest.raises(Ignore):
            tasks._retrain_under_lease(store, config, store.get_sweep("s1"), lease)
    finally:
        lease.release()

    # Then its training was told to stop, and it wrote no test metrics, no status, and left
    # the live copy's lease and retrain mark alone
    assert seen == [True]
    sweep = store.get_sweep("s1")
    assert sweep.test_metrics is None and sweep.retrained_trial is None
    assert sweep.status is SweepStatus.RETRAINING
    assert store.r.get(lease.key) == LIVE
    assert store.r.sismember("smptune:sweep:s1:retraining", "retrain")
    assert written == []
    assert store.sweep_results("s1")["best"] == best
