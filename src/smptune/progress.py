"""What a person watching a sweep sees: a progress snapshot, a live bar, the ranking."""

from __future__ import annotations

import time
from typing import Any

from rich.console import Console
from rich.table import Table

from smptune.store import TERMINAL_SWEEP_STATES, SweepStore


def snapshot(store: SweepStore, sweep_id: str) -> dict[str, Any]:
    """The sweep's state now: counts, best so far, running trials, ETA."""
    sweep = store.get_sweep(sweep_id)
    mode = sweep["config"].get("mode", "max")
    total = sweep["n_trials"] * sweep["n_folds"]
    done = sweep["folds_done"]
    finished = sweep["trials_complete"] + sweep["trials_failed"] + sweep["trials_cancelled"]
    started = float(sweep.get("started") or 0)
    elapsed = (sweep.get("finished") or time.time()) - started if started else 0.0
    running = store.running(sweep_id)
    # folds of unfinished trials still to run, at the rate measured so far
    remaining = (sweep["n_trials"] - finished) * sweep["n_folds"] - sum(r["fold"] for r in running)
    eta = elapsed / done * max(0, remaining) if done and sweep["status"] == "running" else None
    best = store.best_score(sweep_id, mode)
    return {
        "sweep_id": sweep_id,
        "name": sweep["name"],
        "status": sweep["status"],
        "folds_done": done,
        "folds_total": total,
        "trials_total": sweep["n_trials"],
        "trials_complete": sweep["trials_complete"],
        "trials_failed": sweep["trials_failed"],
        "trials_cancelled": sweep["trials_cancelled"],
        "trials_finished": finished,
        "best": None if best is None else {"trial": best[0], "score": best[1]},
        "metric": sweep["config"].get("metric"),
        "mode": mode,
        "elapsed_s": round(elapsed, 1),
        "eta_s": None if eta is None else round(eta, 1),
        "running": running,
        "test_metrics": sweep.get("test_metrics"),
        "error": sweep.get("error"),
        "finalize_runs": sweep["finalize_runs"],
    }


def format_duration(seconds: float | None) -> str:
    if seconds is None:
        return "--"
    seconds = int(seconds)
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def progress_line(snap: dict[str, Any]) -> str:
    best = snap["best"]
    best_text = f"{snap['metric']}={best['score']:.4f} (trial {best['trial']})" if best else "--"
    return (
        f"[{snap['status']}] folds {snap['folds_done']}/{snap['folds_total']} | "
        f"trials {snap['trials_complete']} done, {snap['trials_failed']} failed"
        + (f", {snap['trials_cancelled']} cancelled" if snap["trials_cancelled"] else "")
        + " "
        f"of {snap['trials_total']} | best {best_text} | "
        f"elapsed {format_duration(snap['elapsed_s'])} | ETA {format_duration(snap['eta_s'])}"
    )


def _snapshot_through_outages(
    store: SweepStore, sweep_id: str, console: Console, outage_limit_s: float
) -> dict[str, Any]:
    """A snapshot; while Redis is away (a restart), say so and keep asking."""
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import TimeoutError as RedisTimeoutError

    lost_at: float | None = None
    while True:
        try:
            snap = snapshot(store, sweep_id)
        except (RedisConnectionError, RedisTimeoutError) as exc:
            now = time.monotonic()
            if lost_at is None:
                lost_at = now
                console.print(f"lost the broker ({exc}); reconnecting...", markup=False)
            if now - lost_at > outage_limit_s:
                raise
            time.sleep(1.0)
            continue
        if lost_at is not None:
            console.print("broker is back", markup=False)
        return snap


def wait(
    store: SweepStore,
    sweep_id: str,
    console: Console,
    poll_s: float = 1.0,
    outage_limit_s: float = 600.0,
) -> dict:
    """Show progress until the sweep (and its retrain-and-test) has finished."""
    from rich.progress import BarColumn, Progress, TextColumn

    if not console.is_terminal:
        last = ""
        while True:
            snap = _snapshot_through_outages(store, sweep_id, console, outage_limit_s)
            line = progress_line(snap)
            if line.split(" | elapsed")[0] != last:
                console.print(line, highlight=False, soft_wrap=True, markup=False)
                last = line.split(" | elapsed")[0]
            if snap["status"] in TERMINAL_SWEEP_STATES:
                return snap
            time.sleep(poll_s)
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total} folds"),
        TextColumn("{task.fields[info]}"),
        console=console,
        transient=False,
    ) as bar:
        snap = snapshot(store, sweep_id)
        task = bar.add_task(snap["name"], total=snap["folds_total"], info="")
        while True:
            snap = _snapshot_through_outages(store, sweep_id, console, outage_limit_s)
            info = progress_line(snap).split("| ", 1)[1]
            bar.update(
                task,
                completed=snap["folds_done"],
                info=info,
                description=f"{snap['name']} [{snap['status']}]",
            )
            if snap["status"] in TERMINAL_SWEEP_STATES:
                return snap
            time.sleep(poll_s)


def ranking_table(results: dict[str, Any], limit: int = 20) -> Table:
    table = Table(title=f"{results['name']}: {results['metric']} ({results['mode']})")
    for column in ("rank", "trial", "status", "score", "std", "folds", "params"):
        table.add_column(column)
    for t in results["ranking"][:limit]:
        score = "" if t.get("score") is None else f"{t['score']:.4f}"
        std = "" if t.get("score_std") is None else f"{t['score_std']:.4f}"
        folds = " ".join(f"{s:.3f}" for s in t.get("fold_scores", []))
        shown = results.get("hyperparameters") or list(t["params"])
        detail = t.get("error") or ", ".join(f"{k}={_short(t['params'].get(k))}" for k in shown)
        table.add_row(str(t["rank"]), str(t["trial"]), t["status"], score, std, folds, detail)
    return table


def _short(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)
