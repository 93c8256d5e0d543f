"""Continuing sweeps: ``producer resume`` after a cancel and after Redis and every worker were
killed, ``producer extend`` of an ended TPE sweep, of a random sweep's seeded stream, and of a
running sweep — through the real CLI, a real Redis and real worker processes."""

from __future__ import annotations

import json
import os
import signal
import time

from smptune.queue.store import SweepStore
from smptune.records import TrialStatus

from conftest import run_cli, submit_and_wait, wait_for, write_config


def _submit(config, url: str, artifacts) -> str:
    result = run_cli("producer", "submit", config, "--broker", url, "--artifacts", artifacts)
    assert result.returncode == 0, result.stderr
    return result.stdout.split()[0]


def test_a_sweep_whose_redis_and_every_worker_were_killed_resumes_where_it_stopped(
    tmp_path, redis_server, store: SweepStore, start_workers
):
    # Given a sweep of six trials of two 0.8-s folds on two workers, three folds recorded
    fleet = start_workers("--cpu", "2", SMPTUNE_LEASE_TTL="3")
    config = write_config(
        tmp_path / "s.yaml",
        n_trials=6,
        cv={"n_folds": 2},
        hyperparameters={"x": [0.0, 0.5, 1.0, 1.5, 2.0, 2.5], "sleep": 0.8},
    )
    sweep_id = _submit(config, redis_server.url, tmp_path / "a")
    wait_for(lambda: store.get_sweep(sweep_id).folds_done >= 3, timeout=60, interval=0.05)

    # When every worker is killed with -9, then Redis, and only Redis comes back (same AOF)
    os.killpg(fleet.process.pid, signal.SIGKILL)
    redis_server.kill()
    redis_server.start()
    lost = store.running_numbers(sweep_id)
    assert lost and store.get_sweep(sweep_id).status == "running"

    # Then resume refuses while the lost workers' leases may still be live, and says why
    early = run_cli("producer", "resume", sweep_id, "--broker", redis_server.url)
    assert early.returncode == 2 and "a live worker holds trial" in early.stderr, early.stderr
    # and once they have lapsed it queues again, at once, the trials that lost their worker
    time.sleep(3.5)
    resumed = run_cli("producer", "resume", sweep_id, "--broker", redis_server.url)
    assert resumed.returncode == 0, resumed.stderr
    assert "lost their worker or message queued again" in resumed.stdout
    requeued = {t.trial: t.requeued_at for t in store.trials(sweep_id) if t.requeued_at}
    assert set(lost) <= set(requeued)
    restarted = time.time()
    assert all(at < restarted for at in requeued.values())  # before any worker runs again

    # and workers started again finish it: every trial once, the chord fired once, no
    # recorded fold trained twice
    start_workers("--cpu", "2", name="again", SMPTUNE_LEASE_TTL="3")
    wait_for(lambda: store.get_sweep(sweep_id).status == "done", timeout=120)
    sweep = store.get_sweep(sweep_id, full=True)
    trials = store.trials(sweep_id)
    assert all(t.status is TrialStatus.COMPLETE for t in trials), [t.status for t in trials]
    assert sweep.finalize_runs == 1 and sweep.count("complete") == 6
    assert sweep.folds_done == 12 and len(sweep.results["ranking"]) == 6


def test_a_cancelled_sweep_resumes_its_unfinished_trials_and_finalizes_again(
    tmp_path, redis_server, store: SweepStore, start_workers
):
    # Given a sweep of four trials of three 2.5-s folds, cancelled while its second trial runs
    start_workers("--cpu", "1")
    config = write_config(
        tmp_path / "s.yaml",
        n_trials=4,
        hyperparameters={"x": {"low": 0.0, "high": 2.0}, "y": -2.0, "sleep": 2.5},
    )
    sweep_id = _submit(config, redis_server.url, tmp_path / "a")
    wait_for(lambda: len(store.folds(sweep_id, 1)) >= 1, timeout=60, interval=0.05)
    assert run_cli("producer", "cancel", sweep_id, "--broker", redis_server.url).returncode == 0
    wait_for(lambda: store.get_sweep(sweep_id).status.terminal, timeout=60)
    before = {t.trial: t for t in store.trials(sweep_id)}
    assert store.get_sweep(sweep_id).status == "cancelled"
    assert before[0].status is TrialStatus.COMPLETE
    assert before[1].status is TrialStatus.CANCELLED and before[1].folds

    # When it is resumed
    resumed = run_cli("producer", "resume", sweep_id, "--broker", redis_server.url, "--wait")
    assert resumed.returncode == 0, resumed.stderr + resumed.stdout
    assert "3 trials queued (a new chord): 1, 2, 3" in resumed.stdout

    # Then every trial completed; the finished one was kept, the stopped one kept its runs
    sweep = store.get_sweep(sweep_id, full=True)
    trials = {t.trial: t for t in store.trials(sweep_id)}
    assert all(t.status is TrialStatus.COMPLETE for t in trials.values())
    assert trials[0].finished == before[0].finished and trials[0].attempts == 1
    for run, result in before[1].folds.items():
        assert trials[1].folds[run] == result  # not trained again
    # and the sweep was ranked and finalized once more, then retrained (it never was)
    assert sweep.status == "done" and sweep.finalize_runs == 2 and sweep.generation == 1
    assert sweep.count("complete") == 4 and sweep.count("cancelled") == 0
    assert len(sweep.results["ranking"]) == 4
    assert sweep.test_metrics and sweep.retrained_trial == sweep.results["best"]["trial"]
    # and a sweep with nothing left to resume says so
    again = run_cli("producer", "resume", sweep_id, "--broker", redis_server.url)
    assert again.returncode == 2 and "no trial left to resume" in again.stderr


def test_an_ended_tpe_sweep_is_extended_and_its_sampler_learns_from_every_trial(
    tmp_path, redis_server, store: SweepStore, start_workers
):
    # Given a finished TPE sweep of four trials
    start_workers("--cpu", "1")
    config = write_config(
        tmp_path / "tpe.yaml", n_trials=4, sampler={"type": "tpe", "n_startup_trials": 2}
    )
    sweep_id, result = submit_and_wait(config, redis_server.url, tmp_path / "a")
    assert result.returncode == 0, result.stderr + result.stdout
    first_best = store.get_sweep(sweep_id, full=True).results["best"]["trial"]

    # When it gets three more trials
    extended = run_cli(
        "producer", "extend", sweep_id, "--trials", "3", "--broker", redis_server.url, "--wait"
    )
    assert extended.returncode == 0, extended.stderr + extended.stdout

    # Then seven trials are ranked; the new ones were asked when they started
    sweep = store.get_sweep(sweep_id, full=True)
    trials = store.trials(sweep_id)
    assert sweep.n_trials == 7 and len(sweep.results["ranking"]) == 7
    assert all(t.status is TrialStatus.COMPLETE and t.params for t in trials)
    assert sweep.finalize_runs == 2 and sweep.status == "done"
    # and retrain-and-test ran again only if the best trial changed
    best = sweep.results["best"]["trial"]
    assert sweep.retrained_trial == best
    if best == first_best:
        assert "retrain-and-test of trial" not in extended.stdout


def test_random_search_continues_its_seeded_stream_without_repeating_a_configuration(
    tmp_path, redis_server, store: SweepStore, start_workers
):
    # Given a finished random sweep over a space of six configurations
    start_workers("--cpu", "1")
    space = {"x": [0.0, 1.0, 2.0], "y": [-2.0, -1.0]}
    config = write_config(tmp_path / "r.yaml", n_trials=2, hyperparameters=space)
    sweep_id, result = submit_and_wait(config, redis_server.url, tmp_path / "a")
    assert result.returncode == 0, result.stderr + result.stdout

    # When it gets three more trials, then asks for more than the space has left
    broker = ("--broker", redis_server.url)
    extended = run_cli("producer", "extend", sweep_id, "--trials", "3", *broker, "--wait")
    assert extended.returncode == 0, extended.stderr + extended.stdout
    too_many = run_cli("producer", "extend", sweep_id, "--trials", "5", *broker)

    # Then the five configurations differ, and the space's limit is named
    seen = [json.dumps([t.params["x"], t.params["y"]]) for t in store.trials(sweep_id)]
    assert len(seen) == 5 == len(set(seen))
    assert too_many.returncode == 2
    assert "has only 1 configurations this sweep has not trained yet" in too_many.stderr


def test_a_running_sweep_is_extended_in_place_and_finalizes_once(
    tmp_path, redis_server, store: SweepStore, start_workers
):
    # Given a sweep of two 5-s trials that is running (long enough for the extend's CLI to
    # start on a loaded machine before the chord fires)
    start_workers("--cpu", "1")
    config = write_config(
        tmp_path / "s.yaml",
        n_trials=2,
        cv={"n_folds": 2},
        hyperparameters={"x": {"low": 0.0, "high": 2.0}, "y": -2.0, "sleep": 2.5},
    )
    sweep_id = _submit(config, redis_server.url, tmp_path / "a")
    wait_for(lambda: store.get_sweep(sweep_id).status == "running", timeout=60, interval=0.05)

    # When it gets two more trials
    extended = run_cli(
        "producer", "extend", sweep_id, "--trials", "2", "--broker", redis_server.url, "--wait"
    )
    assert extended.returncode == 0, extended.stderr + extended.stdout
    assert "2 trials queued (the running chord): 2, 3" in extended.stdout

    # Then its one chord waited for all four, and fired once
    sweep = store.get_sweep(sweep_id, full=True)
    assert sweep.n_trials == 4 and sweep.count("complete") == 4
    assert sweep.finalize_runs == 1 and sweep.finalize_duplicates == 0
    assert len(sweep.results["ranking"]) == 4 and sweep.status == "done"


def test_a_sweep_whose_retrain_failed_is_retrained_when_resumed(
    tmp_path, redis_server, store: SweepStore, start_workers
):
    # Given a sweep whose final model cannot be written (a file where its folder goes)
    start_workers("--cpu", "1")
    config = write_config(
        tmp_path / "s.yaml", n_trials=2, hyperparameters={"x": 1.0, "y": -2.0, "sleep": 1.0}
    )
    sweep_id = _submit(config, redis_server.url, tmp_path / "a")
    (tmp_path / "a" / sweep_id).mkdir(parents=True, exist_ok=True)  # a worker may be first
    (tmp_path / "a" / sweep_id / "final").write_text("in the way")
    wait_for(lambda: store.get_sweep(sweep_id).status.terminal, timeout=90)
    assert store.get_sweep(sweep_id).status == "failed"
    assert "retrain-and-test failed" in (store.get_sweep(sweep_id).error or "")

    # When the obstacle is gone and the sweep is resumed
    (tmp_path / "a" / sweep_id / "final").unlink()
    resumed = run_cli("producer", "resume", sweep_id, "--broker", redis_server.url, "--wait")
    assert resumed.returncode == 0, resumed.stderr + resumed.stdout
    assert "every trial has ended; ranking it and retraining the best again" in resumed.stdout

    # Then it is finalized once more and retrained: done, with its test metrics
    sweep = store.get_sweep(sweep_id)
    assert sweep.status == "done" and sweep.error is None
    assert set(sweep.test_metrics or {}) == {"score", "loss"}
    assert sweep.finalize_runs == 2 and sweep.count("complete") == 2
    assert (tmp_path / "a" / sweep_id / "final" / "model.json").is_file()
