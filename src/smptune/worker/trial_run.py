"""One trial's work on a worker: ``cv_trial``'s body as one object.

A :class:`TrialRun` starts the trial, trains its unfinished runs (folds × seeds) one after
another, records each, and writes the trial's record once. A
:class:`~smptune.worker.run_watch.RunWatch` follows each run's epochs as the trainable reports
them: it records each score, and at an epoch boundary stops the run when the sweep is
cancelled or out of time or the pruner (:mod:`smptune.worker.epoch_pruners`) says so. Every
way a trial ends early — cancelled, out of time, pruned, failed, the lease lost to another
copy — is raised as one :class:`~smptune.worker.stops.TrialStopped` where it is found and
turned into the record in one place. A trial without a planned configuration asks the
sweep's sampler for one as it starts (:mod:`smptune.worker.asking`).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
import traceback
from collections.abc import Mapping
from pathlib import Path

from celery.exceptions import Ignore

from smptune.config import SweepConfig
from smptune.errors import TrialError
from smptune.lifecycle import crash_point
from smptune.messages import TrialRequest
from smptune.params import Params, ParamsView
from smptune.queue.lease import Lease
from smptune.queue.store import LEASE_LOST, PREEMPTED, RECORDED, SweepStore
from smptune.records import PartialRun, SavedCheckpoint, TrialStatus
from smptune.retries import gave_up
from smptune.search.distributions import param_text
from smptune.search.scoring import run_index, trial_score
from smptune.trainable import (
    FoldContext,
    FoldResult,
    RunCheckpoint,
    RunLost,
    allowed_trainables,
    fold_model_dirs,
    load_trainable,
)
from smptune.worker.asking import choose_params
from smptune.worker.epoch_pruners import HalvingPruner, MedianPerEpoch
from smptune.worker.host_share import apply_in_child, describe_share
from smptune.worker.out_of_memory import MemoryGuard
from smptune.worker.run_watch import RunWatch
from smptune.worker.stops import (
    LOST_LEASE,
    TrialOutcome,
    TrialShare,
    TrialStopped,
    describe_error,
)

__all__ = ["ENSEMBLE_CANDIDATES", "RunWatch", "TrialRun", "TrialStopped", "describe_error"]

log = logging.getLogger("smptune.worker.tasks")


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
        self.done: dict[int, Mapping[str, object]] = {}
        #: The run this copy was stopped in between two epochs, if any.
        self.partial: PartialRun | None = None
        self.max_epochs = config.max_epochs
        self.epoch_pruner: HalvingPruner | MedianPerEpoch | None = None
        #: Whether this copy said that its trainable reports no epochs to an epoch pruner.
        self.silent_warned = False
        #: The last checkpoint of the run in progress, as recorded when this copy started.
        self.saved: SavedCheckpoint | None = None
        self.memory = MemoryGuard(config)

    def run(self, request: TrialRequest) -> TrialShare:
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
            if stop.status is TrialStatus.REQUEUED:
                self._give_back(stop)
            if stop.status in (None, TrialStatus.REQUEUED):
                raise Ignore() from None
            if stop.status is TrialStatus.PRUNED:
                self._drop_checkpoint()  # it never runs again
            record = self._record(stop)
        return self._finish(record)

    def _give_back(self, stop: TrialStopped) -> None:
        """Queue the trial again at once for another worker (this one is preempted)."""
        from smptune.queue.recovery import give_back
        from smptune.worker.app import app

        if give_back(self.db, app, self.sweep_id, self.trial, self.worker, self.lease.value):
            log.warning("sweep %s trial %d: %s; queued again", self.sweep_id, self.trial, stop)

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
        crash_point("trial.started")
        self.lease.start_heartbeat()
        self.started = time.perf_counter()
        if self.config.is_open_ended:  # once per trial: the store refuses a second top-up
            self._extend(request)
        self.done = dict(self.db.folds(self.sweep_id, self.trial))
        self.saved = self.db.checkpoint(self.sweep_id, self.trial)
        refused = gave_up(self.attempt, self.config.max_attempts, "the trial's worker")
        if refused:
            raise TrialStopped(TrialStatus.FAILED, f"{refused} (last on {self.worker})")

    def _extend(self, request: TrialRequest) -> None:
        """Queue one more trial of an open-ended sweep (to the queue of a trial not asked
        yet), its chord waiting for it too, unless the sweep is closed: each trial's first
        start adds one (not a start again), so one stays queued until the budget is spent."""
        from smptune.messages import TRIAL_PRIORITY, send_trial
        from smptune.queue.routing import unasked
        from smptune.task_labels import trial_argsrepr
        from smptune.worker.app import app

        if request.group is None:
            return
        group = request.group
        keys = tuple(app.backend.get_key_for_group(group, k) for k in (".s", ".t", ".j"))
        number = self.db.extend(self.sweep_id, self.trial, (keys[0], keys[1], keys[2]))
        if number is None:
            return
        argsrepr = trial_argsrepr(self.sweep_id, number, None, self.config.hyperparameters)
        send_trial(
            app,
            self.sweep_id,
            number,
            unasked(self.config, request).for_trial(self.sweep_id, number),
            TRIAL_PRIORITY,
            argsrepr,
        )

    def _train(self) -> None:
        """Train the unfinished runs: out of memory stops the trial as infeasible (or trains
        them once more with half the batch size, :class:`MemoryGuard`), another trial-level
        error as failed."""
        while True:
            try:
                return self._train_runs()
            except Ignore:
                raise
            except RunLost as exc:  # as a lost worker's: the reaper queues it again
                log.warning(
                    "sweep %s trial %d: %s; nothing recorded", self.sweep_id, self.trial, exc
                )
                raise TrialStopped(None, str(exc)) from exc
            except Exception as exc:  # a trial-level failure must never fail the chord
                stop = self.memory.stop(exc)
                if stop is None:
                    log.warning(
                        "sweep %s trial %d failed: %s\n%s",
                        self.sweep_id,
                        self.trial,
                        describe_error(exc),
                        traceback.format_exc(),
                    )
                    raise TrialStopped(TrialStatus.FAILED, describe_error(exc)) from exc
                if not self.memory.retries(stop, f"sweep {self.sweep_id} trial {self.trial}"):
                    raise stop from None if stop is exc else exc
                self.partial = None

    def _train_runs(self) -> None:
        """Train each unfinished run, watching its epochs; ask a fold-level pruner after
        each fold but the last."""
        trainable = load_trainable(self.config.trainable, allowed=allowed_trainables())
        apply_in_child()  # torch's threads to the worker's share, once the trainable has torch
        params = self.memory.params(self._params(trainable.defaults), self.done)
        self._log_start(params)
        settings = self.config.settings()
        output_dir = _trial_dir(self.db, self.sweep_id, self.trial)
        self.epoch_pruner = self._build_epoch_pruner(params)
        fold_pruning = self.config.pruner_spec.enabled and self.config.pruner_spec.at == "fold"
        for fold in range(self.n_folds):
            repeats = [r for r in range(self.n_randoms) if self._run(fold, r) not in self.done]
            for repeat in repeats:
                self._before_run(fold)
                watch = RunWatch(self, fold, repeat)
                checkpoint = self._run_checkpoint(watch, output_dir)
                context = FoldContext(
                    self.sweep_id,
                    self.trial,
                    fold,
                    self.n_folds,
                    settings,
                    output_dir=output_dir,
                    should_stop=watch.should_stop,
                    report=watch.report,
                    repeat=repeat,
                    n_repeats=self.n_randoms,
                    checkpoint=checkpoint,
                )
                self.memory.starts(fold, repeat, params)
                result = trainable.train_fold(params, context)
                watch.stop = watch.stop or self.memory.host_stop()
                if watch.stop is not None and result.epochs_run < self.max_epochs:
                    self.partial = watch.partial(result.epochs_run, result.duration_s)
                    raise watch.stop
                if watch.stop is not None and watch.stop.status is TrialStatus.INFEASIBLE:
                    raise watch.stop  # over the host's memory limit at its last epoch
                self._record_run(fold, repeat, result)
                self._drop_checkpoint(checkpoint.path if checkpoint else None)
                if self.epoch_pruner is not None and not watch.scores and not self.silent_warned:
                    self.silent_warned = True
                    log.warning(
                        "sweep %s trial %d: %s reports no epochs (FoldContext.report), so the "
                        "%s pruner cannot decide inside its runs",
                        self.sweep_id,
                        self.trial,
                        self.config.trainable,
                        self.config.pruner,
                    )
                if watch.stop is not None and watch.stop.status is TrialStatus.PRUNED:
                    raise watch.stop  # decided at its last epoch: the run is complete
                if isinstance(self.epoch_pruner, HalvingPruner):
                    why = self.epoch_pruner.after_run(watch.index, result.epochs_run)
                    if why is not None:
                        raise TrialStopped(
                            TrialStatus.PRUNED, f"pruned by {self.config.pruner} {why}"
                        )
            last = fold == self.n_folds - 1
            if repeats and not last and fold_pruning and self._should_prune(params):
                raise TrialStopped(
                    TrialStatus.PRUNED,
                    f"pruned by the {self.config.pruner} pruner after {fold + 1} of "
                    f"{self.n_folds} folds",
                )

    def _run_checkpoint(self, watch: RunWatch, output_dir: Path | None) -> RunCheckpoint | None:
        """Where ``watch``'s run keeps its checkpoint, resuming from the one recorded for it
        when this machine sees that file (and saying so when it does not)."""
        saved, where = self.saved, f"sweep {self.sweep_id} trial {self.trial}"
        run = f"fold {watch.fold} seed {watch.repeat}"
        if saved is not None and saved.run != watch.index:
            saved = None  # another run's: recorded since, or never resumed
        if output_dir is None:
            if saved is not None:
                log.warning(
                    "%s restarts %s from epoch 1: this machine cannot write the artifacts "
                    "directory, so it cannot read its checkpoint after epoch %d (%s)",
                    where,
                    run,
                    saved.epoch,
                    saved.path,
                )
            return None
        if saved is not None and not _confined(saved.path, output_dir, where):
            saved = None  # not loaded: a run's checkpoint is only ever in the trial's folder
        path = output_dir / "checkpoints" / f"fold_{watch.fold}_seed_{watch.repeat}.ckpt"
        resume = 0
        if saved is not None and Path(saved.path).is_file():
            path, resume = Path(saved.path), saved.epoch
            watch.resume_after(resume)
            log.info(
                "%s resumes %s at epoch %d from its checkpoint (%s)", where, run, resume + 1, path
            )
        elif saved is not None:
            log.warning(
                "%s restarts %s from epoch 1: its checkpoint after epoch %d (%s) is not on this "
                "machine",
                where,
                run,
                saved.epoch,
                saved.path,
            )
        path.parent.mkdir(parents=True, exist_ok=True)
        watch.checkpoint_path = path
        return RunCheckpoint(path, resume, due=watch.checkpoint_due, saved=watch.checkpointed)

    def _drop_checkpoint(self, path: Path | None = None) -> None:
        """Forget the run in progress's checkpoint and remove its file (unless the config
        keeps checkpoints), only while this copy holds the lease (the live copy resumes
        from that file); ``path`` is this copy's, the one recorded is removed only if it is
        in the trial's own folder."""
        saved = self.db.checkpoint(self.sweep_id, self.trial)
        if saved is None and (path is None or not path.exists()):
            return
        if not self.lease.renew():
            log.warning(
                "sweep %s trial %d: %s; its checkpoint is left to the copy holding it",
                self.sweep_id,
                self.trial,
                LOST_LEASE,
            )
            return
        self.db.clear_checkpoint(self.sweep_id, self.trial)
        self.saved = None
        if self.config.keep_checkpoints:
            return
        if path is not None:
            path.unlink(missing_ok=True)
        if saved is not None and saved.path != str(path):
            folder = _trial_folder(self.db, self.sweep_id, self.trial)
            file = _confined(saved.path, folder, f"sweep {self.sweep_id} trial {self.trial}")
            if file is not None:
                file.unlink(missing_ok=True)

    def _build_epoch_pruner(self, params: ParamsView) -> HalvingPruner | MedianPerEpoch | None:
        spec = self.config.pruner_spec
        if spec.halving:
            return HalvingPruner(self)
        if spec.enabled and spec.at == "epoch":
            return MedianPerEpoch(self, params)
        return None

    def stop_at_epoch(
        self, watch: RunWatch, epoch: int, score: float, reason: str | None
    ) -> TrialStopped | None:
        """Why ``watch``'s run must stop after ``epoch`` (``reason``: the sweep's stop reason;
        cancelled, out of time, preempted), or None to go on."""
        where = f"at fold {watch.fold}, epoch {epoch}"
        # the pruner first: a run stopped for another reason at a rung is judged there, or
        # the copy that continues it after the rung would never be
        why = None if self.epoch_pruner is None else self.epoch_pruner.decide(watch, epoch, score)
        if why is not None:
            return TrialStopped(
                TrialStatus.PRUNED, f"pruned by {self.config.pruner} {where}: {why}"
            )
        host = self.memory.host_stop()  # over training.max_host_memory_gb: infeasible
        if host is not None:
            return host
        if reason == PREEMPTED:
            return TrialStopped(TrialStatus.REQUEUED, f"its worker was preempted {where}")
        if reason == "cancelled":
            return TrialStopped(TrialStatus.CANCELLED, f"sweep cancelled {where}")
        if reason == "out of time":
            return TrialStopped(
                TrialStatus.STOPPED,
                f"the time budget ran out {where} (after {len(self.done)} of "
                f"{self.config.n_runs} runs)",
            )
        return None

    def _run(self, fold: int, repeat: int) -> int:
        """The run index of seed ``repeat`` of ``fold``."""
        return run_index(fold, repeat, self.n_randoms)

    def _params(self, defaults: ParamsView) -> Params:
        """The trial's configuration: recorded at submit, else asked of the sampler now."""
        params = self.db.params_or_none(self.sweep_id, self.trial)
        if params is not None:
            return params
        if not self.config.sampler_spec.asks_at_start(self.config.is_open_ended):
            raise TrialError(f"sweep {self.sweep_id} has no configuration for trial {self.trial}")
        return choose_params(self.db, self.config, self.sweep_id, self.trial, defaults)

    def _should_prune(self, params: ParamsView) -> bool:
        """Whether the sweep's pruner stops this trial now, given its done runs and the
        other trials' recorded ones."""
        if not self.config.pruner_spec.enabled:
            return False
        from smptune.search.adaptive import should_prune

        complete = self.db.complete_trials(self.sweep_id, self.config.scoring.mode)
        return should_prune(complete, self.config, params, self.done, self.n_randoms)

    def _before_run(self, fold: int) -> None:
        """Raise :class:`TrialStopped` unless another run may start; mark its fold."""
        if not self.lease.renew():  # another copy has it (we were cut off, then reaped)
            raise TrialStopped(None, "another copy holds the trial's lease")
        self._check_stop()
        if self.db.preempting(self.worker):
            raise TrialStopped(
                TrialStatus.REQUEUED,
                f"its worker was preempted before fold {fold} (after {len(self.done)} runs)",
            )
        self.db.fold_started(self.sweep_id, self.trial, fold)

    def _record_run(self, fold: int, repeat: int, result: FoldResult) -> None:
        """Store a finished run's result (once) and count it as done."""
        recorded = {**result.to_dict(), "fold": fold, "repeat": repeat}
        self.memory.mark(recorded)
        run = self._run(fold, repeat)
        if self.db.record_fold(self.sweep_id, self.trial, run, recorded, self.lease.value) is None:
            self.lease.lost.set()
            log.warning(
                "sweep %s trial %d: %s before it recorded fold %d seed %d; it stops and "
                "records nothing",
                self.sweep_id,
                self.trial,
                LOST_LEASE,
                fold,
                repeat,
            )
            raise TrialStopped(None, f"{LOST_LEASE} at fold {fold}")
        crash_point("trial.run_recorded")
        self.done[run] = recorded
        log.info(
            "sweep %s trial %d fold %d seed %d: %s=%.4f in %.1f s",
            self.sweep_id,
            self.trial,
            fold,
            repeat,
            self.config.scoring.label,
            self.config.scoring.run_score(result.metrics),
            result.duration_s,
        )

    def _record(self, stop: TrialStopped | None = None) -> TrialOutcome:
        """The trial's record: complete, or ended as ``stop`` says; a trial pruned or
        stopped by the time budget keeps the score of the runs it finished."""
        status = TrialStatus.COMPLETE if stop is None or stop.status is None else stop.status
        if status is TrialStatus.STOPPED and not self.done and self.partial is None:
            status = TrialStatus.SKIPPED
        record: TrialOutcome = {"status": status.value}
        if stop is not None:
            record["error"] = stop.reason
        if self.partial is not None:
            record["partial"] = json.dumps(self.partial.to_dict())
        self.memory.add_to(record)
        if status.scored:
            score, std, unstable = trial_score(self.done, self.config.scoring)
            if score is None and not unstable and self.partial is not None:
                score = self.partial.score  # stopped inside its first run: that run's epochs
            record["score"], record["score_std"], record["unstable"] = score, std, unstable
            if status is TrialStatus.COMPLETE and unstable:
                record["error"] = "unstable: a run scored NaN, ±inf or 0"
        if self.started is not None:
            record["duration_s"] = time.perf_counter() - self.started
        return record

    def _finish(self, record: TrialOutcome) -> TrialShare:
        """Write ``record`` once; raises :class:`Ignore` if another copy has the trial."""
        outcome = self.db.finish_trial(
            self.sweep_id, self.trial, record, self.lease.value, self._pruner_steps(record)
        )
        if outcome == LEASE_LOST and self.started is not None:
            log.warning(
                "sweep %s trial %d: another copy holds the lease; not recording",
                self.sweep_id,
                self.trial,
            )
        if outcome != RECORDED:
            raise Ignore()
        crash_point("trial.finished")
        self._prune_fold_models()
        if record["status"] == TrialStatus.COMPLETE and self.config.time_budget_factor:
            deadline = self.db.plan_deadline(self.sweep_id, record["duration_s"])
            if deadline is not None:
                log.info(
                    "sweep %s: time budget %s ends at %s",
                    self.sweep_id,
                    self.config.time_budget,
                    time.strftime("%H:%M:%S", time.localtime(deadline)),
                )
        self._log_outcome(record)
        return {"trial": self.trial, "status": record["status"], "score": record.get("score")}

    def _pruner_steps(self, record: TrialOutcome) -> dict[int, float]:
        """A complete trial's steps as the median pruner compares other trials with them."""
        if record["status"] != TrialStatus.COMPLETE or self.config.pruner_spec.kind != "median":
            return {}
        from smptune.search.adaptive import pruner_steps

        by_epoch = self.config.pruner_spec.at == "epoch"
        curves = self.db.curves(self.sweep_id, self.trial) if by_epoch else {}
        return pruner_steps(self.done, curves, self.config, self.n_randoms)

    def _prune_fold_models(self) -> None:
        """Keep the runs' best-epoch models only for trials that can still be best (the
        fold ensemble's candidates): drop this trial's unless it is among them, and those of
        the trial it pushed out. Kept for every trial with ``save_checkpoints: best``."""
        config = self.config
        if not config.fold_models or config.training.get("save_checkpoints") == "best":
            return
        n = ENSEMBLE_CANDIDATES
        ranked = self.db.top_trials(self.sweep_id, config.scoring.mode, n + 1)
        for trial in {self.trial, *ranked[n:]} - set(ranked[:n]):
            out = _trial_dir(self.db, self.sweep_id, trial)
            for folder in fold_model_dirs(out) if out is not None else []:
                shutil.rmtree(folder, ignore_errors=True)

    def _log_start(self, params: ParamsView) -> None:
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

    def _log_outcome(self, record: TrialOutcome) -> None:
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


#: Complete trials whose runs' best-epoch models are kept for the fold ensemble.
ENSEMBLE_CANDIDATES = 3


def _trial_folder(db: SweepStore, sweep_id: str, trial: int) -> Path:
    """The trial's own folder, ``<artifacts>/<sweep>/trials/<trial>``: every file a copy of
    it writes or removes is in there."""
    return Path(db.artifacts_dir(sweep_id)) / sweep_id / "trials" / str(trial)


def _confined(path: str | Path, folder: Path, where: str) -> Path | None:
    """``path`` (read from Redis) if it is inside ``folder``, symbolic links resolved; else
    None, with a warning: it is neither loaded nor removed (a Redis writer must not get a
    worker to touch files elsewhere)."""
    candidate = Path(path)
    try:
        inside = candidate.resolve().is_relative_to(folder.resolve())
    except (OSError, RuntimeError):  # a symlink loop
        inside = False
    if not inside:
        log.warning("%s: ignoring checkpoint %s, which is outside %s", where, path, folder)
        return None
    return candidate


def _trial_dir(db: SweepStore, sweep_id: str, trial: int) -> Path | None:
    """Where a run writes its epoch logs: ``<artifacts>/<sweep>/trials/<trial>``, when this
    machine can write there."""
    try:
        out = Path(db.artifacts_dir(sweep_id)) / sweep_id / "trials" / str(trial)
        out.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    return out
