"""The sweep store's claims: the leases of trials, retrain-and-test and finalize, and the
reaper's claims on what a dead process left (orphans, lost trials, messages to send
again, preempted trials), with the counts of sends and takes they are judged by.

A claim is taken once fleet-wide: a Lua step that moves a trial off the running set, or a
``SET NX`` with a TTL that lapses with the reaper that took it.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable

from smptune.queue._base import StoreBase
from smptune.queue.keys import (
    claim_key,
    finalize_lease_key,
    finalized_key,
    finalizing_key,
    finished_key,
    lost_key,
    preempt_key,
    rerun_key,
    retrain_lease_key,
    retrained_key,
    retraining_key,
    running_key,
    sweep_key,
    to_send_key,
    trial_key,
    trial_lease_key,
)
from smptune.queue.lease import Lease


class Claims(StoreBase):
    """Leases, and the claims of the reaper on what a dead process left."""

    def lease_key(self, sweep_id: str, trial: int) -> str:
        return trial_lease_key(sweep_id, trial)

    def lease(self, sweep_id: str, trial: int, host: str) -> Lease:
        """The lease of one trial, to be held by this process."""
        return Lease(
            self.r,
            trial_lease_key(sweep_id, trial),
            host,
            running_key=running_key(sweep_id),
            finished_key=finished_key(sweep_id),
            member=str(trial),
        )

    def retrain_lease(self, sweep_id: str, host: str) -> Lease:
        """The lease of a sweep's retrain-and-test, to be held by this process."""
        return Lease(
            self.r,
            retrain_lease_key(sweep_id),
            host,
            running_key=retraining_key(sweep_id),
            finished_key=retrained_key(sweep_id),
            member="retrain",
        )

    def retrain_started(self, sweep_id: str) -> int:
        """Mark retrain-and-test running; how many times it has started."""
        pipe = self.r.pipeline(transaction=True)
        pipe.sadd(retraining_key(sweep_id), "retrain")
        pipe.hincrby(sweep_key(sweep_id), "retrain_attempts", 1)
        return int(pipe.execute()[1])

    def retrain_ended(self, sweep_id: str) -> None:
        pipe = self.r.pipeline(transaction=True)
        pipe.srem(retraining_key(sweep_id), "retrain")
        pipe.delete(retrain_lease_key(sweep_id))
        pipe.execute()

    def retrain_orphaned(self, sweep_id: str) -> bool:
        """Whether retrain-and-test is marked running without a live lease."""
        running = self.r.sismember(retraining_key(sweep_id), "retrain")
        return bool(running) and not self.r.exists(retrain_lease_key(sweep_id))

    def retrain_held(self, sweep_id: str) -> bool:
        """Whether a live worker holds the sweep's retrain-and-test's lease."""
        return bool(self.r.exists(retrain_lease_key(sweep_id)))

    def claim_orphaned_retrain(self, sweep_id: str) -> bool:
        """Take an orphaned retrain-and-test off the running set, once fleet-wide."""
        return bool(self.r.srem(retraining_key(sweep_id), "retrain"))

    def finalize_lease(self, sweep_id: str, generation: int, host: str) -> Lease:
        """The lease of the finalize of a sweep's ``generation``, to be held by this process:
        taken, it marks that finalize running; it lapses with the process that held it."""
        return Lease(
            self.r,
            finalize_lease_key(sweep_id),
            host,
            running_key=finalizing_key(sweep_id),
            finished_key=finalized_key(sweep_id),
            member=str(generation),
        )

    def finalize_held(self, sweep_id: str) -> bool:
        """Whether a live worker holds the sweep's finalize lease."""
        return bool(self.r.exists(finalize_lease_key(sweep_id)))

    def finalize_orphaned(self, sweep_id: str, generation: int) -> bool:
        """Whether ``generation``'s finalize is marked running without a live lease."""
        pipe = self.r.pipeline(transaction=False)
        pipe.sismember(finalizing_key(sweep_id), str(generation))
        pipe.exists(finalize_lease_key(sweep_id))
        running, held = pipe.execute()
        return bool(running) and not held

    def count_take(self, sweep_id: str, step: str) -> int:
        """A worker took a message of ``step`` (``finalize`` or ``retrain``); how many were
        taken so far."""
        return int(self.r.hincrby(sweep_key(sweep_id), f"{step}_takes", 1))

    def count_send(self, sweep_id: str, step: str) -> None:
        """A message of ``step`` was sent (counted once it is)."""
        self.r.hincrby(sweep_key(sweep_id), f"{step}_sends", 1)

    def unsent(self, sweep_id: str, step: str) -> bool:
        """Whether no message of ``step`` waits to be taken: as many were taken as were
        sent (a message lost in the broker's own gap is not seen here)."""
        sends, takes = self.r.hmget(sweep_key(sweep_id), f"{step}_sends", f"{step}_takes")
        return int(sends or 0) <= int(takes or 0)

    def claim_send(self, sweep_id: str, step: str, hold_s: float) -> bool:
        """The right, for ``hold_s`` seconds fleet-wide, to send ``step``'s message again (a
        claim that lapses with the reaper that took it)."""
        key = claim_key(sweep_id, step)
        return bool(self.r.set(key, self.now(), nx=True, ex=max(1, math.ceil(hold_s))))

    def claim_lost(self, sweep_id: str, trial: int, hold_s: float) -> bool:
        """The right, for ``hold_s`` seconds fleet-wide, to queue a lost trial again."""
        key = lost_key(sweep_id, trial)
        return bool(self.r.set(key, time.time(), nx=True, ex=max(1, math.ceil(hold_s))))

    def lease_exists(self, sweep_id: str, trial: int) -> bool:
        return bool(self.r.exists(trial_lease_key(sweep_id, trial)))

    def _requeue_keys(self, sweep_id: str, trial: int) -> list[str]:
        """The keys a running trial leaves when it is queued again: the running and
        finished sets, its lease, its hash, the to-send and rerun sets."""
        return [
            running_key(sweep_id),
            finished_key(sweep_id),
            trial_lease_key(sweep_id, trial),
            trial_key(sweep_id, trial),
            to_send_key(sweep_id),
            rerun_key(sweep_id),
        ]

    def claim_orphan(self, sweep_id: str, trial: int) -> bool:
        """Take a running trial whose lease has expired off the running set, once, and mark
        it to be sent again (:meth:`to_send`) in the same step."""
        keys = self._requeue_keys(sweep_id, trial)
        return bool(self._claim_orphan(keys=keys, args=[trial]))

    def to_send(self, sweep_id: str) -> dict[int, float]:
        """Trials marked requeued and not yet sent again, with when they were marked (Redis
        time): a reaper that died between the two leaves them here for the next."""
        numbers = sorted(int(n) for n in self.r.smembers(to_send_key(sweep_id)))
        pipe = self.r.pipeline(transaction=False)
        for n in numbers:
            pipe.hget(trial_key(sweep_id, n), "requeued_at")
        return {n: float(at or 0) for n, at in zip(numbers, pipe.execute(), strict=True)}

    def sent_again(self, sweep_id: str, trial: int) -> None:
        """A trial marked requeued was sent again (or its message put back)."""
        self.r.srem(to_send_key(sweep_id), trial)

    def preempt(self, workers: Iterable[str], hold_s: float) -> None:
        """Tell ``workers``' running trials to checkpoint and give themselves back (for
        ``hold_s`` seconds: a restarted worker of the same name is not preempted)."""
        pipe = self.r.pipeline(transaction=False)
        for worker in workers:
            pipe.set(preempt_key(worker), time.time(), ex=max(1, math.ceil(hold_s)))
        pipe.execute()

    def preempting(self, worker: str) -> bool:
        return bool(worker) and bool(self.r.exists(preempt_key(worker)))

    def requeue_preempted(self, sweep_id: str, trial: int, worker: str, lease: str = "") -> bool:
        """Give back a running trial of a preempted ``worker``: off the running set, its
        lease dropped (only if ``lease`` holds it, when given), marked requeued; the attempt
        is not counted. False when the trial is not that worker's any more."""
        keys = self._requeue_keys(sweep_id, trial)
        return bool(self._requeue_preempted(keys=keys, args=[trial, worker, "", lease]))

    def preempted(self, workers: Iterable[str]) -> None:
        """``workers`` are gone: their names may run trials again."""
        names = [preempt_key(worker) for worker in workers]
        if names:
            self.r.delete(*names)

    def running_on(self, workers: Iterable[str]) -> list[tuple[str, int, str]]:
        """``(sweep, trial, worker)`` of each trial of an active sweep that one of
        ``workers`` runs."""
        names = set(workers)
        return [
            (sweep_id, row["trial"], row["worker"])
            for sweep_id in self.active_sweeps()
            for row in self.running(sweep_id)
            if row["worker"] in names
        ]
