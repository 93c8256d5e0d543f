"""The three Celery tasks. Thin: they read the sweep store, call the trainable, record.

``cv_trial`` never raises: a trial-level error comes back as a failed-trial record, so the
chord always fires. ``finalize_sweep`` is the chord callback; ``retrain_and_test`` trains the
best configuration on the whole train split and evaluates it on the test split.
"""

from __future__ import annotations

import gc
import logging
import os
import sys
import time
import traceback
from functools import lru_cache
from pathlib import Path
from typing import Any

from celery.exceptions import SoftTimeLimitExceeded
from celery.signals import task_postrun

from smptune.celeryapp import app
from smptune.config import SweepConfig, config_from_dict
from smptune.errors import SmptuneError
from smptune.report import summarize, write_results
from smptune.scoring import fold_scores, mean_std
from smptune.store import SweepStore
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


@app.task(name="smptune.cv_trial", bind=True)
def cv_trial(self: Any, sweep_id: str, trial: int) -> dict[str, Any]:
    """Run the folds of one configuration one after another; record each as it finishes."""
    db = store()
    if db.is_finished(sweep_id, trial):
        log.info("sweep %s trial %d already finished; not running it again", sweep_id, trial)
        return {"trial": trial, "status": "duplicate"}
    worker = self.request.hostname or "unknown"
    db.trial_started(sweep_id, trial, worker, os.environ.get("CUDA_VISIBLE_DEVICES", ""))
    started = time.perf_counter()
    record: dict[str, Any]
    try:
        config = _sweep_config(sweep_id)
        params = db.params(sweep_id, trial)
        trainable = load_trainable(config.trainable, allowed=allowed_trainables())
        n_folds = int(config.cv["n_folds"])
        done = db.folds(sweep_id, trial)
        log.info(
            "sweep %s trial %d starts on %s (%d of %d folds already done)",
            sweep_id,
            trial,
            worker,
            len(done),
            n_folds,
        )
        for fold in range(n_folds):
            if fold in done:
                continue
            db.fold_started(sweep_id, trial, fold)
            context = FoldContext(sweep_id, trial, fold, n_folds, config.settings())
            result = trainable.train_fold(params, context).to_dict()
            db.record_fold(sweep_id, trial, fold, result)
            done[fold] = result
            log.info(
                "sweep %s trial %d fold %d: %s=%.4f (%.1f s)",
                sweep_id,
                trial,
                fold,
                config.metric,
                result["metrics"][config.metric],
                result["duration_s"],
            )
        score, std = mean_std(fold_scores(done, config.metric))
        record = {"status": "complete", "score": score, "score_std": std}
    except Exception as exc:  # a trial-level failure must never fail the chord
        log.warning(
            "sweep %s trial %d failed: %s\n%s",
            sweep_id,
            trial,
            _describe(exc),
            traceback.format_exc(),
        )
        record = {"status": "failed", "error": _describe(exc)}
    record["duration_s"] = time.perf_counter() - started
    db.finish_trial(sweep_id, trial, record)
    log.info(
        "sweep %s trial %d %s in %.1f s", sweep_id, trial, record["status"], record["duration_s"]
    )
    return {"trial": trial, "status": record["status"], "score": record.get("score")}


def _write_results(sweep_id: str, results: dict[str, Any]) -> None:
    sweep = store().get_sweep(sweep_id)
    out = Path(sweep["artifacts_dir"]) / sweep_id
    try:
        write_results(results, sweep["config"], out, sweep.get("test_metrics"))
    except OSError as exc:  # another machine's path: the results stay in Redis
        log.warning("cannot write results to %s (%s); use `producer results --out`", out, exc)


@app.task(name="smptune.finalize_sweep", bind=True)
def finalize_sweep(self: Any, trial_results: list[dict[str, Any]], sweep_id: str) -> dict:
    """The chord callback: rank, write the results, start retrain-and-test."""
    db = store()
    runs = db.count_finalize(sweep_id)
    if runs > 1:
        log.warning("finalize of sweep %s ran %d times", sweep_id, runs)
    results = summarize(db, sweep_id)
    config = config_from_dict(db.get_sweep(sweep_id)["config"])
    retrain = config.retrain_and_test and results["best"] is not None
    db.set_sweep_fields(
        sweep_id,
        results=results,
        status="retraining" if retrain else "done",
        **({} if retrain else {"finished": time.time()}),
    )
    _write_results(sweep_id, results)
    log.info(
        "sweep %s finalized: %d complete, %d failed, best %s",
        sweep_id,
        results["trials_complete"],
        results["trials_failed"],
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
            status="done",
            final_model_dir=str(out),
            finished=time.time(),
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
    return {"sweep_id": sweep_id, "status": "done", "test_metrics": metrics}


@task_postrun.connect
def _free_device_memory(**_: Any) -> None:
    """Free what a trial left behind so the long-lived child starts the next one clean."""
    gc.collect()
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.empty_cache()
