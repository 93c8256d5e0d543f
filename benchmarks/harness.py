"""What the benchmarks share: a quadratic-trainable sweep, worker supervisors, the producer."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import yaml

T = TypeVar("T")


def clean_env(**extra: str) -> dict[str, str]:
    """This environment without SMPTUNE_* settings from outside, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SMPTUNE_")}
    env.update(extra)
    return env


def write_sweep(path: Path, **fields: Any) -> Path:
    """A quadratic-trainable sweep config (no retrain) with ``fields`` on top."""
    config: dict[str, Any] = {
        "name": "bench",
        "trainable": "smptune.testing:QuadraticTrainable",
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
            "smptune.workers",
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


def submit(config: Path, broker: str, env: dict[str, str], *args: str) -> str:
    """``producer submit CONFIG --broker URL ARGS``; returns the sweep id."""
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "smptune.producer",
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
