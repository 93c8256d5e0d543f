"""``producer status`` on a running sweep: who runs which trial and fold, the counts, the
best so far, an ETA from the measured fold times; ``--wait`` until the sweep ends."""

from __future__ import annotations

import json
import os
import re
import socket

from smptune.queue.store import SweepStore

from conftest import run_cli, wait_for, write_config

HOST = socket.gethostname()
FOLD_S = 1.0  # each fold of the quadratic trainable sleeps this long
N_TRIALS, N_FOLDS = 6, 3


def test_status_shows_workers_trials_folds_and_an_eta_while_a_sweep_runs(
    tmp_path, redis_server, store: SweepStore, start_workers
):
    # Given two CPU workers and a sweep whose folds take a second each, submitted without --wait
    start_workers("--cpu", "2")
    config = write_config(
        tmp_path / "s.yaml",
        n_trials=N_TRIALS,
        cv={"n_folds": N_FOLDS},
        hyperparameters={"x": {"low": -2.0, "high": 3.0}, "y": [-1.5, 0.5], "sleep": FOLD_S},
    )
    submitted = run_cli("producer", "submit", config, "--broker", redis_server.url)
    assert submitted.returncode == 0, submitted.stderr
    sweep_id = submitted.stdout.split()[0]

    # When status is asked while both workers are busy and some folds have finished
    def busy_snapshot() -> dict | None:
        result = run_cli("producer", "status", sweep_id, "--json", "--broker", redis_server.url)
        assert result.returncode == 0, result.stderr
        snap = json.loads(result.stdout)
        assert snap["status"] != "done", "the sweep ended before status saw it run"
        return snap if len(snap["running"]) == 2 and snap["folds_done"] >= 2 else None

    snap = wait_for(busy_snapshot, 60, 0.1)

    # Then the ETA is the fold time measured so far times the folds left, over two workers
    left = N_TRIALS * N_FOLDS - snap["folds_done"]
    assert snap["eta_basis"]["workers_busy"] == 2
    assert abs(snap["eta_basis"]["mean_run_s"] - FOLD_S) < 0.2
    assert left * FOLD_S / 2 - 1.5 <= snap["eta_s"] <= left * FOLD_S / 2 + 1.0, (left, snap)
    assert {r["worker"] for r in snap["running"]} == {f"cpu0@{HOST}", f"cpu1@{HOST}"}
    # each with its own half of the cores
    half = max(1, len(os.sched_getaffinity(0)) // 2)
    share = rf"cpus [\d,-]+ \({half} threads?\)"
    assert all(re.fullmatch(share, r["share"]) for r in snap["running"]), snap["running"]
    assert all(0 <= r["fold"] < N_FOLDS for r in snap["running"])

    # and the human view names each worker's trial, fold and parameters, the counts and the best
    def both_busy() -> list[str] | None:
        human = run_cli("producer", "status", sweep_id, "--broker", redis_server.url)
        assert human.returncode == 0, human.stderr
        lines = human.stdout.splitlines()
        return lines if len([x for x in lines if x.startswith("  cpu")]) == 2 else None

    lines = wait_for(both_busy, 30, 0.1)  # not caught between two trials
    assert lines[0] == f"sweep {sweep_id} (quad)"
    progress = re.fullmatch(
        rf"\[running\] folds (\d+)/{N_TRIALS * N_FOLDS} \| trials (\d+) done, 0 failed of "
        rf"{N_TRIALS} \| best (score=\d\.\d{{4}} \(trial \d\)|--) \| elapsed \d+:\d\d \| "
        r"ETA (\d+):(\d\d)",
        lines[1],
    )
    assert progress, lines[1]
    eta_s = int(progress[4]) * 60 + int(progress[5])
    assert 0 < eta_s <= N_TRIALS * N_FOLDS * FOLD_S, lines[1]
    basis = r"ETA from \d+ finished folds \(mean 1\.\d s each\) on 2 busy workers"
    assert re.fullmatch(basis, lines[2]), lines[2]
    assert lines[-1] == "fleet: 2 live workers (2: cpu)", lines
    running = [line for line in lines if line.startswith("  cpu")]
    for worker, line in zip(("cpu0", "cpu1"), running, strict=True):
        assert re.fullmatch(
            rf"  {worker}@{re.escape(HOST)} \({share}\): trial [0-5] fold [0-2] "
            r"\((1st|2nd|3rd) of 3\), "
            r"0:0\d in this trial \| x=-?\d\S*, y=(-1\.5|0\.5), sleep=1",
            line,
        ), line

    # When status --wait follows the sweep to its end
    waited = run_cli("producer", "status", sweep_id, "--wait", "--broker", redis_server.url)

    # Then it exits 0 with the finished sweep, no worker busy, and no ETA left
    assert waited.returncode == 0, waited.stderr + waited.stdout
    final = waited.stdout.splitlines()
    assert final[-3] == f"sweep {sweep_id} (quad)"
    assert final[-2].startswith(f"[done] folds {N_TRIALS * N_FOLDS}/{N_TRIALS * N_FOLDS} | ")
    assert final[-2].endswith("ETA --")
    assert final[-1].startswith("test metrics: score=")
    assert not [line for line in final if line.startswith("  cpu")]
    assert store.get_sweep(sweep_id).status == "done"
