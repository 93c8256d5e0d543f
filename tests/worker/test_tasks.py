"""The three Celery tasks, called in this process on a real Redis (no worker): which copies
they ignore or fence off, and what a finalize that runs writes.

``finalize_sweep`` fences by generation and by its lease: a stale copy, a duplicate of a
finalized generation and a copy for a deleted sweep write no status and no results;
``cv_trial`` and ``retrain_and_test`` ignore a copy that has nothing left to do."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from celery.exceptions import Ignore

from smptune.config import load_config
from smptune.fakes import QuadraticTrainable
from smptune.queue.keys import folds_key
from smptune.queue.lease import LEASE_TTL_ENV
from smptune.queue.store import SweepStore
from smptune.records import SweepStatus, TrialStatus
from smptune.worker import tasks

from conftest import write_config

SWEEP = "s1"


@pytest.fixture(autouse=True)
def _tasks_on(store: SweepStore, monkeypatch: pytest.MonkeyPatch) -> None:
    """The tasks read this test's store, and no retrain message leaves the process."""
    monkeypatch.setattr(tasks, "store", lambda: store)
    monkeypatch.setattr(tasks, "send_retrain", lambda *a, **k: pytest.fail("sent a retrain"))
    tasks._sweep_config.cache_clear()


def _sweep(store: SweepStore, tmp_path: Path, n_trials: int = 2, **overrides) -> Path:
    """A quadratic sweep of ``n_trials`` (no retrain), nothing run; its artifacts folder."""
    overrides.setdefault("retrain_and_test", False)
    config = load_config(
        write_config(tmp_path / "s.yaml", n_trials=n_trials, cv={"n_folds": 2}, **overrides)
    )
    params = [{**QuadraticTrainable.defaults, "x": float(i)} for i in range(n_trials)]
    store.create_sweep(SWEEP, config.to_dict(), params, 2, str(tmp_path / "artifacts"))
    return tmp_path / "artifacts"


def _finish(store: SweepStore, trial: int, score: float) -> None:
    """Trial ``trial`` recorded complete with ``score``, as a worker records it."""
    for fold in range(2):
        fold_result = {"metrics": {"score": score}, "best_epoch": 1, "epochs_run": 1}
        store.record_fold(SWEEP, trial, fold, {**fold_result, "duration_s": 0.0})
    store.finish_trial(SWEEP, trial, {"status": TrialStatus.COMPLETE.value, "score": score})


def _finalize(generation: int | None = None, n_results: int = 2) -> dict:
    return tasks.finalize_sweep([{}] * n_results, SWEEP, generation)


def test_a_finalize_ranks_the_trials_writes_the_results_and_ends_the_sweep(
    store: SweepStore, tmp_path
):
    # Given a sweep of two recorded trials, the second the better
    artifacts = _sweep(store, tmp_path)
    _finish(store, 0, 0.25)
    _finish(store, 1, 0.75)

    # When its chord's finalize runs
    answer = _finalize()

    # Then the sweep is done, its best trial is trial 1, and results.json says so
    assert answer == {"sweep_id": SWEEP, "trials": 2}
    sweep = store.get_sweep(SWEEP)
    assert sweep.status == SweepStatus.DONE and store.is_finalized(SWEEP)
    assert sweep.finalize_takes == 1 and sweep.finalize_duplicates == 0
    results = json.loads((artifacts / SWEEP / "results.json").read_text())
    assert results["best"]["trial"] == 1 and results["best"]["score"] == 0.75
    assert store.sweep_results(SWEEP)["best"]["trial"] == 1


def test_a_second_copy_of_a_finished_finalize_is_a_duplicate_and_writes_nothing(
    store: SweepStore, tmp_path
):
    artifacts = _sweep(store, tmp_path)
    _finish(store, 0, 0.25)
    _finish(store, 1, 0.75)
    _finalize()
    (artifacts / SWEEP / "results.json").unlink()
    finalized_at = store.get_sweep(SWEEP).finalized_at

    # When a redelivered copy of the same finalize runs
    answer = _finalize()

    # Then it is counted a duplicate and rewrites neither the results nor the status
    assert answer == {"sweep_id": SWEEP, "duplicate": True}
    sweep = store.get_sweep(SWEEP)
    assert sweep.finalize_duplicates == 1 and sweep.finalize_takes == 2
    assert sweep.finalized_at == finalized_at
    assert not (artifacts / SWEEP / "results.json").exists()


def test_a_finalize_of_a_stale_generation_writes_nothing(store: SweepStore, tmp_path):
    # Given a sweep at generation 0, all its trials recorded
    artifacts = _sweep(store, tmp_path)
    _finish(store, 0, 0.25)
    _finish(store, 1, 0.75)

    # When a finalize sent for a later (or earlier) generation arrives
    answer = _finalize(generation=3)

    # Then it is a duplicate: the sweep is not finalized and no results are written
    assert answer == {"sweep_id": SWEEP, "duplicate": True}
    sweep = store.get_sweep(SWEEP)
    assert sweep.status != SweepStatus.DONE and not store.is_finalized(SWEEP)
    assert sweep.finalize_duplicates == 1
    assert store.sweep_results(SWEEP) is None
    assert not (artifacts / SWEEP).exists()


def test_a_finalize_before_every_trial_is_recorded_leaves_the_sweep_to_its_chord(
    store: SweepStore, tmp_path
):
    # Given a sweep of two trials of which one is recorded (a fallback sent early)
    artifacts = _sweep(store, tmp_path)
    _finish(store, 0, 0.25)

    # When a finalize runs
    answer = _finalize(n_results=1)

    # Then it writes no status and no results
    assert answer == {"sweep_id": SWEEP, "duplicate": True}
    assert store.get_sweep(SWEEP).status != SweepStatus.DONE
    assert not store.is_finalized(SWEEP)
    assert not (artifacts / SWEEP / "results.json").exists()


def test_a_finalize_of_a_cancelled_sweep_ends_it_cancelled(store: SweepStore, tmp_path):
    _sweep(store, tmp_path)
    _finish(store, 0, 0.25)
    _finish(store, 1, 0.75)
    store.request_cancel(SWEEP)
    _finalize()
    assert store.get_sweep(SWEEP).status == SweepStatus.CANCELLED


def test_the_tasks_of_a_deleted_sweep_are_ignored(store: SweepStore):
    # A sweep deleted (producer delete --force) while its messages were queued
    with pytest.raises(Ignore):
        _finalize()
    with pytest.raises(Ignore):
        tasks.cv_trial(SWEEP, 0)
    with pytest.raises(Ignore):
        tasks.retrain_and_test(SWEEP)
    assert store.list_sweeps() == []


def test_a_copy_of_a_finished_trial_is_ignored_and_records_nothing(store: SweepStore, tmp_path):
    _sweep(store, tmp_path)
    _finish(store, 0, 0.25)
    before = store.get_sweep(SWEEP).counts
    with pytest.raises(Ignore):
        tasks.cv_trial(SWEEP, 0)
    assert store.get_sweep(SWEEP).counts == before
    assert store.r.get(store.lease_key(SWEEP, 0)) is None  # it took no lease


def test_a_copy_of_a_trial_another_live_copy_holds_is_ignored(
    store: SweepStore, tmp_path, monkeypatch
):
    # Given trial 0 held by a live copy on another host
    monkeypatch.setenv(LEASE_TTL_ENV, "0.4")
    _sweep(store, tmp_path)
    other = store.lease(SWEEP, 0, host="host-b")
    assert other.try_acquire()
    other.start_heartbeat()
    try:
        # When a second copy arrives, it waits a little for the lease, then gives up
        with pytest.raises(Ignore):
            tasks.cv_trial(SWEEP, 0)
    finally:
        other.release()
    # And nothing was recorded for the trial
    assert not store.is_finished(SWEEP, 0)
    assert store.r.hgetall(folds_key(SWEEP, 0)) == {}


def test_a_retrain_of_a_sweep_that_is_not_retraining_is_ignored(store: SweepStore, tmp_path):
    _sweep(store, tmp_path)
    _finish(store, 0, 0.25)
    _finish(store, 1, 0.75)
    _finalize()
    with pytest.raises(Ignore):
        tasks.retrain_and_test(SWEEP)
    sweep = store.get_sweep(SWEEP)
    assert sweep.status == SweepStatus.DONE and sweep.retrain_takes == 1
