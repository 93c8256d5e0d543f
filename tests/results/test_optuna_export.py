"""`producer results --optuna-storage`: a real sweep written as an Optuna study, read back
with Optuna's own API."""

from __future__ import annotations

import math
import warnings

import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState

from smptune.queue.store import SweepStore

from conftest import run_cli, submit_and_wait, write_config

STATES = {"complete": TrialState.COMPLETE, "pruned": TrialState.PRUNED, "failed": TrialState.FAIL}


@pytest.fixture
def finished_sweep(tmp_path, redis_server, start_workers) -> str:
    """Ten trials on one worker: complete ones, pruned ones (median pruner) and failed ones."""
    start_workers("--cpu", "1")
    config = write_config(
        tmp_path / "sweep.yaml",
        n_trials=10,
        pruner={"type": "median", "n_startup_trials": 2},
        hyperparameters={
            "x": {"low": -2.0, "high": 3.0},
            "noise": {"distribution": "loguniform", "low": 1.0e-4, "high": 1.0e-2},
            "fail": [False, True],
            "y": -2.0,
            "fold_noise": {"distribution": "reversed-loguniform", "low": 0.0, "high": 0.02},
        },
    )
    sweep_id, result = submit_and_wait(config, redis_server.url, tmp_path / "artifacts")
    assert result.returncode == 0, result.stderr + result.stdout
    return sweep_id


def test_a_sweep_exported_to_optuna_reads_back_with_its_trials_values_and_best(
    tmp_path, redis_server, store: SweepStore, finished_sweep: str
):
    # Given a finished sweep with complete, pruned and failed trials
    results = store.get_sweep(finished_sweep).results
    ours = {t["trial"]: t for t in results["ranking"]}
    statuses = {t["status"] for t in ours.values()}
    assert {"complete", "pruned", "failed"} <= statuses, statuses

    # When it is exported to an SQLite storage
    url = f"sqlite:///{tmp_path / 'studies.db'}"
    export = run_cli(
        "producer", "results", finished_sweep, "--broker", redis_server.url, "--optuna-storage", url
    )
    assert export.returncode == 0, export.stderr
    assert f"Optuna study '{finished_sweep}': 10 trials written" in export.stdout

    # Then Optuna reads a maximising study named after the sweep, one trial per trial
    study = optuna.load_study(study_name=finished_sweep, storage=url)
    assert study.direction == optuna.study.StudyDirection.MAXIMIZE
    assert study.user_attrs["sweep_id"] == finished_sweep
    assert len(study.trials) == 10
    for trial in study.trials:
        mine = ours[trial.user_attrs["smptune_trial"]]
        assert trial.state == STATES[mine["status"]]
        assert trial.user_attrs["status"] == mine["status"]
        assert trial.user_attrs["worker"] == mine["worker"]
        # with the searched parameters only (y is fixed) and their distributions
        searched = ("x", "noise", "fail", "fold_noise")
        assert trial.params == {k: mine["params"][k] for k in searched}
        assert trial.distributions["x"] == FloatDistribution(-2.0, 3.0)
        assert trial.distributions["noise"] == FloatDistribution(1.0e-4, 1.0e-2, log=True)
        assert trial.distributions["fail"] == CategoricalDistribution([False, True])
        # (a reversed-loguniform in the user's values, as Optuna cannot reverse a log scale)
        assert trial.distributions["fold_noise"] == FloatDistribution(0.0, 0.02)
        # and one intermediate value per finished run: its score
        assert trial.intermediate_values == dict(enumerate(mine["fold_scores"]))
        assert trial.user_attrs["fold_scores"] == mine["fold_scores"]
        if mine["status"] == "complete":
            assert math.isclose(trial.value, mine["score"])
            assert len(trial.intermediate_values) == 3
        elif mine["status"] == "pruned":
            assert trial.value is None and 1 <= len(trial.intermediate_values) < 3
        else:
            assert trial.intermediate_values == {} and mine["params"]["fail"] is True
    # and Optuna's best trial is ours
    assert study.best_trial.user_attrs["smptune_trial"] == results["best"]["trial"]
    assert math.isclose(study.best_value, results["best"]["score"])
    # and Optuna's plots run on it
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        ax = optuna.visualization.matplotlib.plot_optimization_history(study)
    assert len(ax.collections) >= 1 and ax.get_title()

    # When it is exported again to the same storage: a clear error, nothing overwritten
    again = run_cli(
        "producer", "results", finished_sweep, "--broker", redis_server.url, "--optuna-storage", url
    )
    assert again.returncode == 2
    assert "already holds a study named" in again.stderr and "--optuna-study" in again.stderr
    assert len(again.stderr.strip().splitlines()) == 1 and "Traceback" not in again.stderr
    # unless another name is given
    other = run_cli(
        "producer",
        "results",
        finished_sweep,
        "--broker",
        redis_server.url,
        "--optuna-storage",
        url,
        "--optuna-study",
        "second",
        "--json",
    )
    assert other.returncode == 0, other.stderr
    assert sorted(optuna.study.get_all_study_names(url)) == sorted([finished_sweep, "second"])
    assert len(optuna.load_study(study_name="second", storage=url).trials) == 10


def test_a_journal_file_and_bad_storages(tmp_path, redis_server, finished_sweep: str):
    broker = ("--broker", redis_server.url)

    # A journal file path is a storage too
    journal = tmp_path / "sweeps.log"
    ok = run_cli("producer", "results", finished_sweep, *broker, "--optuna-storage", journal)
    assert ok.returncode == 0, ok.stderr
    storage = JournalStorage(JournalFileBackend(str(journal)))
    assert len(optuna.load_study(study_name=finished_sweep, storage=storage).trials) == 10

    # A storage that cannot be opened: one line, exit 2
    for bad, says in (
        (f"sqlite:///{tmp_path / 'missing' / 'x.db'}", "cannot open"),
        ("nosuchdb://host/db", "cannot open"),
        (str(tmp_path / "missing" / "journal.log"), "does not exist"),
        (str(tmp_path), "is a folder"),
    ):
        result = run_cli("producer", "results", finished_sweep, *broker, "--optuna-storage", bad)
        assert result.returncode == 2, (bad, result.stderr)
        assert says in result.stderr and "--optuna-storage" in result.stderr, result.stderr
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr

    lone = run_cli("producer", "results", finished_sweep, *broker, "--optuna-study", "x")
    assert lone.returncode == 2 and "needs --optuna-storage" in lone.stderr
