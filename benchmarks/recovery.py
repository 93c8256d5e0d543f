"""Recovery time after a worker machine is lost, next to the broker's visibility timeout.

Two ``workers`` supervisors ("host-a", "host-b", one CPU worker each) share an embedded
Redis. A one-trial sweep starts on one of them; that supervisor and its workers are killed
with SIGKILL, and the time until the trial is running again on the other host is measured.
Without smptune's leases and reaper, Redis would redeliver the task after the visibility
timeout.

    python -m benchmarks.recovery [--runs 3] [--lease-ttl 30]
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import tempfile
import time
from pathlib import Path

from benchmarks.harness import clean_env, kill, start_workers, submit, wait_for, write_sweep
from benchmarks.table import Row
from smptune.queue.embedded_redis import EmbeddedRedis
from smptune.queue.store import SweepStore
from smptune.retries import VISIBILITY_TIMEOUT_S


def one_run(lease_ttl: float) -> float:
    """Seconds from the SIGKILL of a machine's workers to its trial running on the other."""
    env = clean_env(SMPTUNE_LEASE_TTL=str(lease_ttl))
    with tempfile.TemporaryDirectory() as tmp, EmbeddedRedis() as redis:
        hosts = {
            name: start_workers(redis.url, "--cpu", "1", "--hostname", name, env=env)
            for name in ("host-a", "host-b")
        }
        config = write_sweep(
            Path(tmp, "one.yaml"), n_trials=1, hyperparameters={"x": 1.0, "sleep": 3 * lease_ttl}
        )
        try:
            sweep_id = submit(config, redis.url, env, "--artifacts", tmp)
            store = SweepStore.from_url(redis.url)
            first = wait_for(lambda: store.running(sweep_id), 60)[0]
            victim = first["worker"].split("@")[1]
            os.killpg(hosts[victim].pid, signal.SIGKILL)
            killed = time.time()

            def moved() -> float | None:
                t = store.trials(sweep_id, [0])[0]
                on_other = t.worker and not t.worker.endswith("@" + victim)
                return t.started if on_other and t.status == "running" else None

            return wait_for(moved, 10 * lease_ttl + 60) - killed
        finally:
            for process in hosts.values():
                kill(process)  # the figure is taken: no warm shutdown of the moved trial


def rows(quick: bool) -> list[Row]:
    """Quick: one run with a 3-s lease TTL; full: three runs with the default 30 s."""
    ttl, runs = (3.0, 1) if quick else (30.0, 3)
    median = statistics.median(one_run(ttl) for _ in range(runs))
    head = f"recovery after kill -9 of a worker machine (lease TTL {ttl:g} s, {runs} runs):"
    return [
        Row(f"{head} vs lease TTL", median, ttl, reference_label="TTL", max_ratio=2.0),
        Row(
            f"{head} vs broker redelivery",
            median,
            VISIBILITY_TIMEOUT_S,
            reference_label="visibility timeout",
        ),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--lease-ttl", type=float, default=30.0)
    args = parser.parse_args()
    times = [one_run(args.lease_ttl) for _ in range(args.runs)]
    median = statistics.median(times)
    print(
        f"lease TTL {args.lease_ttl:g} s; recovery after kill -9 of a worker machine "
        f"({args.runs} runs): {', '.join(f'{t:.1f}' for t in times)} s"
    )
    print(
        f"median {median:.1f} s = {median / args.lease_ttl:.2f} lease TTLs; "
        f"visibility timeout {VISIBILITY_TIMEOUT_S} s = {VISIBILITY_TIMEOUT_S / median:.0f}x "
        "the median"
    )


if __name__ == "__main__":
    main()
