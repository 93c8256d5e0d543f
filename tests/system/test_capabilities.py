"""Capabilities and requirements end to end, through the real CLI, a real Redis and real
worker processes: a config's ``requires`` routes the trials that need 40 GB to the worker
that advertises 48 (``workers start --gpu-memory-gb 48 --tag big``), the others anywhere,
each trial run once; a trial no live worker can run is reported by ``producer status`` as
waiting for that capability, and runs once a worker that has it starts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from smptune.api import Sweep
from smptune.queue.routing import live_fleet
from smptune.queue.store import SweepStore

from conftest import run_cli, submit_and_wait, wait_for, write_config

BIG = ("--cpu", "1", "--hostname", "big", "--tag", "big", "--gpu-memory-gb", "48")
SMALL = ("--cpu", "1", "--hostname", "small")


def _config(path: Path, n_trials: int, seed: int) -> Path:
    return write_config(
        path,
        n_trials=n_trials,
        seed=seed,
        cv={"n_folds": 2},
        hyperparameters={"x": [-1.0, 0.0, 1.0, 2.0], "y": {"low": -3.0, "high": 0.0}},
        requires=[{"when": {"x": [1.0, 2.0]}, "gpu_memory_gb": 40}],
    )


def test_trials_run_only_on_workers_that_meet_their_needs(
    tmp_path, redis_server, store: SweepStore, start_workers
):
    # Given a worker with 48 GB and the tag big, and one with nothing
    start_workers(*BIG, name="big")
    start_workers(*SMALL, name="small")
    wait_for(lambda: len(live_fleet(store.r)) == 2)
    # and a random search whose trials with x of 1 or 2 need 40 GB
    config = _config(tmp_path / "caps.yaml", n_trials=8, seed=5)

    # When it runs
    sweep_id, result = submit_and_wait(config, redis_server.url, tmp_path / "artifacts")
    assert result.returncode == 0, result.stderr + result.stdout

    # Then every trial completed once, and those that need 40 GB ran on the big worker
    trials = store.trials(sweep_id)
    assert len(trials) == 8 and all(t.status == "complete" for t in trials)
    needy = [t for t in trials if t.params["x"] in (1.0, 2.0)]
    assert needy and len(needy) < 8  # the seed draws both kinds
    assert {t.worker for t in needy} == {"cpu0@big"}
    assert store.get_sweep(sweep_id).status == "done"
    # and the fleet shows both workers with what they have
    fleet = {w.name: w.capabilities for w in live_fleet(store.r)}
    assert fleet["cpu0@big"].gpu_memory_gb == 48 and fleet["cpu0@big"].tags == {"big"}
    assert fleet["cpu0@small"].gpu_memory_gb is None and not fleet["cpu0@small"].tags


def test_an_adaptive_trial_asked_on_a_worker_that_lacks_its_needs_runs_on_one_that_has_them(
    tmp_path, redis_server, store: SweepStore, start_workers
):
    # Given only the small worker, and a TPE sweep whose trials with x of 1 or 2 need 40 GB
    small = start_workers(*SMALL, name="small")
    wait_for(lambda: live_fleet(store.r))
    config = _config(tmp_path / "tpe.yaml", n_trials=8, seed=5)
    config.write_text(config.read_text() + "sampler: {type: tpe, n_startup_trials: 4}\n")
    url = redis_server.url
    submitted = run_cli("producer", "submit", config, "--broker", url, "--artifacts", tmp_path)
    assert submitted.returncode == 0, submitted.stderr
    sweep_id = submitted.stdout.split()[0]

    # When the small worker has asked every trial's configuration (each as it took it)
    wait_for(lambda: len(store.r.hkeys(f"smptune:sweep:{sweep_id}:params")) == 8, timeout=120)

    # Then those that need 40 GB wait for a worker that has it, asked once, not run
    def waiting() -> list:
        shown = run_cli("producer", "status", sweep_id, "--broker", url, "--json")
        return list(json.loads(shown.stdout).get("waiting_for", []))

    needy = {n for n in range(8) if store.params(sweep_id, n)["x"] in (1.0, 2.0)}
    assert needy
    wait_for(lambda: store.finished_count(sweep_id) == 8 - len(needy), timeout=120)
    assert wait_for(waiting) == [{"needs": "gpu_memory_gb>=40", "trials": len(needy)}]
    assert "which this worker lacks; sent to its capability queue" in small.logs()

    # When the big worker starts, they run there, with the configurations asked before
    asked = {n: store.params(sweep_id, n) for n in needy}
    start_workers(*BIG, name="big")
    run_cli("producer", "status", sweep_id, "--broker", url, "--wait", timeout=180)
    trials = {t.trial: t for t in store.trials(sweep_id)}
    assert len(trials) == 8 and all(t.status == "complete" for t in trials.values())
    assert {trials[n].worker for n in needy} == {"cpu0@big"}
    assert {n: trials[n].params for n in needy} == asked
    assert store.get_sweep(sweep_id).count("complete") == 8


def test_a_trial_no_live_worker_can_run_is_reported_until_one_that_can_starts(
    tmp_path, redis_server, store: SweepStore, start_workers
):
    # Given only a worker without GPU memory, and a sweep some of whose trials need 40 GB
    start_workers(*SMALL, name="small")
    wait_for(lambda: live_fleet(store.r))
    config = _config(tmp_path / "caps.yaml", n_trials=6, seed=5)
    url = redis_server.url
    submitted = run_cli("producer", "submit", config, "--broker", url, "--artifacts", tmp_path)
    assert submitted.returncode == 0, submitted.stderr
    sweep_id = submitted.stdout.split()[0]
    needy = {n for n in range(6) if store.params(sweep_id, n)["x"] >= 1}
    assert needy and len(needy) < 6

    # When the trials the worker can run have finished
    wait_for(lambda: store.finished_count(sweep_id) == 6 - len(needy), timeout=120)

    # Then producer status says the others wait for a capability no live worker has
    def status() -> dict:
        shown = run_cli("producer", "status", sweep_id, "--broker", url, "--json")
        assert shown.returncode == 0, shown.stderr
        return dict(json.loads(shown.stdout))

    snap = wait_for(lambda: (s := status()).get("waiting_for") and s)
    assert snap["waiting_for"] == [{"needs": "gpu_memory_gb>=40", "trials": len(needy)}]
    assert [w["name"] for w in snap["fleet"]] == ["cpu0@small"]
    text = run_cli("producer", "status", sweep_id, "--broker", url).stdout
    line = f"{len(needy)} trial{'s' if len(needy) > 1 else ''} waiting for a capability"
    assert f"{line} no live worker has: gpu_memory_gb>=40" in text
    assert "fleet: 1 live worker (1: cpu)" in text
    assert store.finished_count(sweep_id) == 6 - len(needy)  # nothing ran them meanwhile
    # and each waits in its capability queue once (the reaper sent no copies)
    waiting = store.r.keys("smptune.needs.mem40*")
    assert waiting and sum(store.r.llen(k) for k in waiting) == len(needy)

    # When a worker that has it starts
    start_workers(*BIG, name="big")
    done = run_cli("producer", "status", sweep_id, "--broker", url, "--wait", timeout=180)

    # Then they run there, once each, and the sweep ends
    assert done.returncode == 0, done.stderr
    trials = {t.trial: t for t in store.trials(sweep_id)}
    assert all(t.status == "complete" for t in trials.values()) and len(trials) == 6
    assert {trials[n].worker for n in needy} == {"cpu0@big"}
    assert (
        "waiting for a capability"
        not in run_cli("producer", "status", sweep_id, "--broker", url).stdout
    )


@pytest.mark.parametrize("way", ["cli", "api"])
def test_cancel_ends_the_trials_no_live_worker_can_run(
    way, tmp_path, redis_server, store: SweepStore, start_workers
):
    # Given only a worker without tags, and a sweep every trial of which needs the tag big
    start_workers(*SMALL, name="small")
    wait_for(lambda: live_fleet(store.r))
    config = write_config(tmp_path / "big.yaml", n_trials=3, requires={"tags": ["big"]})
    url = redis_server.url
    submitted = run_cli("producer", "submit", config, "--broker", url, "--artifacts", tmp_path)
    assert submitted.returncode == 0, submitted.stderr
    sweep_id = submitted.stdout.split()[0]
    shown = run_cli("producer", "status", sweep_id, "--broker", url)
    assert "3 trials waiting for a capability no live worker has: tags=big" in shown.stdout

    # When it is cancelled
    if way == "cli":
        cancelled = run_cli("producer", "cancel", sweep_id, "--broker", url)
        assert cancelled.returncode == 0, cancelled.stderr
    else:
        assert Sweep(sweep_id, url).cancel() is True
    done = run_cli("producer", "status", sweep_id, "--broker", url, "--wait", timeout=120)

    # Then it ends, its trials cancelled without running a fold
    assert "[cancelled]" in done.stdout and "3 cancelled of 3" in done.stdout, done.stdout
    assert store.get_sweep(sweep_id).status == "cancelled"
    trials = store.trials(sweep_id)
    assert len(trials) == 3 and all(t.status == "cancelled" for t in trials)
    assert store.get_sweep(sweep_id).folds_done == 0
