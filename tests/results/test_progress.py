"""``producer status``'s snapshot reads what grows with the trials running, never with the
sweep's trials, and says what it said when it read every trial."""

from __future__ import annotations

import dataclasses
import statistics

from smptune.config import load_config
from smptune.fakes import QuadraticTrainable
from smptune.queue.routing import FleetWorker
from smptune.queue.store import SweepStore
from smptune.records import TrialStatus
from smptune.requirements import Capabilities
from smptune.results.progress import (
    estimate_eta,
    format_duration,
    progress_line,
    snapshot,
    status_lines,
    trials_text,
)
from smptune.results.status_snapshot import RunningTrial, WaitingForCapability
from smptune.results.summary import summarize

from conftest import write_config

N_FOLDS = 3


def sweep_with_trials(store: SweepStore, tmp_path, sweep_id: str, n_trials: int) -> str:
    """A sweep of ``n_trials`` trials: all but three complete (their runs timed on two
    workers), two running (one with a run recorded), one marked requeued after a run; its
    results written as a finalize writes them."""
    config = load_config(write_config(tmp_path / f"{sweep_id}.yaml", n_trials=n_trials))
    params = [{**QuadraticTrainable.defaults, "x": i / n_trials} for i in range(n_trials)]
    store.create_sweep(sweep_id, config.to_dict(), params, N_FOLDS, str(tmp_path))

    def run(trial: int, fold: int, seconds: float) -> None:
        result = {"metrics": {"score": trial / n_trials}, "best_epoch": 1, "epochs_run": 1}
        store.record_fold(sweep_id, trial, fold, {**result, "duration_s": seconds})

    for trial in range(n_trials - 3):
        store.trial_started(sweep_id, trial, f"w{trial % 2}@h", "cpu")
        for fold in range(N_FOLDS):
            run(trial, fold, 2.0 + trial % 2)
        store.finish_trial(sweep_id, trial, {"status": "complete", "score": trial / n_trials})
    busy, idle, requeued = n_trials - 3, n_trials - 2, n_trials - 1
    store.trial_started(sweep_id, requeued, "w2@h", "cpu")
    run(requeued, 0, 4.0)
    assert store.claim_orphan(sweep_id, requeued)  # no lease: its worker is gone
    store.trial_started(sweep_id, busy, "w0@h", "cpu")
    run(busy, 0, 2.0)
    store.trial_started(sweep_id, idle, "w1@h", "cpu")
    store.set_sweep_fields(sweep_id, results=summarize(store, sweep_id).to_dict())
    return sweep_id


def commands_of(store: SweepStore, action) -> dict[str, int]:
    """The Redis commands ``action()`` sends (the server's ``INFO commandstats``)."""
    store.r.config_resetstat()
    action()
    stats = store.r.info("commandstats")
    return {
        name.removeprefix("cmdstat_"): int(row["calls"])
        for name, row in stats.items()
        if not name.startswith(("cmdstat_config", "cmdstat_info"))
    }


def test_a_snapshot_sends_as_many_commands_for_1000_trials_as_for_50(store, tmp_path):
    small = sweep_with_trials(store, tmp_path, "s50", 50)
    large = sweep_with_trials(store, tmp_path, "s1000", 1000)

    few = commands_of(store, lambda: snapshot(store, small))
    many = commands_of(store, lambda: snapshot(store, large))

    # the two running trials, the requeued one and the sweep's hash: the same commands
    assert few == many, (few, many)
    assert sum(many.values()) <= 25, many
    # the hash, run times, three trials and the fleet
    assert "hgetall" in many and many["hgetall"] <= 6


def test_a_snapshot_says_what_reading_every_trial_said(store, tmp_path):
    sweep_id = sweep_with_trials(store, tmp_path, "s", 12)
    snap = snapshot(store, sweep_id)

    # the requeued trial, with why it left its worker
    assert [r.to_dict() for r in snap.requeued] == [{"trial": 11, "preemptions": 0, "requeues": 1}]
    # the running trials' runs and parameters
    by_trial = {r.trial: r for r in snap.running}
    assert (by_trial[9].runs_done, by_trial[10].runs_done) == (1, 0)
    assert by_trial[9].params.startswith("x=")
    # the ETA from every run's time, as estimated from every trial's record
    assert snap.eta_s is not None and snap.eta.eta_basis is not None
    assert abs(snap.eta_s - _eta_from_every_trial(store, sweep_id, snap.running)) <= 0.1
    assert snap.eta.eta_basis.runs_measured == 9 * N_FOLDS + 2
    lines = status_lines(snap)
    assert any(line.startswith("ETA from 29 finished folds") for line in lines), lines
    assert "queued again: trial 11 (worker lost 1×)" in lines


def _eta_from_every_trial(
    store: SweepStore, sweep_id: str, running: tuple[RunningTrial, ...]
) -> float:
    """The ETA as ``producer status`` estimated it when it read every trial (a trial's runs
    counted under the worker that ran them)."""
    trials = store.trials(sweep_id)
    now = store.now()
    n_runs = N_FOLDS
    measured: dict[str, list[float]] = {}
    every: list[float] = []
    runs_by: dict[str, str] = {"9": "w0@h", "10": "w1@h", "11": "w2@h"}
    for t in trials:
        worker = runs_by.get(str(t.trial), f"w{t.trial % 2}@h")
        for run in t.folds.values():
            every.append(float(run["duration_s"]))
            measured.setdefault(worker, []).append(float(run["duration_s"]))
    mean = statistics.fmean(every)
    by_number = {t.trial: t for t in trials}
    on_workers = []
    for r in running:
        per_run = statistics.fmean(measured.get(r.worker) or [mean])
        runs = by_number[r.trial].folds
        spent = sum(float(x["duration_s"]) for x in runs.values())
        in_run = now - r.started - spent
        left = max(1, n_runs - len(runs))
        on_workers.append(left * per_run - min(max(in_run, 0.0), 0.95 * per_run))
    busy = {r.trial for r in running}
    waiting = sum(
        max(0, n_runs - len(t.folds)) * mean
        for t in trials
        if t.trial not in busy and t.status not in (TrialStatus.COMPLETE,)
    )
    return round(max((sum(on_workers) + waiting) / len(running), max(on_workers)), 1)


# --- the ETA and the counts, from figures worked out by hand ------------------------------


def test_no_eta_until_a_run_has_finished_or_with_no_worker_busy():
    running = [RunningTrial(trial=0, worker="w0@h", started=1.0)]
    assert estimate_eta({}, running, {}, waiting=5, n_runs=3, now=2.0).eta_s is None
    assert estimate_eta({"w0@h": (2, 20.0)}, [], {}, waiting=5, n_runs=3, now=2.0).eta_s is None


def test_the_eta_shares_the_runs_left_among_the_busy_workers():
    # Given worker w0 timed at 10 s a run (the sweep's mean too) and w1 not timed yet;
    # w0's trial has one of its 3 runs recorded (8 s) and is 4 s into its second,
    # w1's just started; 4 runs wait for a worker
    running = [
        RunningTrial(trial=5, worker="w0@h", started=100.0),
        RunningTrial(trial=6, worker="w1@h", started=112.0),
    ]
    runs = {5: {0: {"duration_s": 8.0}}}
    eta = estimate_eta({"w0@h": (2, 20.0)}, running, runs, waiting=4, n_runs=3, now=112.0)
    # Then: w0 has 2 x 10 - 4 = 16 s, w1 3 x 10 = 30 s, the waiting 4 x 10 = 40 s, on 2
    assert eta.eta_s == 43.0
    assert eta.eta_basis is not None
    assert eta.eta_basis.to_dict() == {"runs_measured": 2, "mean_run_s": 10.0, "workers_busy": 2}
    # And a time budget ending sooner caps it
    capped = estimate_eta(
        {"w0@h": (2, 20.0)}, running, runs, waiting=4, n_runs=3, now=112.0, deadline=132.0
    )
    assert capped.eta_s == 20.0


def test_the_eta_is_no_sooner_than_the_longest_running_trial_ends():
    # One worker slow (30 s a run, 3 runs left), one fast and nearly done, nothing waiting
    running = [
        RunningTrial(trial=0, worker="slow@h", started=50.0),
        RunningTrial(trial=1, worker="fast@h", started=50.0),
    ]
    runs = {1: {0: {"duration_s": 1.0}, 1: {"duration_s": 1.0}}}
    times = {"slow@h": (1, 30.0), "fast@h": (2, 2.0)}
    eta = estimate_eta(times, running, runs, waiting=0, n_runs=3, now=50.0)
    # (90 + 2) / 2 = 46 s shared, but the slow trial alone takes 90 s
    assert eta.eta_s == 90.0
    # And a run under way for longer than its worker's mean still leaves 5 % of it
    late = estimate_eta({"slow@h": (1, 30.0)}, running[:1], {}, 0, n_runs=1, now=1000.0)
    assert late.eta_s == 1.5


def test_durations_and_counts_read_as_the_status_line_prints_them(store, tmp_path):
    assert format_duration(None) == "--"
    assert format_duration(59.9) == "0:59"
    assert format_duration(3 * 3600 + 5 * 60 + 7) == "3:05:07"
    taken = snapshot(store, sweep_with_trials(store, tmp_path, "s", 12))
    counts = {TrialStatus.COMPLETE: 4, TrialStatus.FAILED: 1, TrialStatus.PRUNED: 2}
    snap = dataclasses.replace(taken, counts=counts, trials_total=10)
    assert trials_text(snap) == "4 done, 1 failed, 2 pruned of 10"
    grows = dataclasses.replace(
        snap, counts={**counts, TrialStatus.PRUNED: 0}, open_ended=True, trials_total=12
    )
    assert trials_text(grows) == "4 done, 1 failed of 12 so far"


def test_the_progress_line_and_status_say_what_trials_wait_for_and_list_the_fleet(store, tmp_path):
    snap = dataclasses.replace(
        snapshot(store, sweep_with_trials(store, tmp_path, "s", 4)),
        fleet=(
            FleetWorker("cpu0@big", Capabilities("cpu", 48.0, frozenset({"big"}))),
            FleetWorker("cpu1@small", Capabilities("cpu")),
            FleetWorker("cpu2@small", Capabilities("cpu")),
        ),
        waiting_for=(WaitingForCapability("gpu_memory_gb>=80", 2),),
    )
    assert "(2 waiting for gpu_memory_gb>=80) | best" in progress_line(snap)
    lines = status_lines(snap)
    assert lines[-2:] == [
        "fleet: 3 live workers (2: cpu; 1: cpu, 48 GB, tags big)",
        "2 trials waiting for a capability no live worker has: gpu_memory_gb>=80",
    ]
    shown = snap.to_dict()
    assert shown["waiting_for"] == [{"needs": "gpu_memory_gb>=80", "trials": 2}]
    assert shown["fleet"][0]["name"] == "cpu0@big" and shown["fleet"][0]["tags"] == ["big"]
