"""Load: a 3,000-trial sweep of a no-op trainable on four worker processes.

The scale proofs at 10,000 and 100,000 trials (submit, finalize, bytes per trial) are the
full forms of ``benchmarks/scale.py`` and ``benchmarks/fleet.py`` (docs/performance.md);
``SMPTUNE_LOAD_TRIALS=10000`` runs this test at that size.
"""

from __future__ import annotations

import os
import time

import pytest

from smptune.queue.store import SweepStore

from conftest import submit_and_wait, write_config

N_TRIALS = int(os.environ.get("SMPTUNE_LOAD_TRIALS", 3_000))


@pytest.mark.slow
def test_thousands_of_trials_each_recorded_once_and_the_chord_fires_once(
    tmp_path, redis_server, store: SweepStore, start_workers
):
    # Given four workers and a sweep of thousands of trials of a trainable that does nothing
    start_workers("--cpu", "4", "--loglevel", "WARNING")
    config = write_config(
        tmp_path / "load.yaml",
        n_trials=N_TRIALS,
        cv={"n_folds": 2},
        hyperparameters={"x": {"low": 0.0, "high": 1.0}},
    )
    memory_before = store.r.info("memory")["used_memory"]

    # When it runs to the end
    started = time.monotonic()
    sweep_id, result = submit_and_wait(config, redis_server.url, tmp_path / "a", timeout=1500)
    elapsed = time.monotonic() - started

    # Then every trial is recorded exactly once and the chord callback ran once
    assert result.returncode == 0, result.stderr[-2000:]
    sweep = store.get_sweep(sweep_id, full=True)
    assert sweep.finalize_runs == 1
    assert sweep.finalize_duplicates == 0
    assert sweep.count("complete") == N_TRIALS and sweep.count("failed") == 0
    assert store.finished_count(sweep_id) == N_TRIALS
    assert sweep.folds_done == 2 * N_TRIALS
    ranking = sweep.results["ranking"]
    assert sorted(t["trial"] for t in ranking) == list(range(N_TRIALS))
    assert all(t["attempts"] == 1 for t in ranking)

    per_trial = (store.r.info("memory")["used_memory"] - memory_before) / N_TRIALS
    print(
        f"\n{N_TRIALS} trials in {elapsed:.0f} s ({N_TRIALS / elapsed:.0f} trials/s), "
        f"Redis memory {per_trial:.0f} bytes per trial"
    )
    assert per_trial < 20_000
