"""The three Celery tasks. Thin: they read the sweep store, call the trainable, record.

``cv_trial`` never fails: a trial-level error comes back as a failed-trial record, so the
chord always fires, and a duplicate copy is ignored (see :mod:`smptune.queue.lease`).
``finalize_sweep`` is the chord callback; ``retrain_and_test`` trains the best
configuration on the whole train split and evaluates it on the test split.
"""

from __future__ import annotations

import base64
import gc
import logging
import os
import sys
import time
import traceback
from functools import lru_cache
from pathlib import Path
from typing import Any

from celery.exceptions import Ignore, SoftTimeLimitExceeded
from celery.signals import task_postrun

from smptune.celeryapp import app
from smptune.config import SweepConfig, config_from_dict
from smptune.errors import SmptuneError, TrialError
from smptune.queue.lease import Lease
from smptune.queue.store import ALREADY_FINISHED, LEASE_LOST, RECORDED, TRIAL_OUTCOMES, SweepStore
from smptune.results.folder import summarize, write_results
from smptune.search.scoring import run_index, trial_score
from smptune.search.space import param_text
from smptune.trainable import FoldContext, allowed_trainables, load_trainable

log = logging.getLogger("smptune.tasks")


@lru_cache(maxsize=1)
def _store(url: str) -> SweepStore:
    return SweepStore.from_url(url)


def store() -> SweepStore:
    return _store(str(app.conf.broker_url))


@lru_cache(maxsize=8)
def _sweep_config(sweep_id: str) -> SweepConfig:
    return config_from_dict(store().get_sweep(sweep_id)["config"])


def _describe(exc: BaseException) -> str:
    if isinstance(exc, SoftTimeLimitExceeded):
        return "time limit exceeded"
    if isinstance(exc, SmptuneError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


def _request_info(request: Any, config: SweepConfig) -> dict[str, Any]:
    """What :mod:`smptune.queue.recovery` needs to queue this trial again, chord and all."""
    soft, hard = (request.timelimit or (None, None))[::-1]
    return {
        "id": request.id,
        "group": request.group,
        "group_index": request.group_index,
        "chord": request.chord,
        "root_id": request.root_id,
        "parent_id": request.parent_id,
        "queue": config.queue,
        "soft_time_limit": soft,
        "time_limit": hard,
    }


@app.task(name="smptune.cv_trial", bind=True)
def cv_trial(self: Any, sweep_id: str, trial: int) -> dict[str, Any]:
    """Run the folds of one configuration one after another; record each as it finishes.

    A copy that finds the trial finished, or another live copy holding its lease, is
    ignored: it records nothing and does not count towards the chord.
    """
    db = store()
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
    try:
        return _run_trial(self, db, config, lease, sweep_id, trial, worker)
    finally:
        lease.release()


def _not_started(db: SweepStore, sweep_id: str) -> dict[str, Any] | None:
    """The record of a trial that must not start: the sweep was cancelled, or its time
    budget is spent."""
    reason = db.stop_reason(sweep_id)
    if reason == "cancelled":
        return {"status": "cancelled", "error": "sweep cancelled before the trial started"}
    if reason == "out of time":
        return {"status": "skipped", "error": "the sweep's time budget was spent before it started"}
    return None


def _run_trial(
    task: Any,
    db: SweepStore,
    config: SweepConfig,
    lease: Lease,
    sweep_id: str,
    trial: int,
    worker: str,
) -> dict[str, Any]:
    if db.is_finished(sweep_id, trial):
        raise Ignore()
    record: dict[str, Any] | None = _not_started(db, sweep_id)
    if record is not None:  # queued when the sweep was cancelled or ran out of time
        if db.finish_trial(sweep_id, trial, record, lease.value) != RECORDED:
            raise Ignore()
        log.info("sweep %s trial %d %s: %s", sweep_id, trial, record["status"], record["error"])
        return {"trial": trial, "status": record["status"], "score": None}
    attempts = db.trial_started(
        sweep_id,
        trial,
        worker,
        os.environ.get("CUDA_VISIBLE_DEVICES", ""),
        _request_info(task.request, config),
    )
    lease.start_heartbeat()
    started = time.perf_counter()
    done = db.folds(sweep_id, trial)
    if attempts > config.max_attempts:
        record = {
            "status": "failed",
            "error": (
                f"gave up after {attempts - 1} attempts: the trial's worker was lost each time "
                f"(last on {worker})"
            ),
        }
    else:
        record = _train_runs(db, config, lease, sweep_id, trial, done, worker, attempts)
    record["duration_s"] = time.perf_counter() - started
    outcome = db.finish_trial(sweep_id, trial, record, lease.value)
    if outcome == LEASE_LOST:
        log.warning(
            "sweep %s trial %d: another copy holds the lease; not recording", sweep_id, trial
        )
        raise Ignore()
    if outcome == ALREADY_FINISHED:
        raise Ignore()
    score = record.get("score")
    log.info(
        "sweep %s trial %d %s: %s=%s over %d runs in %.1f s%s",
        sweep_id,
        trial,
        record["status"],
        config.scoring.label,
        "--" if score is None else f"{score:.4f}",
        len(done),
        record["duration_s"],
        f" ({record['error']})" if record.get("error") else "",
    )
    return {"trial": trial, "status": record["status"], "score": score}


def _trial_dir(db: SweepStore, sweep_id: str, trial: int) -> Path | None:
    """Where a run writes its epoch logs: ``<artifacts>/<sweep>/trials/<trial>``, when this
    machine can write there."""
    try:
        out = Path(db.get_sweep(sweep_id)["artifacts_dir"]) / sweep_id / "trials" / str(trial)
        out.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    return out


def _partial(
    status: str, reason: str, config: SweepConfig, done: dict[int, dict[str, Any]]
) -> dict[str, Any]:
    """The record of a trial stopped before its last run (pruned, out of time, cancelled)."""
    if status == "stopped" and not done:
        status = "skipped"
    record: dict[str, Any] = {"status": status, "error": reason}
    if status in ("pruned", "stopped"):
        score, std, unstable = trial_score(done, config.scoring)
        record.update(score=score, score_std=std, unstable=unstable)
    return record


def _train_runs(
    db: SweepStore,
    config: SweepConfig,
    lease: Lease,
    sweep_id: str,
    trial: int,
    done: dict[int, dict[str, Any]],
    worker: str,
    attempts: int,
) -> dict[str, Any]:
    """Train the unfinished runs (folds × seeds); the trial's final record."""
    n_folds, n_randoms = int(config.cv["n_folds"]), int(config.cv["n_randoms"])
    try:
        trainable = load_trainable(config.trainable, allowed=allowed_trainables())
        params = db.params_or_none(sweep_id, trial)
        if params is None:
            if not config.is_adaptive:
                raise TrialError(f"sweep {sweep_id} has no configuration for trial {trial}")
            from smptune.search.adaptive import ask

            params = ask(db, config, sweep_id, trial, trainable.defaults)
        log.info(
            "sweep %s trial %d starts on %s (attempt %d, %d of %d runs done): %s",
            sweep_id,
            trial,
            worker,
            attempts,
            len(done),
            config.n_runs,
            ", ".join(param_text(n, params[n]) for n in config.hyperparameters if n in params),
        )
        settings = config.settings()
        output_dir = _trial_dir(db, sweep_id, trial)
        for fold in range(n_folds):
            ran = False
            for repeat in range(n_randoms):
                run = run_index(fold, repeat, n_randoms)
                if run in done:
                    continue
                if not lease.renew():  # another copy has it (we were cut off, then reaped)
                    raise Ignore()
                reason = db.stop_reason(sweep_id)
                if reason == "cancelled":
                    return _partial(
                        "cancelled", f"sweep cancelled after {len(done)} runs", config, done
                    )
                if reason == "out of time":
                    return _partial(
                        "stopped",
                        f"the time budget ran out after {len(done)} of {config.n_runs} runs",
                        config,
                        done,
                    )
                db.fold_started(sweep_id, trial, fold)
                context = FoldContext(
                    sweep_id,
                    trial,
                    fold,
                    n_folds,
                    settings,
                    output_dir=output_dir,
                    repeat=repeat,
                    n_repeats=n_randoms,
                )
                result = trainable.train_fold(params, context).to_dict()
                result.update(fold=fold, repeat=repeat)
                db.record_fold(sweep_id, trial, run, result)
                done[run] = result
                ran = True
                log.info(
                    "sweep %s trial %d fold %d seed %d: %s=%.4f in %.1f s",
                    sweep_id,
                    trial,
                    fold,
                    repeat,
                    config.scoring.label,
                    config.scoring.run_score(result["metrics"]),
                    result["duration_s"],
                )
            last = fold == n_folds - 1
            if ran and not last and config.pruner_spec.enabled:
                from smptune.search.adaptive import should_prune

                if should_prune(db, config, sweep_id, trial, params, done):
                    reason = f"pruned by the {config.pruner} pruner after {fold + 1} of {n_folds}"
                    return _partial("pruned", f"{reason} folds", config, done)
    except Ignore:
        raise
    except Exception as exc:  # a trial-level failure must never fail the chord
        log.warning(
            "sweep %s trial %d failed: %s\n%s",
            sweep_id,
            trial,
            _describe(exc),
            traceback.format_exc(),
        )
        return {"status": "failed", "error": _describe(exc)}
    score, std, unstable = trial_score(done, config.scoring)
    record = {"status": "complete", "score": score, "score_std": std, "unstable": unstable}
    if unstable:
        record["error"] = "unstable: a run scored NaN, ±inf or 0"
    return record


def _write_results(sweep_id: str, results: dict[str, Any]) -> None:
    sweep = store().get_sweep(sweep_id)
    out = Path(sweep["artifacts_dir"]) / sweep_id
    try:
        write_results(
            results, sweep["config"], out, sweep.get("test_metrics"), splits=sweep.get("splits")
        )
    except OSError as exc:  # another machine's path: the results stay in Redis
        log.warning("cannot write results to %s (%s); use `producer results --out`", out, exc)


def _describe_splits(config: SweepConfig) -> dict[str, Any] | None:
    """The trainable's record of its splits (sample names of test and validation sets), for
    ``splits.json``; None when it keeps none or its data cannot be read here."""
    try:
        trainable = load_trainable(config.trainable, allowed=allowed_trainables())
        describe = getattr(trainable, "describe_splits", None)
        return None if describe is None else describe(config.settings())
    except (SmptuneError, OSError, ValueError) as exc:
        log.warning("cannot record the splits: %s", _describe(exc))
        return None


@app.task(name="smptune.finalize_sweep", bind=True)
def finalize_sweep(self: Any, trial_results: list[dict[str, Any]], sweep_id: str) -> dict:
    """The chord callback: rank, write the results, start retrain-and-test."""
    db = store()
    if not db.claim_finalize(sweep_id):
        log.warning("sweep %s is already finalized; ignoring this finalize", sweep_id)
        return {"sweep_id": sweep_id, "duplicate": True}
    results = summarize(db, sweep_id)
    config = config_from_dict(db.get_sweep(sweep_id)["config"])
    cancelled = db.cancel_requested(sweep_id)
    retrain = config.retrain_and_test and results["best"] is not None and not cancelled
    status = "retraining" if retrain else "cancelled" if cancelled else "done"
    splits = _describe_splits(config)
    db.set_sweep_fields(sweep_id, results=results, **({"splits": splits} if splits else {}))
    # the folder first: whoever sees the status change finds the results written
    _write_results(sweep_id, results)
    db.set_sweep_fields(sweep_id, status=status, **({} if retrain else {"finished": time.time()}))
    db.deactivate(sweep_id)
    counts = ", ".join(
        f"{results[f'trials_{s}']} {s}" for s in TRIAL_OUTCOMES if results[f"trials_{s}"]
    )
    log.info(
        "sweep %s finalized (%s): %s; best trial %s",
        sweep_id,
        status,
        counts or "no trials",
        results["best"] and results["best"]["trial"],
    )
    if retrain:
        app.signature(
            "smptune.retrain_and_test",
            args=(sweep_id,),
            queue=config.queue,
            soft_time_limit=config.trial_timeout,
        ).apply_async()
    return {"sweep_id": sweep_id, "trials": len(trial_results)}


@app.task(name="smptune.retrain_and_test", bind=True)
def retrain_and_test(self: Any, sweep_id: str) -> dict[str, Any]:
    """Train the best configuration on the whole train split; evaluate on the test split."""
    db = store()
    sweep = db.get_sweep(sweep_id)
    config = config_from_dict(sweep["config"])
    best = sweep["results"]["best"]
    out = Path(sweep["artifacts_dir"]) / sweep_id / "final"
    try:
        trainable = load_trainable(config.trainable, allowed=allowed_trainables())
        context = FoldContext(
            sweep_id,
            best["trial"],
            -1,
            int(config.cv["n_folds"]),
            config.settings(),
            output_dir=out,
        )
        started = time.perf_counter()
        metrics = trainable.retrain_and_test(best["params"], best["epochs"], context)
        log.info(
            "sweep %s retrain-and-test of trial %d: %s (%.1f s)",
            sweep_id,
            best["trial"],
            metrics,
            time.perf_counter() - started,
        )
        db.set_sweep_fields(
            sweep_id,
            test_metrics=metrics,
            final_model_dir=str(out),
            **_predictions_field(out),
        )
    except Exception as exc:
        log.warning(
            "sweep %s retrain-and-test failed: %s\n%s",
            sweep_id,
            _describe(exc),
            traceback.format_exc(),
        )
        db.set_sweep_fields(
            sweep_id,
            status="failed",
            finished=time.time(),
            error=f"retrain-and-test failed: {_describe(exc)}",
        )
        return {"sweep_id": sweep_id, "status": "failed"}
    _write_results(sweep_id, sweep["results"])
    db.set_sweep_fields(sweep_id, status="done", finished=time.time())
    return {"sweep_id": sweep_id, "status": "done", "test_metrics": metrics}


def _predictions_field(final_dir: Path) -> dict[str, str]:
    """The final model's sample predictions as base64 PNG in the sweep record, so that
    ``producer results --out`` on another machine can put them into its report."""
    png = final_dir / "predictions.png"
    if not png.is_file():
        return {}
    return {"predictions_png": base64.b64encode(png.read_bytes()).decode("ascii")}


@task_postrun.connect
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
