"""The sweep store's trial records: a trial's start, parameters, runs, epochs, checkpoints,
final record and curves, and reads of trials and of those running.

A copy of a trial that gives its lease's value writes its runs, epochs and checkpoints only
while it holds the trial's lease; each run result and the final record are written at most
once, and the final record drops the lease in the same step.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Mapping
from typing import Any

from smptune.errors import SweepNotFoundError
from smptune.messages import TrialRequest
from smptune.params import Params, ParamsView
from smptune.queue import decode
from smptune.queue._base import LEASE_GONE, PREEMPTED, StoreBase
from smptune.queue.keys import (
    changes_key,
    chords_key,
    curve_key,
    finished_key,
    folds_key,
    params_key,
    preempt_key,
    rerun_key,
    run_times_key,
    running_key,
    scores_key,
    step_key,
    sweep_key,
    trial_key,
    trial_lease_key,
)
from smptune.queue.medians import CompleteTrialStats
from smptune.queue.rungs import Rungs
from smptune.records import SavedCheckpoint, TrialRecord, TrialStatus
from smptune.search.halving import Halving


class TrialRecords(StoreBase):
    """Trials: their start, parameters, runs, epochs, checkpoints and final record."""

    def rungs(self, sweep_id: str, halving: Halving, mode: str) -> Rungs:
        """The sweep's successive-halving rungs."""
        return Rungs(self.r, sweep_key(sweep_id), halving, mode)

    def complete_trials(self, sweep_id: str, mode: str) -> CompleteTrialStats:
        """The complete trials as a pruner reads them, O(log trials) a read."""
        return CompleteTrialStats(self, sweep_id, mode)

    def finished_count(self, sweep_id: str) -> int:
        return int(self.r.scard(finished_key(sweep_id)))

    def params(self, sweep_id: str, trial: int) -> Params:
        raw = self.r.hget(params_key(sweep_id), str(trial))
        if raw is None:
            raise SweepNotFoundError(f"sweep {sweep_id!r} has no trial {trial}")
        params: Params = json.loads(raw)
        return params

    def params_or_none(self, sweep_id: str, trial: int) -> Params | None:
        """The trial's configuration, or None while an adaptive sampler has not chosen it."""
        raw = self.r.hget(params_key(sweep_id), str(trial))
        return None if raw is None else json.loads(raw)

    def set_params_once(self, sweep_id: str, trial: int, params: ParamsView) -> Params:
        """Record the configuration chosen for a trial at run time, unless a copy of the
        trial already did, and mark the trial changed; returns the one recorded."""
        keys = [params_key(sweep_id), sweep_key(sweep_id), changes_key(sweep_id)]
        recorded: Params = json.loads(
            self._set_params_once(keys=keys, args=[trial, json.dumps(params)])
        )
        return recorded

    def changed_since(self, sweep_id: str, seen: int) -> tuple[list[int], int]:
        """The trials whose configuration or final record was written after change number
        ``seen`` of the sweep, and the last change number: O(log trials + changes)."""
        rows = self.r.zrangebyscore(changes_key(sweep_id), f"({seen}", "+inf", withscores=True)
        last = max((int(score) for _, score in rows), default=seen)
        return [int(member) for member, _ in rows], last

    def change_count(self, sweep_id: str) -> int:
        """How many changes the sweep's feed has numbered (0 for a sweep created since)."""
        return int(self.r.hget(sweep_key(sweep_id), "changes") or 0)

    def finished(self, sweep_id: str) -> set[int]:
        """The numbers of the trials whose final record is written."""
        return {int(n) for n in self.r.smembers(finished_key(sweep_id))}

    def is_finished(self, sweep_id: str, trial: int) -> bool:
        return bool(self.r.sismember(finished_key(sweep_id), trial))

    def trial_started(
        self,
        sweep_id: str,
        trial: int,
        worker: str,
        device: str,
        request: TrialRequest | None = None,
        share: str = "",
    ) -> int:
        """Mark a trial running on ``worker``; returns how many times it has started.

        ``request`` holds what is needed to queue the trial again under its task id and
        chord (see :mod:`smptune.queue.recovery`); ``share`` says what the worker has of its
        machine (``cpus 0-1 (2 threads)``).
        """
        now = self.now()
        own, shared = request.compact(sweep_id, trial) if request is not None else ({}, None)
        pipe = self.r.pipeline(transaction=True)
        if shared is not None:  # once per chord: what its trials share (see chords_key)
            shared_json = json.dumps(shared, sort_keys=True)
            pipe.hsetnx(chords_key(sweep_id), str(own["group"]), shared_json)
            pipe.hget(chords_key(sweep_id), str(own["group"]))
        pipe.hset(
            trial_key(sweep_id, trial),
            mapping={
                "status": "running",
                "worker": worker,
                "device": device,
                "share": share,
                "started": now,
                "fold": 0,
                "pid": os.getpid(),
                "request": json.dumps(own, separators=(",", ":")),
            },
        )
        pipe.hincrby(trial_key(sweep_id, trial), "attempts", 1)
        pipe.sadd(running_key(sweep_id), trial)
        pipe.srem(rerun_key(sweep_id), trial)
        pipe.hsetnx(sweep_key(sweep_id), "started", now)
        pipe.hset(sweep_key(sweep_id), "status", "running")
        replies = pipe.execute()
        if shared is not None and replies[1] != shared_json:  # not what its chord recorded
            assert request is not None
            self.r.hset(trial_key(sweep_id, trial), "request", json.dumps(request.to_dict()))
        return int(replies[3 if shared is not None else 1])

    def trial_request(self, sweep_id: str, trial: int) -> TrialRequest | None:
        """The request the trial was last started with, or None if it never started."""
        raw = self.r.hget(trial_key(sweep_id, trial), "request")
        own = json.loads(raw) if raw else None
        if not own:
            return None
        shared = None
        if "chord" not in own and own.get("group"):
            found = self.r.hget(chords_key(sweep_id), str(own["group"]))
            shared = json.loads(found) if found else None
        return TrialRequest.expand(sweep_id, trial, own, shared)

    def accounted_count(self, sweep_id: str) -> int:
        """Trials finished or running: the rest are queued, or their message was lost."""
        pipe = self.r.pipeline(transaction=False)
        pipe.scard(finished_key(sweep_id)).scard(running_key(sweep_id))
        return sum(int(n) for n in pipe.execute())

    def unaccounted(self, sweep_id: str, n_trials: int) -> set[int]:
        """Trials neither finished nor running."""
        pipe = self.r.pipeline(transaction=False)
        pipe.smembers(finished_key(sweep_id)).smembers(running_key(sweep_id))
        seen = {int(n) for members in pipe.execute() for n in members}
        return set(range(n_trials)) - seen

    def running_numbers(self, sweep_id: str) -> list[int]:
        return sorted(int(n) for n in self.r.smembers(running_key(sweep_id)))

    def fold_started(self, sweep_id: str, trial: int, fold: int) -> None:
        self.r.hset(trial_key(sweep_id, trial), "fold", fold)

    def _held_keys(self, sweep_id: str, trial: int) -> list[str]:
        """The keys that say whether a copy holds a trial's lease: the lease, the running
        and finished sets."""
        return [trial_lease_key(sweep_id, trial), running_key(sweep_id), finished_key(sweep_id)]

    def record_fold(
        self, sweep_id: str, trial: int, fold: int, result: Mapping[str, object], lease: str = ""
    ) -> bool | None:
        """Store a finished fold once, counted in ``folds_done``; False if that fold was
        already recorded, None (nothing written) if ``lease`` is given and the trial's lease
        is another copy's."""
        keys = [*self._held_keys(sweep_id, trial), folds_key(sweep_id, trial)]
        keys += [sweep_key(sweep_id), trial_key(sweep_id, trial), run_times_key(sweep_id)]
        args = [lease, trial, str(fold), json.dumps(result), _run_seconds(result)]
        added = int(self._record_fold(keys=keys, args=args))
        return None if added < 0 else bool(added)

    def folds(self, sweep_id: str, trial: int) -> dict[int, dict[str, object]]:
        raw = self.r.hgetall(folds_key(sweep_id, trial))
        return {int(k): json.loads(v) for k, v in raw.items()}

    def record_epoch(
        self,
        sweep_id: str,
        trial: int,
        run: int,
        epoch: int,
        score: float,
        worker: str = "",
        lease: str = "",
    ) -> str | None:
        """Store the validation score of one epoch (1-based) of one run; returns why the run
        must stop, read in the same round trip: :data:`LEASE_GONE` (nothing written) when
        ``lease`` is given and the trial's lease is another copy's, else the sweep's
        :meth:`stop_reason`, else :data:`PREEMPTED` when ``worker`` is being preempted."""
        keys = [
            *self._held_keys(sweep_id, trial),
            curve_key(sweep_id, trial),
            sweep_key(sweep_id),
            preempt_key(worker),
        ]
        args = [lease, trial, f"{run}:{epoch}", repr(float(score))]
        reply = self._record_epoch(keys=keys, args=args)
        if reply == -1:
            return LEASE_GONE
        cancelled, deadline, preempted, seconds, micros = reply
        reason = decode.stop_reason(cancelled, deadline, int(seconds) + int(micros) / 1e6)
        return reason or (PREEMPTED if worker and preempted else None)

    def checkpointed(
        self, sweep_id: str, trial: int, checkpoint: SavedCheckpoint, lease: str = ""
    ) -> bool:
        """Record the last checkpoint of the trial's run in progress; False (nothing
        written) if ``lease`` is given and the trial's lease is another copy's."""
        keys = [*self._held_keys(sweep_id, trial), trial_key(sweep_id, trial)]
        fields = json.dumps({"checkpoint": json.dumps(checkpoint.to_dict())})
        return bool(self._set_held(keys=keys, args=[lease, trial, fields]))

    def checkpoint(self, sweep_id: str, trial: int) -> SavedCheckpoint | None:
        raw = self.r.hget(trial_key(sweep_id, trial), "checkpoint")
        return SavedCheckpoint.from_dict(json.loads(raw)) if raw else None

    def clear_checkpoint(self, sweep_id: str, trial: int) -> None:
        self.r.hdel(trial_key(sweep_id, trial), "checkpoint")

    def curves(self, sweep_id: str, trial: int) -> dict[int, tuple[float, ...]]:
        """The trial's validation score per epoch, by run."""
        return decode.curves(self.r.hgetall(curve_key(sweep_id, trial)))

    def finish_trial(
        self,
        sweep_id: str,
        trial: int,
        record: Mapping[str, object],
        lease: str = "",
        steps: Mapping[int, float] | None = None,
    ) -> int:
        """Write a trial's final record once, mark it changed and drop its lease; a complete
        trial's pruner ``steps`` (step -> value) enter the steps' sorted sets
        (:mod:`smptune.queue.medians`) in the same script.

        Returns :data:`RECORDED`, :data:`ALREADY_FINISHED` (another copy recorded it), or
        :data:`LEASE_LOST` (another live copy holds the lease; nothing written).
        """
        status = str(record["status"])
        counter = f"trials_{status}"
        fields = {k: "" if v is None else str(v) for k, v in record.items()}
        now = self.now()  # the reaper compares it with Redis's clock, not this host's
        fields["finished"] = str(now)
        score = record.get("score") if status == "complete" else None
        if not isinstance(score, int | float) or isinstance(score, bool):
            score = None
        elif not math.isfinite(score):
            score = None  # ZADD refuses NaN; such a trial is never "best so far"
        shown = {
            step: value for step, value in sorted((steps or {}).items()) if math.isfinite(value)
        }
        return int(
            self._finish_trial(
                keys=[
                    finished_key(sweep_id),
                    trial_key(sweep_id, trial),
                    sweep_key(sweep_id),
                    running_key(sweep_id),
                    scores_key(sweep_id),
                    trial_lease_key(sweep_id, trial),
                    changes_key(sweep_id),
                    *(step_key(sweep_id, step) for step in shown),
                ],
                args=[
                    trial,
                    counter,
                    json.dumps(fields),
                    "" if score is None else repr(score),
                    lease,
                    now,
                    json.dumps([repr(float(shown[step])) for step in shown]),
                ],
            )
        )

    def top_trials(self, sweep_id: str, mode: str, n: int) -> list[int]:
        """The ``n`` complete trials with the best scores, best first."""
        key = scores_key(sweep_id)
        rows = (self.r.zrevrange if mode == "max" else self.r.zrange)(key, 0, n - 1)
        return [int(row) for row in rows]

    def best_score(self, sweep_id: str, mode: str) -> tuple[int, float] | None:
        """(trial, score) of the best complete trial so far, or None."""
        key = scores_key(sweep_id)
        rows = (self.r.zrevrange if mode == "max" else self.r.zrange)(key, 0, 0, withscores=True)
        return (int(rows[0][0]), float(rows[0][1])) if rows else None

    def running(self, sweep_id: str) -> list[dict[str, Any]]:
        """The trials running now, with their worker, its share of its machine and the
        current fold (a trial whose lease is taken but whose start is not yet written is
        left out: it has no worker yet)."""
        numbers = self.running_numbers(sweep_id)
        pipe = self.r.pipeline(transaction=False)
        for n in numbers:
            pipe.hmget(trial_key(sweep_id, n), ["worker", "fold", "started", "share", "status"])
        return [
            {
                "trial": n,
                "worker": w,
                "share": share or "",
                "fold": int(f or 0),
                "started": float(s or 0),
            }
            for n, (w, f, s, share, status) in zip(numbers, pipe.execute(), strict=True)
            if status == TrialStatus.RUNNING.value and w
        ]

    def trials(self, sweep_id: str, numbers: Iterable[int] | None = None) -> list[TrialRecord]:
        """Every trial with its parameters, state and fold results, in trial order."""
        if numbers is None:
            numbers = range(self.get_sweep(sweep_id).n_trials)
        numbers = list(numbers)
        if len(numbers) > 1000:  # most of the sweep: one read of the whole hash
            params = self.r.hgetall(params_key(sweep_id))
        else:
            names = [str(n) for n in numbers]
            values = self.r.hmget(params_key(sweep_id), names) if names else []
            params = {n: v for n, v in zip(names, values, strict=True) if v is not None}
        out: list[TrialRecord] = []
        for start in range(0, len(numbers), 1000):
            chunk = numbers[start : start + 1000]
            pipe = self.r.pipeline(transaction=False)
            for n in chunk:
                pipe.hgetall(trial_key(sweep_id, n))
                pipe.hgetall(folds_key(sweep_id, n))
                pipe.hgetall(curve_key(sweep_id, n))
            rows = pipe.execute()
            for i, n in enumerate(chunk):
                state, folds, curve = rows[3 * i], rows[3 * i + 1], rows[3 * i + 2]
                out.append(decode.trial_record(n, params.get(str(n)), state, folds, curve))
        return out


def _run_seconds(result: Mapping[str, object]) -> str:
    """A run result's ``duration_s`` as the ETA counts it ('' unless a finite number >= 0)."""
    d = result.get("duration_s")
    if not isinstance(d, int | float) or isinstance(d, bool):
        return ""
    return repr(float(d)) if math.isfinite(d) and d >= 0 else ""
