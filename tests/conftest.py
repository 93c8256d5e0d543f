"""Fixtures that start what the tests need: a real Redis on a free port and real
``workers`` processes, driven through the real CLIs."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from celery import Celery

from smptune.queue.embedded_redis import EmbeddedRedis
from smptune.queue.store import SweepStore
from smptune.training.cache import CACHE_ENV
from smptune.worker.app import configure, create_app

TESTS_DIR = Path(__file__).resolve().parent
REPO = TESTS_DIR.parent


# What a test run may leave in the checkout: the caches of Python and the tools.
TOOL_CACHES = ("__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache", ".egg-info")
_BEFORE = pytest.StashKey[set[str] | None]()  # the checkout's untracked files at the start
_LEFT = pytest.StashKey[list[str]]()  # and the ones the run added


def cli_env(**extra: str) -> dict[str, str]:
    """The environment of a CLI run: no broker from the outside, the test helpers importable,
    the dataset cache of this test session (``session_cache``)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SMPTUNE_") or k == CACHE_ENV}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(TESTS_DIR), env.get("PYTHONPATH")]))
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


def run_cli(*args: str | Path, timeout: float = 300, **env: str) -> subprocess.CompletedProcess:
    """Run ``python -m smptune.<command> ...`` and capture its output."""
    command, *rest = (str(a) for a in args)
    module = {"producer": "smptune.cli.producer", "workers": "smptune.cli.workers"}[command]
    return subprocess.run(
        [sys.executable, "-m", module, *rest],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=cli_env(**env),
        stdin=subprocess.DEVNULL,
    )


def one_line_error(result, code: int, *needles: str, command: str = "producer") -> None:
    """``result`` exited ``code`` with one line on stderr, ``<command>: error: ...``, that
    holds every needle, and no traceback."""
    assert result.returncode == code, (result.returncode, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"{command}: error: ")
    assert "Traceback" not in result.stderr
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])


def nothing_enqueued(url: str) -> None:
    """The broker at ``url`` holds no sweep, no message, no key at all."""
    store = SweepStore.from_url(url)
    assert store.list_sweeps() == []
    assert store.r.llen("smptune") == 0
    assert store.r.dbsize() == 0, store.r.keys("*")


def submit_and_wait(
    config: Path, broker: str, artifacts: Path, timeout: float = 300
) -> tuple[str, subprocess.CompletedProcess]:
    """``producer submit CONFIG --broker URL --wait``: the sweep id it printed, and the run."""
    result = run_cli(
        "producer",
        "submit",
        config,
        "--broker",
        broker,
        "--wait",
        "--artifacts",
        artifacts,
        timeout=timeout,
    )
    return (result.stdout.split() or [""])[0], result


def submit_in_background(config: Path, broker: str, artifacts: Path) -> subprocess.Popen[str]:
    """``producer submit CONFIG --broker URL --wait`` started, not waited for (its own session,
    output captured)."""
    return subprocess.Popen(
        [
            *(sys.executable, "-m", "smptune.cli.producer", "submit", str(config)),
            *("--broker", broker, "--wait", "--artifacts", str(artifacts)),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=cli_env(),
        start_new_session=True,
    )


@pytest.fixture(autouse=True, scope="session")
def session_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Decoded datasets go to a folder of this session, not to ``~/.cache/smptune``: in this
    process and, through ``cli_env``, in the workers the tests start."""
    folder = tmp_path_factory.mktemp("dataset-cache")
    before = os.environ.get(CACHE_ENV)
    os.environ[CACHE_ENV] = str(folder)
    yield folder
    if before is None:
        os.environ.pop(CACHE_ENV, None)
    else:
        os.environ[CACHE_ENV] = before


@pytest.fixture(autouse=True)
def work_in_tmp_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Each test runs in its own ``tmp_path``: what a command writes relative to the current
    folder (``./smptune-results``, ``smptune-optuna.db``, logs) lands there, in this process
    and in every process it starts, which inherit the folder."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def checkout_entries(repo: Path = REPO) -> set[str] | None:
    """The untracked and ignored paths in the checkout ``repo`` (``git status``; an ignored
    folder and what it holds at its top, as ``smptune-results/<sweep>``), tool caches left
    out; None where it is not a git checkout."""
    try:
        listed = subprocess.run(
            [
                *("git", "status", "--porcelain", "-z"),
                *("--ignored=matching", "--untracked-files=all"),
            ],
            cwd=repo,
            capture_output=True,
            text=True,
            timeout=60,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if listed.returncode != 0:
        return None
    entries = {e[3:] for e in listed.stdout.split("\0") if e[:2] in ("??", "!!")}
    for folder in [e for e in entries if e.endswith("/")]:
        with contextlib.suppress(OSError):  # gone since git listed it
            entries.update(f"{folder}{child.name}" for child in (repo / folder).iterdir())
    # a new .py file is someone's edit during the run, not a test's output
    return {e for e in entries if not any(p in e for p in TOOL_CACHES) and not e.endswith(".py")}


def pytest_sessionstart(session: pytest.Session) -> None:
    if not hasattr(session.config, "workerinput"):  # the controller, or a run without xdist
        session.config.stash[_BEFORE] = checkout_entries()


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Fail the run when the tests left new files in the checkout (they must write only under
    their ``tmp_path``); ``pytest_terminal_summary`` names them."""
    before = session.config.stash.get(_BEFORE, None)
    after = checkout_entries() if before is not None else None
    if before is None or after is None or not (new := sorted(after - before)):
        return
    session.config.stash[_LEFT] = new
    if session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter, config: pytest.Config) -> None:
    if new := config.stash.get(_LEFT, []):
        terminalreporter.write_sep("=", "files left in the checkout", red=True, bold=True)
        terminalreporter.write_line(f"the tests left {len(new)} new file(s) in {REPO}:")
        for entry in new:
            terminalreporter.write_line(f"  {entry}")


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[EmbeddedRedis]:
    server = EmbeddedRedis(data_dir=tmp_path / "redis").start()
    yield server
    server.stop()


@pytest.fixture
def store(redis_server: EmbeddedRedis) -> SweepStore:
    return SweepStore.from_url(redis_server.url)


@pytest.fixture
def celery_app(redis_server: EmbeddedRedis) -> Iterator[Celery]:
    """A producer-side Celery app on this test's Redis, as anyone with access could build."""
    app = create_app()
    configure(app, redis_server.url, send_only=True)
    yield app
    app.close()


@dataclass
class WorkersProcess:
    """A running ``workers start`` supervisor and where its workers log."""

    process: subprocess.Popen[str]
    log_dir: Path
    output: Path

    def logs(self) -> str:
        parts = [self.output.read_text()] if self.output.exists() else []
        parts += [p.read_text() for p in sorted(self.log_dir.glob("*.log"))]
        return "\n".join(parts)

    def stop(self, timeout: float = 60) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        return self.process.returncode


@pytest.fixture
def start_workers(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[Callable[..., WorkersProcess]]:
    """Start ``workers start ARGS`` on ``broker`` (default: this test's ``redis_server``)."""
    started: list[WorkersProcess] = []

    def start(
        *args: str, name: str = "workers", broker: str | None = None, **env: str
    ) -> WorkersProcess:
        if broker is None:
            broker = request.getfixturevalue("redis_server").url
        log_dir = tmp_path / f"{name}-logs"
        log_dir.mkdir()
        output = tmp_path / f"{name}.out"
        with output.open("w") as out:
            process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "smptune.cli.workers",
                    "start",
                    "--broker",
                    broker,
                    "--logfile-dir",
                    str(log_dir),
                    "--shutdown-timeout",
                    "20",
                    *args,
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                text=True,
                env=cli_env(**env),
                start_new_session=True,
            )
        workers = WorkersProcess(process, log_dir, output)
        started.append(workers)
        return workers

    yield start
    for workers in started:
        workers.stop()


def write_config(path: Path, **overrides: object) -> Path:
    """A quadratic-trainable sweep config, with ``overrides`` on top."""
    config: dict[str, object] = {
        "name": "quad",
        "trainable": "smptune.fakes:QuadraticTrainable",
        "n_trials": 6,
        "seed": 3,
        "metric": "score",
        "cv": {"n_folds": 3},
        "hyperparameters": {
            "x": {"low": -2.0, "high": 3.0},
            "y": {"distribution": "uniform", "low": -4.0, "high": 1.0},
        },
    }
    config.update(overrides)
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def wait_for(predicate: Callable[[], object], timeout: float = 60, interval: float = 0.2) -> object:
    """Poll ``predicate`` until it returns something truthy; fail the test after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout} s")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The few tests marked ``slow`` (minutes each) first, the rest in their order: with
    parallel test processes (scripts/test.sh runs three), the longest start at once instead
    of last, and all processes end at about the same time."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


@pytest.fixture
def isolated_cache(tmp_path_factory, monkeypatch):
    """A dataset cache of the test's own, and no datasets held by this process around it
    (the training tests use it with ``pytestmark``)."""
    from smptune.training.data import clear_cache

    monkeypatch.setenv(CACHE_ENV, str(tmp_path_factory.mktemp("cache")))
    clear_cache()
    yield
    clear_cache()
