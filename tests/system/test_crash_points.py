"""Crash anywhere: a process killed at each step of a sweep's life leaves a sweep that ends by
itself, every trial recorded once, finalized and retrained once per generation.

One test per crash point of :data:`smptune.lifecycle.POINTS`, on real Redis and real
``workers start`` machines: the producer ends itself at a producer point; a whole machine
(supervisor and every worker process) is killed at a worker's or a supervisor's point. A
fresh machine is then started (for a producer point whose machine lives on, nothing is), and
the sweep must end by itself. A reaper point needs a fault for its reaper to repair first:
that fault is another point, crashed on another machine before.
"""

from __future__ import annotations

import json
import os
import signal
import statistics
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from smptune.lifecycle import CRASH_AT_ENV, CRASH_KILL_ENV, CRASH_MARKER_ENV, POINTS
from smptune.messages import trial_task_id
from smptune.queue.store import SweepStore

from conftest import run_cli, wait_for, write_config

TTL = 3.0  # the lease TTL, seconds (production: 30)
RECOVERY_LOG = "SMPTUNE_CRASH_RECOVERY_LOG"


@dataclass(frozen=True)
class Fault:
    """One crash at ``point`` by ``how``: ``submit`` (the producer's submit), ``host`` (a
    machine that runs the sweep), ``preempted`` (a preemptible machine told to stop mid-epoch),
    ``extend-running`` / ``extend-ended`` (``producer extend`` of a sweep still running / ended,
    on a machine that lives on), ``drop`` (no crash: a queued trial's message is lost)."""

    point: str
    how: str = "host"


SCENARIOS: dict[str, tuple[Fault, ...]] = {
    "submit.recorded": (Fault("submit.recorded", "submit"),),
    "submit.sent": (Fault("submit.sent", "submit"),),
    "trial.claimed": (Fault("trial.claimed"),),
    "trial.started": (Fault("trial.started"),),
    "trial.epoch": (Fault("trial.epoch"),),
    "trial.checkpointed": (Fault("trial.checkpointed"),),
    "trial.run_recorded": (Fault("trial.run_recorded"),),
    "trial.finished": (Fault("trial.finished"),),
    "finalize.claimed": (Fault("finalize.claimed"),),
    "finalize.results": (Fault("finalize.results"),),
    "finalize.status": (Fault("finalize.status"),),
    "retrain.claimed": (Fault("retrain.claimed"),),
    "retrain.tested": (Fault("retrain.tested"),),
    "extend.counted": (Fault("extend.counted", "extend-running"),),
    "continue.reopened": (Fault("continue.reopened", "extend-ended"),),
    "reaper.orphan_claimed": (Fault("trial.started"), Fault("reaper.orphan_claimed")),
    "reaper.lost_claimed": (Fault("", "drop"), Fault("reaper.lost_claimed")),
    "reaper.submit_claimed": (Fault("submit.recorded", "submit"), Fault("reaper.submit_claimed")),
    "reaper.finalize_claimed": (Fault("trial.finished"), Fault("reaper.finalize_claimed")),
    "reaper.retrain_claimed": (Fault("retrain.claimed"), Fault("reaper.retrain_claimed")),
    "supervisor.given_back": (Fault("supervisor.given_back", "preempted"),),
}


def test_every_crash_point_of_the_step_table_has_a_scenario():
    assert set(SCENARIOS) == set(POINTS)
    assert all(faults[-1].point == point for point, faults in SCENARIOS.items())


def _config(path: Path, how: str, retrain: bool) -> Path:
    """Two trials of two folds of the learning-curve trainable, checkpointing each epoch
    (retrained when ``retrain``); a preempted machine's epochs outlast its grace."""
    slow = how in ("preempted", "extend-running")
    return write_config(
        path,
        retrain_and_test=retrain,
        trainable="smptune.fakes:LearningCurveTrainable",
        n_trials=1 if how == "preempted" else 2,
        cv={"n_folds": 2},
        training={"max_epochs": 1 if how == "preempted" else 3},
        hyperparameters={
            "x": {"low": 0.5, "high": 0.9},
            "y": 0.3,
            "epoch_s": 4.0 if how == "preempted" else 0.4 if slow else 0.05,
        },
    )


class Machines:
    """The machines and producer runs of one scenario, each fault with its crash marker."""

    def __init__(self, tmp_path: Path, url: str, start_workers) -> None:
        self.tmp_path = tmp_path
        self.url = url
        self.start_workers = start_workers
        self.artifacts = tmp_path / "artifacts"
        self.count = 0

    def crash_env(self, point: str) -> tuple[dict[str, str], Path]:
        self.count += 1
        marker = self.tmp_path / f"crashed-{self.count}"
        env = {CRASH_AT_ENV: point, CRASH_MARKER_ENV: str(marker), CRASH_KILL_ENV: "group"}
        return env, marker

    def machine(self, *args: str, **env: str):
        name = f"host-{self.count}-{len(env)}"
        return self.start_workers(
            "--cpu", "1", "--hostname", name, *args, name=name, SMPTUNE_LEASE_TTL=str(TTL), **env
        )

    def producer(self, *args: str | Path, **env: str) -> subprocess.CompletedProcess:
        return run_cli(
            "producer", *args, "--broker", self.url, timeout=120, SMPTUNE_LEASE_TTL=str(TTL), **env
        )


def _crashed(marker: Path, machine=None) -> None:
    wait_for(marker.exists, 90, 0.05)
    if machine is not None:
        wait_for(lambda: machine.process.poll() is not None, 30, 0.05)


def _sweep_id(store: SweepStore) -> str:
    return wait_for(lambda: store.list_sweeps() and store.list_sweeps()[0].id, 60, 0.05)


def _done(store: SweepStore, sweep_id: str) -> bool:
    return store.get_sweep(sweep_id).status == "done"


def _submit(m: Machines, config: Path, **env: str) -> subprocess.CompletedProcess:
    return m.producer("submit", config, "--artifacts", m.artifacts, **env)


def _drive(faults: tuple[Fault, ...], m: Machines, store: SweepStore, config: Path):
    """Crash at each fault in turn; the sweep, the number of generations it should end
    with, and the machine that lives on (None: a fresh one is needed)."""
    sweep_id, generations, alive = None, 1, None
    for fault in faults:
        if fault.how == "submit":
            env, marker = m.crash_env(fault.point)
            result = _submit(m, config, **{**env, CRASH_KILL_ENV: ""})
            assert result.returncode == 137, result.stderr
            assert marker.exists()
        elif fault.how == "drop":
            result = _submit(m, config)
            assert result.returncode == 0, result.stderr
            sweep_id = result.stdout.split()[0]
            removed = 0
            for key in store.r.scan_iter(match="smptune*", _type="list"):
                for item in store.r.lrange(key, 0, -1):
                    if json.loads(item)["headers"]["id"] == trial_task_id(sweep_id, 1):
                        removed += store.r.lrem(key, 1, item)
            assert removed == 1
        elif fault.how == "host":
            env, marker = m.crash_env(fault.point)
            machine = m.machine(**env)
            if sweep_id is None and not store.list_sweeps():
                assert _submit(m, config).returncode == 0
            _crashed(marker, machine)
        elif fault.how == "preempted":
            env, marker = m.crash_env(fault.point)
            machine = m.machine("--preemptible", "--preempt-grace", "2", **env)
            assert _submit(m, config).returncode == 0
            sweep_id = _sweep_id(store)
            wait_for(lambda sweep_id=sweep_id: store.running(sweep_id), 60, 0.05)
            time.sleep(0.5)
            machine.process.send_signal(signal.SIGTERM)
            _crashed(marker, machine)
        else:  # extend a sweep on a machine that lives on
            alive = m.machine()
            assert _submit(m, config).returncode == 0
            sweep_id = _sweep_id(store)
            if fault.how == "extend-ended":
                wait_for(lambda sweep_id=sweep_id: _done(store, sweep_id), 120, 0.1)
                generations = 2
            else:
                wait_for(lambda sweep_id=sweep_id: store.running(sweep_id), 60, 0.05)
            env, marker = m.crash_env(fault.point)
            result = m.producer("extend", sweep_id, "--trials", "1", **{**env, CRASH_KILL_ENV: ""})
            assert result.returncode == 137, result.stderr
        sweep_id = sweep_id or _sweep_id(store)
    assert sweep_id is not None
    return sweep_id, generations, alive


@pytest.mark.parametrize("point", POINTS)
def test_a_crash_at_each_step_leaves_a_sweep_that_ends_by_itself(
    point, tmp_path, redis_server, store, start_workers
):
    # Given a sweep whose process crashed at this point (after the fault its reaper repairs)
    faults = SCENARIOS[point]
    m = Machines(tmp_path, redis_server.url, start_workers)
    retrain = point.startswith(("finalize.", "retrain.", "reaper.retrain"))
    config = _config(tmp_path / "s.yaml", faults[0].how, retrain)
    sweep_id, generations, alive = _drive(faults, m, store, config)

    # When a fresh machine starts (none for a producer that crashed beside a live machine)
    fresh = m.machine() if alive is None else alive
    if alive is None:
        wait_for(lambda: "ready" in fresh.logs(), 60, 0.05)
    started = time.monotonic()

    # Then the sweep ends by itself: every trial recorded once, each run once, finalized and
    # retrained once per generation, its results folder written
    def ended():
        sweep = store.get_sweep(sweep_id)
        return sweep.status.terminal and sweep.generation + 1 == generations and sweep

    sweep = wait_for(ended, 20 * TTL, 0.05)
    recovered_s = time.monotonic() - started
    assert sweep.status == "done", (sweep.status, sweep.error, fresh.logs()[-3000:])
    trials = store.trials(sweep_id)
    assert store.finished(sweep_id) == set(range(sweep.n_trials))
    assert all(t.status == "complete" for t in trials), [(t.status, t.error) for t in trials]
    assert sweep.count("complete") == sweep.n_trials, "a trial counted twice"
    assert sweep.folds_done == sweep.n_trials * sweep.n_runs, "a run recorded twice"
    assert all(len(t.folds) == sweep.n_runs for t in trials)
    assert sweep.finalize_runs == generations, "finalized once per generation"
    if retrain:
        assert sweep.test_metrics and sweep.retrained_trial is not None
        assert sweep.retrain_attempts <= 2
    assert (m.artifacts / sweep_id / "results.json").is_file()
    assert sweep_id not in store.active_sweeps()
    assert recovered_s < 3 * TTL + _work_s(faults), (point, recovered_s)
    log = os.environ.get(RECOVERY_LOG)
    if log:
        with open(log, "a") as out:
            out.write(f"{point}\t{recovered_s:.2f}\n")


def _work_s(faults: tuple[Fault, ...]) -> float:
    """Seconds of work left after recovery (the trials' epochs, a worker's start), on top
    of the 3 TTLs recovery may take."""
    how = faults[0].how
    return {"preempted": 14.0, "extend-running": 16.0, "extend-ended": 10.0}.get(how, 8.0)


def summarize_recovery(path: Path) -> str:
    """Median and worst recovery time per point, from a run with SMPTUNE_CRASH_RECOVERY_LOG."""
    rows = [line.split("\t") for line in path.read_text().splitlines()]
    times = [float(t) for _, t in rows]
    return f"{len(rows)} points: median {statistics.median(times):.1f} s, worst {max(times):.1f} s"
