"""What a person watching a sweep sees: a progress snapshot, a live bar, the ranking."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import replace

from rich.console import Console
from rich.table import Table

from smptune.config import SweepConfig
from smptune.params import ParamsView
from smptune.queue.store import SweepStore
from smptune.queue.sweeps import ProgressReads
from smptune.records import SweepRecord, SweepStatus, TrialStatus
from smptune.results.fleet_status import fleet_lines, fleet_reads
from smptune.results.labels import metrics_text
from smptune.results.status_snapshot import (
    SHOWN_OUTCOMES,
    BestSoFar,
    Eta,
    EtaBasis,
    RequeuedTrial,
    RungCount,
    RunningTrial,
    StatusSnapshot,
)
from smptune.results.summary import SweepResults
from smptune.search.distributions import param_text

__all__ = [
    "SHOWN_OUTCOMES",
    "StatusSnapshot",
    "estimate_eta",
    "format_duration",
    "progress_line",
    "ranking_table",
    "snapshot",
    "status_lines",
    "trials_text",
    "wait",
]


def snapshot(store: SweepStore, sweep_id: str) -> StatusSnapshot:
    """The sweep's state now: counts, best so far, who runs which trial and fold, ETA.

    Its reads grow with the trials running or waiting to run again, never with the sweep's
    trials: counts from the sweep's hash, the ETA from the run times kept as runs are
    recorded (:meth:`SweepStore.progress_reads`)."""
    now = store.now()  # stamps other hosts wrote are compared with Redis's clock
    sweep = store.get_sweep(sweep_id)
    config = sweep.config
    n_runs = sweep.n_runs  # folds × seeds of one trial
    started = sweep.started or 0.0
    elapsed = (sweep.finished or now) - started if started else 0.0
    running = [_running_trial(r) for r in store.running(sweep_id)]
    eta = Eta()
    requeued: list[RequeuedTrial] = []
    if not sweep.status.terminal:
        reads = store.progress_reads(sweep_id, [r.trial for r in running])
        requeued = [
            RequeuedTrial(n, preemptions, requeues)
            for n, (status, preemptions, requeues) in sorted(reads.others.items())
            if status is TrialStatus.REQUEUED
        ]
        names = list(config.hyperparameters)
        running = [
            replace(
                r,
                runs_done=len(reads.runs.get(r.trial) or {}),
                params=_params_text(names, reads.params.get(r.trial) or {}),
            )
            for r in running
        ]
        if running:
            waiting = waiting_runs(sweep, len(running), reads)
            eta = estimate_eta(
                reads.run_times, running, reads.runs, waiting, n_runs, now, sweep.deadline
            )
    running = [
        replace(r, running_s=round(now - r.started, 1) if r.started else None) for r in running
    ]
    best = store.best_score(sweep_id, config.mode or "max")
    fleet, waiting_for = fleet_reads(store, sweep)
    return StatusSnapshot(
        sweep_id=sweep_id,
        name=sweep.name,
        status=sweep.status,
        folds_done=sweep.folds_done,
        folds_total=sweep.n_trials * n_runs,
        n_folds=sweep.n_folds,
        n_runs=n_runs,
        trials_total=sweep.n_trials,
        open_ended=sweep.open_ended,
        deadline=sweep.deadline,
        counts={o: sweep.count(o) for o in SHOWN_OUTCOMES},
        trials_finished=sweep.n_finished,
        best=None if best is None else BestSoFar(*best),
        metric=config.metric,
        mode=config.mode or "max",
        elapsed_s=round(elapsed, 1),
        eta=eta,
        running=tuple(running),
        requeued=tuple(requeued),
        test_metrics=sweep.test_metrics,
        class_names=tuple(config.class_names) if config.class_names else None,
        error=sweep.error,
        finalize_runs=sweep.finalize_runs,
        rungs=rung_counts(store, sweep_id, config, n_runs),
        stalled=stalled_line(store, sweep),
        fleet=fleet,
        waiting_for=waiting_for,
    )


def _running_trial(row: Mapping[str, object]) -> RunningTrial:
    """A row of :meth:`SweepStore.running` as a record."""
    trial, worker, started = row["trial"], row["worker"], row["started"]
    fold, share = row.get("fold", 0), row.get("share") or ""
    if not (isinstance(trial, int) and isinstance(fold, int) and isinstance(started, float)):
        raise TypeError(f"a running trial's row is not as the store writes it: {row!r}")
    return RunningTrial(trial, str(worker), started, share=str(share), fold=fold)


def _params_text(names: list[str], params: ParamsView) -> str:
    return ", ".join(param_text(n, params[n]) for n in names if n in params)


#: Lease TTLs without progress, and with no worker holding it, after which a sweep's
#: finalize or retrain-and-test is named stalled.
STALLED_TTLS = 3


def stalled_line(store: SweepStore, sweep: SweepRecord) -> str | None:
    """What of the sweep has stalled, for how long, and the ways out: its finalize (every
    trial finished, none finalized it) or its retrain-and-test, with no live worker holding
    it for :data:`STALLED_TTLS` lease TTLs, measured on the Redis server's clock; else None."""
    from smptune.queue.lease import lease_ttl_s

    if sweep.status.terminal:
        return None
    if sweep.status is SweepStatus.RETRAINING:
        what = "its retrain-and-test has made no progress"
        marks = (sweep.finalized_at, sweep.retrain_requeued_at)
        since = max((t for t in marks if t is not None), default=None)
        held = since is None or store.retrain_held(sweep.id)
    else:
        what = "every trial has finished, but its finalize has made no progress"
        since = sweep.last_finished
        ended = sweep.n_trials > 0 and sweep.n_finished >= sweep.n_trials
        held = not ended or sweep.finalized_at is not None or store.finalize_held(sweep.id)
    if held or since is None:
        return None
    idle = store.now() - since
    if idle < STALLED_TTLS * lease_ttl_s():
        return None
    return (
        f"stalled: {what} for {format_duration(idle)} and no worker holds it; "
        f"producer resume {sweep.id} queues it again, producer delete {sweep.id} --force "
        "removes the sweep"
    )


def rung_counts(
    store: SweepStore, sweep_id: str, config: SweepConfig, n_runs: int
) -> tuple[RungCount, ...]:
    """Per rung of a successive-halving pruner: where it is read and how many trials
    reached it, were promoted and were stopped there (none without such a pruner)."""
    from smptune.search.halving import Halving

    spec = config.pruner_spec
    if not spec.halving:
        return ()
    halving = Halving.from_spec(spec, config.max_epochs, n_runs)
    seeds = config.cv_settings.n_randoms
    return tuple(
        RungCount(c.bracket, c.rung.where(seeds), c.reached, c.promoted, c.stopped)
        for c in store.rungs(sweep_id, halving, mode=config.mode or "max").counts()
    )


def rungs_line(rungs: Sequence[RungCount]) -> str | None:
    """``rungs: fold 0, epoch 2: 9 reached, 3 promoted | after fold 1: ...`` (per bracket
    with several), or None without rungs."""
    if not rungs:
        return None
    several = len({r.bracket for r in rungs}) > 1
    parts = [
        (f"bracket {r.bracket} " if several else "")
        + f"{r.where}: {r.reached} reached, {r.promoted} promoted"
        for r in rungs
    ]
    return "rungs: " + " | ".join(parts)


def waiting_runs(sweep: SweepRecord, busy: int, reads: ProgressReads) -> int:
    """Runs left to the trials neither finished nor running on a worker now: ``n_runs``
    each, less the runs recorded of those that ran before (``reads.others``)."""
    n_runs = sweep.n_runs
    idle = max(0, sweep.n_trials - sweep.n_finished - busy)
    done = sum(
        min(n_runs, len(reads.runs.get(n) or {}))
        for n, (status, _, _) in reads.others.items()
        if not status.finished
    )
    return max(0, idle * n_runs - done)


def estimate_eta(
    run_times: Mapping[str, tuple[int, float]],
    running: Sequence[RunningTrial],
    runs: Mapping[int, Mapping[int, Mapping[str, object]]],
    waiting: int,
    n_runs: int,
    now: float,
    deadline: float | None = None,
) -> Eta:
    """Seconds until every trial has finished, from the measured run (fold) times.

    Each running trial has its runs left to do at its worker's mean run time (the sweep's
    mean for a worker not measured yet), less the part of the run under way; the trials not
    running (``waiting``: their runs left) take the sweep's mean per run. The work is
    shared by the workers busy now, and no sooner than the longest running trial ends; a
    time budget caps it. None until a run has finished. ``run_times``: worker -> (runs
    timed, their seconds), as the store keeps them; ``runs``: the running trials' recorded
    runs. Returns ``eta_s`` and what it rests on.
    """
    measured = sum(n for n, _ in run_times.values())
    total = sum(s for _, s in run_times.values())
    mean = total / measured if measured else None
    basis = EtaBasis(measured, None if mean is None else round(mean, 3), len(running))
    if mean is None or not running:
        return Eta(None, basis)
    on_workers: list[float] = []
    for r in running:
        n, seconds = run_times.get(r.worker, (0, 0.0))
        per_run = seconds / n if n else mean
        done = runs.get(r.trial) or {}
        left = max(1, n_runs - len(done))  # the run under way counts
        spent = sum(_seconds(x.get("duration_s")) for x in done.values())
        in_run = now - r.started - spent if r.started else 0.0
        on_workers.append(left * per_run - min(max(in_run, 0.0), 0.95 * per_run))
    eta = max((sum(on_workers) + waiting * mean) / len(running), max(on_workers))
    if deadline is not None:  # a time budget caps it
        eta = min(eta, max(0.0, float(deadline) - now))
    return Eta(round(eta, 1), basis)


def _seconds(value: object) -> float:
    """A recorded run's ``duration_s`` (0 when it has none)."""
    if not value:
        return 0.0
    if not isinstance(value, int | float | str):
        raise TypeError(f"duration_s: not a number: {value!r}")
    return float(value)


def format_duration(seconds: float | None) -> str:
    if seconds is None:
        return "--"
    seconds = int(seconds)
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def trials_text(snap: StatusSnapshot) -> str:
    """``4 done, 1 failed, 2 pruned of 10``: every outcome that happened (``of 12 so far``
    for a sweep without ``n_trials``, which grows until its budget is spent)."""
    parts = [
        f"{snap.count(TrialStatus.COMPLETE)} done",
        f"{snap.count(TrialStatus.FAILED)} failed",
    ]
    parts += [f"{snap.count(o)} {o}" for o in SHOWN_OUTCOMES[2:] if snap.count(o)]
    so_far = " so far" if snap.open_ended else ""
    return ", ".join(parts) + f" of {snap.trials_total}{so_far}"


def progress_line(snap: StatusSnapshot) -> str:
    best = snap.best
    best_text = f"{snap.metric}={best.score:.4f} (trial {best.trial})" if best else "--"
    waiting = "".join(f" ({w.trials} waiting for {w.needs})" for w in snap.waiting_for)
    return (
        f"[{snap.status.value}] folds {snap.folds_done}/{snap.folds_total} | "
        f"trials {trials_text(snap)}{waiting} | best {best_text} | "
        f"elapsed {format_duration(snap.elapsed_s)} | ETA {format_duration(snap.eta_s)}"
    )


def status_lines(snap: StatusSnapshot) -> list[str]:
    """What ``producer status`` prints: the progress line, how the ETA was measured, then
    one line per busy worker with its trial, fold and parameters."""
    lines = [f"sweep {snap.sweep_id} ({snap.name})", progress_line(snap)]
    if snap.stalled:
        lines.append(snap.stalled)
    if snap.deadline:
        ends = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(snap.deadline))
        lines.append(f"time budget: no trial starts after {ends}")
    basis = snap.eta.eta_basis
    if snap.eta_s is not None and basis and basis.mean_run_s is not None:
        lines.append(
            f"ETA from {basis.runs_measured} finished folds (mean "
            f"{basis.mean_run_s:.1f} s each) on {basis.workers_busy} busy workers"
        )
    seeds = snap.n_runs // max(1, snap.n_folds)
    for r in sorted(snap.running, key=lambda r: r.worker):
        fold = f"fold {r.fold} ({_ordinal(r.fold + 1)} of {snap.n_folds})"
        if seeds > 1 and r.runs_done is not None:
            fold += f", run {min(r.runs_done + 1, snap.n_runs)} of {snap.n_runs}"
        share = f" ({r.share})" if r.share else ""
        line = f"  {r.worker}{share}: trial {r.trial} {fold}, "
        line += f"{format_duration(r.running_s)} in this trial"
        lines.append(line + (f" | {r.params}" if r.params else ""))
    rungs = rungs_line(snap.rungs)
    if rungs:
        lines.append(rungs)
    if snap.requeued:
        lines.append("queued again: " + ", ".join(_requeued_text(r) for r in snap.requeued))
    if snap.test_metrics:
        shown = metrics_text(snap.test_metrics, snap.class_names)
        lines.append(f"test metrics: {shown}")
    if snap.error:
        lines.append(f"error: {snap.error}")
    return lines + fleet_lines(snap)


def cv_versus_test_line(results: SweepResults, test_metrics: Mapping[str, float]) -> str | None:
    """``iou: CV 0.570 (best epochs), CV after 8 epochs 0.460, test 0.380``, or None."""
    figures = results.cv_versus_test(test_metrics)
    if figures is None:
        return None
    cv, at_epochs, test = figures
    epochs = results.best.epochs if results.best else None
    after = "" if at_epochs is None else f", CV after {epochs} epochs {at_epochs:.4f}"
    line = f"{results.metric}: CV {cv:.4f} (best epochs){after}, test {test:.4f}"
    ensemble = results.ensemble_metrics
    if ensemble:
        score = results.scoring.run_score(ensemble)
        line += f" (retrained model), {score:.4f} (fold ensemble, the default model)"
    return line


def _requeued_text(r: RequeuedTrial) -> str:
    """``trial 3 (preempted 1×)``: a trial waiting to run again, and why it left its worker."""
    why = []
    if r.preemptions:
        why.append(f"preempted {r.preemptions}×")
    if r.requeues:
        why.append(f"worker lost {r.requeues}×")
    return f"trial {r.trial}" + (f" ({', '.join(why)})" if why else "")


def _snapshot_through_outages(
    store: SweepStore, sweep_id: str, console: Console, outage_limit_s: float
) -> StatusSnapshot:
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
) -> StatusSnapshot:
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
            if snap.status.terminal:
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
        task = bar.add_task(snap.name, total=snap.folds_total, info="")
        while True:
            snap = _snapshot_through_outages(store, sweep_id, console, outage_limit_s)
            info = progress_line(snap).split("| ", 1)[1]
            bar.update(
                task,
                completed=snap.folds_done,
                info=info,
                description=f"{snap.name} [{snap.status.value}]",
            )
            if snap.status.terminal:
                return snap
            time.sleep(poll_s)


def ranking_table(results: SweepResults, limit: int = 20) -> Table:
    table = Table(title=f"{results.name}: {results.metric} ({results.mode})")
    for column in ("rank", "trial", "status", "score", "std", "folds", "params"):
        table.add_column(column)
    for t in results.ranking[:limit]:
        score = "" if t.score is None else f"{t.score:.4f}"
        std = "" if t.score_std is None else f"{t.score_std:.4f}"
        folds = " ".join(f"{s:.3f}" for s in t.fold_scores)
        shown = results.hyperparameters or list(t.params)
        detail = t.error or ", ".join(param_text(k, t.params.get(k)) for k in shown)
        table.add_row(str(t.rank), str(t.trial), t.status.value, score, std, folds, detail)
    return table


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"
