"""The Python API (smptune.api) driven as a notebook would: real Redis, real workers."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import redis

from smptune import api
from smptune.errors import ConfigError, SweepNotFoundError
from smptune.queue.store import SweepStore

from conftest import cli_env

QUADRATIC = {
    "name": "notebook",
    "trainable": "smptune.fakes:QuadraticTrainable",
    "n_trials": 4,
    "seed": 1,
    "metric": "score",
    "cv": {"n_folds": 2},
    "hyperparameters": {"x": {"low": -2.0, "high": 3.0}, "y": [-2.0, 0.0]},
}


def test_submit_wait_and_read_a_sweep_from_python(
    tmp_path, redis_server, store: SweepStore, start_workers
):
    # Given a worker, and a config as a notebook holds it: a dict
    start_workers("--cpu", "1")
    sweep = api.submit(QUADRATIC, broker=redis_server.url, artifacts=tmp_path / "out")

    # When it is waited for
    assert sweep.wait(timeout_s=120, poll_s=0.2) == "done"

    # Then its trials are rows as trials.csv has them, best first by their rank
    rows = sweep.trials()
    assert [r["trial"] for r in rows] == [0, 1, 2, 3]
    assert all(r["status"] == "complete" and r["fold_0"] is not None for r in rows)
    best = min(rows, key=lambda r: r["rank"])
    assert best["mean"] == max(r["mean"] for r in rows)
    # and the answer carries Optuna's names, and the final model's test metrics
    assert sweep.best_params == {"x": best["x"], "y": best["y"]}
    assert sweep.best_value == best["mean"]
    assert sweep.test_metrics and sweep.test_metrics["score"] > 0
    # and the results folder can be written anywhere
    out = sweep.write_results(tmp_path / "copy")
    assert json.loads((out / "results.json").read_text())["best_value"] == sweep.best_value
    assert (out / "report.html").is_file()
    # and the same sweep is found again by id and in the broker's list
    again = api.connect(sweep.id, broker=redis_server.url)
    assert again.status == "done" and again.progress().trials_finished == 4
    assert sweep.id in [s.id for s in api.sweeps(broker=redis_server.url)]
    assert sweep.cancel() is False  # it has ended


def test_a_timeout_leaves_the_sweep_running_and_cancel_stops_it(tmp_path, redis_server):
    # Given a sweep with no worker to run it
    sweep = api.submit(QUADRATIC, broker=redis_server.url, artifacts=tmp_path / "out")
    # Then waiting a moment times out, and cancelling it is recorded
    with pytest.raises(TimeoutError, match=f"sweep {sweep.id} is still queued"):
        sweep.wait(timeout_s=0.5, poll_s=0.1)
    assert sweep.cancel() is True
    assert sweep.record.cancel_requested


def test_bad_input_raises_one_clear_error_and_records_nothing(redis_server, store: SweepStore):
    bad = {**QUADRATIC, "cv": {"n_folds": 1}}
    with pytest.raises(ConfigError, match="n_folds"):
        api.submit(bad, broker=redis_server.url)
    assert store.list_sweeps() == []
    with pytest.raises(SweepNotFoundError, match="no sweep 'nope'"):
        api.connect("nope", broker=redis_server.url)
    with pytest.raises(ConfigError, match="no broker"):
        api.sweeps(broker=None)


def test_a_local_cluster_runs_a_sweep_and_is_gone_after_the_block(tmp_path, monkeypatch):
    # Given no broker anywhere: the embedded Redis and one CPU worker, for a with-block
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SMPTUNE_BROKER_URL", raising=False)
    with api.local(cpu_workers=1, log_dir=tmp_path / "logs") as broker:
        sweep = api.submit(QUADRATIC, broker=broker, artifacts=tmp_path / "out")
        assert sweep.wait(timeout_s=180, poll_s=0.2) == "done"
        assert len(sweep.trials()) == 4
    # Then the results are on disk and the embedded Redis has stopped
    assert (tmp_path / "out" / sweep.id / "results.json").is_file()
    with pytest.raises(redis.exceptions.ConnectionError):
        redis.Redis.from_url(broker, socket_connect_timeout=1).ping()


def test_the_api_does_not_import_torch():
    code = "import sys, smptune.api; print('torch' in sys.modules, 'lightning' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=cli_env(), check=True
    )
    assert result.stdout.split() == ["False", "False"]
