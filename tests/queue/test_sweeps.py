"""A sweep's hash stays small: its results, splits and predictions have their own keys, read
only when asked for, written in one step with the rest, and deleted with the sweep."""

from __future__ import annotations

import json

from results.test_progress import commands_of, sweep_with_trials
from smptune.queue.keys import results_key, sweep_key
from smptune.queue.store import SweepStore


def test_get_sweep_reads_a_hash_whose_size_does_not_grow_with_trials(store, tmp_path):
    small = sweep_with_trials(store, tmp_path, "s50", 50)
    large = sweep_with_trials(store, tmp_path, "s1000", 1000)

    few = commands_of(store, lambda: store.get_sweep(small))
    many = commands_of(store, lambda: store.get_sweep(large))

    assert few == many == {"hgetall": 1}
    sizes = [len(json.dumps(store.r.hgetall(sweep_key(s)))) for s in (small, large)]
    assert sizes[1] - sizes[0] < 64, sizes  # a few more digits in its counters
    assert len(store.r.get(results_key(large))) > 10 * len(store.r.get(results_key(small)))
    # the per-trial lookups read one field
    assert commands_of(store, lambda: store.artifacts_dir(large)) == {"hget": 1}
    assert commands_of(store, lambda: store.sweep_status(large)) == {"hget": 1}


def test_the_full_record_has_results_splits_and_predictions(store: SweepStore, tmp_path):
    sweep_id = sweep_with_trials(store, tmp_path, "s", 6)
    store.set_sweep_fields(
        sweep_id, splits={"test": ["a.png"]}, predictions_png="cG5n", final_model_dir="/m"
    )

    full = store.get_sweep(sweep_id, full=True)
    assert full.results is not None and len(full.results["ranking"]) == 6
    assert full.splits == {"test": ["a.png"]} and full.predictions_png == "cG5n"
    assert full.final_model_dir == "/m" and full.n_trials == 6
    assert store.sweep_results(sweep_id) == full.results
    assert not {"results", "splits", "predictions_png"} & set(store.r.hgetall(sweep_key(sweep_id)))
    assert not hasattr(store.get_sweep(sweep_id), "results")


def test_a_sweep_recorded_with_its_results_in_its_hash_is_still_read(store, tmp_path):
    sweep_id = sweep_with_trials(store, tmp_path, "old", 4)
    results = store.sweep_results(sweep_id)
    store.r.delete(results_key(sweep_id))
    store.r.hset(sweep_key(sweep_id), "results", json.dumps(results))

    assert store.get_sweep(sweep_id, full=True).results == results
    assert store.sweep_results(sweep_id) == results


def test_results_are_counted_in_memory_and_deleted_with_the_sweep(store, tmp_path):
    sweep_id = sweep_with_trials(store, tmp_path, "s", 200)
    store.set_sweep_fields(sweep_id, predictions_png="x" * 10_000, status="done")
    results = len(store.r.get(results_key(sweep_id)))

    assert store.memory_by_sweep()[sweep_id] > results + 10_000
    store.delete_sweep(sweep_id)
    assert list(store.r.scan_iter(match=f"{sweep_key(sweep_id)}*")) == []


def test_a_retrain_ends_its_sweep_and_takes_it_off_the_watch_in_one_step(
    store: SweepStore, tmp_path
):
    sweep_id = sweep_with_trials(store, tmp_path, "s", 3)
    assert sweep_id in store.active_sweeps()
    holder, other = store.retrain_lease(sweep_id, "a"), store.retrain_lease(sweep_id, "b")
    assert holder.try_acquire()

    # another copy, without the lease, writes nothing and leaves the sweep watched
    assert not store.end_sweep_held(sweep_id, other, status="done")
    assert store.sweep_status(sweep_id) != "done" and sweep_id in store.active_sweeps()
    # the holder ends it: status, results and the active set in one script
    assert store.end_sweep_held(sweep_id, holder, status="done", results={"best": None})
    assert store.sweep_status(sweep_id) == "done"
    assert sweep_id not in store.active_sweeps()
    assert store.sweep_results(sweep_id) == {"best": None}
