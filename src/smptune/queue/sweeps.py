"""The sweep store's sweep records: create, reopen, read, list and delete sweeps, and write
their fields, deadlines, growth and finalize outcome.

A sweep is recorded once (a second writer of its id fails, nothing written), reopened in
one transaction only while it is still ended, and a generation's finalize outcome is
written once, by the copy that holds that finalize's lease, while the generation is
current (:data:`~smptune.queue.scripts.FINISH_FINALIZE`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, overload

import redis

from smptune.errors import ConfigError, SweepConflictError, SweepNotFoundError
from smptune.messages import TrialRequest
from smptune.params import Params, ParamsView
from smptune.queue import decode
from smptune.queue._base import StoreBase
from smptune.queue.keys import (
    ACTIVE,
    ALL_SWEEP_KEYS,
    SWEEPS,
    celery_group_pattern,
    celery_task_pattern,
    finalize_lease_key,
    finalized_key,
    finalizing_key,
    finished_key,
    folds_key,
    params_key,
    predictions_key,
    rerun_key,
    results_key,
    run_times_key,
    running_key,
    splits_key,
    sweep_id_of,
    sweep_key,
    sweep_keys_pattern,
    trial_key,
)
from smptune.queue.lease import Lease
from smptune.records import (
    OUTCOMES,
    FullSweepRecord,
    RunResults,
    SweepRecord,
    SweepStatus,
    SweepSummary,
    TrialStatus,
)

_COUNTERS = tuple(status.counter for status in OUTCOMES)

#: What a resumed trial forgets of its last attempt (its recorded runs stay).
_TRIAL_ATTEMPT_FIELDS = (
    "error",
    "partial",
    "finished",
    "score",
    "score_std",
    "unstable",
    "duration_s",
    "request",
    "attempts",
    "worker",
    "pid",
)
#: What a reopened sweep forgets of its last finalize.
_SWEEP_END_FIELDS = (
    "cancel_requested",
    "finalized_at",
    "finalize_fallback",
    "finalize_started",
    "finalize_sends",
    "finalize_takes",
    "retrain_sends",
    "retrain_takes",
    "finished",
    "deadline",
    "budget_factor",
    "error",
)

#: The sweep's fields that grow with its trials or its data, each in its own key (not its
#: hash): read by ``get_sweep(full=True)``, written by :meth:`SweepRecords.set_sweep_fields`.
_OUTPUT_KEYS: dict[str, Callable[[str], str]] = {
    "results": results_key,
    "splits": splits_key,
    "predictions_png": predictions_key,
}

#: Reads of a sweep's hash :meth:`SweepStore.reopen` tries while other writes change it.
_REOPEN_TRIES = 5


@dataclass(frozen=True)
class ProgressReads:
    """What :meth:`SweepRecords.progress_reads` read: the runs timed so far (worker ->
    (runs, seconds)), the recorded runs of the running trials and of ``others`` (trials
    that ran before and wait to run again, or whose lease is taken but whose start is not
    written yet: trial -> (status, preemptions, requeues)), and the running trials'
    parameters."""

    run_times: dict[str, tuple[int, float]]
    runs: dict[int, RunResults]
    params: dict[int, Params]
    others: dict[int, tuple[TrialStatus, int, int]]


class SweepRecords(StoreBase):
    """Sweeps: their records, fields, deadlines, growth and finalize outcome."""

    def create_sweep(
        self,
        sweep_id: str,
        config: Mapping[str, object],
        configurations: list[Params],
        n_folds: int,
        artifacts_dir: str,
        *,
        n_trials: int | None = None,
        n_runs: int | None = None,
        time_budget_s: float | None = None,
        time_budget_factor: float | None = None,
        open_ended: bool = False,
        trial_request: TrialRequest | None = None,
    ) -> None:
        """Record a sweep; ``configurations`` may be empty when an adaptive sampler chooses
        them at run time (``n_trials`` then says how many trials the sweep has).

        ``time_budget_s`` sets the deadline now; ``time_budget_factor`` once the first trial
        completes (:meth:`plan_deadline`). An ``open_ended`` sweep grows by a trial each time
        one starts, until its deadline (:meth:`extend`). With ``trial_request`` (the chord's
        template, group and callback fixed before anything is sent) the sweep is recorded
        ``submitting`` until :meth:`submitted`: a producer killed meanwhile leaves the reaper
        everything it needs to send the chord itself (:mod:`smptune.queue.recovery`)."""
        now = self.now()
        extra: dict[str, float | str] = {}
        if time_budget_s is not None:
            extra["deadline"] = now + time_budget_s
        if time_budget_factor is not None:
            extra["budget_factor"] = time_budget_factor
        if open_ended:
            extra["open_ended"] = 1
        if trial_request is not None:
            extra["trial_request"] = json.dumps(trial_request.template_dict())
            extra["submitting"] = self.now()
            extra["chord_size"] = len(configurations) if n_trials is None else n_trials
        pipe = self.r.pipeline(transaction=True)
        pipe.watch(sweep_key(sweep_id))  # recorded once: a second writer of the id fails
        if pipe.exists(sweep_key(sweep_id)):
            pipe.reset()
            raise _recorded_already(sweep_id)
        pipe.multi()
        pipe.hset(
            sweep_key(sweep_id),
            mapping={
                "id": sweep_id,
                "name": str(config.get("name", sweep_id)),
                "config": json.dumps(config),
                "status": SweepStatus.QUEUED.value,
                "created": now,
                "n_trials": len(configurations) if n_trials is None else n_trials,
                "n_folds": n_folds,
                "n_runs": n_folds if n_runs is None else n_runs,
                "artifacts_dir": artifacts_dir,
                "folds_done": 0,
                **dict.fromkeys(_COUNTERS, 0),
                "finalize_runs": 0,
                **extra,
            },
        )
        for start in range(0, len(configurations), 1000):  # none for adaptive samplers
            chunk = configurations[start : start + 1000]
            pipe.hset(
                params_key(sweep_id),
                mapping={str(start + i): json.dumps(p) for i, p in enumerate(chunk)},
            )
        pipe.zadd(SWEEPS, {sweep_id: now})
        pipe.sadd(ACTIVE, sweep_id)
        try:
            pipe.execute()
        except redis.WatchError:
            raise _recorded_already(sweep_id) from None

    def sending(self, sweep_id: str) -> None:
        """The producer of a ``submitting`` sweep is still sending it (its sign of life)."""
        self.r.hset(sweep_key(sweep_id), "submitting", self.now())

    def submitted(self, sweep_id: str) -> None:
        """Every message of a ``submitting`` sweep's chord is sent."""
        self.r.hdel(sweep_key(sweep_id), "submitting")

    def claim_submit_recovery(self, sweep_id: str, hold_s: float) -> bool:
        """The right, for ``hold_s`` seconds fleet-wide, to send the chord of a sweep its
        producer left ``submitting`` (it stays ``submitting`` until the chord is sent)."""
        return self.claim_send(sweep_id, "submit", hold_s)

    def active_sweeps(self) -> list[str]:
        return sorted(self.r.smembers(ACTIVE))

    def deactivate(self, sweep_id: str) -> None:
        self.r.srem(ACTIVE, sweep_id)

    def request_cancel(self, sweep_id: str) -> None:
        self.get_sweep(sweep_id)  # raises for an unknown sweep
        self.r.hset(sweep_key(sweep_id), "cancel_requested", self.now())

    def stop_reason(self, sweep_id: str) -> str | None:
        """Why no further run of the sweep may start, in one read: ``"cancelled"``,
        ``"out of time"`` (its time budget is spent), or None."""
        pipe = self.r.pipeline(transaction=False)
        pipe.hmget(sweep_key(sweep_id), "cancel_requested", "deadline").time()
        (cancelled, deadline), (seconds, micros) = pipe.execute()
        return decode.stop_reason(cancelled, deadline, seconds + micros / 1e6)

    def plan_deadline(self, sweep_id: str, trial_duration_s: float) -> float | None:
        """Set the deadline of a sweep whose budget is a multiple of one trial, from its first
        complete trial (``trial_duration_s``), counted from the sweep's start; the deadline
        (None without such a budget). Only the first call sets it."""
        key = sweep_key(sweep_id)
        factor, started = self.r.hmget(key, "budget_factor", "started")
        if factor is None:
            return None
        start = float(started) if started else self.now()
        self.r.hsetnx(key, "deadline", start + float(factor) * trial_duration_s)
        return decode.float_or_none(self.r.hget(key, "deadline"))

    def extend(self, sweep_id: str, trial: int, chord_keys: tuple[str, str, str]) -> int | None:
        """One more trial for an open-ended sweep that may still start trials, once per
        starting ``trial`` (however often it starts): its number, with the chord
        (``chord_keys``: Celery's ``<group>.s``, ``.t`` and ``.j``) waiting for it too, in one
        step; None when the sweep is closed, cancelled or out of time, ``trial`` already
        added one, or the chord fired or is firing."""
        keys = [sweep_key(sweep_id), trial_key(sweep_id, trial), *chord_keys]
        number = int(self._extend(keys=keys))
        return None if number < 0 else number

    def extend_running(
        self,
        sweep_id: str,
        n: int,
        chord_keys: tuple[str, str, str],
        params: Iterable[ParamsView] = (),
    ) -> int | None:
        """Add ``n`` trials to a sweep whose chord still waits, the chord (``chord_keys``:
        Celery's ``<group>.s``, ``.t`` and ``.j``) waiting for them too, and their
        configurations (``params``, in order; none for an adaptive sampler), in one step;
        the first new trial's number, or None when the chord fired or is firing (all its
        results are in) or a finalize holds the sweep."""
        keys = [
            sweep_key(sweep_id),
            *chord_keys,
            params_key(sweep_id),
            finalize_lease_key(sweep_id),
        ]
        args = [n, *(json.dumps(p) for p in params)]
        first = int(self._extend_running(keys=keys, args=args))
        return None if first < 0 else first

    def reopen(
        self,
        sweep_id: str,
        trials: Iterable[int],
        *,
        add: int = 0,
        params: Mapping[int, ParamsView] | None = None,
        deadline: float | None = None,
        n_trials: int | None = None,
        chord: Callable[[int], TrialRequest] | None = None,
        chord_size: int = 0,
    ) -> int:
        """Make an ended sweep run again: ``trials`` forget their last outcome (their recorded
        runs stay), ``add`` trials are appended (``params`` by number, for those chosen now),
        the cancel, deadline (``deadline`` replaces it) and finalize are cleared, and the
        sweep is queued. Returns its generation (1 for the first reopening). With ``chord``
        (the new generation's chord template, by generation, of ``chord_size`` trials) the
        sweep is recorded ``submitting`` with it in the same step, so that a producer killed
        before it sent the chord leaves the reaper what it needs to send it.

        One transaction, written only while the sweep is still ended (and still has
        ``n_trials`` trials, when given: the count the caller numbered its new trials from);
        else :class:`SweepConflictError`, nothing written: a racing extend or resume
        reopened it first."""
        base = sweep_key(sweep_id)
        trials = list(trials)
        for _ in range(_REOPEN_TRIES):
            pipe = self.r.pipeline(transaction=True)
            try:
                pipe.watch(base)
                sweep = self.get_sweep(sweep_id)
                if not sweep.status.terminal or n_trials not in (None, sweep.n_trials):
                    raise SweepConflictError(
                        f"sweep {sweep_id} was reopened by another extend or resume while this "
                        f"one read it (it is {sweep.status} now, with {sweep.n_trials} trials); "
                        "nothing was written: run it again"
                    )
                states = self.trials(sweep_id, trials)
                pipe.multi()
                for t in states:
                    if t.status.finished:
                        pipe.srem(finished_key(sweep_id), t.trial)
                        pipe.hincrby(base, t.status.counter, -1)
                    pipe.hdel(trial_key(sweep_id, t.trial), *_TRIAL_ATTEMPT_FIELDS)
                    pipe.hset(trial_key(sweep_id, t.trial), "status", TrialStatus.PENDING.value)
                    if t.folds:  # its runs left are counted from its recorded ones
                        pipe.sadd(rerun_key(sweep_id), t.trial)
                if params:
                    mapping = {str(n): json.dumps(p) for n, p in params.items()}
                    pipe.hset(params_key(sweep_id), mapping=mapping)
                pipe.hdel(base, *_SWEEP_END_FIELDS)
                pipe.hset(
                    base,
                    mapping={"status": SweepStatus.QUEUED.value, "n_trials": sweep.n_trials + add},
                )
                if deadline is not None:
                    pipe.hset(base, "deadline", deadline)
                if chord is not None:
                    template = chord(sweep.generation + 1).template_dict()
                    submitting = {
                        "trial_request": json.dumps(template),
                        "submitting": self.now(),
                        "chord_size": chord_size,
                    }
                    pipe.hset(base, mapping=submitting)
                pipe.hincrby(base, "generation", 1)
                pipe.sadd(ACTIVE, sweep_id)
                return int(pipe.execute()[-2])
            except redis.WatchError:
                continue  # the sweep's hash changed meanwhile: read it again
            finally:
                pipe.reset()
        raise SweepConflictError(
            f"sweep {sweep_id} kept changing while this command reopened it; nothing was "
            "written: run it again"
        )

    def cancel_requested(self, sweep_id: str) -> bool:
        return bool(self.r.hexists(sweep_key(sweep_id), "cancel_requested"))

    @overload
    def get_sweep(self, sweep_id: str) -> SweepRecord: ...

    @overload
    def get_sweep(self, sweep_id: str, *, full: Literal[False]) -> SweepRecord: ...

    @overload
    def get_sweep(self, sweep_id: str, *, full: Literal[True]) -> FullSweepRecord: ...

    def get_sweep(self, sweep_id: str, *, full: bool = False) -> SweepRecord:
        """The sweep's hash (one HGETALL of a hash whose size does not grow with its
        trials); ``full``: with its results, splits and predictions, in the same round trip
        (:class:`FullSweepRecord`)."""
        if not full:
            raw = self.r.hgetall(sweep_key(sweep_id))
            if not raw:
                raise _not_found(sweep_id)
            return decode.sweep_record(raw)
        pipe = self.r.pipeline(transaction=True)
        pipe.hgetall(sweep_key(sweep_id))
        pipe.mget([key(sweep_id) for key in _OUTPUT_KEYS.values()])
        raw, (results, splits, predictions) = pipe.execute()
        if not raw:
            raise _not_found(sweep_id)
        return decode.full_sweep_record(raw, results, splits, predictions)

    def sweep_results(self, sweep_id: str) -> dict[str, object] | None:
        """The sweep's results (``results.json``), None before its first finalize."""
        raw = self.r.get(results_key(sweep_id)) or self.r.hget(sweep_key(sweep_id), "results")
        results = decode.json_or_none(raw)
        return dict(results) if isinstance(results, dict) else None

    def sweep_status(self, sweep_id: str) -> SweepStatus:
        """The sweep's status alone (one HGET: what a wait loop polls)."""
        status = self.r.hget(sweep_key(sweep_id), "status")
        if status is None:
            raise _not_found(sweep_id)
        return SweepStatus(status)

    def is_finalized(self, sweep_id: str) -> bool:
        """Whether the finalize of its current generation wrote its outcome."""
        return bool(self.r.hexists(sweep_key(sweep_id), "finalized_at"))

    def artifacts_dir(self, sweep_id: str) -> str:
        """The sweep's artifacts directory (one HGET: a trial's folder is named after it)."""
        folder = self.r.hget(sweep_key(sweep_id), "artifacts_dir")
        if folder is None:
            raise _not_found(sweep_id)
        return str(folder)

    def progress_reads(self, sweep_id: str, busy: Iterable[int]) -> ProgressReads:
        """What a progress snapshot needs beyond the sweep's hash and its running trials
        (``busy``: their numbers), in two pipelined round trips whose commands grow with the
        trials running or waiting to run again, never with the sweep's trials."""
        busy = sorted(set(busy))
        pipe = self.r.pipeline(transaction=False)
        pipe.smembers(rerun_key(sweep_id)).smembers(running_key(sweep_id))
        pipe.hgetall(run_times_key(sweep_id))
        pipe.hmget(params_key(sweep_id), [str(n) for n in busy] or ["-"])
        rerun, running, times, params = pipe.execute()
        others = sorted({int(n) for n in (*rerun, *running)} - set(busy))
        pipe = self.r.pipeline(transaction=False)
        for n in (*busy, *others):
            pipe.hgetall(folds_key(sweep_id, n))
        for n in others:
            pipe.hmget(trial_key(sweep_id, n), ["status", "preemptions", "requeues"])
        rows = pipe.execute()
        folds = rows[: len(busy) + len(others)]
        states = rows[len(busy) + len(others) :]
        runs: dict[int, RunResults] = {
            n: {int(k): json.loads(v) for k, v in raw.items()}
            for n, raw in zip((*busy, *others), folds, strict=True)
        }
        counted: dict[str, list[float]] = {}
        for field, value in times.items():
            kind, _, worker = field.partition(":")
            counted.setdefault(worker, [0.0, 0.0])[kind == "s"] = float(value)
        return ProgressReads(
            run_times={w: (int(n), s) for w, (n, s) in counted.items()},
            runs=runs,
            params={n: json.loads(p) for n, p in zip(busy, params, strict=False) if p},
            others={
                n: (TrialStatus(status or "pending"), int(pre or 0), int(req or 0))
                for n, (status, pre, req) in zip(others, states, strict=True)
            },
        )

    def list_sweeps(self) -> list[SweepSummary]:
        """Every sweep this broker knows, newest first."""
        ids = self.r.zrevrange(SWEEPS, 0, -1)
        pipe = self.r.pipeline(transaction=False)
        fields = ("id", "name", "status", "created", "n_trials", "trials_complete", "trials_failed")
        for sweep_id in ids:
            pipe.hmget(sweep_key(sweep_id), fields)
        return [
            SweepSummary(
                id=row[0],
                name=row[1] or "",
                status=SweepStatus(row[2] or "queued"),
                created=float(row[3] or 0),
                n_trials=int(row[4] or 0),
                trials_complete=int(row[5] or 0),
                trials_failed=int(row[6] or 0),
            )
            for row in pipe.execute()
            if row[0]
        ]

    def _sweep_key_names(self, sweep_id: str) -> list[str]:
        """Every Redis key of a sweep: its own, and Celery's results and chord of its tasks."""
        base = sweep_key(sweep_id)
        keys = [base] if self.r.exists(base) else []
        patterns = [sweep_keys_pattern(sweep_id), celery_task_pattern(sweep_id)]
        group = self.r.hget(base, "trial_request")
        request = decode.request_or_none(group)
        if request is not None and request.group:
            patterns.append(celery_group_pattern(request.group))
        for pattern in patterns:
            keys += list(self.r.scan_iter(match=pattern, count=1000))
        return keys

    def delete_sweep(self, sweep_id: str, *, force: bool = False) -> int:
        """Remove every key of a sweep; the number removed. A sweep still queued, running or
        retraining raises :class:`ConfigError` (cancel it first), unless ``force``: then it
        is told to stop and taken off the active set first, and its keys go with its hash,
        so that a running copy stops at its next epoch boundary and records nothing, and a
        worker that takes one of its queued messages ignores it."""
        sweep = self.get_sweep(sweep_id)
        live = not sweep.status.terminal
        if live and not force:
            raise ConfigError(
                f"sweep {sweep_id} is {sweep.status}: cancel it first (producer cancel "
                f"{sweep_id}) or wait for it to end, or stop and remove it now (producer "
                f"delete {sweep_id} --force)"
            )
        if live:
            self.request_cancel(sweep_id)
            self.deactivate(sweep_id)
        keys = self._sweep_key_names(sweep_id)
        pipe = self.r.pipeline(transaction=True)
        for start in range(0, len(keys), 1000):
            pipe.delete(*keys[start : start + 1000])
        pipe.zrem(SWEEPS, sweep_id)
        pipe.srem(ACTIVE, sweep_id)
        pipe.execute()
        removed = len(keys)
        for _ in range(3 if live else 0):
            # a copy that read the sweep's hash just before it went may have written once
            # more; with the hash gone it writes no further
            base = sweep_key(sweep_id)
            late = [
                k
                for p in (base, sweep_keys_pattern(sweep_id))
                for k in self.r.scan_iter(match=p, count=1000)
            ]
            if not late:
                break
            for start in range(0, len(late), 1000):
                self.r.delete(*late[start : start + 1000])
            removed += len(late)
        return removed

    def sweep_exists(self, sweep_id: str) -> bool:
        """Whether the sweep is recorded (a message of a deleted one is ignored; so is one
        whose hash a late write of a stopped copy made again without its record)."""
        return bool(self.r.hexists(sweep_key(sweep_id), "id"))

    def memory_by_sweep(self) -> dict[str, int]:
        """Bytes of Redis memory each recorded sweep's own keys use (``MEMORY USAGE``)."""
        keys = list(self.r.scan_iter(match=ALL_SWEEP_KEYS, count=1000))
        out: dict[str, int] = {}
        for start in range(0, len(keys), 1000):
            chunk = keys[start : start + 1000]
            pipe = self.r.pipeline(transaction=False)
            for key in chunk:
                pipe.memory_usage(key, samples=0)
            for key, used in zip(chunk, pipe.execute(), strict=True):
                sweep_id = sweep_id_of(key)
                out[sweep_id] = out.get(sweep_id, 0) + int(used or 0)
        return out

    def set_sweep_fields(self, sweep_id: str, **fields: Any) -> None:
        """Write fields of the sweep in one step: ``results``, ``splits`` and
        ``predictions_png`` to their own keys, the rest to its hash."""
        small, outputs = _split_outputs(sweep_id, fields)
        pipe = self.r.pipeline(transaction=True)
        if small:
            pipe.hset(sweep_key(sweep_id), mapping=small)
        for key, value in outputs.items():
            pipe.set(key, value)
        pipe.execute()

    def set_sweep_fields_held(self, sweep_id: str, lease: Lease, **fields: Any) -> bool:
        """:meth:`set_sweep_fields` from the holder of ``lease`` (a retrain's) only, in one
        script; False, nothing written, when another copy holds it."""
        return self._write_held(sweep_id, lease, fields, deactivate=False)

    def end_sweep_held(self, sweep_id: str, lease: Lease, **fields: Any) -> bool:
        """:meth:`set_sweep_fields_held` of a sweep's last fields (its final status), with
        the sweep off the active set in the same step: an ended sweep is never seen still
        watched, nor left watched by a crash between the two."""
        return self._write_held(sweep_id, lease, fields, deactivate=True)

    def _write_held(
        self, sweep_id: str, lease: Lease, fields: Mapping[str, object], *, deactivate: bool
    ) -> bool:
        small, outputs = _split_outputs(sweep_id, fields)
        keys = [lease.key, lease.running_key, lease.finished_key, sweep_key(sweep_id), ACTIVE]
        args = [lease.value, lease.member, json.dumps({k: str(v) for k, v in small.items()})]
        args += ["1" if deactivate else "", sweep_id]
        keys += list(outputs)
        args += [str(v) for v in outputs.values()]  # text: JSON or base64
        return bool(self._set_held(keys=keys, args=args))

    def finalize_duplicate(self, sweep_id: str) -> None:
        """Count a finalize that found its generation finalized, stale or held."""
        self.r.hincrby(sweep_key(sweep_id), "finalize_duplicates", 1)

    def finish_finalize(
        self, sweep_id: str, generation: int, lease: str, status: SweepStatus, *, ended: bool
    ) -> int:
        """Write the outcome of ``generation``'s finalize, once, from the copy holding its
        ``lease``: the status and ``finalized_at`` (and, ``ended``, ``finished`` and the
        sweep off the active set). Returns :data:`RECORDED`, :data:`ALREADY_FINISHED`,
        :data:`LEASE_LOST`, or :data:`STALE` (the sweep was reopened since)."""
        keys = [
            sweep_key(sweep_id),
            finalize_lease_key(sweep_id),
            finalizing_key(sweep_id),
            finalized_key(sweep_id),
        ]
        args = [generation, lease, status.value, "1" if ended else "0", sweep_id]
        return int(self._finish_finalize(keys=[*keys, ACTIVE], args=args))


def _not_found(sweep_id: str) -> SweepNotFoundError:
    return SweepNotFoundError(f"no sweep {sweep_id!r} in this broker")


def _split_outputs(
    sweep_id: str, fields: Mapping[str, object]
) -> tuple[dict[str, object], dict[str, object]]:
    """``fields`` encoded (dicts and lists as JSON): those of the sweep's hash, and its
    outputs (:data:`_OUTPUT_KEYS`) by the key each is written to."""
    encoded = {k: json.dumps(v) if isinstance(v, dict | list) else v for k, v in fields.items()}
    outputs = {_OUTPUT_KEYS[k](sweep_id): v for k, v in encoded.items() if k in _OUTPUT_KEYS}
    return {k: v for k, v in encoded.items() if k not in _OUTPUT_KEYS}, outputs


def _recorded_already(sweep_id: str) -> SweepConflictError:
    return SweepConflictError(
        f"sweep id {sweep_id} is already recorded in this broker (another producer's sweep); "
        "nothing was written: submit again for a new id"
    )
