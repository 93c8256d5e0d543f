"""Search and scoring end to end: an adaptive sampler asked when each trial starts, fold-level
pruning, the time budget, several metrics and several seeds per fold — through the real CLI,
a real Redis and real worker processes."""

from __future__ import annotations

import csv
import json
import math
import statistics
from pathlib import Path

import pytest

from smptune.config import config_from_dict, load_config
from smptune.errors import ConfigError
from smptune.queue.store import RECORDED, SweepStore
from smptune.queue.submit import plan_configurations
from smptune.search.scoring import Scoring

from conftest import run_cli, submit_and_wait, wait_for, write_config

QUAD = "smptune.fakes:QuadraticTrainable"


def _csv_rows(path: Path) -> list[dict[str, str]]:
    with path.open() as fh:
        return list(csv.DictReader(fh))


def _finish(store: SweepStore, sweep_id: str, trial: int, params: dict, score: float) -> None:
    store.set_params_once(sweep_id, trial, params)
    store.record_fold(sweep_id, trial, 0, {"metrics": {"score": score}, "best_epoch": 1})
    assert store.finish_trial(sweep_id, trial, {"status": "complete", "score": score}) == RECORDED


def test_tpe_asks_from_the_finished_trials_and_keeps_parallel_trials_apart(store: SweepStore):
    from smptune.worker.asking import choose_params

    # Given a TPE sweep whose 20 finished trials score best near x = 1
    config = config_from_dict(
        {
            "trainable": QUAD,
            "n_trials": 40,
            "sampler": {"type": "tpe", "n_startup_trials": 5},
            "metric": "score",
            "cv": {"n_folds": 2},
            "hyperparameters": {"x": {"low": -4.0, "high": 6.0}, "y": -2.0},
        }
    )
    store.create_sweep("s", config.to_dict(), [], 2, "/tmp", n_trials=40)
    for n in range(20):
        x = -4.0 + 10.0 * n / 19
        _finish(store, "s", n, {"x": x, "y": -2.0}, 1 / (1 + (x - 1) ** 2))
    # and two trials running now, one of them right at the optimum
    store.set_params_once("s", 20, {"x": 1.0, "y": -2.0})
    store.trial_started("s", 20, "cpu0@h", "")

    # When ten more trials start, one after another as workers free up
    defaults = {"sleep": 0.0}
    asked = [choose_params(store, config, "s", n, defaults) for n in range(21, 31)]

    # Then the sampler learnt from the finished trials: its choices crowd around x = 1,
    # where uniform sampling on [-4, 6] would have a median distance of 2.5
    xs = [p["x"] for p in asked]
    assert statistics.median(abs(x - 1.0) for x in xs) < 1.0
    assert all(-4.0 <= x <= 6.0 for x in xs)
    # and every configuration is complete, recorded, and none repeats a running one
    assert all(p == {"sleep": 0.0, "x": p["x"], "y": -2.0} for p in asked)
    assert len({p["x"] for p in asked} | {1.0}) == 11
    assert [store.params("s", n) for n in range(21, 31)] == asked
    # and a second copy of a trial gets the configuration its first copy was given
    assert choose_params(store, config, "s", 25, defaults) == asked[4]


def test_an_adaptive_sweep_chooses_each_configuration_when_its_trial_starts(
    tmp_path, redis_server, store: SweepStore, start_workers
):
    # Given a TPE sweep submitted before any worker runs
    config = write_config(
        tmp_path / "tpe.yaml",
        n_trials=10,
        sampler={"type": "tpe", "n_startup_trials": 4},
        hyperparameters={
            "x": {"type": "float", "low": -2.0, "high": 3.0},
            "y": [-3.0, -2.0, 0.0, 1.0],
        },
    )
    dry = run_cli("producer", "submit", config, "--dry-run")
    assert dry.returncode == 0 and "chosen at run time" in dry.stderr
    space = [json.loads(line) for line in dry.stdout.splitlines()]
    assert [(d["hyperparameter"], d["distribution"]["distribution"]) for d in space] == [
        ("x", "uniform"),
        ("y", "choice"),
    ]
    submitted = run_cli("producer", "submit", config, "--broker", redis_server.url)
    assert submitted.returncode == 0, submitted.stderr
    sweep_id = submitted.stdout.split()[0]
    # Then no configuration exists yet
    assert all(store.params_or_none(sweep_id, n) is None for n in range(10))

    # When two workers run it
    start_workers("--cpu", "2")
    wait_for(lambda: store.get_sweep(sweep_id).status == "done", timeout=240)

    # Then every trial ran once with a configuration chosen on a worker, all different
    results = store.get_sweep(sweep_id, full=True).results
    assert results["sampler"] == "tpe" and results["trials_complete"] == 10
    configs = [store.params(sweep_id, n) for n in range(10)]
    assert all(-2.0 <= c["x"] <= 3.0 and c["y"] in (-3.0, -2.0, 0.0, 1.0) for c in configs)
    assert len({(c["x"], c["y"]) for c in configs}) == 10
    assert results["best"]["score"] == max(t["score"] for t in results["ranking"])


def test_hopeless_trials_are_pruned_after_a_fold_and_ranked_below_complete_ones(
    tmp_path, redis_server, store: SweepStore, start_workers
):
    # Given one worker and a grid whose last two configurations are far from the optimum
    workers = start_workers("--cpu", "1")
    config = write_config(
        tmp_path / "prune.yaml",
        n_trials="grid",
        pruner={"type": "median", "n_startup_trials": 2},
        hyperparameters={"x": [1.0, 0.8, 0.9, 30.0, 40.0], "y": -2.0},
    )

    # When the sweep runs
    sweep_id, result = submit_and_wait(config, redis_server.url, tmp_path / "artifacts")
    assert result.returncode == 0, result.stderr + result.stdout

    # Then the two hopeless trials stopped after their first fold, recorded as pruned
    sweep = store.get_sweep(sweep_id, full=True)
    by_trial = {t["trial"]: t for t in sweep.results["ranking"]}
    assert [by_trial[n]["status"] for n in range(5)] == ["complete"] * 3 + ["pruned"] * 2
    assert [len(by_trial[n]["folds"]) for n in range(5)] == [3, 3, 3, 1, 1]
    assert "pruned by the median pruner after 1 of 3 folds" in by_trial[3]["error"]
    assert sweep.count("pruned") == 2 and sweep.count("complete") == 3
    # and they rank below every complete trial; the best is a complete one
    assert sorted(by_trial[n]["rank"] for n in (3, 4)) == [4, 5]
    assert sweep.results["best"]["trial"] == 0 and sweep.status == "done"
    rows = _csv_rows(tmp_path / "artifacts" / sweep_id / "trials.csv")
    assert [(r["status"], r["fold_1"]) for r in rows[3:]] == [("pruned", ""), ("pruned", "")]
    # and the worker's log has one line per trial start, fold end and trial end
    logs = workers.logs()
    assert f"sweep {sweep_id} trial 3 starts on cpu0@" in logs
    assert f"sweep {sweep_id} trial 3 fold 0 seed 0: score=" in logs
    assert f"sweep {sweep_id} trial 3 pruned: score=" in logs
    assert f"sweep {sweep_id} trial 0 complete: score=" in logs


def test_no_trial_starts_after_the_time_budget_and_the_best_is_still_retrained(
    tmp_path, redis_server, store: SweepStore, celery_app, start_workers
):
    # Given one ready worker and a sweep of 2-s trials with a 2.5-s budget
    start_workers("--cpu", "1")
    wait_for(lambda: celery_app.control.ping(timeout=0.5), timeout=60)
    config = write_config(
        tmp_path / "budget.yaml",
        n_trials=4,
        time_budget="2.5s",
        hyperparameters={"x": {"low": 0.0, "high": 2.0}, "y": -2.0, "sleep": 1.5},
    )

    # When it runs
    sweep_id, result = submit_and_wait(config, redis_server.url, tmp_path / "artifacts")
    assert result.returncode == 0, result.stderr + result.stdout

    # Then the first trial stopped at a fold boundary past the deadline, with its runs kept
    sweep = store.get_sweep(sweep_id, full=True)
    trials = store.trials(sweep_id)
    assert trials[0].status == "stopped" and 1 <= len(trials[0].folds) < 3
    assert "time budget ran out" in trials[0].error
    # and no other trial started: each was skipped
    assert [t.status for t in trials[1:]] == ["skipped"] * 3
    assert all(t.started is None for t in trials[1:])
    assert trials[0].started < sweep.deadline
    assert sweep.count("skipped") == 3 and sweep.count("stopped") == 1
    # and finalize ranked what finished, and retrain-and-test ran on it
    assert sweep.status == "done" and sweep.results["best"]["trial"] == 0
    assert sweep.results["best"]["status"] == "stopped"
    assert set(sweep.test_metrics) == {"score", "loss"}


def test_several_metrics_and_seeds_per_fold_are_scored_per_run_and_unstable_runs_flagged(
    tmp_path, redis_server, store: SweepStore, start_workers
):
    # Given a sweep scored by score and loss (lower is better), two seeds per fold, where the
    # configuration at the optimum has loss 0 (its 1/loss is infinite: unstable)
    start_workers("--cpu", "2")
    config = write_config(
        tmp_path / "multi.yaml",
        n_trials="grid",
        metric=["score", "loss:lower"],
        combine="harmonic",
        cv={"n_folds": 2, "n_randoms": 2},
        hyperparameters={"x": [1.0, 0.0], "y": -2.0, "noise": 0.01},
    )

    # When it runs
    sweep_id, result = submit_and_wait(config, redis_server.url, tmp_path / "artifacts")
    assert result.returncode == 0, result.stderr + result.stdout

    # Then every trial has 2 folds × 2 seeds, each recorded, the seeds of one fold differ
    results = store.get_sweep(sweep_id, full=True).results
    by_trial = {t["trial"]: t for t in results["ranking"]}
    for t in by_trial.values():
        assert [(r["fold"], r["repeat"]) for r in t["folds"].values()] == [
            (0, 0),
            (0, 1),
            (1, 0),
            (1, 1),
        ]
    runs = {int(k): r for k, r in by_trial[1]["folds"].items()}  # JSON keys are str
    assert runs[0]["metrics"]["score"] != runs[1]["metrics"]["score"]
    # and the trial score is the mean over runs of harmonic(score, 1/loss) per run
    per_run = [2 / (1 / r["metrics"]["score"] + r["metrics"]["loss"]) for r in runs.values()]
    assert by_trial[1]["score"] == pytest.approx(sum(per_run) / 4)
    # and the trial whose loss is 0 is flagged unstable and ranked below the stable one
    assert by_trial[0]["unstable"] is True and by_trial[1]["unstable"] is False
    assert (by_trial[1]["rank"], by_trial[0]["rank"]) == (1, 2)
    assert results["best"]["trial"] == 1
    assert results["metric"] == "harmonic(score, 1/loss)"
    # and trials.csv shows each run's score and metrics
    rows = _csv_rows(tmp_path / "artifacts" / sweep_id / "trials.csv")
    assert rows[0]["unstable"] == "yes" and rows[1]["unstable"] == ""
    assert math.isclose(float(rows[1]["fold_1_seed_1:loss"]), runs[3]["metrics"]["loss"])
    assert math.isclose(float(rows[1]["fold_0_seed_0"]), per_run[0], rel_tol=1e-9)


def test_an_adaptive_sweep_is_validated_before_anything_is_sent(tmp_path):
    # Given a TPE sweep with a value the trainable refuses in one of its choices
    config = load_config(
        write_config(
            tmp_path / "bad.yaml",
            sampler="tpe",
            hyperparameters={"x": {"low": 0.0, "high": 1.0}, "sleep": [0.0, -1.0]},
        )
    )
    # Then planning it names the key, although no configuration is listed up front
    with pytest.raises(ConfigError, match=r"hyperparameters\.sleep"):
        plan_configurations(config)
    assert Scoring.from_config("score") == config.scoring


def test_a_warm_start_trains_the_enqueued_configurations_first(
    tmp_path, redis_server, store: SweepStore, start_workers
):
    # Given one worker and a finished random sweep with its best_config.yaml
    start_workers("--cpu", "1")
    artifacts = tmp_path / "artifacts"
    first, result = submit_and_wait(
        write_config(tmp_path / "first.yaml", n_trials=3), redis_server.url, artifacts
    )
    assert result.returncode == 0, result.stderr + result.stdout
    best = store.get_sweep(first, full=True).results["best"]["params"]

    # When a TPE sweep is started with two configurations enqueued (one of them partial)
    # and a random sweep with the first sweep's best_config.yaml
    tpe = write_config(
        tmp_path / "tpe.yaml",
        n_trials=4,
        sampler={"type": "tpe", "n_startup_trials": 2},
        enqueue=[{"x": 1.0, "y": -2.0}, {"x": 0.0}],
    )
    warm, result = submit_and_wait(tpe, redis_server.url, artifacts)
    assert result.returncode == 0, result.stderr + result.stdout
    again = write_config(
        tmp_path / "again.yaml",
        n_trials=2,
        enqueue=str(artifacts / first / "best_config.yaml"),
    )
    rerun, result = submit_and_wait(again, redis_server.url, artifacts)
    assert result.returncode == 0, result.stderr + result.stdout

    # Then the first trials trained exactly those; a left-out entry was drawn from the space
    trials = store.trials(warm)
    assert (trials[0].params["x"], trials[0].params["y"]) == (1.0, -2.0)
    assert trials[1].params["x"] == 0.0 and -4.0 <= trials[1].params["y"] <= 1.0
    assert all(t.status == "complete" for t in trials)
    # and the enqueued optimum is the sweep's best; the sampler's own trials came after it
    assert store.get_sweep(warm, full=True).results["best"]["trial"] == 0
    assert {t.params["x"] for t in trials[2:]}.isdisjoint({1.0, 0.0})
    # and the best configuration of the first sweep was trained again first
    retrained = store.trials(rerun)[0].params
    assert (retrained["x"], retrained["y"]) == (best["x"], best["y"])
