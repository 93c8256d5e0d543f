"""The tests write only under their ``tmp_path``: each runs there, the processes it starts too,
and a run that leaves new files in the checkout fails (``conftest.pytest_sessionfinish``)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from smptune.queue.store import SweepStore

from conftest import CACHE_ENV, checkout_entries, run_cli, write_config


def test_a_test_runs_in_its_tmp_path_with_a_dataset_cache_of_the_session(
    tmp_path: Path, tmp_path_factory
):
    assert Path.cwd() == tmp_path
    cache = Path(os.environ[CACHE_ENV])
    assert cache.parent == tmp_path_factory.getbasetemp()
    assert not cache.is_relative_to(Path.home())


def test_a_sweep_submitted_without_artifacts_keeps_its_results_under_tmp_path(
    tmp_path: Path, redis_server, store: SweepStore
):
    # When a sweep is submitted with the default --artifacts (./smptune-results)
    result = run_cli(
        "producer", "submit", write_config(tmp_path / "s.yaml"), "--broker", redis_server.url
    )
    assert result.returncode == 0, result.stderr
    # Then its results are to go to this test's folder, not to the checkout
    sweep = store.get_sweep(result.stdout.split()[0])
    assert Path(sweep.artifacts_dir) == (tmp_path / "smptune-results").resolve()


def _git(repo: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True)


def test_new_results_in_a_checkout_are_seen_and_tool_caches_are_not(tmp_path: Path):
    # Given a checkout that ignores smptune-results/ and already holds one sweep's results
    repo = tmp_path / "checkout"
    repo.mkdir()
    _git(repo, "init", "-q")
    (repo / ".gitignore").write_text("smptune-results/\n__pycache__/\n")
    (repo / "smptune-results" / "old").mkdir(parents=True)
    (repo / "module.py").write_text("")
    _git(repo, "add", ".gitignore", "module.py")
    before = checkout_entries(repo)
    assert before == {"smptune-results/", "smptune-results/old"}

    # When a run adds another sweep's results, a database file and Python's bytecode cache
    (repo / "smptune-results" / "new").mkdir()
    (repo / "smptune-optuna.db").write_text("")
    (repo / "__pycache__").mkdir()
    (repo / "__pycache__" / "module.cpython-312.pyc").write_text("")

    # Then the results and the database are new entries, the cache is not
    after = checkout_entries(repo)
    assert after is not None
    assert after - before == {"smptune-results/new", "smptune-optuna.db"}


def test_outside_a_git_checkout_there_is_nothing_to_check(tmp_path: Path):
    assert checkout_entries(tmp_path) is None
