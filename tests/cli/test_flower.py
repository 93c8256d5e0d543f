"""Flower: ``producer flower`` on a real broker lists the workers and every trial, readably,
through its HTTP API and in a real (headless) browser."""

from __future__ import annotations

import base64
import html
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from smptune.errors import ConfigError
from smptune.queue.embedded_redis import EmbeddedRedis, free_port
from smptune.queue.store import SweepStore
from smptune.task_labels import trial_argsrepr

from conftest import cli_env, run_cli, submit_and_wait, wait_for, write_config

LOGIN = ("watcher", "s3cret-flower")
HOST = socket.gethostname()


class Flower:
    """A running ``producer flower`` and a client of its HTTP API."""

    def __init__(self, process: subprocess.Popen[str], port: int, log: Path) -> None:
        self.process, self.port, self.log = process, port, log
        self.base = f"http://127.0.0.1:{port}"

    def get(self, path: str, auth: tuple[str, str] | None = LOGIN) -> tuple[int, object]:
        request = urllib.request.Request(self.base + path)
        if auth is not None:
            token = base64.b64encode(":".join(auth).encode()).decode()
            request.add_header("Authorization", f"Basic {token}")
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, json.loads(response.read() or b"null")
        except urllib.error.HTTPError as exc:
            return exc.code, None
        except (urllib.error.URLError, ConnectionError):
            return 0, None


@pytest.fixture
def start_flower(tmp_path: Path) -> Iterator[Callable[[str], Flower]]:
    started: list[Flower] = []

    def start(broker: str) -> Flower:
        port = free_port()
        log = tmp_path / "flower.log"
        with log.open("w") as out:
            options = ["--broker", broker, "--port", str(port), "--basic-auth", ":".join(LOGIN)]
            process = subprocess.Popen(
                [sys.executable, "-m", "smptune.cli.producer", "flower", *options],
                stdout=out,
                stderr=subprocess.STDOUT,
                text=True,
                env=cli_env(),
                start_new_session=True,
            )
        flower = Flower(process, port, log)
        started.append(flower)
        try:
            wait_for(lambda: flower.get("/api/workers?status=true")[0] == 200, 30)
        except AssertionError:
            raise AssertionError(f"Flower did not answer:\n{log.read_text()}") from None
        return flower

    yield start
    for flower in started:
        if flower.process.poll() is None:
            flower.process.send_signal(signal.SIGTERM)
            try:
                flower.process.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(flower.process.pid, signal.SIGKILL)
                flower.process.wait()


def _sweep_watched_by_flower(
    tmp_path: Path, redis_server: EmbeddedRedis, start_workers, start_flower
) -> tuple[Flower, str, dict[int, str]]:
    """Flower and two CPU workers, then a six-trial sweep run to its end: Flower, the sweep
    id, and the label each trial must carry."""
    flower = start_flower(redis_server.url)
    start_workers("--cpu", "2")
    names = {f"cpu0@{HOST}", f"cpu1@{HOST}"}
    wait_for(lambda: names <= set(flower.get("/api/workers?status=true")[1] or {}), 60)

    sweep_id, result = submit_and_wait(
        write_config(tmp_path / "sweep.yaml"), redis_server.url, tmp_path / "artifacts"
    )
    assert result.returncode == 0, result.stderr + result.stdout
    store = SweepStore.from_url(redis_server.url)
    labels = {n: trial_argsrepr(sweep_id, n, store.params(sweep_id, n), "xy") for n in range(6)}
    return flower, sweep_id, labels


def test_flower_lists_the_workers_and_every_trial_with_its_parameters(
    tmp_path, redis_server, start_workers, start_flower
):
    # Given Flower started by the producer on the sweep's broker, and a sweep run to its end
    flower, sweep_id, labels = _sweep_watched_by_flower(
        tmp_path, redis_server, start_workers, start_flower
    )

    # Then Flower's API asks for the login
    assert flower.get("/api/tasks", auth=None)[0] == 401
    assert flower.get("/api/tasks", auth=(LOGIN[0], "wrong"))[0] == 401

    # and lists both workers by their names (inspected live)
    status, workers = flower.get("/api/workers?refresh=1")
    assert status == 200
    assert {f"cpu0@{HOST}", f"cpu1@{HOST}"} <= set(workers)

    # and every trial once, finished on one of them, its args the sweep, trial and parameters
    def trials() -> dict:
        tasks = flower.get("/api/tasks?taskname=smptune.cv_trial")[1] or {}
        done = all(t["state"] == "SUCCESS" for t in tasks.values())
        return tasks if len(tasks) == 6 and done else {}

    tasks = wait_for(trials, 30)
    assert sorted(tasks) == sorted(f"{sweep_id}-trial-{n}" for n in range(6))
    for n, label in labels.items():
        task = tasks[f"{sweep_id}-trial-{n}"]
        assert task["args"] == label
        assert re.fullmatch(rf"trial {n}: x=\S+, y=\S+ \(sweep={sweep_id}\)", label)
        assert task["worker"] in (f"cpu0@{HOST}", f"cpu1@{HOST}")


def _chromium() -> str | None:
    names = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
    return next((path for path in map(shutil.which, names) if path), None)


@pytest.mark.skipif(
    _chromium() is None,
    reason="no chromium on PATH (scripts/ci-deps.sh installs it when run as root)",
)
def test_flowers_tasks_page_shows_every_trial_in_a_browser(
    tmp_path, redis_server, start_workers, start_flower
):
    # Given Flower and a finished sweep
    flower, sweep_id, labels = _sweep_watched_by_flower(
        tmp_path, redis_server, start_workers, start_flower
    )

    # When a headless browser loads the tasks page (its table is filled by JavaScript)
    browser = [_chromium() or "", "--headless", "--disable-gpu", "--virtual-time-budget=10000"]
    browser += [f"--user-data-dir={tmp_path / 'chromium'}"]
    if os.geteuid() == 0:
        browser.append("--no-sandbox")
    url = f"http://{LOGIN[0]}:{LOGIN[1]}@127.0.0.1:{flower.port}/tasks"
    page = subprocess.run(
        [*browser, "--dump-dom", url], capture_output=True, text=True, timeout=120
    )
    assert page.returncode == 0, page.stderr[-2000:]

    # Then each trial is a row of the rendered table, with its label and its worker
    assert "<title>Tasks" in page.stdout, page.stdout[:2000]
    for n, label in labels.items():
        row = re.search(rf'<tr id="{re.escape(sweep_id)}-trial-{n}".*?</tr>', page.stdout)
        assert row is not None, f"trial {n} is not on the page"
        assert f">{html.escape(label, quote=False)}</td>" in row.group(0)
        assert re.search(rf">cpu[01]@{re.escape(HOST)}<", row.group(0))


def test_flower_needs_a_broker_and_a_login_beyond_this_machine():
    result = run_cli("producer", "flower")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "producer: error: flower: no broker: pass --broker URL or set SMPTUNE_BROKER_URL"
    ]

    exposed = run_cli("producer", "flower", "--broker", "redis://h:6379/0", "--address", "0.0.0.0")
    assert exposed.returncode == 2
    assert exposed.stderr.startswith("producer: error: --address 0.0.0.0: ")
    assert "--basic-auth" in exposed.stderr and len(exposed.stderr.strip().splitlines()) == 1

    no_password = run_cli(
        "producer",
        "flower",
        "--broker",
        "redis://h:6379/0",
        "--address",
        "0.0.0.0",
        FLOWER_BASIC_AUTH="admin:",
    )
    assert no_password.returncode == 2 and "FLOWER_BASIC_AUTH" in no_password.stderr

    unreachable = run_cli("producer", "flower", "--broker", f"redis://127.0.0.1:{free_port()}/0")
    assert unreachable.returncode == 3
    assert len(unreachable.stderr.strip().splitlines()) == 1, unreachable.stderr


def test_flowers_command_line_and_environment_carry_no_login():
    from smptune.cli.flower import (
        BASIC_AUTH_ENV,
        TASKS_COLUMNS,
        check_options,
        flower_argv,
        flower_env,
    )

    argv = flower_argv(5555, "127.0.0.1")
    assert argv[:6] == [sys.executable, "-m", "celery", "--app", "smptune.worker.app", "flower"]
    assert f"--tasks_columns={TASKS_COLUMNS}" in argv and "--port=5555" in argv
    env = flower_env("redis://h:6379/0", ":".join(LOGIN))
    assert env["SMPTUNE_BROKER_URL"] == "redis://h:6379/0"
    assert env[BASIC_AUTH_ENV] == ":".join(LOGIN) and LOGIN[1] not in " ".join(argv)
    check_options(5555, "localhost", None)  # this machine only: no login needed
    check_options(5555, "::1", None)
    for port, address, login in [(0, "127.0.0.1", None), (5555, "", None), (1, "h", "a:")]:
        with pytest.raises(ConfigError):
            check_options(port, address, login)
