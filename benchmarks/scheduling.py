"""Scheduling efficiency: smptune's queue against a plain multiprocessing device pool.

The same workload, trials × folds of ``fold_s`` seconds each (the quadratic trainable's
``sleep``), runs twice side by side: through real ``workers`` processes and a real Redis
(makespan: the sweep's ``created``, set when the producer records it, to ``finalize_started``,
set when the chord callback starts), and through a pool of N plain processes that each take
the next configuration from a queue and run its folds in a row (the darts ``tune-parallel``
design). Both are compared with the ideal, trials × folds × fold_s / workers.
Target: 2 % over the ideal at 1-s folds (full form); the quick form's shorter folds get the
same absolute allowance per fold.

    python -m benchmarks.scheduling [--quick]
"""

from __future__ import annotations

import multiprocessing as mp
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.harness import (
    clean_env,
    finalized,
    kill,
    run_alone,
    start_workers,
    submit,
    warm_up,
    write_sweep,
)
from benchmarks.table import Row
from smptune.fakes import QuadraticTrainable
from smptune.queue.embedded_redis import EmbeddedRedis
from smptune.queue.store import SweepStore
from smptune.trainable import FoldContext, SweepSettings

#: Overhead allowed over the ideal at 1-s folds.
TARGET_OVERHEAD = 0.02


def shape(quick: bool) -> dict[str, Any]:
    if quick:
        return {"trials": 16, "folds": 3, "fold_s": 0.5, "workers": 2}
    return {"trials": 64, "folds": 3, "fold_s": 1.0, "workers": 4}


def _device(tasks: Any, results: Any, folds: int) -> None:
    """One pool process: take the next configuration, run its folds, report, repeat."""
    trainable = QuadraticTrainable()
    settings = SweepSettings(seed=0, metric="score", mode="max")
    while (item := tasks.get()) is not None:
        trial, params = item
        scores = [
            trainable.train_fold(params, FoldContext("pool", trial, fold, folds, settings))
            for fold in range(folds)
        ]
        results.put((trial, [s.metrics["score"] for s in scores]))


def pool_makespan(trials: int, folds: int, fold_s: float, workers: int) -> float:
    """Seconds from queueing every configuration to the last trial's result, pool warm."""
    context = mp.get_context("spawn")
    tasks, results = context.Queue(), context.Queue()
    pool = [context.Process(target=_device, args=(tasks, results, folds)) for _ in range(workers)]
    for process in pool:
        process.start()
    params = {**QuadraticTrainable.defaults, "x": 0.5, "sleep": fold_s}
    for _ in range(workers):  # warm up: every process has started and imported
        tasks.put((-1, {**params, "sleep": 0.0}))
    for _ in range(workers):
        results.get(timeout=120)
    started = time.monotonic()
    for trial in range(trials):
        tasks.put((trial, params))
    done = [results.get(timeout=trials * folds * fold_s + 120) for _ in range(trials)]
    makespan = time.monotonic() - started
    for _ in pool:
        tasks.put(None)
    for process in pool:
        process.join(30)
    assert sorted(t for t, _ in done) == list(range(trials))
    return makespan


def smptune_makespan(trials: int, folds: int, fold_s: float, workers: int) -> float:
    """Seconds from the sweep's ``created`` to its ``finalize_started``, workers warm."""
    env = clean_env()
    with tempfile.TemporaryDirectory() as tmp_name, EmbeddedRedis() as redis:
        tmp = Path(tmp_name)
        store = SweepStore.from_url(redis.url)
        supervisor = start_workers(redis.url, "--cpu", str(workers), env=env)
        try:
            warm_up(store, redis.url, env, tmp, workers)
            config = write_sweep(
                tmp / "scheduling.yaml",
                name="scheduling",
                n_trials=trials,
                cv={"n_folds": folds},
                hyperparameters={"x": {"low": 0.0, "high": 1.0}, "sleep": fold_s},
            )
            sweep_id = submit(config, redis.url, env, "--artifacts", str(tmp))
            sweep, _ = finalized(store, sweep_id, trials * folds * fold_s + 300)
        finally:
            kill(supervisor)
    assert sweep.count("complete") == trials and sweep.finalize_started is not None, sweep
    return sweep.finalize_started - sweep.created


def rows(quick: bool) -> list[Row]:
    """smptune and the plain pool against the ideal makespan, and against each other."""
    s = shape(quick)
    ideal = s["trials"] * s["folds"] * s["fold_s"] / s["workers"]
    pool = pool_makespan(s["trials"], s["folds"], s["fold_s"], s["workers"])
    queue = smptune_makespan(s["trials"], s["folds"], s["fold_s"], s["workers"])
    # the same absolute allowance per fold as 2 % of a 1-s fold
    allowed = 1 + TARGET_OVERHEAD / s["fold_s"]
    head = (
        f"scheduling {s['trials']}x{s['folds']} folds x {s['fold_s']:g} s, {s['workers']} workers:"
    )
    per_trial = (queue - pool) * s["workers"] / s["trials"]
    return [
        Row(
            f"{head} smptune makespan",
            queue,
            ideal,
            reference_label="ideal",
            max_ratio=allowed,
            note=f"{per_trial * 1000:.0f} ms per trial more than the plain pool",
        ),
        Row(f"{head} plain pool makespan", pool, ideal, reference_label="ideal"),
        Row(f"{head} smptune vs plain pool", queue, pool, reference_label="pool"),
    ]


def main() -> None:
    run_alone(rows, __doc__, "16 trials x 3 x 0.5 s, 2 workers")


if __name__ == "__main__":
    main()
