"""A way out of whatever still goes wrong: ``producer delete SWEEP --force`` stops and removes
a sweep in any state, and ``producer status`` names a sweep whose finalize or retrain has
stalled — through the real CLI, a real Redis and a real worker."""

from __future__ import annotations

import json
import time

import pytest

from smptune import api
from smptune.config import load_config
from smptune.errors import ConfigError
from smptune.fakes import QuadraticTrainable
from smptune.queue.store import SweepStore

from conftest import run_cli, submit_and_wait, wait_for, write_config


def _keys(store: SweepStore, sweep_id: str) -> list[str]:
    return list(store.r.scan_iter(match=f"smptune:sweep:{sweep_id}*"))


def _redis_now(store: SweepStore) -> float:
    seconds, micros = store.r.time()
    return seconds + micros / 1e6


def test_a_running_sweep_is_force_deleted_and_its_worker_goes_on_serving(
    tmp_path, redis_server, store: SweepStore, start_workers
):
    # Given a worker training a sweep's first trial epoch by epoch, two more trials queued
    workers = start_workers("--cpu", "1", SMPTUNE_LEASE_TTL="3")
    config = write_config(
        tmp_path / "curves.yaml",
        name="curves",
        trainable="smptune.fakes:LearningCurveTrainable",
        n_trials=3,
        cv={"n_folds": 2},
        training={"max_epochs": 40},
        hyperparameters={"x": [0.2, 0.5, 0.8], "epoch_s": 0.25},
    )
    broker = ("--broker", redis_server.url)
    submitted = run_cli("producer", "submit", config, *broker, "--artifacts", tmp_path / "a")
    assert submitted.returncode == 0, submitted.stderr
    sweep_id = submitted.stdout.split()[0]
    wait_for(lambda: any(len(t.curves.get(0, ())) >= 2 for t in store.trials(sweep_id)), 60, 0.1)

    # When it is deleted without --force: refused, and the refusal names the way out
    refused = run_cli("producer", "delete", sweep_id, *broker)
    assert refused.returncode == 2
    assert "cancel it first" in refused.stderr and f"delete {sweep_id} --force" in refused.stderr
    assert store.get_sweep(sweep_id).status == "running"

    # When it is deleted with --force
    forced = run_cli("producer", "delete", sweep_id, "--force", *broker)

    # Then one line says what was removed and that its running trial was told to stop
    assert forced.returncode == 0, forced.stderr
    [line] = forced.stdout.strip().splitlines()
    assert line.startswith(f"deleted sweep {sweep_id} (it was running): ")
    assert " keys, " in line and "1 running trial told to stop" in line, line
    # and no key of the sweep is left, nor written again by the copy that was training it
    assert _keys(store, sweep_id) == []
    assert sweep_id not in store.active_sweeps()
    assert sweep_id not in [s.id for s in store.list_sweeps()]
    wait_for(lambda: "was deleted; ignoring" in workers.logs(), 30)
    time.sleep(1.5)  # a few more epochs of the stopped copy, if it went on
    assert _keys(store, sweep_id) == []

    # And the worker goes on serving: the next sweep runs to the end
    quad = write_config(tmp_path / "quad.yaml", n_trials=2)
    next_id, result = submit_and_wait(quad, redis_server.url, tmp_path / "a")
    assert result.returncode == 0, result.stderr + result.stdout
    assert store.get_sweep(next_id).count("complete") == 2
    assert _keys(store, sweep_id) == []
    logs = workers.logs()
    assert "SweepNotFoundError" not in logs and f"no sweep '{sweep_id}'" not in logs


def _finished_sweep(store: SweepStore, tmp_path, sweep_id: str, **fields: object) -> str:
    """A sweep of two trials, both recorded, with ``fields`` set on top (status, times)."""
    config = load_config(write_config(tmp_path / f"{sweep_id}.yaml", n_trials=2)).to_dict()
    params = [{**QuadraticTrainable.defaults, "x": float(i)} for i in range(2)]
    store.create_sweep(sweep_id, config, params, 3, str(tmp_path))
    for n in range(2):
        store.finish_trial(sweep_id, n, {"status": "complete", "score": 0.5})
    store.set_sweep_fields(sweep_id, started=_redis_now(store) - 120, **fields)
    return sweep_id


def _status(sweep_id: str, url: str) -> tuple[str, dict]:
    human = run_cli("producer", "status", sweep_id, "--broker", url, SMPTUNE_LEASE_TTL="3")
    assert human.returncode == 0, human.stderr
    shown = run_cli(
        "producer", "status", sweep_id, "--json", "--broker", url, SMPTUNE_LEASE_TTL="3"
    )
    assert shown.returncode == 0, shown.stderr
    return human.stdout, json.loads(shown.stdout)


def test_status_names_a_sweep_whose_finalize_or_retrain_stalled_and_the_way_out(
    tmp_path, redis_server, store: SweepStore
):
    now = _redis_now(store)
    url = redis_server.url
    # Given a sweep whose trials all finished a minute ago (20 lease TTLs) and that was
    # never finalized, no worker holding its finalize
    stuck = _finished_sweep(store, tmp_path, "stuck", status="running", last_finished=now - 60)

    # Then status names it stalled, says for how long, and gives both ways out
    human, snap = _status(stuck, url)
    [line] = [x for x in human.splitlines() if "stalled" in x]
    assert "finalize" in line and any(t in line for t in ("1:00", "1:01", "1:02")), line
    assert f"producer resume {stuck}" in line and f"producer delete {stuck} --force" in line
    assert snap["stalled"].split(" for ")[0] == line.split(" for ")[0]
    assert snap["stalled"].endswith(f"producer delete {stuck} --force removes the sweep")

    # But not while a live worker holds its finalize lease
    store.r.set(f"smptune:sweep:{stuck}:lease:finalize", "host:1:token", ex=30)
    assert "stalled" not in _status(stuck, url)[0]

    # Nor a sweep whose last trial finished a moment ago
    fresh_at = _redis_now(store) - 1  # now, not when the test began: the CLI takes seconds
    fresh = _finished_sweep(store, tmp_path, "fresh", status="running", last_finished=fresh_at)
    human, snap = _status(fresh, url)
    assert "stalled" not in human and snap["stalled"] is None

    # And a sweep retraining for a minute with no worker holding its retrain is named too
    now = _redis_now(store)
    retraining = _finished_sweep(
        store,
        tmp_path,
        "retrain",
        status="retraining",
        finalized_at=now - 70,
        last_finished=now - 80,
    )
    store.set_sweep_fields(retraining, retrain_requeued_at=now - 50)
    [line] = [x for x in _status(retraining, url)[0].splitlines() if "stalled" in x]
    assert "retrain-and-test" in line and any(t in line for t in ("0:50", "0:51", "0:52")), line
    assert f"producer delete {retraining} --force" in line


def test_the_api_deletes_a_live_sweep_only_when_forced(tmp_path, redis_server, store: SweepStore):
    # Given a queued sweep
    config = load_config(write_config(tmp_path / "s.yaml", n_trials=2)).to_dict()
    params = [{**QuadraticTrainable.defaults, "x": float(i)} for i in range(2)]
    store.create_sweep("live", config, params, 3, str(tmp_path))
    sweep = api.connect("live", broker=redis_server.url)

    # Then deleting it is refused unless forced, and forced removes every key
    with pytest.raises(ConfigError, match="force"):
        sweep.delete()
    assert store.get_sweep("live").status == "queued"
    assert sweep.delete(force=True) >= 2
    assert _keys(store, "live") == [] and store.active_sweeps() == []


def test_resume_sends_a_retrain_whose_message_was_lost_and_the_sweep_ends(
    tmp_path, redis_server, store: SweepStore, start_workers
):
    # Given a sweep retraining whose retrain message was sent (counted) and lost before a
    # worker took it (the broker's own gap between a pop and its unacked record): the
    # reaper, which sends a retrain again only while none waits, leaves it
    start_workers("--cpu", "1", SMPTUNE_LEASE_TTL="3")
    config = write_config(tmp_path / "s.yaml", n_trials=2, hyperparameters={"x": [0.0, 1.0]})
    sweep_id, done = submit_and_wait(config, redis_server.url, tmp_path / "a")
    assert done.returncode == 0, done.stderr
    store.r.hdel(f"smptune:sweep:{sweep_id}", "test_metrics", "retrained_trial")
    store.set_sweep_fields(sweep_id, status="retraining", retrain_sends=1, retrain_takes=0)
    store.r.sadd("smptune:active", sweep_id)
    time.sleep(4)  # a few reaper passes
    assert store.get_sweep(sweep_id).status == "retraining"

    # When the user resumes it, as producer status suggests
    resumed = run_cli("producer", "resume", sweep_id, "--broker", redis_server.url)

    # Then its retrain is sent again, runs, and the sweep ends done with test metrics
    assert resumed.returncode == 0, resumed.stderr
    sweep = wait_for(
        lambda: store.get_sweep(sweep_id).status == "done" and store.get_sweep(sweep_id), 60
    )
    assert sweep.test_metrics and sweep.retrained_trial is not None
    assert sweep_id not in store.active_sweeps()
