"""What a sweep survives: lost worker processes and machines, Redis restarts, a trial that
crashes its worker every time, a producer that dies, cancel. Real processes, real Redis.

Every test checks the same three things at the end: no trial lost, none recorded twice, and
the chord callback ran once.
"""

from __future__ import annotations

import json
import os
import signal
import time

import pytest

from smptune.messages import trial_task_id
from smptune.queue.store import SweepStore
from smptune.records import TrialRecord

from conftest import run_cli, submit_and_wait, submit_in_background, wait_for, write_config

LEASE_TTL = "3"  # seconds; production uses 30


def assert_every_trial_once(store: SweepStore, sweep_id: str, statuses=("complete",)) -> list:
    sweep = store.get_sweep(sweep_id, full=True)
    trials = store.trials(sweep_id)
    assert sweep.finalize_runs == 1, "the chord callback must run exactly once"
    finished = store.r.smembers(f"smptune:sweep:{sweep_id}:finished")
    assert sorted(int(n) for n in finished) == list(range(sweep.n_trials)), "a trial lost"
    counted = sweep.count("complete") + sweep.count("failed") + sweep.count("cancelled")
    assert counted == sweep.n_trials, "a trial counted twice or not at all"
    assert all(t.status in statuses for t in trials), [t.status for t in trials]
    assert len(sweep.results["ranking"]) == sweep.n_trials
    return trials


def _sweep_id_of(store: SweepStore) -> str:
    return wait_for(lambda: store.active_sweeps() and store.active_sweeps()[0], 30)


def _running_trial(store: SweepStore, sweep_id: str, min_fold: int = 0) -> TrialRecord:
    def find():
        for r in store.running(sweep_id):
            if r["fold"] >= min_fold:
                return next(t for t in store.trials(sweep_id, [r["trial"]]))
        return None

    return wait_for(find, 60, 0.05)


def test_kill_9_of_the_worker_child_mid_fold_resumes_the_trial(
    tmp_path, redis_server, store, start_workers
):
    # Given one worker running a sweep of slow folds
    start_workers("--cpu", "1", SMPTUNE_LEASE_TTL=LEASE_TTL)
    config = write_config(
        tmp_path / "s.yaml", n_trials=3, hyperparameters={"x": [0.0, 1.0, 2.0], "sleep": 0.7}
    )
    producer = submit_in_background(config, redis_server.url, tmp_path / "a")
    sweep_id = _sweep_id_of(store)

    # When the pool child running a trial is killed in the middle of its second fold
    victim = _running_trial(store, sweep_id, min_fold=1)
    os.kill(victim.pid, signal.SIGKILL)
    _, stderr = producer.communicate(timeout=120)

    # Then the trial ran again from its first unrecorded fold and the sweep completed
    assert producer.returncode == 0, stderr
    trials = assert_every_trial_once(store, sweep_id)
    again = trials[victim.trial]
    assert again.attempts == 2
    assert sorted(again.folds) == [0, 1, 2]
    assert store.get_sweep(sweep_id).folds_done == 9  # fold 0 was not trained twice


def test_kill_9_of_a_whole_workers_machine_moves_its_trial_to_another(
    tmp_path, redis_server, store, start_workers
):
    # Given two worker "machines" and a sweep of slow trials
    a = start_workers("--cpu", "1", "--hostname", "host-a", name="a", SMPTUNE_LEASE_TTL=LEASE_TTL)
    start_workers("--cpu", "1", "--hostname", "host-b", name="b", SMPTUNE_LEASE_TTL=LEASE_TTL)
    config = write_config(
        tmp_path / "s.yaml",
        n_trials=4,
        cv={"n_folds": 2},
        hyperparameters={"x": [0.0, 1.0, 2.0, 3.0], "sleep": 1.5},
    )
    producer = submit_in_background(config, redis_server.url, tmp_path / "a")
    sweep_id = _sweep_id_of(store)

    # When host-a's supervisor and all its workers are killed mid-trial
    def on_a():
        running = [r for r in store.running(sweep_id) if r["worker"].endswith("@host-a")]
        return running and running[0]

    victim = wait_for(on_a, 60, 0.05)
    os.killpg(a.process.pid, signal.SIGKILL)
    killed_at = time.time()

    # Then it is queued again within about two lease TTLs, runs on host-b, and the sweep
    # completes
    requeued_at = wait_for(
        lambda: store.trials(sweep_id, [victim["trial"]])[0].requeued_at, 60, 0.05
    )
    assert requeued_at - killed_at < 2 * float(LEASE_TTL) + 1
    _, stderr = producer.communicate(timeout=120)
    assert producer.returncode == 0, stderr
    trials = assert_every_trial_once(store, sweep_id)
    assert trials[victim["trial"]].worker.endswith("@host-b")
    assert trials[victim["trial"]].requeues == 1


def test_redis_killed_and_restarted_mid_sweep_loses_nothing(
    tmp_path, redis_server, store, start_workers
):
    # Given a running sweep watched by `producer submit --wait`
    start_workers("--cpu", "2", SMPTUNE_LEASE_TTL=LEASE_TTL)
    config = write_config(
        tmp_path / "s.yaml",
        n_trials=8,
        cv={"n_folds": 2},
        hyperparameters={"x": {"low": 0.0, "high": 1.0}, "sleep": 0.3},
    )
    producer = submit_in_background(config, redis_server.url, tmp_path / "a")
    sweep_id = _sweep_id_of(store)
    wait_for(lambda: store.get_sweep(sweep_id).folds_done >= 3, 60, 0.05)

    # When Redis is killed with -9 and comes back two seconds later on the same AOF
    redis_server.kill()
    time.sleep(2)
    redis_server.start()

    # Then the workers and the producer reconnect and the sweep completes, every trial once
    _, stderr = producer.communicate(timeout=180)
    assert producer.returncode == 0, stderr
    assert_every_trial_once(store, sweep_id)
    assert store.get_sweep(sweep_id).status == "done"


def _drop_message(client, task_id: str) -> int:
    """Remove the queued message of ``task_id`` from every queue list, as a lost one."""
    removed = 0
    for key in client.scan_iter(match="smptune*", _type="list"):
        for item in client.lrange(key, 0, -1):
            if json.loads(item)["headers"]["id"] == task_id:
                removed += client.lrem(key, 1, item)
    return removed


@pytest.mark.parametrize("lost", [(2,), (0, 1, 2, 3)], ids=["one", "all"])
def test_a_trial_whose_message_vanished_before_it_started_is_queued_again(
    lost, tmp_path, redis_server, store, start_workers
):
    # Given a queued sweep that lost one trial's message before a worker took it (kombu pops
    # a message, then records it as unacknowledged: a Redis that dies in between drops it)
    config = write_config(
        tmp_path / "s.yaml", n_trials=4, hyperparameters={"x": [0.0, 1.0, 2.0, 3.0]}
    )
    submitted = run_cli(
        "producer", "submit", config, "--broker", redis_server.url, "--artifacts", tmp_path / "a"
    )
    assert submitted.returncode == 0, submitted.stderr
    sweep_id = submitted.stdout.split()[0]
    for trial in lost:
        assert _drop_message(store.r, trial_task_id(sweep_id, trial)) == 1

    # When workers run the sweep
    workers = start_workers("--cpu", "1", SMPTUNE_LEASE_TTL=LEASE_TTL)

    # Then once the queue has drained the reaper queues the lost trials again under their
    # chord, and the sweep completes with every trial once
    wait_for(lambda: store.get_sweep(sweep_id).status == "done", 120)
    assert_every_trial_once(store, sweep_id)
    logs = workers.logs()
    for trial in lost:
        assert f"sweep {sweep_id} trial {trial}: its message was lost before it started" in logs


def _strand_message(client, task_id: str) -> None:
    """Move the queued message of ``task_id`` into kombu's unacknowledged records, delivered
    a minute ago, as a worker whose BRPOP reply was lost in a Redis restart leaves it."""
    for key in client.scan_iter(match="smptune*", _type="list"):
        for item in client.lrange(key, 0, -1):
            payload = json.loads(item)
            if payload["headers"]["id"] != task_id:
                continue
            assert client.lrem(key, 1, item) == 1
            tag = payload["properties"]["delivery_tag"]
            client.hset("unacked", tag, json.dumps([payload, "smptune", "smptune"]))
            client.zadd("unacked_index", {tag: time.time() - 60})
            return
    raise AssertionError(f"{task_id} is not queued")


def test_a_trial_whose_message_is_recorded_taken_by_no_worker_is_queued_again(
    tmp_path, redis_server, store, start_workers
):
    # Given a queued sweep one of whose messages is recorded as taken (kombu's unacked)
    # by a worker that never got it: the visibility timeout would deliver it in 12 hours
    config = write_config(tmp_path / "s.yaml", n_trials=3, hyperparameters={"x": [0.0, 1.0, 2.0]})
    submitted = run_cli(
        "producer", "submit", config, "--broker", redis_server.url, "--artifacts", tmp_path / "a"
    )
    assert submitted.returncode == 0, submitted.stderr
    sweep_id = submitted.stdout.split()[0]
    _strand_message(store.r, trial_task_id(sweep_id, 1))

    # When workers run the sweep
    workers = start_workers("--cpu", "1", SMPTUNE_LEASE_TTL=LEASE_TTL)

    # Then the reaper queues that trial again, the sweep completes with every trial once, and
    # the stranded record is gone (nothing is delivered again later)
    wait_for(lambda: store.get_sweep(sweep_id).status == "done", 120)
    assert_every_trial_once(store, sweep_id)
    assert f"sweep {sweep_id} trial 1: its message was lost before it started" in workers.logs()
    assert store.r.hlen("unacked") == 0 and store.r.zcard("unacked_index") == 0


def test_a_trial_that_kills_its_worker_every_time_fails_after_three_attempts(
    tmp_path, redis_server, store, start_workers
):
    start_workers("--cpu", "1", SMPTUNE_LEASE_TTL=LEASE_TTL)
    config = write_config(
        tmp_path / "s.yaml",
        n_trials="grid",
        cv={"n_folds": 2},
        hyperparameters={"x": [0.0, 1.0], "crash": [False, True]},
    )
    sweep_id, result = submit_and_wait(config, redis_server.url, tmp_path / "a")

    assert result.returncode == 0, result.stderr
    trials = assert_every_trial_once(store, sweep_id, statuses=("complete", "failed"))
    crashed = [t for t in trials if t.params["crash"]]
    assert [t.status for t in crashed] == ["failed", "failed"]
    for t in crashed:
        assert "gave up after 3 attempts" in t.error, t.error
        assert t.attempts == 4
    assert all(t.status == "complete" for t in trials if not t.params["crash"])


def test_the_sweep_finishes_without_the_producer(tmp_path, redis_server, store, start_workers):
    start_workers("--cpu", "1", SMPTUNE_LEASE_TTL=LEASE_TTL)
    config = write_config(
        tmp_path / "s.yaml", n_trials=4, hyperparameters={"x": [0.0, 1.0, 2.0, 3.0], "sleep": 0.2}
    )
    producer = submit_in_background(config, redis_server.url, tmp_path / "a")
    sweep_id = _sweep_id_of(store)
    wait_for(lambda: store.running(sweep_id), 60, 0.05)  # submitted: the chord is queued
    os.killpg(producer.pid, signal.SIGKILL)
    producer.wait()

    wait_for(lambda: store.get_sweep(sweep_id).status == "done", 60)
    status = run_cli("producer", "status", sweep_id, "--json", "--broker", redis_server.url)
    assert json.loads(status.stdout)["status"] == "done"
    assert_every_trial_once(store, sweep_id)


def test_cancel_mid_sweep_stops_at_a_fold_boundary_and_writes_partial_results(
    tmp_path, redis_server, store, start_workers
):
    # Given a sweep of ten trials on one worker
    start_workers("--cpu", "1", SMPTUNE_LEASE_TTL=LEASE_TTL)
    config = write_config(
        tmp_path / "s.yaml",
        n_trials=10,
        hyperparameters={"x": {"low": 0.0, "high": 1.0}, "sleep": 0.8},
    )
    producer = submit_in_background(config, redis_server.url, tmp_path / "a")
    sweep_id = _sweep_id_of(store)
    wait_for(lambda: store.get_sweep(sweep_id).count("complete") >= 2, 60, 0.05)
    _running_trial(store, sweep_id, min_fold=1)

    # When it is cancelled
    cancel = run_cli("producer", "cancel", sweep_id, "--broker", redis_server.url)
    assert cancel.returncode == 0, cancel.stderr
    # (on a loaded machine the CLI's start takes seconds: what had ended by its return)
    ended_by_then = store.get_sweep(sweep_id).count("complete")

    # Then the producer reports it, trials queued never started, the running one stopped at
    # a fold boundary, and finalize wrote the partial results without retraining
    stdout, stderr = producer.communicate(timeout=60)
    assert producer.returncode == 1, stderr
    assert "ended cancelled" in stdout
    sweep = store.get_sweep(sweep_id)
    assert sweep.status == "cancelled"
    trials = assert_every_trial_once(store, sweep_id, statuses=("complete", "cancelled"))
    cancelled = [t for t in trials if t.status == "cancelled"]
    assert len(cancelled) >= 10 - ended_by_then - 1 >= 5  # one may end its last fold
    assert sum(1 for t in cancelled if t.attempts == 0) >= len(cancelled) - 1  # never started
    stopped = [t for t in cancelled if t.attempts == 1]
    assert all(0 < len(t.folds) < 3 for t in stopped)
    out = tmp_path / "a" / sweep_id
    results = json.loads((out / "results.json").read_text())
    assert results["trials_cancelled"] == len(cancelled)
    assert not (out / "final").exists()
    assert sweep.test_metrics is None


@pytest.mark.parametrize("sent", ["nothing", "half", "all"])
def test_a_producer_killed_while_sending_leaves_a_sweep_the_reaper_sends_to_its_end(
    sent, tmp_path, redis_server, store, celery_app, start_workers
):
    from smptune.config import load_config
    from smptune.messages import FINALIZE_SWEEP, TrialRequest, finalize_task_id
    from smptune.queue.submit import chord_template, plan_configurations, send_chord

    # Given a sweep its producer recorded with its chord's template, then died after
    # sending none, half or all of its four trials (but before saying it had sent them)
    config = load_config(write_config(tmp_path / "s.yaml", n_trials=4))
    configurations = plan_configurations(config)
    sweep_id = "killed-producer"
    callback = celery_app.signature(
        FINALIZE_SWEEP, args=(sweep_id,), queue=config.queue, task_id=finalize_task_id(sweep_id)
    )
    template = chord_template(TrialRequest(queue=config.queue), callback)
    store.create_sweep(
        sweep_id,
        config.to_dict(),
        configurations,
        3,
        str(tmp_path / "a"),
        n_trials=4,
        trial_request=template,
    )
    count = {"nothing": 0, "half": 2, "all": 4}[sent]
    if count:
        argsreprs = [f"trial {n}" for n in range(count)]
        send_chord(celery_app, sweep_id, template, argsreprs, chord_size=4)
    assert store.get_sweep(sweep_id).submitting is not None

    # When workers run
    workers = start_workers("--cpu", "1", SMPTUNE_LEASE_TTL=LEASE_TTL)

    # Then the reaper sends what was missing, and the sweep runs to its end, every trial once
    wait_for(lambda: store.get_sweep(sweep_id).status == "done", 120)
    sweep = store.get_sweep(sweep_id)
    assert_every_trial_once(store, sweep_id)
    assert sweep.finalize_runs == 1 and sweep.submitting is None
    if count < 4:  # with every message sent, the chord may fire before the reaper looks
        assert f"sweep {sweep_id}: its producer stopped while sending it" in workers.logs()


def test_a_retrain_whose_machine_is_lost_runs_again_on_another_within_two_lease_ttls(
    tmp_path, redis_server, store, start_workers
):
    # Given two worker "machines" and a sweep whose retrain-and-test takes 8 s
    a = start_workers("--cpu", "1", "--hostname", "host-a", name="a", SMPTUNE_LEASE_TTL=LEASE_TTL)
    b = start_workers("--cpu", "1", "--hostname", "host-b", name="b", SMPTUNE_LEASE_TTL=LEASE_TTL)
    config = write_config(
        tmp_path / "s.yaml",
        n_trials=1,
        cv={"n_folds": 2},
        hyperparameters={"x": 1.0, "y": -2.0, "retrain_sleep": 8.0},
    )
    producer = submit_in_background(config, redis_server.url, tmp_path / "a")
    sweep_id = _sweep_id_of(store)
    lease = f"smptune:sweep:{sweep_id}:lease:retrain"
    holder = wait_for(lambda: store.r.get(lease), 60, 0.05)

    # When the machine that retrains is killed, supervisor and workers
    victim, survivor = (a, "host-b") if holder.startswith("host-a:") else (b, "host-a")
    os.killpg(victim.process.pid, signal.SIGKILL)
    killed_at = time.time()

    # Then the reaper queues it again within about two lease TTLs, the other machine
    # retrains it, and the sweep ends done with its test metrics
    requeued_at = wait_for(
        lambda: (
            store.get_sweep(sweep_id)
            and store.r.hget(f"smptune:sweep:{sweep_id}", "retrain_requeued_at")
        ),
        60,
        0.05,
    )
    assert float(requeued_at) - killed_at < 2 * float(LEASE_TTL) + 1
    _, stderr = producer.communicate(timeout=120)
    assert producer.returncode == 0, stderr
    sweep = store.get_sweep(sweep_id)
    assert sweep.status == "done" and set(sweep.test_metrics) == {"score", "loss"}
    assert sweep.retrain_attempts == 2 and sweep.finalize_runs == 1
    survivor_logs = (b if survivor == "host-b" else a).logs()
    assert f"sweep {sweep_id}: retrain-and-test lost its worker; queueing it again" in (
        survivor_logs
    )
    assert sweep_id not in store.active_sweeps()
