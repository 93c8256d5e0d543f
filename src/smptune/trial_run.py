"""One trial's work on a worker: ``cv_trial``'s body as one object.

A :class:`TrialRun` starts the trial, trains its unfinished runs (folds × seeds) one after
another, records each, and writes the trial's record once. Every way a trial ends early —
cancelled, out of time, pruned, failed, the lease lost to another copy — is raised as one
:class:`TrialStopped` where it is found and turned into the record in one place.
"""

from __future__ import annotations

import logging
import os
import time
import traceback
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from celery.exceptions import Ignore, SoftTimeLimitExceeded

from smptune.config import SweepConfig
from smptune.errors import SmptuneError, TrialError
from smptune.messages import TrialRequest
from smptune.queue.lease import Lease
from smptune.queue.store import LEASE_LOST, RECORDED, SweepStore
from smptune.records import TrialStatus
from smptune.search.distributions import param_text
from smptune.search.scoring import run_index, trial_score
from smptune.sharing import apply_in_child, describe_share
from smptune.trainable import FoldContext, allowed_trainables, load_trainable

__all__ = ["TrialRun", "TrialStopped", "choose_params", "describe_error"]

log = logging.getLogger("smptune.tasks")


def describe_error(exc: BaseException) -> str:
    """An exception as a trial or sweep record states it."""
    if isinstance(exc, SoftTimeLimitExceeded):
        return "time limit exceeded"
    if isinstance(exc, SmptuneError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


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
            request,
            share=describe_share(),
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
                describe_error(exc),
                traceback.format_exc(),
            )
            raise TrialStopped(TrialStatus.FAILED, describe_error(exc)) from exc

    def _train_runs(self) -> None:
        """Train each unfinished run, then ask the pruner after each fold but the last."""
        trainable = load_trainable(self.config.trainable, allowed=allowed_trainables())
        apply_in_child()  # torch's threads to the worker's share, once the trainable has torch
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
