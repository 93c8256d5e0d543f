"""Per-trial overhead of the queue: long-lived pool children vs a fresh child per trial.

Runs the same sweep of short sleep trials (quadratic trainable, one fold each) through real
``workers`` processes and an embedded Redis, once with smptune's default (a long-lived pool
child that frees device memory after each task) and once with ``--max-tasks-per-child 1``,
and prints the makespan, the overhead per trial over the ideal, and their ratio.

    python -m benchmarks.trial_overhead [--trials 20] [--sleep 0.2] [--workers 2]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from benchmarks.harness import clean_env, start_workers, stop, submit, write_sweep
from smptune.queue.embedded_redis import EmbeddedRedis
from smptune.queue.store import SweepStore


def run_once(trials: int, sleep_s: float, workers: int, extra: list[str]) -> float:
    """Makespan in seconds from the first trial start to the last trial end."""
    env = clean_env()
    with tempfile.TemporaryDirectory() as tmp, EmbeddedRedis() as redis:
        config = write_sweep(
            Path(tmp, "bench.yaml"),
            n_trials=trials,
            hyperparameters={"x": {"low": 0.0, "high": 1.0}, "sleep": sleep_s / 2},
        )
        supervisor = start_workers(redis.url, "--cpu", str(workers), *extra, env=env)
        try:
            time.sleep(3)  # let the workers come up: start-up is not per-trial overhead
            sweep_id = submit(config, redis.url, env, "--wait", "--artifacts", tmp)
            trials_done = SweepStore.from_url(redis.url).trials(sweep_id)
            start = min(t.started for t in trials_done)
            end = max(t.finished for t in trials_done)
            return end - start
        finally:
            stop(supervisor)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--sleep", type=float, default=0.2, help="seconds of work per trial")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    ideal = args.trials * args.sleep / args.workers
    rows = []
    for label, extra in (
        ("long-lived child (default)", []),
        ("--max-tasks-per-child 1", ["--max-tasks-per-child", "1"]),
    ):
        makespan = run_once(args.trials, args.sleep, args.workers, extra)
        per_trial = (makespan - ideal) * args.workers / args.trials
        rows.append((label, makespan, per_trial))
    print(
        f"{args.trials} trials x {args.sleep} s on {args.workers} CPU workers, "
        f"ideal makespan {ideal:.2f} s"
    )
    print(f"{'mode':30} {'makespan s':>10} {'overhead/trial s':>17} {'vs ideal':>9}")
    for label, makespan, per_trial in rows:
        print(f"{label:30} {makespan:10.2f} {per_trial:17.3f} {makespan / ideal:8.2f}x")
    print(f"fresh child per trial / long-lived child: {rows[1][1] / rows[0][1]:.1f}x makespan")


if __name__ == "__main__":
    main()
