"""Scale: a sweep of many no-op trials (quadratic trainable, sleep 0) through real workers.

Measured: submit (config load, planning, recording the sweep and sending the chord, timed
inside a fresh producer process, without the interpreter's start-up), the finalize task
(``finalize_started`` to the task's end: ranking, results folder, report), trials per second
(first trial start to last trial recorded), the chord's latency (last trial recorded to
``finalize_started``) and Redis bytes per trial (``INFO memory`` used_memory before submit and
after finalize), and ``producer status SWEEP`` (a fresh process, start-up included) once half
the trials are recorded and once the sweep is finalized. Targets (full form, 10,000 trials):
submit ≤ 5 s, finalize ≤ 10 s; the quick form scales them per trial.

    python -m benchmarks.scale [--quick] [--trials N] [--workers 4] [--sampler tpe]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.harness import (
    clean_env,
    finalized,
    kill,
    start_workers,
    wait_for,
    warm_up,
    write_sweep,
)
from benchmarks.table import Row
from smptune.queue.embedded_redis import EmbeddedRedis
from smptune.queue.store import SweepStore

FULL_TRIALS = 10_000
SUBMIT_BUDGET_S = 5.0
FINALIZE_BUDGET_S = 10.0
#: tests/system/test_load.py fails above this many Redis bytes per trial
REDIS_BYTES_LIMIT = 20_000


def _at(timestamp: float | None) -> float:
    """A time the finished sweep must have recorded."""
    assert timestamp is not None, "the sweep did not record this time"
    return timestamp


def timed_submit(config: Path, broker: str, artifacts: Path) -> dict[str, float | str]:
    """What ``producer submit`` does, timed in this process: load, plan, record and send."""
    from smptune.config import load_config
    from smptune.queue.submit import plan_configurations, submit
    from smptune.worker.app import app, configure

    started = time.perf_counter()
    loaded = load_config(config)
    configurations = plan_configurations(loaded)
    planned = time.perf_counter()
    configure(app, broker, send_only=True)
    sweep_id = submit(SweepStore.from_url(broker), loaded, configurations, artifacts, app)
    sent = time.perf_counter()
    return {"sweep_id": sweep_id, "plan_s": planned - started, "send_s": sent - planned}


def _submit_in_child(config: Path, broker: str, artifacts: Path, env: dict[str, str]) -> dict:
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.scale", "--submit", str(config), broker, str(artifacts)],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def timed_status(sweep_id: str, broker: str, env: dict[str, str]) -> float:
    """Seconds a ``producer status SWEEP`` process takes, start-up included."""
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "smptune.cli.producer", "status", sweep_id, "--broker", broker],
        capture_output=True,
        env=env,
        check=True,
    )
    return time.perf_counter() - started


def measure(trials: int, workers: int, sampler: str = "random") -> dict[str, float]:
    env = clean_env()
    with tempfile.TemporaryDirectory() as tmp_name, EmbeddedRedis() as redis:
        tmp = Path(tmp_name)
        store = SweepStore.from_url(redis.url)
        supervisor = start_workers(redis.url, "--cpu", str(workers), env=env)
        try:
            warm_up(store, redis.url, env, tmp, workers)
            config = write_sweep(
                tmp / "scale.yaml",
                name="scale",
                n_trials=trials,
                sampler=sampler,
                hyperparameters={"x": {"low": 0.0, "high": 1.0}},
            )
            memory_before = store.r.info("memory")["used_memory"]
            sub = _submit_in_child(config, redis.url, tmp, env)
            sweep_id = str(sub["sweep_id"])
            print(json.dumps(sub), file=sys.stderr, flush=True)
            wait_for(lambda: store.finished_count(sweep_id) >= trials // 2, trials / 2 + 300, 0.5)
            status_running_s = timed_status(sweep_id, redis.url, env)
            sweep, finalize_done = finalized(store, sweep_id, timeout=trials / 2 + 300)
            memory_after = store.r.info("memory")["used_memory"]
            status_done_s = timed_status(sweep_id, redis.url, env)
        finally:
            kill(supervisor)
        assert sweep.count("complete") == trials, sweep
        measured = {
            "submit_s": sub["plan_s"] + sub["send_s"],
            "send_s": sub["send_s"],
            "trials_per_s": trials / (_at(sweep.last_finished) - _at(sweep.started)),
            "chord_latency_s": _at(sweep.finalize_started) - _at(sweep.last_finished),
            "finalize_s": finalize_done - _at(sweep.finalize_started),
            "redis_bytes_per_trial": (memory_after - memory_before) / trials,
            "status_running_s": status_running_s,
            "status_done_s": status_done_s,
        }
        # before the trials' folders are removed: minutes for 100,000 on a slow disk
        print(json.dumps(measured), file=sys.stderr, flush=True)
    return measured


def rows(quick: bool) -> list[Row]:
    """The table rows: 1,000 trials on 4 workers (quick), else 10,000."""
    trials = 1_000 if quick else FULL_TRIALS
    return _rows(trials, 4, measure(trials, 4))


def _rows(trials: int, workers: int, m: dict[str, float], sampler: str = "random") -> list[Row]:
    scale = trials / FULL_TRIALS
    budget = "budget" if scale == 1 else f"budget x {scale:g}"
    which = "" if sampler == "random" else f" {sampler}"
    head = f"scale {trials}{which} no-op trials, {workers} workers:"
    return [
        Row(
            f"{head} submit (load, plan, record, send)",
            m["submit_s"],
            SUBMIT_BUDGET_S * scale,
            reference_label=budget,
            max_ratio=1.0,
            note=f"sending the chord {m['send_s']:.2f} s",
        ),
        Row(
            f"{head} finalize (rank, write results)",
            m["finalize_s"],
            FINALIZE_BUDGET_S * scale,
            reference_label=budget,
            max_ratio=1.0,
        ),
        Row(f"{head} chord latency (last trial to finalize)", m["chord_latency_s"]),
        Row(f"{head} throughput", m["trials_per_s"], unit="trials/s"),
        Row(
            f"{head} Redis memory per trial",
            m["redis_bytes_per_trial"],
            REDIS_BYTES_LIMIT,
            unit="B",
            reference_label="test_load limit",
            max_ratio=1.0,
        ),
        Row(f"{head} producer status, half the trials recorded", m["status_running_s"]),
        Row(f"{head} producer status, finalized", m["status_done_s"]),
    ]


def main() -> None:
    if len(sys.argv) == 5 and sys.argv[1] == "--submit":
        print(json.dumps(timed_submit(Path(sys.argv[2]), sys.argv[3], Path(sys.argv[4]))))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="1,000 trials instead of 10,000")
    parser.add_argument("--trials", type=int)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--sampler", default="random", help="random (default) or tpe, ...")
    args = parser.parse_args()
    trials = args.trials or (1_000 if args.quick else FULL_TRIALS)
    from benchmarks.harness import print_table

    measured = measure(trials, args.workers, args.sampler)
    print(json.dumps(measured))  # the figures unrounded, for the record
    print_table(_rows(trials, args.workers, measured, args.sampler))


if __name__ == "__main__":
    main()
