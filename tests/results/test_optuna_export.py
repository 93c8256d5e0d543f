"""`producer results --optuna-storage`: a real sweep written as an Optuna study, read back
with Optuna's own API."""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
import warnings
from importlib.util import find_spec

import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState

from smptune.queue.store import SweepStore

from conftest import cli_env, run_cli, submit_and_wait, wait_for, write_config

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
    results = store.get_sweep(finished_sweep, full=True).results
    ours = {t["trial"]: t for t in results["ranking"]}
    statuses = {t["status"] for t in ours.values()}
    assert {"complete", "pruned", "failed"} <= statuses, statuses

    # When it is exported to an SQLite storage
    url = f"sqlite:///{tmp_path / 'studies.db'}"
    export = run_cli(
        "producer", "results", finished_sweep, "--broker", redis_server.url, "--optuna-storage", url
    )
    assert export.returncode == 0, export.stderr
    assert f"Optuna study '{finished_sweep}': 10 trials in" in export.stdout
    assert "(10 added, 0 brought up to date)" in export.stdout

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

    # When it is exported again to the same storage: the study is refreshed, not doubled
    again = run_cli(
        "producer", "results", finished_sweep, "--broker", redis_server.url, "--optuna-storage", url
    )
    assert again.returncode == 0, again.stderr
    assert "10 trials in" in again.stdout and "(0 added, 0 brought up to date)" in again.stdout
    assert len(optuna.load_study(study_name=finished_sweep, storage=url).trials) == 10
    # and a study of that name made from another sweep is refused in one line
    optuna.create_study(storage=url, study_name="taken").set_user_attr("sweep_id", "other")

    def export(*extra: str):
        broker = ("--broker", redis_server.url)
        return run_cli(
            "producer", "results", finished_sweep, *broker, "--optuna-storage", url, *extra
        )

    taken = export("--optuna-study", "taken")
    assert taken.returncode == 2
    assert "already holds a study named 'taken' of sweep other" in taken.stderr
    assert len(taken.stderr.strip().splitlines()) == 1 and "Traceback" not in taken.stderr
    # unless another name is given
    other = export("--optuna-study", "second", "--json")
    assert other.returncode == 0, other.stderr
    assert sorted(optuna.study.get_all_study_names(url)) == sorted(
        [finished_sweep, "second", "taken"]
    )
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


def _slow_sweep(tmp_path, redis_server) -> str:
    config = write_config(
        tmp_path / "slow.yaml",
        n_trials=4,
        hyperparameters={"x": {"low": -2.0, "high": 3.0}, "sleep": 0.8},
    )
    submitted = run_cli("producer", "submit", config, "--broker", redis_server.url)
    assert submitted.returncode == 0, submitted.stderr
    return submitted.stdout.split()[0]


def _popen(*args: str, **env: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "smptune.cli.producer", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=cli_env(**env),
    )


def test_following_a_running_sweep_keeps_its_optuna_study_up_to_date(
    tmp_path, redis_server, store: SweepStore, start_workers
):
    # Given a sweep of slow trials on one worker, mirrored with --follow as it runs
    sweep_id = _slow_sweep(tmp_path, redis_server)
    url = f"sqlite:///{tmp_path / 'live.db'}"
    follower = _popen(
        "results", sweep_id, "--broker", redis_server.url, "--optuna-storage", url,
        "--follow", "--every", "0.3",
    )  # fmt: skip
    start_workers("--cpu", "1")

    # Then, while it runs, the study shows a running trial with the runs it has finished
    def running_with_a_run():
        try:
            trials = optuna.load_study(study_name=sweep_id, storage=url).trials
        except KeyError:  # the study is not created yet
            return None
        return next(
            (t for t in trials if t.state == TrialState.RUNNING and t.intermediate_values), None
        )

    seen = wait_for(running_with_a_run, 120, 0.1)
    assert store.get_sweep(sweep_id).status == "running"

    # And once the sweep ends the follower stops, with every trial complete, that one too
    out, err = follower.communicate(timeout=120)
    assert follower.returncode == 0, err
    assert f"sweep {sweep_id} done: 4 trials in the study" in out
    assert "until it ends" in err
    study = optuna.load_study(study_name=sweep_id, storage=url)
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 4
    same = study.trials[seen.number]
    assert same.user_attrs["smptune_trial"] == seen.user_attrs["smptune_trial"]
    assert len(same.intermediate_values) == 3
    results = store.get_sweep(sweep_id, full=True).results
    assert study.best_trial.user_attrs["smptune_trial"] == results["best"]["trial"]


def test_the_dashboard_runs_optuna_dashboard_on_the_mirrored_study(
    tmp_path, redis_server, store: SweepStore, start_workers
):
    # Given optuna-dashboard on PATH (here a stand-in that records how it was started and
    # which trials it could read from the storage when it was asked to stop)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    seen = tmp_path / "dashboard.json"
    fake = bin_dir / "optuna-dashboard"
    fake.write_text(
        f"#!{sys.executable}\n"
        "import json, signal, sys, time, optuna\n"
        "def stop(*_):\n"
        "    names = optuna.study.get_all_study_names(sys.argv[1])\n"
        "    trials = {n: len(optuna.load_study(study_name=n, storage=sys.argv[1]).trials)\n"
        "              for n in names}\n"
        f"    open({str(seen)!r}, 'w').write(json.dumps({{'argv': sys.argv[1:],"
        " 'trials': trials}))\n"
        "    sys.exit(0)\n"
        "signal.signal(signal.SIGTERM, stop)\n"
        "while True: time.sleep(0.1)\n"
    )
    fake.chmod(0o755)
    path = f"{bin_dir}{os.pathsep}{os.environ['PATH']}"
    sweep_id = _slow_sweep(tmp_path, redis_server)
    url = f"sqlite:///{tmp_path / 'dash.db'}"
    start_workers("--cpu", "1")

    # When the dashboard command follows the sweep until it ends, and is then stopped
    dashboard = _popen(
        "dashboard", sweep_id, "--broker", redis_server.url, "--optuna-storage", url,
        "--port", "8123", "--every", "0.3", PATH=path,
    )  # fmt: skip
    wait_for(lambda: store.get_sweep(sweep_id).status == "done", 120)
    wait_for(lambda: len(optuna.load_study(study_name=sweep_id, storage=url).trials) == 4, 30)
    time.sleep(1.0)
    dashboard.send_signal(signal.SIGINT)
    _, err = dashboard.communicate(timeout=60)

    # Then optuna-dashboard was started on that storage and port, and saw the whole sweep
    assert "optuna-dashboard on http://127.0.0.1:8123/" in err
    assert "the dashboard stays up until Ctrl-C" in err
    started = json.loads(seen.read_text())
    assert started["argv"] == [url, "--host", "127.0.0.1", "--port", "8123"]
    assert started["trials"] == {sweep_id: 4}


@pytest.mark.skipif(find_spec("optuna_dashboard") is not None, reason="it is installed")
def test_the_dashboard_without_optuna_dashboard_says_how_to_get_it(redis_server):
    result = run_cli(
        "producer", "dashboard", "some-sweep", "--broker", redis_server.url, PATH="/usr/bin:/bin"
    )
    assert result.returncode == 2
    assert "optuna-dashboard is not installed (pip install optuna-dashboard)" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _dom(url: str, tmp_path) -> str:
    """The page at ``url`` after its scripts ran, as headless Chromium renders it."""
    return subprocess.run(
        [
            shutil.which("chromium") or "chromium",
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            f"--user-data-dir={tmp_path / 'chromium-profile'}",
            "--virtual-time-budget=30000",
            "--dump-dom",
            url,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    ).stdout


@pytest.mark.skipif(
    find_spec("optuna_dashboard") is None or shutil.which("chromium") is None,
    reason="needs optuna-dashboard and chromium (scripts/ci-deps.sh installs both when it can)",
)
def test_the_dashboard_shows_the_sweeps_trials_in_a_browser(
    tmp_path, redis_server, store: SweepStore, finished_sweep: str
):
    # Given a finished sweep of 10 trials and `producer dashboard` on it
    url = f"sqlite:///{tmp_path / 'seen.db'}"
    port = _free_port()
    dashboard = _popen(
        "dashboard", finished_sweep, "--broker", redis_server.url, "--optuna-storage", url,
        "--port", str(port), "--every", "0.5",
    )  # fmt: skip
    try:
        import urllib.request

        def up() -> bool:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/studies", timeout=2):
                    return True
            except OSError:
                return False

        wait_for(up, 60, 0.5)
        wait_for(lambda: len(optuna.load_study(study_name=finished_sweep, storage=url).trials)
                 == 10, 60)  # fmt: skip
        # When a browser opens the dashboard's study list and the study's trial table
        listing = _dom(f"http://127.0.0.1:{port}/dashboard/", tmp_path)
        study_id = optuna.load_study(study_name=finished_sweep, storage=url)._study_id
        trials = _dom(f"http://127.0.0.1:{port}/dashboard/studies/{study_id}/trials", tmp_path)
    finally:
        dashboard.send_signal(signal.SIGINT)
        dashboard.communicate(timeout=60)
    # Then it lists the sweep's study, and the study's trial list shows all 10 trials with
    # their states
    assert finished_sweep in listing, listing[-2000:]
    assert all(f"Trial {n}" in trials for n in range(10)), trials[-2000:]
    assert "Complete" in trials and "Pruned" in trials and "Fail" in trials
