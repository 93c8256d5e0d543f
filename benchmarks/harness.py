"""What the benchmarks share: a quadratic-trainable sweep, worker supervisors, the producer,
and :class:`Row`, one line of the table ``python -m benchmarks`` prints."""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TypeVar

import yaml
from celery.states import READY_STATES

from benchmarks.table import Row, print_table
from smptune.queue.store import SweepStore
from smptune.records import SweepRecord

T = TypeVar("T")

REPO = Path(__file__).resolve().parent.parent


def clean_env(**extra: str) -> dict[str, str]:
    """This environment without SMPTUNE_* settings from outside, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SMPTUNE_")}
    # workers import benchmark trainables (``--allow-trainable benchmarks.x:Y``)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    env.update(extra)
    return env


def write_sweep(path: Path, **fields: Any) -> Path:
    """A quadratic-trainable sweep config (no retrain) with ``fields`` on top."""
    config: dict[str, Any] = {
        "name": "bench",
        "trainable": "smptune.fakes:QuadraticTrainable",
        "metric": "score",
        "cv": {"n_folds": 2},
        "retrain_and_test": False,
    }
    config.update(fields)
    path.write_text(yaml.safe_dump(config))
    return path


def start_workers(broker: str, *args: str, env: dict[str, str]) -> subprocess.Popen:
    """A ``workers start`` supervisor in its own process group."""
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "smptune.cli.workers",
            "start",
            "--broker",
            broker,
            "--loglevel",
            "WARNING",
            *args,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
        start_new_session=True,
    )


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(60)


def kill(process: subprocess.Popen) -> None:
    """SIGKILL a supervisor's whole process group: teardown after the measurement is taken."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)


def submit(config: Path, broker: str, env: dict[str, str], *args: str) -> str:
    """``producer submit CONFIG --broker URL ARGS``; returns the sweep id."""
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "smptune.cli.producer",
            "submit",
            str(config),
            "--broker",
            broker,
            *args,
        ],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    return done.stdout.split()[0]


def wait_for(predicate: Callable[[], T | None], timeout: float, interval: float = 0.05) -> T:
    """Poll until ``predicate`` returns something truthy, else :class:`TimeoutError`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise TimeoutError(f"condition not met within {timeout} s")


def finalized(store: SweepStore, sweep_id: str, timeout: float) -> tuple[SweepRecord, float]:
    """The sweep once its ``finalize_sweep`` task has finished (results written, the worker
    free again), and when that task ended (its Celery result's ``date_done``)."""

    def done() -> tuple[SweepRecord, float] | None:
        raw = store.r.get(f"celery-task-meta-{sweep_id}-finalize")
        if raw is None or json.loads(raw).get("status") not in READY_STATES:
            return None
        sweep = store.get_sweep(sweep_id)
        date_done = datetime.fromisoformat(json.loads(raw)["date_done"])
        if date_done.tzinfo is None:
            date_done = date_done.replace(tzinfo=timezone.utc)
        return sweep, date_done.timestamp()

    return wait_for(done, timeout, interval=0.2)


def warm_up(store: SweepStore, broker: str, env: dict[str, str], tmp: Path, workers: int) -> None:
    """Run a sweep of ``2 * workers`` short trials to the end: every worker is up and its pool
    child has imported the task path, so start-up is not counted as per-trial cost."""
    config = write_sweep(
        tmp / "warm-up.yaml",
        name="warm-up",
        n_trials=2 * workers,
        hyperparameters={"x": {"low": 0.0, "high": 1.0}, "sleep": 0.1},
    )
    finalized(store, submit(config, broker, env, "--artifacts", str(tmp)), 120)


def run_alone(rows: Callable[[bool], list[Row]], doc: str | None, quick_help: str = "") -> None:
    """``python -m benchmarks.<name> [--quick]``: one benchmark's rows as the table."""
    parser = argparse.ArgumentParser(description=(doc or "").split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help=quick_help or "the short form")
    args = parser.parse_args()
    print_table(rows(args.quick))
