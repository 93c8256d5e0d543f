"""One run's epochs on a worker, as its trainable reports them.

A :class:`RunWatch` is the run's ``report`` and ``should_stop``: it records each epoch's
score, and at an epoch boundary stops the run when its trial's owner finds a reason
(:meth:`RunOwner.stop_at_epoch`: cancelled, out of time, preempted, pruned) or its copy lost
the trial's lease; it decides when the run saves its checkpoint.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Protocol

from smptune.config import SweepConfig
from smptune.lifecycle import crash_point
from smptune.queue.lease import Lease
from smptune.queue.store import LEASE_GONE, SweepStore
from smptune.records import PartialRun, RunResults, SavedCheckpoint
from smptune.search.scoring import run_index
from smptune.worker.stops import LOST_LEASE, RESUMABLE, TrialStopped

__all__ = ["RunOwner", "RunWatch", "best_so_far"]

log = logging.getLogger("smptune.worker.tasks")


class RunOwner(Protocol):
    """The trial a run belongs to, as its watch and epoch pruners read it (a
    :class:`~smptune.worker.trial_run.TrialRun` is one)."""

    @property
    def db(self) -> SweepStore: ...
    @property
    def config(self) -> SweepConfig: ...
    @property
    def lease(self) -> Lease: ...
    @property
    def sweep_id(self) -> str: ...
    @property
    def trial(self) -> int: ...
    @property
    def worker(self) -> str: ...
    @property
    def n_randoms(self) -> int: ...
    @property
    def max_epochs(self) -> int: ...
    @property
    def done(self) -> RunResults: ...

    def stop_at_epoch(
        self, watch: RunWatch, epoch: int, score: float, reason: str | None
    ) -> TrialStopped | None: ...


class RunWatch:
    """One run's epochs as its trainable reports them (the context's ``report`` and
    ``should_stop``): each epoch's score recorded, and after each the run told to stop when
    :meth:`RunOwner.stop_at_epoch` finds a reason."""

    def __init__(self, owner: RunOwner, fold: int, repeat: int) -> None:
        self.owner = owner
        self.fold = fold
        self.repeat = repeat
        self.index = run_index(fold, repeat, owner.n_randoms)
        #: Score per reported epoch, in order.
        self.scores: list[float] = []
        #: Why the run must stop at its next epoch boundary; None while it goes on.
        self.stop: TrialStopped | None = None
        #: Where the run saves its checkpoint (None: it saves none).
        self.checkpoint_path: Path | None = None

    def resume_after(self, epoch: int) -> None:
        """The run continues after ``epoch`` from a checkpoint: its earlier epochs' scores
        are the ones recorded."""
        owner = self.owner
        curve = owner.db.curves(owner.sweep_id, owner.trial).get(self.index, ())
        self.scores = list(curve[:epoch])

    def report(self, epoch: int, metrics: Mapping[str, float]) -> None:
        owner = self.owner
        score = owner.config.scoring.run_score(metrics)
        del self.scores[epoch - 1 :]  # an epoch trained again after its checkpoint's
        self.scores.append(score)
        reason = owner.db.record_epoch(
            owner.sweep_id, owner.trial, self.index, epoch, score, owner.worker, owner.lease.value
        )
        if reason == LEASE_GONE:
            owner.lease.lost.set()
            self.lost(f"at fold {self.fold}, epoch {epoch}")
            return
        crash_point("trial.epoch")
        if self.stop is None:
            self.stop = owner.stop_at_epoch(self, epoch, score, reason)

    def should_stop(self) -> bool:
        """Whether the run ends at this epoch boundary: a stop was found, or this copy lost
        the trial's lease (its heartbeat or a write found another copy holding it)."""
        if self.owner.lease.lost.is_set():
            self.lost(f"in fold {self.fold}")
        return self.stop is not None

    def lost(self, where: str) -> None:
        """This copy lost the trial's lease: the run stops, recording nothing (said once)."""
        if self.stop is not None and self.stop.status is None:
            return
        owner = self.owner
        log.warning(
            "sweep %s trial %d: %s %s; it stops and records nothing",
            owner.sweep_id,
            owner.trial,
            LOST_LEASE,
            where,
        )
        self.stop = TrialStopped(None, f"{LOST_LEASE} {where}")

    def checkpoint_due(self, epoch: int) -> bool:
        """Whether the run saves a checkpoint after ``epoch``: every ``checkpoint_every``
        epochs, and before it stops to be continued (preempted, cancelled, out of time);
        never after its last epoch or before it is pruned, and never from a copy that lost
        the trial's lease (checked in Redis before each save: a copy thawed after another
        took the trial over must not overwrite the file that copy resumed from)."""
        if self.owner.lease.lost.is_set():
            self.lost(f"at fold {self.fold}, epoch {epoch}")
            return False
        if epoch >= self.owner.max_epochs:
            return False
        if self.stop is not None:
            due = self.stop.status in RESUMABLE
        else:
            every = self.owner.config.checkpoint_every
            due = every > 0 and epoch % every == 0
        if due and not self.owner.lease.renew():
            self.lost(f"at fold {self.fold}, epoch {epoch}, before its checkpoint")
            return False
        return due

    def checkpointed(self, epoch: int) -> None:
        """Record that the run's checkpoint now holds it after ``epoch`` (only while this
        copy holds the trial's lease)."""
        owner = self.owner
        assert self.checkpoint_path is not None
        saved = SavedCheckpoint(self.index, epoch, str(self.checkpoint_path))
        if not owner.db.checkpointed(owner.sweep_id, owner.trial, saved, owner.lease.value):
            owner.lease.lost.set()
            self.lost(f"at fold {self.fold}, epoch {epoch}, as it saved its checkpoint")
            return
        crash_point("trial.checkpointed")

    def partial(self, epochs: int, duration_s: float) -> PartialRun:
        """The run as recorded when it stops after ``epochs`` epochs."""
        assert self.stop is not None
        best = best_so_far(self.scores, self.owner.config.scoring.mode)
        return PartialRun(self.fold, self.repeat, epochs, best, self.stop.reason, duration_s)


def best_so_far(scores: list[float], mode: str) -> float | None:
    """The best finite score of ``scores`` (None when none is): how a rung reads a run, and
    a stopped run's score."""
    finite = [s for s in scores if math.isfinite(s)]
    if not finite:
        return None
    return max(finite) if mode == "max" else min(finite)
