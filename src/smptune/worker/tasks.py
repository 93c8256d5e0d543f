"""The three Celery tasks. Thin: they read the sweep store, call the trainable, record.

``cv_trial`` never fails: a trial-level error comes back as a failed-trial record, so the
chord always fires, and a duplicate copy is ignored (see :mod:`smptune.queue.lease`).
``finalize_sweep`` is the chord callback; ``retrain_and_test`` trains the best
configuration on the whole train split and evaluates it on the test split.
"""

from __future__ import annotations

import base64
import dataclasses
import gc
import logging
import sys
import time
import traceback
from functools import lru_cache
from pathlib import Path
from typing import Any, NoReturn, TypedDict

from celery.exceptions import Ignore
from celery.signals import task_postrun

from smptune.config import SweepConfig
from smptune.errors import SmptuneError, TrialError
from smptune.lifecycle import crash_point
from smptune.messages import CV_TRIAL, FINALIZE_SWEEP, RETRAIN_AND_TEST, TrialRequest
from smptune.queue.lease import Lease
from smptune.queue.recovery import send_retrain
from smptune.queue.routing import trial_queue
from smptune.queue.store import LEASE_LOST, RECORDED, STALE, SweepStore
from smptune.records import OUTCOMES, SweepRecord, SweepStatus
from smptune.results.folder import write_results
from smptune.results.summary import BestTrial, FoldEnsemble, SweepResults, summarize
from smptune.retries import gave_up
from smptune.trainable import FoldContext, allowed_trainables, fold_model_dirs, load_trainable
from smptune.worker import capabilities as _capabilities  # noqa: F401  # its signals
from smptune.worker.app import app
from smptune.worker.host_share import apply_in_child
from smptune.worker.stops import TrialShare
from smptune.worker.trial_run import TrialRun, describe_error

log = logging.getLogger("smptune.worker.tasks")


class FinalizeOutcome(TypedDict, total=False):
    """What ``finalize_sweep`` returns (Celery's JSON result): the sweep, and either how
    many trial results its chord gave or that this copy was a duplicate."""

    sweep_id: str
    duplicate: bool
    trials: int


class RetrainOutcome(TypedDict, total=False):
    """What ``retrain_and_test`` returns (Celery's JSON result): the sweep, ``done`` or
    ``failed``, and the test metrics when done."""

    sweep_id: str
    status: str
    test_metrics: dict[str, float]


@lru_cache(maxsize=1)
def _store(url: str) -> SweepStore:
    return SweepStore.from_url(url)


def store() -> SweepStore:
    return _store(str(app.conf.broker_url))


@lru_cache(maxsize=8)
def _sweep_config(sweep_id: str) -> SweepConfig:
    return store().get_sweep(sweep_id).config


# ignore_result: no ``celery-task-meta-*`` per trial (~630 bytes each, kept for
# result_expires); nothing reads them, and the chord counts its parts all the same (Celery's
# backend adds a part's result to the chord whether or not the task stores its own)
@app.task(name=CV_TRIAL, bind=True, ignore_result=True)  # type: ignore[untyped-decorator]  # celery ships no types
def cv_trial(self: Any, sweep_id: str, trial: int) -> TrialShare:
    """Run the folds of one configuration one after another; record each as it finishes.

    A copy that finds the trial finished, or another live copy holding its lease, is
    ignored: it records nothing and does not count towards the chord.
    """
    db = store()
    if not db.sweep_exists(sweep_id):  # deleted (producer delete --force): a stale message
        log.info("sweep %s was deleted; ignoring its trial %d", sweep_id, trial)
        raise Ignore()
    if db.is_finished(sweep_id, trial):
        log.info("sweep %s trial %d already finished; ignoring this copy", sweep_id, trial)
        raise Ignore()
    config = _sweep_config(sweep_id)
    worker = self.request.hostname or "unknown"
    lease = db.lease(sweep_id, trial, host=worker.partition("@")[2] or worker)
    if not lease.acquire(lease.ttl_s * 1.5, lambda: db.is_finished(sweep_id, trial)):
        log.info(
            "sweep %s trial %d is held by another live copy; ignoring this one", sweep_id, trial
        )
        raise Ignore()
    crash_point("trial.claimed")
    try:
        queue = trial_queue(config, db.params_or_none(sweep_id, trial))  # as it was routed
        request = TrialRequest.from_celery(self.request, queue)
        return TrialRun(db, config, lease, sweep_id, trial, worker).run(request)
    finally:
        lease.release()


def _write_results(sweep_id: str, results: SweepResults) -> None:
    sweep = store().get_sweep(sweep_id, full=True)
    out = Path(sweep.artifacts_dir) / sweep_id
    config = sweep.config
    try:
        write_results(results, config, out, sweep.test_metrics, splits=sweep.splits)
    except OSError as exc:  # another machine's path: the results stay in Redis
        log.warning("cannot write results to %s (%s); use `producer results --out`", out, exc)


def _describe_splits(config: SweepConfig) -> dict[str, object] | None:
    """The trainable's record of its splits (sample names of test and validation sets), for
    ``splits.json``; None when it keeps none or its data cannot be read here."""
    try:
        trainable = load_trainable(config.trainable, allowed=allowed_trainables())
        describe = getattr(trainable, "describe_splits", None)
        return None if describe is None else describe(config.settings())
    except (SmptuneError, OSError, ValueError) as exc:
        log.warning("cannot record the splits: %s", describe_error(exc))
        return None


@app.task(name=FINALIZE_SWEEP, bind=True)  # type: ignore[untyped-decorator]  # celery ships no types
def finalize_sweep(
    self: Any, trial_results: list[TrialShare], sweep_id: str, generation: int | None = None
) -> FinalizeOutcome:
    """The chord callback: rank, write the results, start retrain-and-test.

    Fenced by ``generation`` (the sweep's when the chord or the reaper sent it; None: the
    current one) and held under the finalize lease: a stale copy, a copy of a finalized
    generation, or one whose lease another live copy holds does nothing. Every write before
    the status is idempotent, and the status is written only by the lease's holder, so a
    copy that dies part-way leaves the reaper a finalize to send again.
    """
    db = store()
    if not db.sweep_exists(sweep_id):
        log.info("sweep %s was deleted; ignoring its finalize", sweep_id)
        raise Ignore()
    db.count_take(sweep_id, "finalize")
    sweep = db.get_sweep(sweep_id)
    current = sweep.generation if generation is None else generation
    if current != sweep.generation:
        log.warning(
            "sweep %s: ignoring a stale finalize of generation %d (the sweep is at %d)",
            sweep_id,
            current,
            sweep.generation,
        )
        db.finalize_duplicate(sweep_id)
        return {"sweep_id": sweep_id, "duplicate": True}
    worker = self.request.hostname or "unknown"
    lease = db.finalize_lease(sweep_id, current, host=worker.partition("@")[2] or worker)

    def finalized() -> bool:
        return db.is_finalized(sweep_id)

    if finalized() or not lease.acquire(lease.ttl_s * 1.5, finalized):
        log.warning("sweep %s is already finalized; ignoring this finalize", sweep_id)
        db.finalize_duplicate(sweep_id)
        return {"sweep_id": sweep_id, "duplicate": True}
    crash_point("finalize.claimed")
    db.set_sweep_fields(sweep_id, finalize_started=db.now())
    lease.start_heartbeat()
    try:
        return _finalize_under_lease(db, sweep_id, current, lease, len(trial_results))
    finally:
        lease.release()


def _finalize_under_lease(
    db: SweepStore, sweep_id: str, generation: int, lease: Lease, n_results: int
) -> FinalizeOutcome:
    sweep = db.get_sweep(sweep_id)
    recorded = db.finished_count(sweep_id)
    if recorded < sweep.n_trials:  # a fallback sent before an extend added trials
        log.warning(
            "sweep %s: %d of its %d trials are recorded; its chord finalizes it once all are",
            sweep_id,
            recorded,
            sweep.n_trials,
        )
        return {"sweep_id": sweep_id, "duplicate": True}
    db.submitted(sweep_id)  # its chord fired: every trial was sent, whoever sent it
    results = summarize(db, sweep_id)
    sweep = db.get_sweep(sweep_id)
    config = sweep.config
    cancelled = db.cancel_requested(sweep_id)
    best = results.best
    # a resumed or extended sweep retrains only when its best trial changed
    unchanged = best is not None and sweep.test_metrics and sweep.retrained_trial == best.trial
    previous = db.sweep_results(sweep_id) if unchanged else None
    kept = SweepResults.from_dict(previous).fold_ensemble if previous else None
    if kept is not None:
        results = dataclasses.replace(results, fold_ensemble=kept)
    retrain = config.retrain_and_test and best is not None and not cancelled and not unchanged
    ended = SweepStatus.CANCELLED if cancelled else SweepStatus.DONE
    status = SweepStatus.RETRAINING if retrain else ended
    splits = _describe_splits(config)
    db.set_sweep_fields(
        sweep_id, results=results.to_dict(), **({"splits": splits} if splits else {})
    )
    # the folder first: whoever sees the status change finds the results written
    _write_results(sweep_id, results)
    crash_point("finalize.results")
    # a retraining sweep stays active: the reaper watches its retrain too
    outcome = db.finish_finalize(sweep_id, generation, lease.value, status, ended=not retrain)
    if outcome != RECORDED:
        why = {STALE: "was reopened since", LEASE_LOST: "lost its finalize lease"}
        log.warning(
            "sweep %s %s; this finalize writes no status",
            sweep_id,
            why.get(outcome, "was finalized by another copy"),
        )
        return {"sweep_id": sweep_id, "duplicate": True}
    crash_point("finalize.status")
    counts = ", ".join(f"{results.count(s)} {s}" for s in OUTCOMES if results.count(s))
    log.info(
        "sweep %s finalized (%s): %s; best trial %s",
        sweep_id,
        status,
        counts or "no trials",
        results.best and results.best.trial,
    )
    if results.no_best:
        log.warning("sweep %s: %s", sweep_id, results.no_best)
    if retrain:
        send_retrain(app, db, sweep_id, config.queue, config.trial_timeout)
    return {"sweep_id": sweep_id, "trials": n_results}


@app.task(name=RETRAIN_AND_TEST, bind=True)  # type: ignore[untyped-decorator]  # celery ships no types
def retrain_and_test(self: Any, sweep_id: str) -> RetrainOutcome:
    """Train the best configuration on the whole train split; evaluate on the test split.

    Held under a lease like a trial: a copy whose sweep is no longer retraining, or whose
    lease another live copy holds, is ignored; the reaper queues a retrain that lost its
    worker again, and after ``max_attempts`` starts the sweep is recorded failed.
    """
    db = store()
    if not db.sweep_exists(sweep_id):
        log.info("sweep %s was deleted; ignoring its retrain-and-test", sweep_id)
        raise Ignore()
    db.count_take(sweep_id, "retrain")
    sweep = db.get_sweep(sweep_id)
    if sweep.status != SweepStatus.RETRAINING:
        log.info("sweep %s is %s; ignoring this retrain-and-test", sweep_id, sweep.status)
        raise Ignore()
    config = sweep.config
    worker = self.request.hostname or "unknown"
    lease = db.retrain_lease(sweep_id, host=worker.partition("@")[2] or worker)

    def retrained() -> bool:
        return db.sweep_status(sweep_id) != SweepStatus.RETRAINING

    if not lease.acquire(lease.ttl_s * 1.5, retrained):
        log.info("sweep %s: another live copy retrains it; ignoring this one", sweep_id)
        raise Ignore()
    crash_point("retrain.claimed")
    try:
        return _retrain_under_lease(db, config, sweep, lease)
    finally:
        lease.release()


def _retrain_under_lease(
    db: SweepStore, config: SweepConfig, sweep: SweepRecord, lease: Lease
) -> RetrainOutcome:
    """Retrain and test while holding ``lease``, then write the outcome (done, or failed)
    only while still holding it: a copy that lost it to another (it was frozen past the TTL)
    stops training at its next epoch and records nothing (raises :class:`Ignore`)."""
    sweep_id = sweep.id
    results = db.sweep_results(sweep_id) or {}
    best = SweepResults.from_dict(results).best if results.get("best") else None
    attempt = db.retrain_started(sweep_id)
    lease.start_heartbeat()
    try:
        refused = gave_up(attempt, config.max_attempts, "its worker")
        if refused:
            raise TrialError(refused)
        if best is None:
            raise TrialError(f"sweep {sweep_id} has no best trial to retrain")
        metrics = _retrain(db, config, sweep, best, lease)
        if metrics is None:
            _retrain_lost(sweep_id)
        ensemble = _test_ensemble(config, sweep, best) if config.fold_models else None
        if ensemble is not None:
            results = {**results, "fold_ensemble": ensemble.to_dict()}
            if not db.set_sweep_fields_held(sweep_id, lease, results=results):
                _retrain_lost(sweep_id)
    except Ignore:
        raise
    except Exception as exc:
        log.warning(
            "sweep %s retrain-and-test failed: %s\n%s",
            sweep_id,
            describe_error(exc),
            traceback.format_exc(),
        )
        failed = db.end_sweep_held(
            sweep_id,
            lease,
            status="failed",
            finished=db.now(),
            error=f"retrain-and-test failed: {describe_error(exc)}",
        )
        if not failed:
            _retrain_lost(sweep_id)
        db.retrain_ended(sweep_id)
        return {"sweep_id": sweep_id, "status": "failed"}
    crash_point("retrain.tested")
    if lease.lost.is_set() or not lease.renew():  # the folder is the live copy's to write
        _retrain_lost(sweep_id)
    _write_results(sweep_id, SweepResults.from_dict(results))
    if not db.end_sweep_held(sweep_id, lease, status="done", finished=db.now()):
        _retrain_lost(sweep_id)
    db.retrain_ended(sweep_id)
    return {"sweep_id": sweep_id, "status": "done", "test_metrics": metrics}


def _retrain_lost(sweep_id: str) -> NoReturn:
    """This copy of the retrain lost its lease to another: it records nothing."""
    log.warning(
        "sweep %s: this copy of retrain-and-test lost its lease to another copy; it stops "
        "and records nothing",
        sweep_id,
    )
    raise Ignore()


def _retrain(
    db: SweepStore,
    config: SweepConfig,
    sweep: SweepRecord,
    best: BestTrial,
    lease: Lease,
) -> dict[str, float] | None:
    """Retrain and test the sweep's ``best`` trial; record its test metrics and final model.

    Training stops at its next epoch once ``lease`` is lost (``should_stop``); then, or
    when another copy holds the lease as the metrics are written, nothing is recorded and
    the result is None."""
    sweep_id = sweep.id
    out = Path(sweep.artifacts_dir) / sweep_id / "final"
    trainable = load_trainable(config.trainable, allowed=allowed_trainables())
    apply_in_child()  # torch's threads to the worker's share, once the trainable has torch
    context = FoldContext(
        sweep_id,
        best.trial,
        -1,
        config.cv_settings.n_folds,
        config.settings(),
        output_dir=out,
        should_stop=lease.lost.is_set,
    )
    started = time.perf_counter()
    metrics = trainable.retrain_and_test(best.params, best.epochs, context)
    if lease.lost.is_set():
        return None
    log.info(
        "sweep %s retrain-and-test of trial %d: %s (%.1f s)",
        sweep_id,
        best.trial,
        metrics,
        time.perf_counter() - started,
    )
    recorded = db.set_sweep_fields_held(
        sweep_id,
        lease,
        test_metrics=metrics,
        retrained_trial=best.trial,
        final_model_dir=str(out),
        **_predictions_field(out),
    )
    return metrics if recorded else None


def _test_ensemble(config: SweepConfig, sweep: SweepRecord, best: BestTrial) -> FoldEnsemble | None:
    """The best trial's fold models tested together (``test_metrics``, exported to
    ``final/ensemble``), or why not (``error``); None for a trainable without
    ``test_ensemble``. A failure here never fails the sweep."""
    trainable = load_trainable(config.trainable, allowed=allowed_trainables())
    test = getattr(trainable, "test_ensemble", None)
    if test is None:
        return None
    base = Path(sweep.artifacts_dir) / sweep.id
    members = fold_model_dirs(base / "trials" / str(best.trial))
    if len(members) < config.n_runs:
        error = (
            f"{len(members)} of trial {best.trial}'s {config.n_runs} fold models are on "
            f"this machine (under {base / 'trials'})"
        )
        log.warning("sweep %s: no fold ensemble: %s", sweep.id, error)
        return FoldEnsemble(error=error)
    context = FoldContext(
        sweep.id,
        best.trial,
        -1,
        config.cv_settings.n_folds,
        config.settings(),
        output_dir=base / "final",
    )
    try:
        metrics = test(best.params, members, context)
    except Exception as exc:
        log.warning("sweep %s: the fold ensemble failed: %s", sweep.id, describe_error(exc))
        return FoldEnsemble(error=describe_error(exc))
    log.info("sweep %s fold ensemble of trial %d: %s", sweep.id, best.trial, metrics)
    return FoldEnsemble(
        trial=best.trial,
        members=tuple(folder.parent.name for folder in members),
        test_metrics=metrics,
        dir=str(base / "final" / "ensemble"),
    )


def _predictions_field(final_dir: Path) -> dict[str, str]:
    """The final model's sample predictions as base64 PNG in the sweep record, so that
    ``producer results --out`` on another machine can put them into its report."""
    png = final_dir / "predictions.png"
    if not png.is_file():
        return {}
    return {"predictions_png": base64.b64encode(png.read_bytes()).decode("ascii")}


@task_postrun.connect  # type: ignore[untyped-decorator]  # celery ships no types
def _free_device_memory(**_: Any) -> None:
    """Free the GPU memory a trial left behind so the long-lived child starts the next one
    clean, then freeze what survives so later collections scan only new objects.

    Without CUDA in use there is no memory to hand back and the interpreter's own collector
    suffices: a full collection with torch loaded costs ~0.2 s (docs/performance.md)."""
    torch = sys.modules.get("torch")
    if torch is None or not torch.cuda.is_available() or not torch.cuda.is_initialized():
        return
    gc.collect()
    torch.cuda.empty_cache()
    gc.freeze()
