"""Two objectives end to end: ``metrics: [iou, latency_ms]`` searched by multi-objective TPE
and by NSGA-II, the Pareto front in results.json and the report, and the final model chosen
by ``select`` and retrained — through the real CLI, a real Redis and real worker processes."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import optuna
import pytest
import yaml

from smptune.queue.store import SweepStore

from conftest import run_cli, submit_and_wait

LATENCY = "smptune.fakes:LatencyTrainable"


def _front(points: dict[int, tuple[float, float]]) -> set[int]:
    """The trials no other dominates (iou higher, latency lower is better), by hand."""

    def dominates(a: tuple[float, float], b: tuple[float, float]) -> bool:
        return a[0] >= b[0] and a[1] <= b[1] and (a[0] > b[0] or a[1] < b[1])

    return {n for n, p in points.items() if not any(dominates(q, p) for q in points.values())}


def _write(path: Path, config: dict[str, object]) -> Path:
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


@pytest.mark.parametrize("sampler", ["tpe", "nsga2"])
def test_a_two_objective_sweep_keeps_its_front_and_retrains_the_selected_trial(
    sampler, tmp_path, redis_server, store: SweepStore, start_workers
):
    # Given a sweep of iou against latency (a larger x is slower; iou peaks at x = 1)
    config = _write(
        tmp_path / f"{sampler}.yaml",
        {
            "name": "pareto",
            "trainable": LATENCY,
            "n_trials": 12,
            "seed": 3,
            "sampler": {"type": sampler, **({"n_startup_trials": 4} if sampler == "tpe" else {})},
            "metrics": ["iou", "latency_ms"],
            "select": {"max": "iou", "where": "latency_ms <= 20"},
            "cv": {"n_folds": 2},
            "hyperparameters": {"x": {"low": 0.0, "high": 1.5}, "y": -2.0},
        },
    )

    # When two workers run it through the CLI
    start_workers("--cpu", "2")
    artifacts = tmp_path / "artifacts"
    sweep_id, result = submit_and_wait(config, redis_server.url, artifacts, timeout=280)
    assert result.returncode == 0, result.stderr + result.stdout
    assert "Pareto front (iou max, latency_ms min): trial " in result.stdout + result.stderr

    # Then every trial measured both objectives on its worker
    out = artifacts / sweep_id
    results = json.loads((out / "results.json").read_text())
    sweep = store.get_sweep(sweep_id, full=True)
    assert sweep.status == "done" and results["trials_complete"] == 12
    points = {}
    for t in store.trials(sweep_id):
        runs = [run["metrics"] for run in t.folds.values()]
        assert len(runs) == 2
        points[t.trial] = (
            sum(r["iou"] for r in runs) / 2,
            sum(r["latency_ms"] for r in runs) / 2,
        )
    # and results.json's front is the non-dominated set of the trials' means
    assert results["objectives"]["metrics"] == ["iou", "latency_ms"]
    assert results["objectives"]["modes"] == ["max", "min"]
    front = {p["trial"]: (p["iou"], p["latency_ms"]) for p in results["pareto_front"]}
    assert set(front) == _front(points) and front
    assert all(front[n] == pytest.approx(points[n]) for n in front)
    # and trials.csv holds each run's objectives, the same means
    with (out / "trials.csv").open() as fh:
        rows = {int(r["trial"]): r for r in csv.DictReader(fh)}
    from_csv = {
        n: tuple(sum(float(r[f"fold_{k}:{m}"]) for k in (0, 1)) / 2 for m in ("iou", "latency_ms"))
        for n, r in rows.items()
    }
    assert set(from_csv) == set(points) and _front(from_csv) == set(front)
    assert all(from_csv[n] == pytest.approx(points[n]) for n in points)

    # and the selected trial meets where and has the best iou of those that do
    passing = {n: p for n, p in points.items() if p[1] <= 20.0}
    assert passing, "no trial met latency_ms <= 20"
    chosen = max(passing, key=lambda n: (passing[n][0], -n))
    assert results["selected"] == chosen == results["best"]["trial"]
    assert points[chosen][1] <= 20.0 and chosen in front

    # and that trial was retrained and tested as a single-objective sweep's best is
    assert sweep.retrained_trial == chosen
    assert set(sweep.test_metrics) >= {"iou", "latency_ms"}
    best_x = store.params(sweep_id, chosen)["x"]
    assert json.loads((out / "final" / "model.json").read_text())["params"]["x"] == (
        pytest.approx(best_x)
    )
    # and the Optuna mirror is a study of both directions, each trial valued by its means
    url = f"sqlite:///{tmp_path / 'studies.db'}"
    export = run_cli(
        "producer", "results", sweep_id, "--broker", redis_server.url, "--optuna-storage", url
    )
    assert export.returncode == 0, export.stderr
    study = optuna.load_study(study_name=sweep_id, storage=url)
    assert [d.name for d in study.directions] == ["MAXIMIZE", "MINIMIZE"]
    mirrored = {t.user_attrs["smptune_trial"]: t.values for t in study.trials}
    assert {n: pytest.approx(list(p)) for n, p in points.items()} == mirrored
    assert {t.user_attrs["smptune_trial"] for t in study.best_trials} == set(front)
    # and the report shows the scatter with its front
    report = (out / "report.html").read_text()
    assert '<section id="pareto">' in report and "on the Pareto front" in report
    assert "the max iou where latency_ms &lt;= 20" in report
    assert (out / "plots" / "pareto.png").stat().st_size > 0


def test_when_no_trial_meets_where_nothing_is_retrained_and_the_results_say_why(
    tmp_path, redis_server, store: SweepStore, start_workers
):
    # Given a two-objective sweep whose bound no configuration can meet (latency >= 5 ms)
    config = _write(
        tmp_path / "strict.yaml",
        {
            "name": "strict",
            "trainable": LATENCY,
            "n_trials": 4,
            "sampler": "random",
            "metrics": ["iou", "latency_ms"],
            "select": {"max": "iou", "where": "latency_ms < 1"},
            "cv": {"n_folds": 2},
            "hyperparameters": {"x": {"low": 0.0, "high": 1.5}, "y": -2.0},
        },
    )

    # When it runs
    start_workers("--cpu", "2")
    sweep_id, result = submit_and_wait(config, redis_server.url, tmp_path / "artifacts")

    # Then it ends without a final model, saying which rule no trial met
    assert result.returncode == 0, result.stderr + result.stdout
    sweep = store.get_sweep(sweep_id, full=True)
    assert sweep.status == "done" and sweep.retrained_trial is None
    results = sweep.results
    assert results["best"] is None and results["selected"] is None
    assert "no complete trial meets select.where (latency_ms < 1)" in results["no_best"]
    # and the front still shows the trade-offs
    assert results["pareto_front"] and len(results["pareto_points"]) == 4
