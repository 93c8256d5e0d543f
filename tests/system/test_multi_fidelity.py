"""Multi-fidelity search end to end: ASHA, Hyperband and the median pruner deciding between
epochs inside a run, cancel and the time budget stopping a fold between epochs, a budget in
multiples of one trial and a sweep without ``n_trials`` — through the real CLI, a real Redis
and real worker processes, on the learning-curve trainable."""

from __future__ import annotations

import json
from pathlib import Path

from smptune.config import config_from_dict
from smptune.queue.store import SweepStore
from smptune.records import TrialStatus
from smptune.search.halving import Halving

from conftest import run_cli, submit_and_wait, wait_for, write_config

CURVES = "smptune.fakes:LearningCurveTrainable"


def _curve_config(path: Path, **overrides: object) -> Path:
    settings: dict[str, object] = {
        "name": "curves",
        "trainable": CURVES,
        "n_trials": 12,
        "seed": 1,
        "metric": "score",
        "cv": {"n_folds": 2},
        "training": {"max_epochs": 9},
        "hyperparameters": {
            "x": {"low": 0.0, "high": 1.0},
            "y": {"low": 0.0, "high": 1.0},
            "epoch_s": 0.01,
            "noise": 0.01,
        },
    }
    settings.update(overrides)
    return write_config(path, **settings)


def test_asha_stops_trials_at_epoch_rungs_inside_a_fold_and_ranks_them_by_how_far_they_got(
    tmp_path, redis_server, store: SweepStore, start_workers
):
    # Given two workers and an ASHA sweep whose runs train 9 epochs (rungs at epochs 1 and 3)
    start_workers("--cpu", "2")
    config = _curve_config(
        tmp_path / "asha.yaml", pruner={"type": "asha", "min_resource": 1, "reduction_factor": 3}
    )

    # When it runs
    sweep_id, result = submit_and_wait(config, redis_server.url, tmp_path / "artifacts")
    assert result.returncode == 0, result.stderr + result.stdout

    # Then some trials were stopped inside their first fold, at a rung
    sweep = store.get_sweep(sweep_id, full=True)
    trials = store.trials(sweep_id)
    pruned = [t for t in trials if t.status is TrialStatus.PRUNED]
    complete = [t for t in trials if t.status is TrialStatus.COMPLETE]
    assert pruned and complete and len(pruned) + len(complete) == 12
    for t in pruned:
        if t.partial is None:  # at the rung after fold 0 (9 epochs fall at its end)
            assert sorted(t.folds) == [0] and "pruned by asha after fold 0" in (t.error or "")
            continue
        assert t.partial.fold == 0 and t.partial.epochs in (1, 3)
        assert f"pruned by asha at fold 0, epoch {t.partial.epochs}" in t.error
        assert "ranked" in t.error
        # the partial run never counts as a complete one; its epochs are on record
        assert not t.folds and len(t.curves[0]) == t.partial.epochs
    # and complete trials trained every epoch of every fold
    for t in complete:
        assert sorted(t.folds) == [0, 1] and all(len(c) == 9 for c in t.curves.values())
    # and the ranking puts complete trials first, then pruned ones by how far they trained
    ranking = sweep.results["ranking"]
    statuses = [r["status"] for r in ranking]
    assert statuses == ["complete"] * len(complete) + ["pruned"] * len(pruned)
    # (a trial pruned at a fold boundary has no partial run: it reached 0 epochs past its folds)
    reached = [
        (len(r["folds"]), (r["partial"] or {}).get("epochs", 0)) for r in ranking[len(complete) :]
    ]
    assert reached == sorted(reached, reverse=True)
    assert sweep.results["best"]["status"] == "complete"
    # and trials.csv shows where each pruned trial stopped
    rows = (tmp_path / "artifacts" / sweep_id / "trials.csv").read_text()
    assert "stopped_at" in rows.splitlines()[0]
    stopped_in_a_fold = [r for r in ranking[len(complete) :] if r["partial"]]
    for r in stopped_in_a_fold[:1]:
        assert f"fold {r['partial']['fold']}, epoch" in rows


def test_hyperband_gives_each_trial_a_bracket_whose_rungs_start_later(
    tmp_path, redis_server, store: SweepStore, start_workers
):
    # Given an Hyperband sweep over 9 epochs: brackets with rungs at 1 and 3, at 3, and none
    start_workers("--cpu", "2")
    pruner = {"type": "hyperband", "min_resource": 1, "reduction_factor": 3}
    config = _curve_config(tmp_path / "hb.yaml", n_trials=16, pruner=pruner)
    halving = Halving.from_spec(config_from_dict(_load(config)).pruner_spec, 9)
    assert [halving.rung_epochs(b) for b in range(halving.brackets)] == [[1, 3], [3], []]

    # When it runs
    sweep_id, result = submit_and_wait(config, redis_server.url, tmp_path / "artifacts")
    assert result.returncode == 0, result.stderr + result.stdout

    # Then each pruned trial stopped at a rung of its own bracket, and the last bracket
    # (full training) pruned nobody in its first fold
    trials = store.trials(sweep_id)
    brackets = {t.trial: halving.bracket(1, t.trial) for t in trials}
    assert len(set(brackets.values())) >= 2
    for t in trials:
        if t.status is TrialStatus.PRUNED and t.partial is not None and t.partial.fold == 0:
            assert t.partial.epochs in halving.rung_epochs(brackets[t.trial])
    assert any(t.status is TrialStatus.PRUNED for t in trials)


def test_the_median_pruner_can_decide_after_each_epoch(
    tmp_path, redis_server, store: SweepStore, start_workers
):
    # Given one worker, three good configurations first and then three hopeless ones
    start_workers("--cpu", "1")
    config = _curve_config(
        tmp_path / "median.yaml",
        n_trials="grid",
        pruner={"type": "median", "at": "epoch", "n_startup_trials": 2, "n_warmup_steps": 2},
        hyperparameters={
            "x": [0.7, 0.6, 0.75, 0.0, 0.05, 0.1],
            "y": 0.35,
            "epoch_s": 0.0,
            "noise": 0.0,
        },
    )

    # When it runs
    sweep_id, result = submit_and_wait(config, redis_server.url, tmp_path / "artifacts")
    assert result.returncode == 0, result.stderr + result.stdout

    # Then the hopeless ones stopped inside their first run, after the warm-up epochs
    trials = store.trials(sweep_id)
    assert [t.status.value for t in trials[:3]] == ["complete"] * 3
    for t in trials[3:]:
        assert t.status is TrialStatus.PRUNED, t
        assert t.partial is not None and t.partial.fold == 0 and 3 <= t.partial.epochs < 9
        assert "below the median" in (t.error or "")


def _load(path: Path) -> dict:
    import yaml

    return yaml.safe_load(path.read_text())


def test_cancel_stops_a_running_fold_at_its_next_epoch(
    tmp_path, redis_server, store: SweepStore, start_workers
):
    # Given one worker training a run of 40 epochs of 0.25 s
    start_workers("--cpu", "1")
    config = _curve_config(
        tmp_path / "cancel.yaml",
        n_trials=2,
        training={"max_epochs": 40},
        hyperparameters={"x": 0.5, "y": 0.5, "epoch_s": 0.25},
    )
    submitted = run_cli("producer", "submit", config, "--broker", redis_server.url)
    assert submitted.returncode == 0, submitted.stderr
    sweep_id = submitted.stdout.split()[0]
    wait_for(lambda: len(store.curves(sweep_id, 0).get(0, ())) >= 2, timeout=90)

    # When it is cancelled
    cancel = run_cli("producer", "cancel", sweep_id, "--broker", redis_server.url)
    assert cancel.returncode == 0, cancel.stderr
    wait_for(lambda: store.get_sweep(sweep_id).status.terminal, timeout=60)

    # Then the running fold stopped at an epoch boundary, long before its 40 epochs
    first = store.trials(sweep_id)[0]
    assert first.status is TrialStatus.CANCELLED
    assert first.partial is not None and first.partial.fold == 0
    assert 2 <= first.partial.epochs < 20
    assert f"sweep cancelled at fold 0, epoch {first.partial.epochs}" in first.error
    assert len(first.curves[0]) == first.partial.epochs and not first.folds
    assert store.get_sweep(sweep_id).status == "cancelled"


def test_the_time_budget_stops_running_folds_between_epochs(
    tmp_path, redis_server, store: SweepStore, celery_app, start_workers
):
    # Given two ready workers and trials of two 8-epoch runs (2 s each), with a 5-s budget
    start_workers("--cpu", "2")
    wait_for(lambda: len(celery_app.control.ping(timeout=0.5)) >= 2, timeout=60)
    config = _curve_config(
        tmp_path / "budget.yaml",
        n_trials=8,
        time_budget="5s",
        training={"max_epochs": 8},
        hyperparameters={"x": {"low": 0.5, "high": 0.9}, "y": 0.35, "epoch_s": 0.25},
    )

    # When it runs
    sweep_id, result = submit_and_wait(config, redis_server.url, tmp_path / "artifacts")
    assert result.returncode == 0, result.stderr + result.stdout

    # Then the trials running at the deadline stopped inside a fold, their epochs kept
    sweep = store.get_sweep(sweep_id, full=True)
    trials = store.trials(sweep_id)
    stopped = [t for t in trials if t.status is TrialStatus.STOPPED and t.partial is not None]
    assert stopped, [(t.trial, t.status, t.error) for t in trials]
    for t in stopped:
        assert t.partial is not None and 1 <= t.partial.epochs < 8
        assert "the time budget ran out at fold" in (t.error or "")
        assert sweep.deadline is not None and t.finished is not None
        assert t.finished - sweep.deadline < 2.0  # at the next epoch boundary, not the run's end
    # and finalize ranked what finished, and retrain-and-test ran on a complete trial
    assert sweep.status == "done" and sweep.results["best"]["status"] == "complete"
    assert set(sweep.test_metrics or {}) == {"score", "loss"}


def test_a_sweep_without_n_trials_starts_trials_until_its_budget_is_spent(
    tmp_path, redis_server, store: SweepStore, celery_app, start_workers
):
    # Given two ready workers and a sweep with a budget of 4 trial durations and no n_trials
    start_workers("--cpu", "2")
    wait_for(lambda: len(celery_app.control.ping(timeout=0.5)) >= 2, timeout=60)
    config = _curve_config(
        tmp_path / "open.yaml",
        n_trials=None,
        time_budget="4x",
        sampler={"type": "tpe", "n_startup_trials": 3},
        training={"max_epochs": 5},
        hyperparameters={
            "x": {"low": 0.0, "high": 1.0},
            "y": {"low": 0.0, "high": 1.0},
            "epoch_s": 0.1,
        },
    )
    raw = _load(config)
    raw.pop("n_trials")
    config.write_text(json.dumps(raw))

    # When it runs
    sweep_id, result = submit_and_wait(config, redis_server.url, tmp_path / "artifacts")
    assert result.returncode == 0, result.stderr + result.stdout

    # Then trials kept starting until the deadline, set from the first complete trial
    sweep = store.get_sweep(sweep_id, full=True)
    trials = store.trials(sweep_id)
    complete = [t for t in trials if t.status is TrialStatus.COMPLETE]
    first = min(complete, key=lambda t: t.finished or 0)
    assert sweep.deadline is not None and sweep.started is not None
    assert abs(sweep.deadline - (sweep.started + 4 * (first.duration_s or 0))) < 0.5
    assert len(complete) >= 5
    started = [t for t in trials if t.started is not None]
    assert all(t.started < sweep.deadline for t in started)
    # and no worker sat idle while the budget lasted: each trial ended, another started
    ends = sorted(t.finished for t in started if t.finished and t.finished < sweep.deadline - 1)
    starts = sorted(t.started for t in started if t.started)
    for end in ends:
        assert any(0 <= s - end < 1.0 for s in starts), (end, starts)
    # and the sweep finalized once, with every trial it added accounted for
    assert sweep.n_trials == len(trials) == sweep.n_finished
    assert sweep.finalize_runs == 1 and sweep.status == "done"
    unstarted = [t for t in trials if t.started is None]
    assert all(t.status is TrialStatus.SKIPPED for t in unstarted) and len(unstarted) <= 2
    assert sweep.results["best"]["status"] == "complete"
    assert set(sweep.test_metrics or {}) == {"score", "loss"}


def test_an_epoch_pruner_on_a_trainable_without_epochs_says_it_cannot_decide(
    tmp_path, redis_server, store: SweepStore, start_workers
):
    # Given ASHA on the quadratic trainable, which trains a run in one step and reports none
    workers = start_workers("--cpu", "1")
    config = write_config(tmp_path / "quad.yaml", n_trials=2, pruner="asha")

    # When the sweep runs
    sweep_id, result = submit_and_wait(config, redis_server.url, tmp_path / "artifacts")
    assert result.returncode == 0, result.stderr + result.stdout

    # Then every trial completed, and the worker's log says why nothing could be pruned
    assert store.get_sweep(sweep_id).count("complete") == 2
    assert "reports no epochs (FoldContext.report), so the asha pruner cannot decide" in (
        workers.logs()
    )


def test_the_wilcoxon_pruner_stops_a_trial_clearly_worse_than_the_best_on_the_same_folds(
    tmp_path, redis_server, store: SweepStore, start_workers
):
    # Given one worker and a grid whose last configuration is far from the optimum
    start_workers("--cpu", "1")
    config = write_config(
        tmp_path / "wilcoxon.yaml",
        n_trials="grid",
        cv={"n_folds": 5},
        pruner={"type": "wilcoxon", "p_threshold": 0.1},
        hyperparameters={"x": [1.0, 0.9, 30.0], "y": -2.0, "fold_noise": 0.01},
    )

    # When the sweep runs
    sweep_id, result = submit_and_wait(config, redis_server.url, tmp_path / "artifacts")
    assert result.returncode == 0, result.stderr + result.stdout

    # Then the hopeless one stopped before its last fold, paired fold by fold with the best
    trials = store.trials(sweep_id)
    assert trials[0].status is TrialStatus.COMPLETE and len(trials[0].folds) == 5
    assert trials[2].status is TrialStatus.PRUNED and len(trials[2].folds) < 5
    assert "pruned by the wilcoxon pruner after" in (trials[2].error or "")


REPLAY = "smptune.fakes:RecordedCurvesTrainable"
REAL_SPACE = {
    "learning_rate": {"distribution": "loguniform", "low": 1.0e-4, "high": 3.0e-2},
    "model_arch": ["Unet", "FPN"],
    "loss": ["dice", "focal"],
    "epoch_s": 0.005,
}


def _real_config(path: Path, **overrides: object) -> Path:
    """A sweep over the curves recorded from real nuclei data (3 folds of 15 epochs)."""
    settings: dict[str, object] = {
        "name": "nuclei",
        "trainable": REPLAY,
        "metric": "iou",
        "seed": 4,
        "cv": {"n_folds": 3},
        "training": {"max_epochs": 15},
        "hyperparameters": REAL_SPACE,
    }
    settings.update(overrides)
    return write_config(path, **settings)


def test_tpe_with_asha_on_real_curves_finishes_trials_as_good_as_random_search(
    tmp_path, redis_server, store: SweepStore, start_workers
):
    # Given two workers and the curves recorded from real nuclei data: noisy early epochs,
    # folds that differ (the data on which the old rungs pruned every trial of a sweep)
    start_workers("--cpu", "2")
    artifacts = tmp_path / "artifacts"

    # When random search trains 8 configurations fully, and TPE + ASHA (its defaults)
    # searches 18
    random_id, result = submit_and_wait(
        _real_config(tmp_path / "random.yaml", n_trials=8), redis_server.url, artifacts
    )
    assert result.returncode == 0, result.stderr + result.stdout
    asha = _real_config(
        tmp_path / "asha.yaml",
        n_trials=18,
        sampler={"type": "tpe", "n_startup_trials": 6},
        pruner="asha",
    )
    asha_id, result = submit_and_wait(asha, redis_server.url, artifacts)
    assert result.returncode == 0, result.stderr + result.stdout

    # Then some trials completed their cross-validation, and the best of them (the one
    # retrained and tested) is within 0.02 of random search's best
    random_best = store.get_sweep(random_id, full=True).results["best"]
    sweep = store.get_sweep(asha_id, full=True)
    trials = store.trials(asha_id)
    complete = [t for t in trials if t.status is TrialStatus.COMPLETE]
    pruned = [t for t in trials if t.status is TrialStatus.PRUNED]
    assert complete and pruned and len(complete) + len(pruned) == 18
    best = sweep.results["best"]
    assert best["status"] == "complete" and len(store.trials(asha_id)[best["trial"]].folds) == 3
    assert best["score"] >= random_best["score"] - 0.02, (best, random_best)
    assert set(sweep.test_metrics or {}) == {"iou", "loss"}
    # and a pruned trial trained fewer epochs, on average, than a complete one
    assert _epochs(pruned) / len(pruned) < _epochs(complete) / len(complete)


def _epochs(trials: list) -> int:
    done = sum(int(r.get("epochs_run", 0)) for t in trials for r in t.folds.values())
    return done + sum(t.partial.epochs for t in trials if t.partial)


def test_asha_rungs_read_fold_0_then_whole_folds_and_the_user_sees_each_rungs_decisions(
    tmp_path, redis_server, store: SweepStore, start_workers
):
    # Given ASHA from its first epoch, no bootstrap, over real curves with early stopping:
    # rungs at fold 0's epochs 1, 3 and 9, and after fold 1 (27 epochs fall in fold 1)
    start_workers("--cpu", "2")
    config = _real_config(
        tmp_path / "rungs.yaml",
        n_trials=24,
        training={"max_epochs": 15, "early_stopping_patience": 3},
        pruner={"type": "asha", "min_resource": 1, "bootstrap_count": 0},
    )

    # When it runs
    sweep_id, result = submit_and_wait(config, redis_server.url, tmp_path / "artifacts")
    assert result.returncode == 0, result.stderr + result.stdout

    # Then every pruned trial stopped at a rung: inside fold 0 at a rung epoch (or at its
    # end, when early stopping ended the run before a rung), or after fold 1 with two
    # complete folds and no partial run
    trials = store.trials(sweep_id)
    pruned = [t for t in trials if t.status is TrialStatus.PRUNED]
    assert pruned
    for t in pruned:
        error = t.error or ""
        if t.partial is not None:
            assert t.partial.fold == 0 and t.partial.epochs in (1, 3, 9), t
            assert f"pruned by asha at fold 0, epoch {t.partial.epochs}: it ranked" in error
        elif "after fold 1" in error:
            assert sorted(t.folds) == [0, 1], t
            assert "on the mean of its first 2 runs: it ranked" in error
        else:
            assert sorted(t.folds) == [0] and "its run ended at epoch" in error, t
    # and the rungs' counts add up: each pruned trial was stopped at one rung, and the
    # complete trials were promoted at the last one
    results = store.get_sweep(sweep_id, full=True).results
    rungs = results["rungs"]
    assert [r["where"] for r in rungs] == [
        "fold 0, epoch 1",
        "fold 0, epoch 3",
        "fold 0, epoch 9",
        "after fold 1",
    ]
    stopped_at = {e["trial"] for r in rungs for e in r["trials"] if not e["promoted"]}
    assert stopped_at == {t.trial for t in pruned}
    for r in rungs:
        assert r["reached"] == r["promoted"] + r["stopped"] == len(r["trials"])
    complete = {t.trial for t in trials if t.status is TrialStatus.COMPLETE}
    assert complete and complete <= {e["trial"] for e in rungs[-1]["trials"] if e["promoted"]}
    assert results["best"]["status"] == "complete"

    # and producer status counts the trials promoted per rung
    status = run_cli("producer", "status", sweep_id, "--broker", redis_server.url)
    assert status.returncode == 0, status.stderr
    first = rungs[0]
    assert (
        f"rungs: fold 0, epoch 1: {first['reached']} reached, {first['promoted']} promoted"
        in status.stdout
    ), status.stdout
    # and the report shows the rungs: the plot and the table of decisions
    report = (tmp_path / "artifacts" / sweep_id / "report.html").read_text()
    assert 'id="rung-decisions"' in report and "after fold 1" in report
    assert (tmp_path / "artifacts" / sweep_id / "plots" / "rungs.png").stat().st_size > 10_000
