"""``StatusSnapshot.to_dict`` is the JSON ``producer status --json`` printed before the
snapshot was a typed record, and ``status_lines`` the lines it printed: the old code that
built the dict is kept here as the golden, run on the same sweeps at the same instant."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Mapping
from typing import Any

import pytest

from smptune.config import load_config
from smptune.fakes import QuadraticTrainable
from smptune.queue.store import SweepStore
from smptune.records import TrialStatus
from smptune.results.labels import metrics_text
from smptune.results.progress import (
    SHOWN_OUTCOMES,
    format_duration,
    snapshot,
    stalled_line,
    status_lines,
    waiting_runs,
)
from smptune.search.distributions import param_text
from smptune.search.halving import Halving

from conftest import write_config

N_TRIALS, N_FOLDS, N_RANDOMS = 8, 3, 2


def _sweep(store: SweepStore, tmp_path, sweep_id: str = "s") -> str:
    """A sweep with a rung pruner, two seeds a fold, class names and a time budget's
    deadline: four trials complete and one pruned (timed on two workers), two running (one
    with a run recorded), one requeued after its worker was lost; rung decisions made."""
    path = write_config(
        tmp_path / f"{sweep_id}.yaml",
        n_trials=N_TRIALS,
        pruner="asha",
        class_names=["bg", "fg"],
        training={"max_epochs": 4},
        cv={"n_folds": N_FOLDS, "n_randoms": N_RANDOMS},
    )
    config = load_config(path)
    params = [{**QuadraticTrainable.defaults, "x": i / 4, "y": -i / 8} for i in range(N_TRIALS)]
    store.create_sweep(
        sweep_id, config.to_dict(), params, N_FOLDS, str(tmp_path), n_runs=config.n_runs
    )

    def run(trial: int, index: int, seconds: float) -> None:
        result = {"metrics": {"score": trial / N_TRIALS}, "best_epoch": 1, "epochs_run": 1}
        store.record_fold(sweep_id, trial, index, {**result, "duration_s": seconds})

    for trial in range(N_TRIALS - 3):
        store.trial_started(sweep_id, trial, f"w{trial % 2}@h", "cpu")
        for index in range(config.n_runs):
            run(trial, index, 2.0 + trial % 2)
        status = "pruned" if trial == 0 else "complete"
        store.finish_trial(sweep_id, trial, {"status": status, "score": trial / N_TRIALS})
    busy, idle, requeued = N_TRIALS - 3, N_TRIALS - 2, N_TRIALS - 1
    store.trial_started(sweep_id, requeued, "w2@h", "cpu")
    run(requeued, 0, 4.0)
    assert store.claim_orphan(sweep_id, requeued)  # no lease: its worker is gone
    store.trial_started(sweep_id, busy, "w0@h", "cpu", share="cpus 0-1 (2 threads)")
    run(busy, 0, 2.0)
    store.trial_started(sweep_id, idle, "w1@h", "cpu", share="cpus 2-3 (2 threads)")
    halving = Halving.from_spec(config.pruner_spec, config.max_epochs, config.n_runs)
    rungs = store.rungs(sweep_id, halving, "max")
    for trial, value in ((0, 0.3), (1, 0.5), (2, math.nan), (3, 0.1), (4, 0.6)):
        rungs.decide(trial, 0, 0, value)
    store.set_sweep_fields(sweep_id, deadline=store.now() + 3600.0)
    return sweep_id


def _at_one_instant(store: SweepStore, monkeypatch: pytest.MonkeyPatch) -> None:
    """The store's clock stopped: both snapshots see the same now."""
    now = store.now()
    monkeypatch.setattr(store, "now", lambda: now)


def _ended(store: SweepStore, sweep_id: str) -> None:
    """The sweep ended failed, with its test metrics and an error."""
    store.set_sweep_fields(
        sweep_id,
        status="failed",
        finished=store.now(),
        test_metrics={"score": 0.91, "iou": 0.5},
        error="retrain-and-test: out of memory",
    )


@pytest.mark.parametrize("ended", [False, True], ids=["running", "ended"])
def test_the_json_and_the_lines_are_those_of_the_dict_before(
    store: SweepStore, tmp_path, monkeypatch: pytest.MonkeyPatch, ended: bool
):
    # Given a sweep with trials running, requeued and complete, rungs and a deadline
    sweep_id = _sweep(store, tmp_path)
    if ended:
        _ended(store, sweep_id)
    _at_one_instant(store, monkeypatch)

    # When its snapshot is taken, and the old dict is built at the same instant
    snap = snapshot(store, sweep_id)
    golden = _old_snapshot(store, sweep_id)

    # Then --json prints the same text: keys, their order and every value
    assert json.dumps(snap.to_dict(), indent=2) == json.dumps(golden, indent=2)
    assert list(snap.to_dict()) == list(golden)
    # and the sweep has what each part of the JSON shows
    if ended:
        assert snap.test_metrics and snap.error and not snap.running[0].params
    else:
        assert snap.eta_s is not None and snap.requeued and snap.rungs and snap.deadline
        assert all(r.params and r.share and r.runs_done is not None for r in snap.running)
        assert snap.count(TrialStatus.PRUNED) == 1
    # and producer status prints the same lines
    assert status_lines(snap) == _old_status_lines(golden)


# --- the golden: the snapshot as a dict, as smptune built and printed it before ------------


def _old_snapshot(store: SweepStore, sweep_id: str) -> dict[str, Any]:
    now = store.now()  # stamps other hosts wrote are compared with Redis's clock
    sweep = store.get_sweep(sweep_id)
    config = sweep.config.to_dict()  # the snapshot is plain JSON: it reads the stored form
    mode = config.get("mode", "max")
    n_runs = sweep.n_runs  # folds × seeds of one trial
    counts = {o.counter: sweep.count(o) for o in SHOWN_OUTCOMES}
    started = sweep.started or 0.0
    elapsed = (sweep.finished or now) - started if started else 0.0
    running = store.running(sweep_id)
    eta: dict[str, Any] = {"eta_s": None, "eta_basis": None}
    requeued: list[dict[str, Any]] = []
    if not sweep.status.terminal:
        reads = store.progress_reads(sweep_id, [r["trial"] for r in running])
        requeued = [
            {"trial": n, "preemptions": preemptions, "requeues": requeues}
            for n, (status, preemptions, requeues) in sorted(reads.others.items())
            if status is TrialStatus.REQUEUED
        ]
        if running:
            waiting = waiting_runs(sweep, len(running), reads)
            eta = _old_estimate_eta(
                reads.run_times, running, reads.runs, waiting, n_runs, now, sweep.deadline
            )
        names = list(config.get("hyperparameters") or {})
        for r in running:
            params = reads.params.get(r["trial"]) or {}
            r["runs_done"] = len(reads.runs.get(r["trial"]) or {})
            r["params"] = ", ".join(param_text(n, params[n]) for n in names if n in params)
    for r in running:
        r.setdefault("runs_done", None)
        r.setdefault("params", "")
        r["running_s"] = round(now - r["started"], 1) if r["started"] else None
    best = store.best_score(sweep_id, mode)
    return {
        "sweep_id": sweep_id,
        "name": sweep.name,
        "status": sweep.status.value,
        "folds_done": sweep.folds_done,
        "folds_total": sweep.n_trials * n_runs,
        "n_folds": sweep.n_folds,
        "n_runs": n_runs,
        "trials_total": sweep.n_trials,
        "open_ended": sweep.open_ended,
        "deadline": sweep.deadline,
        **counts,
        "trials_finished": sweep.n_finished,
        "best": None if best is None else {"trial": best[0], "score": best[1]},
        "metric": config.get("metric"),
        "mode": mode,
        "elapsed_s": round(elapsed, 1),
        **eta,
        "running": running,
        "requeued": requeued,
        "test_metrics": sweep.test_metrics,
        "class_names": config.get("class_names"),
        "error": sweep.error,
        "finalize_runs": sweep.finalize_runs,
        "rungs": _old_rung_counts(store, sweep_id, config, n_runs),
        "stalled": stalled_line(store, sweep),
    }


def _old_rung_counts(
    store: SweepStore, sweep_id: str, config: Mapping[str, Any], n_runs: int
) -> list[dict[str, Any]]:
    from smptune.search.halving import Halving
    from smptune.search.specs import PrunerSpec

    spec = PrunerSpec.parse(config.get("pruner"))
    if not spec.halving:
        return []
    halving = Halving.from_spec(spec, int(config["training"]["max_epochs"]), n_runs)
    seeds = int((config.get("cv") or {}).get("n_randoms") or 1)
    return [
        {
            "bracket": c.bracket,
            "where": c.rung.where(seeds),
            "reached": c.reached,
            "promoted": c.promoted,
            "stopped": c.stopped,
        }
        for c in store.rungs(sweep_id, halving, mode=str(config.get("mode", "max"))).counts()
    ]


def _old_estimate_eta(
    run_times: Mapping[str, tuple[int, float]],
    running: list[dict[str, Any]],
    runs: Mapping[int, Mapping[int, Mapping[str, Any]]],
    waiting: int,
    n_runs: int,
    now: float,
    deadline: float | None = None,
) -> dict[str, Any]:
    measured = sum(n for n, _ in run_times.values())
    total = sum(s for _, s in run_times.values())
    mean = total / measured if measured else None
    basis: dict[str, Any] = {
        "runs_measured": measured,
        "mean_run_s": None if mean is None else round(mean, 3),
        "workers_busy": len(running),
    }
    if mean is None or not running:
        return {"eta_s": None, "eta_basis": basis}
    on_workers: list[float] = []
    for r in running:
        n, seconds = run_times.get(r["worker"] or "", (0, 0.0))
        per_run = seconds / n if n else mean
        done = runs.get(r["trial"]) or {}
        left = max(1, n_runs - len(done))  # the run under way counts
        spent = sum(float(x.get("duration_s") or 0) for x in done.values())
        in_run = now - r["started"] - spent if r["started"] else 0.0
        on_workers.append(left * per_run - min(max(in_run, 0.0), 0.95 * per_run))
    eta = max((sum(on_workers) + waiting * mean) / len(running), max(on_workers))
    return _old_capped({"eta_s": eta, "eta_basis": basis}, now, deadline)


def _old_capped(eta: dict[str, Any], now: float, deadline: float | None) -> dict[str, Any]:
    if eta["eta_s"] is None:
        return eta
    seconds = float(eta["eta_s"])
    if deadline is not None:
        seconds = min(seconds, max(0.0, float(deadline) - now))
    return {**eta, "eta_s": round(seconds, 1)}


def _old_trials_text(snap: dict[str, Any]) -> str:
    parts = [f"{snap['trials_complete']} done", f"{snap['trials_failed']} failed"]
    parts += [f"{snap[o.counter]} {o}" for o in SHOWN_OUTCOMES[2:] if snap.get(o.counter)]
    so_far = " so far" if snap.get("open_ended") else ""
    return ", ".join(parts) + f" of {snap['trials_total']}{so_far}"


def _old_progress_line(snap: dict[str, Any]) -> str:
    best = snap["best"]
    best_text = f"{snap['metric']}={best['score']:.4f} (trial {best['trial']})" if best else "--"
    return (
        f"[{snap['status']}] folds {snap['folds_done']}/{snap['folds_total']} | "
        f"trials {_old_trials_text(snap)} | best {best_text} | "
        f"elapsed {format_duration(snap['elapsed_s'])} | ETA {format_duration(snap['eta_s'])}"
    )


def _old_status_lines(snap: dict[str, Any]) -> list[str]:
    lines = [f"sweep {snap['sweep_id']} ({snap['name']})", _old_progress_line(snap)]
    if snap.get("stalled"):
        lines.append(snap["stalled"])
    if snap.get("deadline"):
        ends = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(snap["deadline"]))
        lines.append(f"time budget: no trial starts after {ends}")
    basis = snap.get("eta_basis")
    if snap["eta_s"] is not None and basis:
        lines.append(
            f"ETA from {basis['runs_measured']} finished folds (mean "
            f"{basis['mean_run_s']:.1f} s each) on {basis['workers_busy']} busy workers"
        )
    seeds = snap["n_runs"] // max(1, snap["n_folds"])
    for r in sorted(snap["running"], key=lambda r: r["worker"] or ""):
        fold = f"fold {r['fold']} ({_ordinal(r['fold'] + 1)} of {snap['n_folds']})"
        if seeds > 1 and r["runs_done"] is not None:
            fold += f", run {min(r['runs_done'] + 1, snap['n_runs'])} of {snap['n_runs']}"
        share = f" ({r['share']})" if r.get("share") else ""
        line = f"  {r['worker']}{share}: trial {r['trial']} {fold}, "
        line += f"{format_duration(r['running_s'])} in this trial"
        lines.append(line + (f" | {r['params']}" if r["params"] else ""))
    rungs = _old_rungs_line(snap.get("rungs") or [])
    if rungs:
        lines.append(rungs)
    if snap.get("requeued"):
        lines.append("queued again: " + ", ".join(_old_requeued_text(r) for r in snap["requeued"]))
    if snap["test_metrics"]:
        shown = metrics_text(snap["test_metrics"], snap.get("class_names"))
        lines.append(f"test metrics: {shown}")
    if snap["error"]:
        lines.append(f"error: {snap['error']}")
    return lines


def _old_requeued_text(r: dict[str, Any]) -> str:
    why = []
    if r["preemptions"]:
        why.append(f"preempted {r['preemptions']}×")
    if r["requeues"]:
        why.append(f"worker lost {r['requeues']}×")
    return f"trial {r['trial']}" + (f" ({', '.join(why)})" if why else "")


def _old_rungs_line(rungs: list[dict[str, Any]]) -> str | None:
    if not rungs:
        return None
    several = len({r["bracket"] for r in rungs}) > 1
    parts = [
        (f"bracket {r['bracket']} " if several else "")
        + f"{r['where']}: {r['reached']} reached, {r['promoted']} promoted"
        for r in rungs
    ]
    return "rungs: " + " | ".join(parts)


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"
