"""A sweep end to end: the real CLI, a real Redis, real worker processes."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import yaml

from smptune.config import load_config
from smptune.queue.store import SweepStore

from conftest import run_cli, submit_and_wait, write_config


def _submit_and_wait(config: Path, broker: str, artifacts: Path) -> tuple[str, str]:
    sweep_id, result = submit_and_wait(config, broker, artifacts)
    assert result.returncode == 0, result.stderr + result.stdout
    return sweep_id, result.stdout


def test_sweep_runs_every_trial_once_and_retrains_the_best(
    tmp_path, redis_server, store: SweepStore, start_workers
):
    # Given two CPU workers and a six-trial, three-fold sweep
    start_workers("--cpu", "2")
    config = write_config(tmp_path / "sweep.yaml")

    # When it is submitted and waited for
    sweep_id, output = _submit_and_wait(config, redis_server.url, tmp_path / "artifacts")

    # Then the chord fired once with every trial in the results, each with every fold
    sweep = store.get_sweep(sweep_id, full=True)
    assert sweep.status == "done"
    assert sweep.finalize_runs == 1
    assert sweep.finalize_duplicates == 0 and sweep.finalize_fallback is None
    results = sweep.results
    assert sorted(t["trial"] for t in results["ranking"]) == list(range(6))
    assert all(t["status"] == "complete" and len(t["fold_scores"]) == 3 for t in results["ranking"])
    # and the ranking is by mean fold score, best first
    scores = [t["score"] for t in results["ranking"]]
    assert scores == sorted(scores, reverse=True)
    assert results["best"]["trial"] == results["ranking"][0]["trial"]
    # and retrain-and-test ran on the best configuration
    best_params = results["best"]["params"]
    expected = 1 / (1 + (best_params["x"] - 1) ** 2 + (best_params["y"] + 2) ** 2)
    assert abs(sweep.test_metrics["score"] - expected) < 1e-9
    assert "test metrics of the best configuration" in output

    # and the results folder holds what a user reads
    out = tmp_path / "artifacts" / sweep_id
    with (out / "trials.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert [int(r["trial"]) for r in rows] == list(range(6))
    assert {"x", "y", "fold_0", "fold_1", "fold_2", "mean", "std", "worker"} <= set(rows[0])
    assert {r["worker"].split("@")[0] for r in rows} <= {"cpu0", "cpu1"}
    both = json.loads((out / "final" / "test_metrics.json").read_text())
    assert both == {"retrained_model": sweep.test_metrics, "fold_ensemble": None}
    written = json.loads((out / "results.json").read_text())
    assert written["best"]["trial"] == results["best"]["trial"]
    # with Optuna's names for the answer too
    assert written["best_params"] == {"x": best_params["x"], "y": best_params["y"]}
    assert written["best_value"] == results["best"]["score"]
    assert written["direction"] == "maximize"
    model = json.loads((out / "final" / "model.json").read_text())
    assert model["params"] == best_params

    # and best_config.yaml is a valid config that trains the best configuration again
    again = load_config(out / "best_config.yaml")
    dry = run_cli("producer", "submit", out / "best_config.yaml", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert again.n_trials == 1
    assert json.loads(dry.stdout)["params"] == best_params


def test_a_failing_configuration_is_recorded_and_the_sweep_completes(
    tmp_path, redis_server, store: SweepStore, start_workers
):
    # Given a grid where one configuration raises in every fold
    start_workers("--cpu", "1")
    config = write_config(
        tmp_path / "sweep.yaml",
        n_trials="grid",
        hyperparameters={"x": [0.0, 1.0, 2.0], "y": -2.0, "fail": [False, True]},
    )

    # When it runs to the end
    sweep_id, _ = _submit_and_wait(config, redis_server.url, tmp_path / "artifacts")

    # Then the failed trials carry their message and rank below every complete one
    results = store.get_sweep(sweep_id, full=True).results
    failed = [t for t in results["ranking"] if t["status"] == "failed"]
    complete = [t for t in results["ranking"] if t["status"] == "complete"]
    assert len(failed) == 3 and len(complete) == 3
    assert all("configured to fail" in t["error"] for t in failed)
    assert [t["rank"] for t in complete] == [1, 2, 3]
    # and the best is chosen among the rest: x = 1, y = -2 is the optimum
    assert results["best"]["params"]["x"] == 1.0
    assert results["best"]["params"]["fail"] is False
    rows = list(csv.DictReader((tmp_path / "artifacts" / sweep_id / "trials.csv").open()))
    assert sorted(r["status"] for r in rows) == ["complete"] * 3 + ["failed"] * 3
    assert store.get_sweep(sweep_id).finalize_runs == 1


def test_dry_run_prints_the_same_configurations_twice_and_queues_nothing(tmp_path):
    config = write_config(tmp_path / "sweep.yaml", n_trials=5)

    first = run_cli("producer", "submit", config, "--dry-run", "--broker", "redis://127.0.0.1:1")
    second = run_cli("producer", "submit", config, "--dry-run")

    assert first.returncode == 0 and second.returncode == 0, first.stderr + second.stderr
    lines = [json.loads(line) for line in first.stdout.splitlines()]
    assert [line["trial"] for line in lines] == list(range(5))
    assert first.stdout == second.stdout
    # a different seed gives different configurations
    other = run_cli(
        "producer", "submit", write_config(tmp_path / "b.yaml", n_trials=5, seed=4), "--dry-run"
    )
    assert other.stdout != first.stdout


def test_grid_search_lists_the_whole_product(tmp_path):
    config = write_config(
        tmp_path / "sweep.yaml",
        n_trials="grid",
        hyperparameters={"x": [0.0, 1.0], "y": [1.0, 2.0, 3.0], "sleep": 0.0},
    )
    result = run_cli("producer", "submit", config, "--dry-run")
    assert result.returncode == 0, result.stderr
    combos = {
        (json.loads(line)["params"]["x"], json.loads(line)["params"]["y"])
        for line in result.stdout.splitlines()
    }
    assert combos == {(x, y) for x in (0.0, 1.0) for y in (1.0, 2.0, 3.0)}


def test_grid_with_a_continuous_entry_exits_2_naming_the_key(
    tmp_path, redis_server, store: SweepStore
):
    config = write_config(tmp_path / "sweep.yaml", n_trials="grid")
    result = run_cli("producer", "submit", config, "--broker", redis_server.url)
    assert result.returncode == 2
    assert "hyperparameters.x" in result.stderr and "grid" in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert store.list_sweeps() == []
    assert store.r.llen("smptune") == 0


def test_status_results_and_list_read_a_finished_sweep(
    tmp_path, redis_server, store: SweepStore, start_workers
):
    start_workers("--cpu", "1")
    sweep_id, _ = _submit_and_wait(
        write_config(tmp_path / "s.yaml", n_trials=3), redis_server.url, tmp_path / "artifacts"
    )

    status = run_cli("producer", "status", sweep_id, "--json", SMPTUNE_BROKER_URL=redis_server.url)
    assert status.returncode == 0, status.stderr
    snap = json.loads(status.stdout)
    assert snap["status"] == "done"
    assert (snap["folds_done"], snap["folds_total"]) == (9, 9)
    assert snap["trials_complete"] == 3 and snap["running"] == []

    human = run_cli("producer", "status", sweep_id, "--broker", redis_server.url)
    assert "folds 9/9" in human.stdout and "[done]" in human.stdout

    out = tmp_path / "elsewhere"
    results = run_cli(
        "producer", "results", sweep_id, "--broker", redis_server.url, "--out", out, "--json"
    )
    assert results.returncode == 0, results.stderr
    data = json.loads(results.stdout)
    assert data["status"] == "done" and len(data["ranking"]) == 3
    assert (out / "trials.csv").exists() and (out / "final" / "test_metrics.json").exists()
    assert yaml.safe_load((out / "best_config.yaml").read_text())["n_trials"] == 1

    listing = run_cli("producer", "list", "--broker", redis_server.url)
    assert sweep_id in listing.stdout and "done" in listing.stdout
