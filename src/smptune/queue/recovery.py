"""Fast recovery of lost trials: the reaper every ``workers`` supervisor runs.

A trial whose lease has expired while it is marked running lost its worker process or its
whole machine. The reaper takes it off the running set (once, fleet-wide) and queues it
again under the same task id, group and chord, so the chord still counts it once; the new
copy resumes from its first unrecorded fold. Without this, Redis would redeliver the
message only after the broker's visibility timeout (12 h by default).

A trial can also lose its message before it starts: kombu's Redis transport pops a message
(BRPOP) and only then records it as unacknowledged, so a Redis that dies between the two, or
a reply that never reaches the worker, drops it. When a sweep's queue is empty and no worker
holds its message, yet the trial is neither running nor finished in two scans
``finalize_grace_s`` apart, the reaper queues it again the same way. A message recorded as
unacknowledged more than ``finalize_grace_s`` ago whose trial never started is held by no one
(the pop and the record reached Redis, the reply did not reach the worker): it counts as lost
too, and its stale record is dropped so the visibility timeout cannot deliver it again.

A retrain-and-test and a finalize hold a lease the same way, taken in the step that marks
them running: one whose lease is gone is sent again. One that was never sent (its sender
died after writing the status that asks for it) is sent once no message of it waits to be
taken (sends are counted against takes). A sweep its producer left half-sent (recorded
``submitting``) gets its chord sent by the reaper: the chord size and every trial neither
running nor finished. A trial the reaper or a supervisor marked requeued stays marked to be
sent until it is; a reaper that finds a mark older than a lease TTL sends it.

Every right the reaper takes before it sends (a half-sent chord, a missing finalize or
retrain, a lost message) is a key with a TTL, so a reaper that dies between its claim and
its send leaves the work to the next pass of any reaper. Times written by other hosts are
compared with the Redis server's clock.

A preempted worker's trial is given back at once (:func:`give_back`): by the trial itself at
an epoch or run boundary once it has saved its checkpoint, or by the worker's supervisor once
the grace has passed; it is queued again without counting an attempt.

The reaper also finalizes a sweep whose every trial is recorded but whose chord did not fire
within ``finalize_grace_s`` (Celery's chord counter lives in Redis too, and a result stored
during a Redis restart can miss it); ``finalize_sweep`` does its work once per generation
either way. The crash point of each step (:mod:`smptune.lifecycle`) is named where it is.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from smptune.lifecycle import crash_point
from smptune.messages import (
    FINALIZE_SWEEP,
    REQUEUE_PRIORITY,
    RETRAIN_AND_TEST,
    TrialRequest,
    send_trial,
    trial_task_id,
)
from smptune.queue.routing import retrain_queue, routed, sweep_queues, trial_queues
from smptune.queue.store import SweepStore
from smptune.records import SweepRecord, SweepStatus

log = logging.getLogger("smptune.recovery")

#: The "trial numbers" under which the reaper tracks a sweep's retrain-and-test and finalize.
RETRAIN_KEY, FINALIZE_KEY = -1, -2


def give_back(
    store: SweepStore,
    app: Any,
    sweep_id: str,
    trial: int,
    worker: str,
    lease: str = "",
    *,
    send: bool = True,
) -> bool:
    """Queue again at once, under its task id and chord, a trial that preempted ``worker``
    runs (holding ``lease``, when given); the attempt is not counted. ``send=False`` only
    records it, for a worker whose Celery puts the message back as it shuts down. False
    when the trial is not that worker's any more (finished, or already given back)."""
    if not store.requeue_preempted(sweep_id, trial, worker, lease):
        return False
    if send:
        send_again(store, app, sweep_id, trial, f"given back by preempted {worker}")
    return True


def send_again(store: SweepStore, app: Any, sweep_id: str, trial: int, why: str) -> None:
    """Send a trial marked requeued again as it was sent when it last started (from the
    sweep's chord template if it never did), and clear its mark."""
    request = store.trial_request(sweep_id, trial)
    if request is None or store.sweep_exists(sweep_id):
        sweep = store.get_sweep(sweep_id)
        template = (sweep.trial_request or TrialRequest()).for_trial(sweep_id, trial)
        # to the queue its configuration calls for: one an adaptive sampler chose as it started
        request = routed(store.r, sweep_id, sweep.config, trial, request or template)
    send_trial(
        app, sweep_id, trial, request, REQUEUE_PRIORITY, f"trial {trial} (sweep={sweep_id}, {why})"
    )
    store.sent_again(sweep_id, trial)


def send_retrain(
    app: Any, store: SweepStore, sweep_id: str, queue: str, timeout: float | None
) -> None:
    """Send a sweep's retrain-and-test and count it sent (the reaper sends it again only
    while none waits to be taken); to the capability queue of its best trial, if any."""
    queue = retrain_queue(store, sweep_id, queue)
    app.send_task(RETRAIN_AND_TEST, args=(sweep_id,), queue=queue, soft_time_limit=timeout)
    store.count_send(sweep_id, "retrain")


class Reaper:
    """Finds running trials without a live lease and queues them again."""

    def __init__(
        self, store: SweepStore, app: Any, grace_s: float, finalize_grace_s: float
    ) -> None:
        self.store = store
        self.app = app
        self.grace_s = grace_s
        self.finalize_grace_s = finalize_grace_s
        self._missing_since: dict[tuple[str, int], float] = {}
        self._unqueued_since: dict[tuple[str, int], float] = {}
        #: Send a missing finalize or retrain even while one is counted as waiting to be
        #: taken (a resume: its message may have been lost in the broker's own gap).
        self.resend_waiting = False

    def scan(
        self, now: float | None = None, sweep_ids: list[str] | None = None
    ) -> list[tuple[str, int]]:
        """One pass over the active sweeps (or ``sweep_ids``); returns the trials queued
        again."""
        now = time.monotonic() if now is None else now
        clock = self.store.now()  # stamps other hosts wrote are compared with Redis's clock
        requeued: list[tuple[str, int]] = []
        seen: set[tuple[str, int]] = set()
        ids = self.store.active_sweeps() if sweep_ids is None else sweep_ids
        sweeps = {sweep_id: self.store.get_sweep(sweep_id) for sweep_id in ids}
        for sweep_id, sweep in sweeps.items():
            self._finish_submit(sweep_id, sweep, clock)
            self._recover_retrain(sweep_id, sweep, now, seen, clock)
            self._finalize_if_stuck(sweep_id, sweep, now, seen, clock)
            for trial in self.store.running_numbers(sweep_id):
                key = (sweep_id, trial)
                if self.store.lease_exists(sweep_id, trial):
                    continue
                if not self._missing_for_a_grace(key, now, seen):
                    continue
                if self.store.claim_orphan(sweep_id, trial):
                    crash_point("reaper.orphan_claimed")
                    self.requeue(sweep_id, trial)
                    requeued.append(key)
            requeued += self._send_marked(sweep_id, clock)
        self._missing_since = {k: v for k, v in self._missing_since.items() if k in seen}
        requeued += self._requeue_lost_messages(sweeps, now)
        return requeued

    def _missing_for_a_grace(
        self, key: tuple[str, int], now: float, seen: set[tuple[str, int]]
    ) -> bool:
        """Whether the lease ``key`` tracks was missing in two scans a grace apart (not a
        heartbeat in flight); ``seen`` keeps its first sighting for the next scan."""
        seen.add(key)
        return now - self._missing_since.setdefault(key, now) >= self.grace_s

    def _send_marked(self, sweep_id: str, clock: float) -> list[tuple[str, int]]:
        """Send the trials marked requeued whose sender died before it sent them (marked
        longer than a grace ago, neither running nor finished since)."""
        marked = self.store.to_send(sweep_id)
        if not marked:
            return []
        accounted = set(self.store.running_numbers(sweep_id)) | self.store.finished(sweep_id)
        sent = []
        for trial, marked_at in marked.items():
            if trial in accounted:
                self.store.sent_again(sweep_id, trial)  # a copy runs or ran it
                continue
            if clock - marked_at < 3 * self.grace_s:
                continue
            if self.store.claim_lost(sweep_id, trial, hold_s=self.finalize_grace_s):
                log.warning(
                    "sweep %s trial %d: marked requeued but never sent; sending it", sweep_id, trial
                )
                send_again(self.store, self.app, sweep_id, trial, "sent by the reaper")
                sent.append((sweep_id, trial))
        return sent

    def recover(self, sweep_id: str) -> list[int]:
        """Everything the reaper would do for an interrupted sweep (none of whose trials a
        live worker holds), at once: its lost trials, its retrain, its half-sent chord, its
        missing finalize (sent again even when one is counted as waiting: a message lost in
        the broker's own gap). A trial whose message is neither queued nor running is sent
        again, even one a gone worker had taken (its message would wait for the visibility
        timeout). Returns the trials queued again. Build it with zero graces."""
        sweep = self.store.get_sweep(sweep_id)
        self.resend_waiting = True
        requeued = [trial for _, trial in self.scan(sweep_ids=[sweep_id])]
        if sweep.trial_request is None or sweep.submitting or sweep.finalized_at:
            return requeued  # scan sent the rest of a half-sent chord, or nothing is left
        queues = sweep_queues(self.store.r, sweep_id, sweep.config, sweep.n_trials)
        queued = set().union(*(self._queued_task_ids(q) for q in queues))
        for trial in sorted(self.store.unaccounted(sweep_id, sweep.n_trials)):
            if trial in requeued or trial_task_id(sweep_id, trial) in queued:
                continue
            if self.store.claim_lost(sweep_id, trial, hold_s=60):
                self.requeue_unstarted(sweep_id, sweep, trial)
                requeued.append(trial)
        return requeued

    def _queued_task_ids(self, queue: str) -> set[str]:
        """Task ids of the messages waiting in ``queue`` (every priority)."""
        with self.app.connection_for_write() as conn:
            channel = conn.default_channel
            raw = [
                item
                for pri in channel.priority_steps
                for item in channel.client.lrange(channel._q_for_pri(queue, pri), 0, -1)
            ]
        ids = set()
        for value in raw:
            try:
                ids.add(json.loads(value)["headers"]["id"])
            except (ValueError, KeyError, TypeError):
                continue
        return ids

    def _recover_retrain(
        self,
        sweep_id: str,
        sweep: SweepRecord,
        now: float,
        seen: set[tuple[str, int]],
        clock: float,
    ) -> None:
        """Send again the retrain-and-test of a retraining sweep that no live worker holds
        (in two scans a grace apart) when its worker was lost, or when none waits to be
        taken: its finalize died before sending it, or a reaper died after claiming it.
        ``max_attempts`` bounds how often it starts."""
        if sweep.status is not SweepStatus.RETRAINING or self.store.retrain_held(sweep_id):
            return
        if not self._missing_for_a_grace((sweep_id, RETRAIN_KEY), now, seen):
            return
        orphaned = self.store.retrain_orphaned(sweep_id)
        if not orphaned:
            since = max(sweep.finalized_at or 0.0, sweep.retrain_requeued_at or 0.0)
            waiting = not self.resend_waiting and not self.store.unsent(sweep_id, "retrain")
            if waiting or clock - since < 3 * self.grace_s:
                return  # one waits in the queue, or the finalize is sending it now
        if not self.store.claim_send(sweep_id, "retrain", self.finalize_grace_s):
            return
        crash_point("reaper.retrain_claimed")
        if orphaned:
            self.store.claim_orphaned_retrain(sweep_id)
            log.warning("sweep %s: retrain-and-test lost its worker; queueing it again", sweep_id)
        else:
            log.warning("sweep %s: its retrain-and-test was never sent; sending it", sweep_id)
        self.store.set_sweep_fields(sweep_id, retrain_requeued_at=clock)
        config = sweep.config
        send_retrain(self.app, self.store, sweep_id, config.queue, config.trial_timeout)

    def _requeue_lost_messages(
        self, sweeps: dict[str, SweepRecord], now: float
    ) -> list[tuple[str, int]]:
        """Queue again the trials whose message vanished before they started."""
        unqueued: set[tuple[str, int]] = set()
        held: set[str] | None = None  # task ids of messages workers hold, read once a pass
        stale: dict[str, list[str]] = {}  # task id -> unacked records no worker holds
        for sweep_id, sweep in sweeps.items():
            n_trials = sweep.n_trials
            if sweep.trial_request is None or sweep.submitting or sweep.finalized_at:
                continue  # still being sent, or done
            if self.store.accounted_count(sweep_id) >= n_trials:
                continue
            queues = sweep_queues(self.store.r, sweep_id, sweep.config, n_trials)
            if any(self._queued(queue) for queue in queues):
                continue  # the rest may still be waiting; checked again once it drains
            if held is None:
                held, stale = self._held_task_ids(self.store.now())
            for trial in self.store.unaccounted(sweep_id, n_trials):
                if trial_task_id(sweep_id, trial) not in held:
                    unqueued.add((sweep_id, trial))
        for key in unqueued:
            self._unqueued_since.setdefault(key, now)
        self._unqueued_since = {k: v for k, v in self._unqueued_since.items() if k in unqueued}
        requeued = []
        for (sweep_id, trial), since in sorted(self._unqueued_since.items()):
            if now - since < self.finalize_grace_s:
                continue
            if self.store.claim_lost(sweep_id, trial, hold_s=self.finalize_grace_s):
                crash_point("reaper.lost_claimed")
                self._drop_unacked(stale.get(trial_task_id(sweep_id, trial), []))
                self.requeue_unstarted(sweep_id, sweeps[sweep_id], trial)
                requeued.append((sweep_id, trial))
            del self._unqueued_since[(sweep_id, trial)]
        return requeued

    def _queued(self, queue: str) -> int:
        """Messages waiting in ``queue`` (every priority)."""
        with self.app.connection_for_write() as conn:
            return int(conn.default_channel._size(queue))  # kombu: LLEN over the priorities

    def _held_task_ids(self, clock: float) -> tuple[set[str], dict[str, list[str]]]:
        """Task ids of the messages workers have taken and not yet acknowledged, and (task
        id -> delivery tags) those recorded so long ago (``finalize_grace_s``, by kombu's
        delivery times against ``clock``) that no worker holds them: a worker starts the
        trial of the one message it takes at once. Only unaccounted trials are looked up."""
        with self.app.connection_for_write() as conn:
            channel = conn.default_channel
            raw = channel.client.hgetall(channel.unacked_key)
            delivered = dict(
                channel.client.zrange(channel.unacked_index_key, 0, -1, withscores=True)
            )
        held: set[str] = set()
        stale: dict[str, list[str]] = {}
        for tag, value in raw.items():
            try:
                task_id = json.loads(value)[0]["headers"]["id"]
            except (ValueError, KeyError, IndexError, TypeError):
                continue
            at = delivered.get(tag)
            if at is not None and clock - float(at) > self.finalize_grace_s:
                stale.setdefault(task_id, []).append(_text(tag))
            else:
                held.add(task_id)
        return held, stale

    def _drop_unacked(self, tags: list[str]) -> None:
        """Forget unacknowledged records no worker holds, as kombu's ack would."""
        if not tags:
            return
        with self.app.connection_for_write() as conn:
            channel = conn.default_channel
            with channel.client.pipeline() as pipe:
                pipe.hdel(channel.unacked_key, *tags)
                pipe.zrem(channel.unacked_index_key, *tags)
                pipe.execute()

    def requeue_unstarted(self, sweep_id: str, sweep: SweepRecord, trial: int) -> None:
        """Queue a trial whose message was lost, under its task id, group and chord (from
        its own earlier start, else from the request template recorded at submit)."""
        template = (sweep.trial_request or TrialRequest()).for_trial(sweep_id, trial)
        request = self.store.trial_request(sweep_id, trial) or template
        request = routed(self.store.r, sweep_id, sweep.config, trial, request)
        log.warning(
            "sweep %s trial %d: its message was lost before it started; queueing it again",
            sweep_id,
            trial,
        )
        self._send(sweep_id, trial, request)

    def _finish_submit(self, sweep_id: str, sweep: SweepRecord, clock: float) -> None:
        """Send the chord of a sweep its producer left half-sent (killed, or Redis gone
        part-way) ``finalize_grace_s`` ago: the chord size again, and every trial neither
        running nor finished (a copy of one already queued is ignored when it runs). The
        claim lapses: a reaper that dies sending it leaves the sweep ``submitting`` for the
        next."""
        if sweep.submitting is None or sweep.trial_request is None or sweep.finalized_at:
            return
        if clock - sweep.submitting < self.finalize_grace_s:
            return
        if not self.store.claim_submit_recovery(sweep_id, hold_s=self.finalize_grace_s):
            return
        crash_point("reaper.submit_claimed")
        from smptune.queue.submit import send_chord

        trials = sorted(self.store.unaccounted(sweep_id, sweep.n_trials))
        log.warning(
            "sweep %s: its producer stopped while sending it; sending its %d unstarted trials",
            sweep_id,
            len(trials),
        )
        argsreprs = [f"trial {n} (sweep={sweep_id}, sent by the reaper)" for n in trials]
        send_chord(
            self.app,
            sweep_id,
            sweep.trial_request,
            argsreprs,
            trials=trials,
            chord_size=sweep.chord_size or sweep.n_trials,
            routes=trial_queues(self.store.r, sweep_id, sweep.config, trials),
        )
        self.store.submitted(sweep_id)

    def _finalize_if_stuck(
        self,
        sweep_id: str,
        sweep: SweepRecord,
        now: float,
        seen: set[tuple[str, int]],
        clock: float,
    ) -> None:
        """Send the finalize of the sweep's generation when every trial is recorded and no
        live worker finalizes it (in two scans a grace apart), and either a finalize took it
        and died, or none waits to be taken ``finalize_grace_s`` after the last trial ended
        (the chord did not fire: Celery's chord counter lives in Redis too, and the worker
        of a trial's last part can die before returning it)."""
        if sweep.finalized_at is not None or sweep.submitting is not None:
            return
        if self.store.finished_count(sweep_id) < sweep.n_trials:
            return
        if self.store.finalize_held(sweep_id):
            return
        if not self._missing_for_a_grace((sweep_id, FINALIZE_KEY), now, seen):
            return
        orphaned = self.store.finalize_orphaned(sweep_id, sweep.generation)
        if not orphaned:
            last_finished = clock if sweep.last_finished is None else sweep.last_finished
            if not self.resend_waiting and not self.store.unsent(sweep_id, "finalize"):
                return
            if clock - last_finished < self.finalize_grace_s:
                return
        if not self.store.claim_send(sweep_id, "finalize", self.finalize_grace_s):
            return
        crash_point("reaper.finalize_claimed")
        why = "its finalize lost its worker" if orphaned else "the chord did not fire"
        log.warning("sweep %s: every trial is recorded but %s; finalizing it", sweep_id, why)
        self.store.set_sweep_fields(sweep_id, finalize_fallback=clock)
        queue = sweep.config.queue
        self.app.send_task(
            FINALIZE_SWEEP,
            args=([], sweep_id),
            kwargs={"generation": sweep.generation},
            queue=queue,
        )
        self.store.count_send(sweep_id, "finalize")

    def requeue(self, sweep_id: str, trial: int) -> None:
        """Queue a trial that lost its worker, as it was sent when it last started."""
        log.warning("sweep %s trial %d lost its worker; queueing it again", sweep_id, trial)
        send_again(self.store, self.app, sweep_id, trial, "queued again")

    def _send(self, sweep_id: str, trial: int, request: TrialRequest) -> None:
        argsrepr = f"trial {trial} (sweep={sweep_id}, queued again)"
        send_trial(self.app, sweep_id, trial, request, REQUEUE_PRIORITY, argsrepr)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
