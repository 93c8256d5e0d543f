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
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

from celery.exceptions import Ignore, SoftTimeLimitExceeded
from celery.signals import task_postrun

from smptune.celeryapp import app
from smptune.config import SweepConfig, config_from_dict
from smptune.errors import SmptuneError, TrialError
from smptune.messages import CV_TRIAL, FINALIZE_SWEEP, RETRAIN_AND_TEST, TrialRequest
from smptune.queue.lease import Lease
from smptune.queue.store import LEASE_LOST, RECORDED, SweepStore
from smptune.records import OUTCOMES, SweepRecord, TrialStatus
from smptune.results.folder import summarize, write_results
from smptune.search.distributions import param_text
from smptune.search.scoring import run_index, trial_score
from smptune.trainable import FoldContext, allowed_trainables, load_trainable

log = logging.getLogger("smptune.tasks")


@lru_cache(maxsize=1)
def _store(url: str) -> SweepStore:
    return SweepStore.from_url(url)


def store() -> SweepStore:
    return _store(str(app.conf.broker_url))


@lru_cache(maxsize=8)
def _sweep_config(sweep_id: str) -> SweepConfig:
    return config_from_dict(store().get_sweep(sweep_id).config)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, SoftTimeLimitExceeded):
        return "time limit exceeded"
    if isinstance(exc, SmptuneError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


@app.task(name=CV_TRIAL, bind=True)
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
        request = TrialRequest.from_celery(self.request, config.queue)
        return TrialRun(db, config, lease, sweep_id, trial, worker).run(request)
    finally:
        lease.release()


class TrialStopped(SmptuneError):
    """A trial ends before its last run: raised where that is found, recorded in one place
    (:meth:`TrialRun.run`), as Optuna's ``TrialPruned``.

    ``status`` is the record's: ``cancelled``; ``skipped`` or ``stopped`` (the time budget);
    ``pruned``; ``failed``. None: this copy lost the trial's lease to another copy, and
    records nothing.
    """

    def __init__(self, status: TrialStatus | None, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def choose_params(
    db: SweepStore, config: SweepConfig, sweep_id: str, trial: int, defaults: Mapping[str, Any]
) -> dict[str, Any]:
    """The configuration of ``trial``, chosen by the sweep's adaptive sampler from every
    trial recorded so far, under the sweep's ask lock so that each ask sees the trials that
    started before it; recorded once (a second copy of the trial gets the same)."""
    from smptune.search.adaptive import ask

    with db.ask_lock(sweep_id):
        recorded = db.params_or_none(sweep_id, trial)
        if recorded is not None:
            return recorded
        trials = db.trials(sweep_id)
        params = ask(trials, config, trial, defaults, config.cv_settings.n_randoms)
        return db.set_params_once(sweep_id, trial, params)


class TrialRun:
    """One copy of a trial that holds its lease: start it, train its unfinished runs
    (folds × seeds) one after another, record each, then the trial's record once."""

    def __init__(
        self,
        db: SweepStore,
        config: SweepConfig,
        lease: Lease,
        sweep_id: str,
        trial: int,
        worker: str,
    ) -> None:
        self.db = db
        self.config = config
        self.lease = lease
        self.sweep_id = sweep_id
        self.trial = trial
        self.worker = worker
        self.n_folds = config.cv_settings.n_folds
        self.n_randoms = config.cv_settings.n_randoms
        #: How many times the trial has started, this copy included (0: not started).
        self.attempt = 0
        #: ``time.perf_counter()`` when this copy started the trial; None before.
        self.started: float | None = None
        #: The runs recorded so far, by run index (:func:`run_index`).
        self.done: dict[int, dict[str, Any]] = {}

    def run(self, request: TrialRequest) -> dict[str, Any]:
        """The trial's share of the chord's result, once its record is written.

        Raises :class:`Ignore` when another copy recorded the trial or holds its lease.
        """
        if self.db.is_finished(self.sweep_id, self.trial):
            raise Ignore()
        try:
            self._check_stop()  # queued when the sweep was cancelled or ran out of time
            self._start(request)
            self._train()
            record = self._record()
        except TrialStopped as stop:
            if stop.status is None:
                raise Ignore() from None
            record = self._record(stop)
        return self._finish(record)

    def _check_stop(self) -> None:
        """Raise :class:`TrialStopped` if the sweep was cancelled or its time budget is spent
        (checked before the trial starts and before each run)."""
        reason = self.db.stop_reason(self.sweep_id)
        ran, before = len(self.done), self.started is None
        if reason == "cancelled":
            why = "before the trial started" if before else f"after {ran} runs"
            raise TrialStopped(TrialStatus.CANCELLED, f"sweep cancelled {why}")
        if reason == "out of time" and before:
            raise TrialStopped(
                TrialStatus.SKIPPED, "the sweep's time budget was spent before it started"
            )
        if reason == "out of time":
            n_runs = self.config.n_runs
            raise TrialStopped(
                TrialStatus.STOPPED, f"the time budget ran out after {ran} of {n_runs} runs"
            )

    def _start(self, request: TrialRequest) -> None:
        """Mark the trial running, with the request to queue it again; read its done runs."""
        self.attempt = self.db.trial_started(
            self.sweep_id,
            self.trial,
            self.worker,
            os.environ.get("CUDA_VISIBLE_DEVICES", ""),
            request.to_dict(),
        )
        self.lease.start_heartbeat()
        self.started = time.perf_counter()
        self.done = self.db.folds(self.sweep_id, self.trial)
        if self.attempt > self.config.max_attempts:
            raise TrialStopped(
                TrialStatus.FAILED,
                f"gave up after {self.attempt - 1} attempts: the trial's worker was lost each "
                f"time (last on {self.worker})",
            )

    def _train(self) -> None:
        """Train the unfinished runs; a trial-level error stops the trial as failed."""
        try:
            self._train_runs()
        except (TrialStopped, Ignore):
            raise
        except Exception as exc:  # a trial-level failure must never fail the chord
            log.warning(
                "sweep %s trial %d failed: %s\n%s",
                self.sweep_id,
                self.trial,
                _describe(exc),
                traceback.format_exc(),
            )
            raise TrialStopped(TrialStatus.FAILED, _describe(exc)) from exc

    def _train_runs(self) -> None:
        """Train each unfinished run, then ask the pruner after each fold but the last."""
        trainable = load_trainable(self.config.trainable, allowed=allowed_trainables())
        params = self._params(trainable.defaults)
        self._log_start(params)
        settings = self.config.settings()
        output_dir = _trial_dir(self.db, self.sweep_id, self.trial)
        for fold in range(self.n_folds):
            repeats = [r for r in range(self.n_randoms) if self._run(fold, r) not in self.done]
            for repeat in repeats:
                self._before_run(fold)
                context = FoldContext(
                    self.sweep_id,
                    self.trial,
                    fold,
                    self.n_folds,
                    settings,
                    output_dir=output_dir,
                    repeat=repeat,
                    n_repeats=self.n_randoms,
                )
                self._record_run(fold, repeat, trainable.train_fold(params, context).to_dict())
            if repeats and fold < self.n_folds - 1 and self._should_prune(params):
                raise TrialStopped(
                    TrialStatus.PRUNED,
                    f"pruned by the {self.config.pruner} pruner after {fold + 1} of "
                    f"{self.n_folds} folds",
                )

    def _run(self, fold: int, repeat: int) -> int:
        """The run index of seed ``repeat`` of ``fold``."""
        return run_index(fold, repeat, self.n_randoms)

    def _params(self, defaults: Mapping[str, Any]) -> dict[str, Any]:
        """The trial's configuration: recorded at submit, else chosen now (adaptive)."""
        params = self.db.params_or_none(self.sweep_id, self.trial)
        if params is not None:
            return params
        if not self.config.is_adaptive:
            raise TrialError(f"sweep {self.sweep_id} has no configuration for trial {self.trial}")
        return self._ask(defaults)

    def _ask(self, defaults: Mapping[str, Any]) -> dict[str, Any]:
        """The adaptive sampler's configuration for this trial."""
        return choose_params(self.db, self.config, self.sweep_id, self.trial, defaults)

    def _should_prune(self, params: Mapping[str, Any]) -> bool:
        """Whether the sweep's pruner stops this trial now, given its done runs and the
        other trials' recorded ones."""
        if not self.config.pruner_spec.enabled:
            return False
        from smptune.search.adaptive import should_prune

        others = self.db.trials(self.sweep_id)
        return should_prune(others, self.config, self.trial, params, self.done, self.n_randoms)

    def _before_run(self, fold: int) -> None:
        """Raise :class:`TrialStopped` unless another run may start; mark its fold."""
        if not self.lease.renew():  # another copy has it (we were cut off, then reaped)
            raise TrialStopped(None, "another copy holds the trial's lease")
        self._check_stop()
        self.db.fold_started(self.sweep_id, self.trial, fold)

    def _record_run(self, fold: int, repeat: int, result: dict[str, Any]) -> None:
        """Store a finished run's result (once) and count it as done."""
        result.update(fold=fold, repeat=repeat)
        run = self._run(fold, repeat)
        self.db.record_fold(self.sweep_id, self.trial, run, result)
        self.done[run] = result
        log.info(
            "sweep %s trial %d fold %d seed %d: %s=%.4f in %.1f s",
            self.sweep_id,
            self.trial,
            fold,
            repeat,
            self.config.scoring.label,
            self.config.scoring.run_score(result["metrics"]),
            result["duration_s"],
        )

    def _record(self, stop: TrialStopped | None = None) -> dict[str, Any]:
        """The trial's record: complete, or ended as ``stop`` says; a trial pruned or
        stopped by the time budget keeps the score of the runs it finished."""
        status = TrialStatus.COMPLETE if stop is None or stop.status is None else stop.status
        if status is TrialStatus.STOPPED and not self.done:
            status = TrialStatus.SKIPPED
        record: dict[str, Any] = {"status": status.value}
        if stop is not None:
            record["error"] = stop.reason
        if status.scored:
            score, std, unstable = trial_score(self.done, self.config.scoring)
            record.update(score=score, score_std=std, unstable=unstable)
            if status is TrialStatus.COMPLETE and unstable:
                record["error"] = "unstable: a run scored NaN, ±inf or 0"
        if self.started is not None:
            record["duration_s"] = time.perf_counter() - self.started
        return record

    def _finish(self, record: dict[str, Any]) -> dict[str, Any]:
        """Write ``record`` once; raises :class:`Ignore` if another copy has the trial."""
        outcome = self.db.finish_trial(self.sweep_id, self.trial, record, self.lease.value)
        if outcome == LEASE_LOST and self.started is not None:
            log.warning(
                "sweep %s trial %d: another copy holds the lease; not recording",
                self.sweep_id,
                self.trial,
            )
        if outcome != RECORDED:
            raise Ignore()
        self._log_outcome(record)
        return {"trial": self.trial, "status": record["status"], "score": record.get("score")}

    def _log_start(self, params: Mapping[str, Any]) -> None:
        log.info(
            "sweep %s trial %d starts on %s (attempt %d, %d of %d runs done): %s",
            self.sweep_id,
            self.trial,
            self.worker,
            self.attempt,
            len(self.done),
            self.config.n_runs,
            ", ".join(param_text(n, params[n]) for n in self.config.hyperparameters if n in params),
        )

    def _log_outcome(self, record: dict[str, Any]) -> None:
        sweep_id, trial, status = self.sweep_id, self.trial, record["status"]
        if self.started is None:  # never started: cancelled or out of time
            log.info("sweep %s trial %d %s: %s", sweep_id, trial, status, record["error"])
            return
        score = record.get("score")
        log.info(
            "sweep %s trial %d %s: %s=%s over %d runs in %.1f s%s",
            sweep_id,
            trial,
            status,
            self.config.scoring.label,
            "--" if score is None else f"{score:.4f}",
            len(self.done),
            record["duration_s"],
            f" ({record['error']})" if record.get("error") else "",
        )


def _trial_dir(db: SweepStore, sweep_id: str, trial: int) -> Path | None:
    """Where a run writes its epoch logs: ``<artifacts>/<sweep>/trials/<trial>``, when this
    machine can write there."""
    try:
        out = Path(db.get_sweep(sweep_id).artifacts_dir) / sweep_id / "trials" / str(trial)
        out.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    return out


def _write_results(sweep_id: str, results: Mapping[str, Any]) -> None:
    sweep = store().get_sweep(sweep_id)
    out = Path(sweep.artifacts_dir) / sweep_id
    try:
        write_results(results, sweep.config, out, sweep.test_metrics, splits=sweep.splits)
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


@app.task(name=FINALIZE_SWEEP, bind=True)
def finalize_sweep(self: Any, trial_results: list[dict[str, Any]], sweep_id: str) -> dict:
    """The chord callback: rank, write the results, start retrain-and-test."""
    db = store()
    if not db.claim_finalize(sweep_id):
        log.warning("sweep %s is already finalized; ignoring this finalize", sweep_id)
        return {"sweep_id": sweep_id, "duplicate": True}
    results = summarize(db, sweep_id)
    config = config_from_dict(db.get_sweep(sweep_id).config)
    cancelled = db.cancel_requested(sweep_id)
    retrain = config.retrain_and_test and results["best"] is not None and not cancelled
    status = "retraining" if retrain else "cancelled" if cancelled else "done"
    splits = _describe_splits(config)
    db.set_sweep_fields(sweep_id, results=results, **({"splits": splits} if splits else {}))
    # the folder first: whoever sees the status change finds the results written
    _write_results(sweep_id, results)
    db.set_sweep_fields(sweep_id, status=status, **({} if retrain else {"finished": time.time()}))
    db.deactivate(sweep_id)
    counts = ", ".join(f"{results[s.counter]} {s}" for s in OUTCOMES if results[s.counter])
    log.info(
        "sweep %s finalized (%s): %s; best trial %s",
        sweep_id,
        status,
        counts or "no trials",
        results["best"] and results["best"]["trial"],
    )
    if retrain:
        app.signature(
            RETRAIN_AND_TEST,
            args=(sweep_id,),
            queue=config.queue,
            soft_time_limit=config.trial_timeout,
        ).apply_async()
    return {"sweep_id": sweep_id, "trials": len(trial_results)}


@app.task(name=RETRAIN_AND_TEST, bind=True)
def retrain_and_test(self: Any, sweep_id: str) -> dict[str, Any]:
    """Train the best configuration on the whole train split; evaluate on the test split."""
    db = store()
    sweep = db.get_sweep(sweep_id)
    config = config_from_dict(sweep.config)
    results = sweep.results or {}
    try:
        if not results.get("best"):
            raise TrialError(f"sweep {sweep_id} has no best trial to retrain")
        metrics = _retrain(db, config, sweep, results["best"])
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
    _write_results(sweep_id, results)
    db.set_sweep_fields(sweep_id, status="done", finished=time.time())
    return {"sweep_id": sweep_id, "status": "done", "test_metrics": metrics}


def _retrain(
    db: SweepStore, config: SweepConfig, sweep: SweepRecord, best: Mapping[str, Any]
) -> dict[str, float]:
    """Retrain and test the sweep's ``best`` trial; record its test metrics and final model."""
    sweep_id = sweep.id
    out = Path(sweep.artifacts_dir) / sweep_id / "final"
    trainable = load_trainable(config.trainable, allowed=allowed_trainables())
    context = FoldContext(
        sweep_id,
        best["trial"],
        -1,
        config.cv_settings.n_folds,
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
        sweep_id, test_metrics=metrics, final_model_dir=str(out), **_predictions_field(out)
    )
    return metrics


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
