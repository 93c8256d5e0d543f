"""Writes only the live copy makes, on a real Redis: a copy whose lease another copy took
writes no epoch, no run and no checkpoint; an extend never bumps the size of a chord that
fired; an open-ended sweep tops up once per trial."""

from __future__ import annotations

import pytest
from celery.backends.redis import CHORD_PART_RETURN_LUA

from smptune.config import load_config
from smptune.fakes import QuadraticTrainable
from smptune.queue.store import LEASE_GONE, SweepStore
from smptune.records import SavedCheckpoint

from conftest import write_config

GROUP = "g-1"


def _sweep(store: SweepStore, tmp_path, n_trials: int = 2, **extra: object) -> str:
    config = load_config(write_config(tmp_path / "s.yaml", n_trials=n_trials)).to_dict()
    params = [{**QuadraticTrainable.defaults, "x": float(i)} for i in range(n_trials)]
    store.create_sweep("s1", config, params, 3, str(tmp_path), **extra)
    return "s1"


def _taken_over(store: SweepStore, sweep_id: str) -> str:
    """Trial 0 started by host-a, whose lease host-b then took (host-a was frozen past the
    TTL); host-a's lease value."""
    stale = store.lease(sweep_id, 0, host="host-a")
    assert stale.try_acquire()
    store.trial_started(sweep_id, 0, "cpu0@host-a", "")
    store.r.set(store.lease_key(sweep_id, 0), "host-b:7:live")
    return stale.value


def test_a_copy_that_lost_the_lease_writes_no_epoch_no_run_and_no_checkpoint(
    store: SweepStore, tmp_path
):
    sweep_id = _sweep(store, tmp_path)
    stale = _taken_over(store, sweep_id)
    saved = SavedCheckpoint(0, 3, str(tmp_path / "s1" / "trials" / "0" / "c.ckpt"))

    assert store.record_epoch(sweep_id, 0, 0, 1, 0.5, "cpu0@host-a", lease=stale) == LEASE_GONE
    assert store.record_fold(sweep_id, 0, 0, {"metrics": {"score": 0.5}}, lease=stale) is None
    assert store.checkpointed(sweep_id, 0, saved, lease=stale) is False
    assert store.curves(sweep_id, 0) == {}
    assert store.folds(sweep_id, 0) == {}
    assert store.get_sweep(sweep_id).folds_done == 0
    assert store.checkpoint(sweep_id, 0) is None

    # while the live copy writes each, and a run once
    live = "host-b:7:live"
    assert store.record_epoch(sweep_id, 0, 0, 1, 0.5, "cpu0@host-b", lease=live) is None
    assert store.record_fold(sweep_id, 0, 0, {"metrics": {"score": 0.5}}, lease=live) is True
    assert store.record_fold(sweep_id, 0, 0, {"metrics": {"score": 0.6}}, lease=live) is False
    assert store.checkpointed(sweep_id, 0, saved, lease=live) is True
    assert store.curves(sweep_id, 0) == {0: (0.5,)}
    assert store.get_sweep(sweep_id).folds_done == 1
    assert store.checkpoint(sweep_id, 0) == saved


def test_a_copy_whose_trial_was_reaped_writes_nothing_while_no_copy_holds_the_lease(
    store: SweepStore, tmp_path
):
    # Given a frozen copy's lease expired and the reaper took the trial off the running set
    sweep_id = _sweep(store, tmp_path)
    stale = _taken_over(store, sweep_id)
    store.r.delete(store.lease_key(sweep_id, 0))
    assert store.claim_orphan(sweep_id, 0)

    # Then before any new copy takes the lease, the stale one still writes nothing
    assert store.record_epoch(sweep_id, 0, 0, 1, 0.5, lease=stale) == LEASE_GONE
    assert store.record_fold(sweep_id, 0, 0, {"metrics": {"score": 0.5}}, lease=stale) is None
    assert store.folds(sweep_id, 0) == {}


def _chord(store: SweepStore, size: int, diff: int, parts: int, ordered: bool) -> tuple:
    """Celery's chord keys of GROUP with ``parts`` results returned as its Redis backend's
    own script records them (``.j`` a zset when ``result_chord_ordered``, else a list)."""
    prefix = f"celery-taskset-meta-{GROUP}"
    keys = {k: prefix + k for k in (".s", ".t", ".j", ".d", ".c")}
    store.r.set(keys[".s"], size)
    store.r.set(keys[".t"], diff)
    for part in range(parts):
        store.r.eval(
            CHORD_PART_RETURN_LUA,
            6,
            keys[".j"],
            keys[".t"],
            keys[".s"],
            keys[".d"],
            prefix,
            keys[".c"],
            f"task-{part}",
            f'[1, "task-{part}", "SUCCESS", {{}}]',
            "1" if ordered else "0",
            part,
            0,
            0,
            10,
            "token",
        )
    return keys[".s"], keys[".t"], keys[".j"]


@pytest.mark.parametrize("ordered", [True, False], ids=["zset", "list"])
def test_an_extend_is_refused_once_the_chord_counted_all_its_results(
    ordered, store: SweepStore, tmp_path
):
    # Given a running sweep whose chord of 3 + 1 trials just counted its 4th result and is
    # firing (Celery deletes .s, .t and .j only after it published the callback)
    sweep_id = _sweep(store, tmp_path, n_trials=4)
    keys = _chord(store, size=3, diff=1, parts=4, ordered=ordered)
    assert store.r.exists(keys[0]) and store.r.get(f"celery-taskset-meta-{GROUP}.c") == "token"

    # When the user extends it in that gap, Then the extend is refused: its trials would
    # fall outside the chord
    assert store.extend_running(sweep_id, 2, keys) is None
    assert store.r.get(keys[1]) == "1"
    assert store.get_sweep(sweep_id).n_trials == 4


def test_an_extend_joins_a_chord_that_still_waits(store: SweepStore, tmp_path):
    sweep_id = _sweep(store, tmp_path, n_trials=4)
    keys = _chord(store, size=3, diff=1, parts=3, ordered=True)
    assert store.extend_running(sweep_id, 2, keys) == 4
    assert store.r.get(keys[1]) == "3"
    assert store.get_sweep(sweep_id).n_trials == 6


def test_an_open_ended_sweep_tops_up_once_per_trial_and_never_after_its_chord_fired(
    store: SweepStore, tmp_path
):
    # Given an open-ended sweep of 2 queued trials whose chord waits for them
    sweep_id = _sweep(store, tmp_path, n_trials=2, open_ended=True)
    keys = _chord(store, size=2, diff=0, parts=0, ordered=True)

    # Then trial 0's start adds trial 2, and a second start of trial 0 (after a preemption
    # gave its attempt back) adds nothing
    assert store.extend(sweep_id, 0, keys) == 2
    assert store.extend(sweep_id, 0, keys) is None
    assert store.extend(sweep_id, 1, keys) == 3
    assert store.get_sweep(sweep_id).n_trials == 4
    assert store.r.get(keys[1]) == "2"
    # and once the chord counted every result, no trial tops it up
    _chord(store, size=2, diff=2, parts=4, ordered=True)
    assert store.extend(sweep_id, 2, keys) is None
    assert store.get_sweep(sweep_id).n_trials == 4
