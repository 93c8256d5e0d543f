"""The sweep store in Redis: sweeps, trials and fold results, written as they happen.

Keys (``{id}`` is the sweep id)::

    smptune:sweeps                  zset   sweep id -> creation time
    smptune:active                  set    sweeps not yet finalized (the reaper watches these)
    smptune:sweep:{id}              hash   config, status, counters, results, test metrics
    smptune:sweep:{id}:params       hash   trial number -> parameters (JSON); for adaptive
                                           samplers written when the trial starts
    smptune:sweep:{id}:ask-lock     string held while a worker asks the sampler
    smptune:sweep:{id}:lost:{n}     string short-lived claim to queue a lost trial again
    smptune:sweep:{id}:trial:{n}    hash   status, worker, device, fold, score, error, ...
    smptune:sweep:{id}:folds:{n}    hash   run index (fold × seeds + seed) -> run result (JSON)
    smptune:sweep:{id}:curve:{n}    hash   "<run>:<epoch>" -> that epoch's validation score
    smptune:sweep:{id}:finished     set    trial numbers whose final record is written
    smptune:sweep:{id}:running      set    trial numbers running now
    smptune:sweep:{id}:scores       zset   trial number -> score of complete trials
    smptune:sweep:{id}:lease:{n}    string the live copy of a running trial (see lease.py)
    smptune:sweep:{id}:rung:...     zset   successive-halving rungs (see rungs.py)
    smptune:sweep:{id}:lease:retrain  string the live copy of its retrain-and-test
    smptune:sweep:{id}:retraining   set    "retrain" while retrain-and-test runs
    smptune:preempt:{worker}        string set while that worker is being preempted

A trial's hash holds its run in progress's last ``checkpoint`` (JSON: run, epoch, path).

A fold result and a trial's final record are each written at most once (HSETNX and a
Lua script guarded by the ``finished`` set and the trial's lease), so a redelivered task
cannot count twice.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Iterable, Mapping
from typing import Any

import redis
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

from smptune.errors import BrokerError, ConfigError, SweepNotFoundError
from smptune.messages import TrialRequest
from smptune.queue.lease import Lease
from smptune.queue.rungs import Rungs
from smptune.records import (
    OUTCOMES,
    PartialRun,
    SavedCheckpoint,
    SweepRecord,
    SweepStatus,
    SweepSummary,
    TrialRecord,
    TrialStatus,
)
from smptune.search.halving import Halving
from smptune.urls import mask_url

PREFIX = "smptune"

_COUNTERS = tuple(status.counter for status in OUTCOMES)

_FINISH_TRIAL = """
local holder = redis.call('GET', KEYS[6])
if holder and holder ~= ARGV[5] then
  return -1
end
if redis.call('SADD', KEYS[1], ARGV[1]) == 0 then
  return 0
end
redis.call('DEL', KEYS[6])
local fields = cjson.decode(ARGV[3])
for k, v in pairs(fields) do
  redis.call('HSET', KEYS[2], k, v)
end
redis.call('HINCRBY', KEYS[3], ARGV[2], 1)
redis.call('HSET', KEYS[3], 'last_finished', ARGV[6])
redis.call('SREM', KEYS[4], ARGV[1])
if ARGV[4] ~= '' then
  redis.call('ZADD', KEYS[5], ARGV[4], ARGV[1])
end
return 1
"""

_CLAIM_ORPHAN = """
if redis.call('SISMEMBER', KEYS[1], ARGV[1]) == 0 then return 0 end
if redis.call('SISMEMBER', KEYS[2], ARGV[1]) == 1 then return 0 end
if redis.call('EXISTS', KEYS[3]) == 1 then return 0 end
redis.call('SREM', KEYS[1], ARGV[1])
redis.call('HSET', KEYS[4], 'status', 'requeued', 'requeued_at', ARGV[2])
redis.call('HINCRBY', KEYS[4], 'requeues', 1)
return 1
"""

# KEYS: the sweep hash, the chord's size difference (Celery's ``<group>.t``); ARGV: now
_EXTEND = """
local sweep = KEYS[1]
if redis.call('HGET', sweep, 'open_ended') ~= '1' then return -1 end
if redis.call('HEXISTS', sweep, 'cancel_requested') == 1 then return -1 end
local deadline = redis.call('HGET', sweep, 'deadline')
if deadline and tonumber(ARGV[1]) >= tonumber(deadline) then return -1 end
redis.call('INCR', KEYS[2])
return redis.call('HINCRBY', sweep, 'n_trials', 1) - 1
"""

# KEYS: the sweep hash, its chord's size (``<group>.s``) and size difference (``.t``);
# ARGV: how many trials to add. The chord must not have fired (Celery deletes ``.s`` then).
_EXTEND_RUNNING = """
local sweep = KEYS[1]
if redis.call('HEXISTS', sweep, 'finalized_at') == 1 then return -1 end
if redis.call('EXISTS', KEYS[2]) == 0 then return -1 end
redis.call('INCRBY', KEYS[3], tonumber(ARGV[1]))
return redis.call('HINCRBY', sweep, 'n_trials', tonumber(ARGV[1])) - tonumber(ARGV[1])
"""

# KEYS: running set, finished set, lease, trial hash; ARGV: trial, worker name, now, the
# lease's value ('': whoever holds it; the worker is known to be gone)
_REQUEUE_PREEMPTED = """
if redis.call('SISMEMBER', KEYS[2], ARGV[1]) == 1 then return 0 end
if redis.call('SISMEMBER', KEYS[1], ARGV[1]) == 0 then return 0 end
if redis.call('HGET', KEYS[4], 'worker') ~= ARGV[2] then return 0 end
local holder = redis.call('GET', KEYS[3])
if ARGV[4] ~= '' and holder and holder ~= ARGV[4] then return 0 end
redis.call('DEL', KEYS[3])
redis.call('SREM', KEYS[1], ARGV[1])
redis.call('HSET', KEYS[4], 'status', 'requeued', 'requeued_at', ARGV[3])
redis.call('HINCRBY', KEYS[4], 'preemptions', 1)
redis.call('HINCRBY', KEYS[4], 'attempts', -1)
return 1
"""

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
    "finished",
    "deadline",
    "budget_factor",
    "error",
)

#: What :meth:`SweepStore.record_epoch` returns when the run's worker is being preempted.
PREEMPTED = "preempted"

#: Finish results of :meth:`SweepStore.finish_trial`.
RECORDED, ALREADY_FINISHED, LEASE_LOST = 1, 0, -1


def connect(url: str, timeout_s: float = 5.0) -> redis.Redis:
    """A client for ``url`` that has answered a PING, else :class:`BrokerError`."""
    client = redis.Redis.from_url(
        url,
        decode_responses=True,
        socket_connect_timeout=timeout_s,
        # a cut network fails a call within this many seconds (then it is retried)
        socket_timeout=15,
        **({} if url.startswith("unix://") else {"socket_keepalive": True}),
        health_check_interval=10,
        # a Redis restart: retry each command for about a minute before giving up
        retry=Retry(
            ExponentialBackoff(cap=2.0, base=0.1),
            retries=40,
            # a refused connect surfaces as OSError, not redis.ConnectionError
            supported_errors=(redis.ConnectionError, redis.TimeoutError, OSError),
        ),
    )
    try:
        # the first PING fails fast: an unreachable broker is a usage problem, not an outage
        probe = redis.Redis.from_url(
            url, socket_connect_timeout=timeout_s, socket_timeout=timeout_s
        )
        try:
            probe.ping()
        finally:
            probe.close()
    except redis.AuthenticationError as exc:
        raise BrokerError(f"broker at {mask_url(url)} refused the credentials: {exc}") from exc
    except (redis.ConnectionError, redis.TimeoutError, OSError) as exc:
        raise BrokerError(f"broker unreachable at {mask_url(url)}: {exc}") from exc
    except redis.ResponseError as exc:
        raise BrokerError(f"broker at {mask_url(url)} refused the connection: {exc}") from exc
    return client


class SweepStore:
    """Read and write sweeps in one Redis database."""

    def __init__(self, client: redis.Redis) -> None:
        self.r = client
        self._finish_trial = client.register_script(_FINISH_TRIAL)
        self._claim_orphan = client.register_script(_CLAIM_ORPHAN)
        self._extend = client.register_script(_EXTEND)
        self._extend_running = client.register_script(_EXTEND_RUNNING)
        self._requeue_preempted = client.register_script(_REQUEUE_PREEMPTED)

    @classmethod
    def from_url(cls, url: str) -> SweepStore:
        return cls(connect(url))

    # -- keys -------------------------------------------------------------------------
    @staticmethod
    def _sweep(sweep_id: str) -> str:
        return f"{PREFIX}:sweep:{sweep_id}"

    def _trial(self, sweep_id: str, trial: int) -> str:
        return f"{self._sweep(sweep_id)}:trial:{trial}"

    def _folds(self, sweep_id: str, trial: int) -> str:
        return f"{self._sweep(sweep_id)}:folds:{trial}"

    def _curve(self, sweep_id: str, trial: int) -> str:
        return f"{self._sweep(sweep_id)}:curve:{trial}"

    @staticmethod
    def _preempt(worker: str) -> str:
        return f"{PREFIX}:preempt:{worker}"

    def rungs(self, sweep_id: str, halving: Halving, mode: str) -> Rungs:
        """The sweep's successive-halving rungs."""
        return Rungs(self.r, self._sweep(sweep_id), halving, mode)

    def lease_key(self, sweep_id: str, trial: int) -> str:
        return f"{self._sweep(sweep_id)}:lease:{trial}"

    def lease(self, sweep_id: str, trial: int, host: str) -> Lease:
        """The lease of one trial, to be held by this process."""
        base = self._sweep(sweep_id)
        return Lease(
            self.r,
            self.lease_key(sweep_id, trial),
            host,
            running_key=f"{base}:running",
            finished_key=f"{base}:finished",
            member=str(trial),
        )

    def retrain_lease(self, sweep_id: str, host: str) -> Lease:
        """The lease of a sweep's retrain-and-test, to be held by this process."""
        base = self._sweep(sweep_id)
        return Lease(
            self.r,
            f"{base}:lease:retrain",
            host,
            running_key=f"{base}:retraining",
            finished_key=f"{base}:retrained",
            member="retrain",
        )

    def retrain_started(self, sweep_id: str) -> int:
        """Mark retrain-and-test running; how many times it has started."""
        base = self._sweep(sweep_id)
        pipe = self.r.pipeline(transaction=True)
        pipe.sadd(f"{base}:retraining", "retrain")
        pipe.hincrby(base, "retrain_attempts", 1)
        return int(pipe.execute()[1])

    def retrain_ended(self, sweep_id: str) -> None:
        base = self._sweep(sweep_id)
        pipe = self.r.pipeline(transaction=True)
        pipe.srem(f"{base}:retraining", "retrain")
        pipe.delete(f"{base}:lease:retrain")
        pipe.execute()

    def retrain_orphaned(self, sweep_id: str) -> bool:
        """Whether retrain-and-test is marked running without a live lease."""
        base = self._sweep(sweep_id)
        running = self.r.sismember(f"{base}:retraining", "retrain")
        return bool(running) and not self.r.exists(f"{base}:lease:retrain")

    def retrain_held(self, sweep_id: str) -> bool:
        """Whether a live worker holds the sweep's retrain-and-test's lease."""
        return bool(self.r.exists(f"{self._sweep(sweep_id)}:lease:retrain"))

    def claim_orphaned_retrain(self, sweep_id: str) -> bool:
        """Take an orphaned retrain-and-test off the running set, once fleet-wide."""
        return bool(self.r.srem(f"{self._sweep(sweep_id)}:retraining", "retrain"))

    # -- sweeps -----------------------------------------------------------------------
    def create_sweep(
        self,
        sweep_id: str,
        config: Mapping[str, Any],
        configurations: list[dict[str, Any]],
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
        now = time.time()
        extra: dict[str, Any] = {}
        if time_budget_s is not None:
            extra["deadline"] = now + time_budget_s
        if time_budget_factor is not None:
            extra["budget_factor"] = time_budget_factor
        if open_ended:
            extra["open_ended"] = 1
        if trial_request is not None:
            extra["trial_request"] = json.dumps(trial_request.template_dict())
            extra["submitting"] = now
        pipe = self.r.pipeline(transaction=True)
        pipe.hset(
            self._sweep(sweep_id),
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
                f"{self._sweep(sweep_id)}:params",
                mapping={str(start + i): json.dumps(p) for i, p in enumerate(chunk)},
            )
        pipe.zadd(f"{PREFIX}:sweeps", {sweep_id: now})
        pipe.sadd(f"{PREFIX}:active", sweep_id)
        pipe.execute()

    def sending(self, sweep_id: str) -> None:
        """The producer of a ``submitting`` sweep is still sending it (its sign of life)."""
        self.r.hset(self._sweep(sweep_id), "submitting", time.time())

    def submitted(self, sweep_id: str) -> None:
        """Every message of a ``submitting`` sweep's chord is sent."""
        self.r.hdel(self._sweep(sweep_id), "submitting")

    def claim_submit_recovery(self, sweep_id: str, generation: int = 0) -> bool:
        """Once per sweep and generation: the right to send the chord of a sweep its producer
        left ``submitting``."""
        field = f"submit_recovered_{generation}"
        return bool(self.r.hsetnx(self._sweep(sweep_id), field, time.time()))

    def active_sweeps(self) -> list[str]:
        return sorted(self.r.smembers(f"{PREFIX}:active"))

    def deactivate(self, sweep_id: str) -> None:
        self.r.srem(f"{PREFIX}:active", sweep_id)

    def request_cancel(self, sweep_id: str) -> None:
        self.get_sweep(sweep_id)  # raises for an unknown sweep
        self.r.hset(self._sweep(sweep_id), "cancel_requested", time.time())

    def stop_reason(self, sweep_id: str) -> str | None:
        """Why no further run of the sweep may start, in one read: ``"cancelled"``,
        ``"out of time"`` (its time budget is spent), or None."""
        cancelled, deadline = self.r.hmget(self._sweep(sweep_id), "cancel_requested", "deadline")
        return _stop_reason(cancelled, deadline)

    def plan_deadline(self, sweep_id: str, trial_duration_s: float) -> float | None:
        """Set the deadline of a sweep whose budget is a multiple of one trial, from its first
        complete trial (``trial_duration_s``), counted from the sweep's start; the deadline
        (None without such a budget). Only the first call sets it."""
        key = self._sweep(sweep_id)
        factor, started = self.r.hmget(key, "budget_factor", "started")
        if factor is None:
            return None
        start = float(started) if started else time.time()
        self.r.hsetnx(key, "deadline", start + float(factor) * trial_duration_s)
        return _float(self.r.hget(key, "deadline"))

    def extend(self, sweep_id: str, chord_size_key: str) -> int | None:
        """One more trial for an open-ended sweep that may still start trials: its number,
        with the chord (whose size difference is ``chord_size_key``) waiting for it too, in
        one step; None when the sweep is closed, cancelled or out of time."""
        number = int(self._extend(keys=[self._sweep(sweep_id), chord_size_key], args=[time.time()]))
        return None if number < 0 else number

    def extend_running(self, sweep_id: str, n: int, chord_keys: tuple[str, str]) -> int | None:
        """Add ``n`` trials to a sweep whose chord has not fired, the chord (``chord_keys``:
        Celery's ``<group>.s`` and ``<group>.t``) waiting for them too, in one step; the first
        new trial's number, or None when the chord already fired."""
        first = int(self._extend_running(keys=[self._sweep(sweep_id), *chord_keys], args=[n]))
        return None if first < 0 else first

    def reopen(
        self,
        sweep_id: str,
        trials: Iterable[int],
        *,
        add: int = 0,
        params: Mapping[int, Mapping[str, Any]] | None = None,
        deadline: float | None = None,
    ) -> int:
        """Make an ended sweep run again: ``trials`` forget their last outcome (their recorded
        runs stay), ``add`` trials are appended (``params`` by number, for those chosen now),
        the cancel, deadline (``deadline`` replaces it) and finalize are cleared, and the
        sweep is queued. Returns its generation (1 for the first reopening)."""
        base = self._sweep(sweep_id)
        sweep = self.get_sweep(sweep_id)
        states = self.trials(sweep_id, trials)
        pipe = self.r.pipeline(transaction=True)
        for t in states:
            if t.status.finished:
                pipe.srem(f"{base}:finished", t.trial)
                pipe.hincrby(base, t.status.counter, -1)
            pipe.hdel(self._trial(sweep_id, t.trial), *_TRIAL_ATTEMPT_FIELDS)
            pipe.hset(self._trial(sweep_id, t.trial), "status", TrialStatus.PENDING.value)
        if params:
            pipe.hset(f"{base}:params", mapping={str(n): json.dumps(p) for n, p in params.items()})
        pipe.hdel(base, *_SWEEP_END_FIELDS)
        pipe.hset(
            base, mapping={"status": SweepStatus.QUEUED.value, "n_trials": sweep.n_trials + add}
        )
        if deadline is not None:
            pipe.hset(base, "deadline", deadline)
        pipe.hincrby(base, "generation", 1)
        pipe.sadd(f"{PREFIX}:active", sweep_id)
        return int(pipe.execute()[-2])

    def cancel_requested(self, sweep_id: str) -> bool:
        return bool(self.r.hexists(self._sweep(sweep_id), "cancel_requested"))

    def get_sweep(self, sweep_id: str) -> SweepRecord:
        raw = self.r.hgetall(self._sweep(sweep_id))
        if not raw:
            raise SweepNotFoundError(f"no sweep {sweep_id!r} in this broker")
        return _sweep_record(raw)

    def list_sweeps(self) -> list[SweepSummary]:
        """Every sweep this broker knows, newest first."""
        ids = self.r.zrevrange(f"{PREFIX}:sweeps", 0, -1)
        pipe = self.r.pipeline(transaction=False)
        fields = ("id", "name", "status", "created", "n_trials", "trials_complete", "trials_failed")
        for sweep_id in ids:
            pipe.hmget(self._sweep(sweep_id), fields)
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
        base = self._sweep(sweep_id)
        keys = [base] if self.r.exists(base) else []
        patterns = [f"{base}:*", f"celery-task-meta-{sweep_id}-*"]
        group = self.r.hget(base, "trial_request")
        request = _request(group)
        if request is not None and request.group:
            patterns.append(f"celery-taskset-meta-{request.group}*")
        for pattern in patterns:
            keys += list(self.r.scan_iter(match=pattern, count=1000))
        return keys

    def delete_sweep(self, sweep_id: str) -> int:
        """Remove every key of a sweep that has ended; the number removed. A sweep still
        queued, running or retraining raises :class:`ConfigError` (cancel it first)."""
        sweep = self.get_sweep(sweep_id)
        if not sweep.status.terminal:
            raise ConfigError(
                f"sweep {sweep_id} is {sweep.status}: cancel it first (producer cancel "
                f"{sweep_id}) or wait for it to end"
            )
        keys = self._sweep_key_names(sweep_id)
        pipe = self.r.pipeline(transaction=True)
        for start in range(0, len(keys), 1000):
            pipe.delete(*keys[start : start + 1000])
        pipe.zrem(f"{PREFIX}:sweeps", sweep_id)
        pipe.srem(f"{PREFIX}:active", sweep_id)
        pipe.execute()
        return len(keys)

    def memory_by_sweep(self) -> dict[str, int]:
        """Bytes of Redis memory each recorded sweep's own keys use (``MEMORY USAGE``)."""
        keys = list(self.r.scan_iter(match=f"{PREFIX}:sweep:*", count=1000))
        out: dict[str, int] = {}
        for start in range(0, len(keys), 1000):
            chunk = keys[start : start + 1000]
            pipe = self.r.pipeline(transaction=False)
            for key in chunk:
                pipe.memory_usage(key, samples=0)
            for key, used in zip(chunk, pipe.execute(), strict=True):
                sweep_id = key[len(f"{PREFIX}:sweep:") :].split(":", 1)[0]
                out[sweep_id] = out.get(sweep_id, 0) + int(used or 0)
        return out

    def set_sweep_fields(self, sweep_id: str, **fields: Any) -> None:
        encoded = {k: json.dumps(v) if isinstance(v, dict | list) else v for k, v in fields.items()}
        self.r.hset(self._sweep(sweep_id), mapping=encoded)

    def claim_finalize(self, sweep_id: str) -> bool:
        """True for the first finalize of a sweep (counted in ``finalize_runs``), else False
        (counted in ``finalize_duplicates``)."""
        key = self._sweep(sweep_id)
        if self.r.hsetnx(key, "finalized_at", time.time()):
            self.r.hincrby(key, "finalize_runs", 1)
            return True
        self.r.hincrby(key, "finalize_duplicates", 1)
        return False

    def finished_count(self, sweep_id: str) -> int:
        return int(self.r.scard(f"{self._sweep(sweep_id)}:finished"))

    def claim_finalize_fallback(self, sweep_id: str) -> bool:
        """Once per sweep: the right to send finalize when the chord did not fire."""
        return bool(self.r.hsetnx(self._sweep(sweep_id), "finalize_fallback", time.time()))

    # -- trials -----------------------------------------------------------------------
    def params(self, sweep_id: str, trial: int) -> dict[str, Any]:
        raw = self.r.hget(f"{self._sweep(sweep_id)}:params", str(trial))
        if raw is None:
            raise SweepNotFoundError(f"sweep {sweep_id!r} has no trial {trial}")
        return json.loads(raw)

    def params_or_none(self, sweep_id: str, trial: int) -> dict[str, Any] | None:
        """The trial's configuration, or None while an adaptive sampler has not chosen it."""
        raw = self.r.hget(f"{self._sweep(sweep_id)}:params", str(trial))
        return None if raw is None else json.loads(raw)

    def set_params_once(self, sweep_id: str, trial: int, params: Mapping[str, Any]) -> dict:
        """Record the configuration chosen for a trial at run time, unless a copy of the
        trial already did; returns the one recorded."""
        key = f"{self._sweep(sweep_id)}:params"
        self.r.hsetnx(key, str(trial), json.dumps(params))
        return json.loads(self.r.hget(key, str(trial)))

    def ask_lock(self, sweep_id: str, timeout_s: float = 60.0) -> Any:
        """A lock that serialises asking the sampler across the fleet, so each ask sees the
        configurations of the trials that started before it."""
        return self.r.lock(
            f"{self._sweep(sweep_id)}:ask-lock", timeout=timeout_s, blocking_timeout=timeout_s
        )

    def is_finished(self, sweep_id: str, trial: int) -> bool:
        return bool(self.r.sismember(f"{self._sweep(sweep_id)}:finished", trial))

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
        pipe = self.r.pipeline(transaction=True)
        pipe.hset(
            self._trial(sweep_id, trial),
            mapping={
                "status": "running",
                "worker": worker,
                "device": device,
                "share": share,
                "started": time.time(),
                "fold": 0,
                "pid": os.getpid(),
                "request": json.dumps(request.to_dict() if request is not None else {}),
            },
        )
        pipe.hincrby(self._trial(sweep_id, trial), "attempts", 1)
        pipe.sadd(f"{self._sweep(sweep_id)}:running", trial)
        pipe.hsetnx(self._sweep(sweep_id), "started", time.time())
        pipe.hset(self._sweep(sweep_id), "status", "running")
        return int(pipe.execute()[1])

    def trial_request(self, sweep_id: str, trial: int) -> TrialRequest | None:
        """The request the trial was last started with, or None if it never started."""
        return _request(self.r.hget(self._trial(sweep_id, trial), "request"))

    def accounted_count(self, sweep_id: str) -> int:
        """Trials finished or running: the rest are queued, or their message was lost."""
        base = self._sweep(sweep_id)
        pipe = self.r.pipeline(transaction=False)
        pipe.scard(f"{base}:finished").scard(f"{base}:running")
        return sum(int(n) for n in pipe.execute())

    def unaccounted(self, sweep_id: str, n_trials: int) -> set[int]:
        """Trials neither finished nor running."""
        base = self._sweep(sweep_id)
        pipe = self.r.pipeline(transaction=False)
        pipe.smembers(f"{base}:finished").smembers(f"{base}:running")
        seen = {int(n) for members in pipe.execute() for n in members}
        return set(range(n_trials)) - seen

    def claim_lost(self, sweep_id: str, trial: int, hold_s: float) -> bool:
        """The right, for ``hold_s`` seconds fleet-wide, to queue a lost trial again."""
        key = f"{self._sweep(sweep_id)}:lost:{trial}"
        return bool(self.r.set(key, time.time(), nx=True, ex=max(1, math.ceil(hold_s))))

    def running_numbers(self, sweep_id: str) -> list[int]:
        return sorted(int(n) for n in self.r.smembers(f"{self._sweep(sweep_id)}:running"))

    def lease_exists(self, sweep_id: str, trial: int) -> bool:
        return bool(self.r.exists(self.lease_key(sweep_id, trial)))

    def _requeue_keys(self, sweep_id: str, trial: int) -> list[str]:
        """The keys a running trial leaves when it is queued again: the running and
        finished sets, its lease, its hash."""
        base = self._sweep(sweep_id)
        return [
            f"{base}:running",
            f"{base}:finished",
            self.lease_key(sweep_id, trial),
            self._trial(sweep_id, trial),
        ]

    def claim_orphan(self, sweep_id: str, trial: int) -> bool:
        """Take a running trial whose lease has expired off the running set, once."""
        keys = self._requeue_keys(sweep_id, trial)
        return bool(self._claim_orphan(keys=keys, args=[trial, time.time()]))

    def fold_started(self, sweep_id: str, trial: int, fold: int) -> None:
        self.r.hset(self._trial(sweep_id, trial), "fold", fold)

    def record_fold(self, sweep_id: str, trial: int, fold: int, result: Mapping[str, Any]) -> bool:
        """Store a finished fold once; False if that fold was already recorded."""
        added = self.r.hsetnx(self._folds(sweep_id, trial), str(fold), json.dumps(result))
        if added:
            self.r.hincrby(self._sweep(sweep_id), "folds_done", 1)
        return bool(added)

    def folds(self, sweep_id: str, trial: int) -> dict[int, dict[str, Any]]:
        raw = self.r.hgetall(self._folds(sweep_id, trial))
        return {int(k): json.loads(v) for k, v in raw.items()}

    def record_epoch(
        self, sweep_id: str, trial: int, run: int, epoch: int, score: float, worker: str = ""
    ) -> str | None:
        """Store the validation score of one epoch (1-based) of one run; returns why the run
        must stop, read in the same round trip: the sweep's :meth:`stop_reason`, else
        :data:`PREEMPTED` when ``worker`` is being preempted."""
        pipe = self.r.pipeline(transaction=False)
        pipe.hset(self._curve(sweep_id, trial), f"{run}:{epoch}", repr(float(score)))
        pipe.hmget(self._sweep(sweep_id), "cancel_requested", "deadline")
        pipe.exists(self._preempt(worker))
        _, (cancelled, deadline), preempted = pipe.execute()
        reason = _stop_reason(cancelled, deadline)
        return reason or (PREEMPTED if worker and preempted else None)

    # -- checkpoints and preemption -----------------------------------------------------
    def checkpointed(self, sweep_id: str, trial: int, checkpoint: SavedCheckpoint) -> None:
        """Record the last checkpoint of the trial's run in progress."""
        self.r.hset(self._trial(sweep_id, trial), "checkpoint", json.dumps(checkpoint.to_dict()))

    def checkpoint(self, sweep_id: str, trial: int) -> SavedCheckpoint | None:
        raw = self.r.hget(self._trial(sweep_id, trial), "checkpoint")
        return SavedCheckpoint.from_dict(json.loads(raw)) if raw else None

    def clear_checkpoint(self, sweep_id: str, trial: int) -> None:
        self.r.hdel(self._trial(sweep_id, trial), "checkpoint")

    def preempt(self, workers: Iterable[str], hold_s: float) -> None:
        """Tell ``workers``' running trials to checkpoint and give themselves back (for
        ``hold_s`` seconds: a restarted worker of the same name is not preempted)."""
        pipe = self.r.pipeline(transaction=False)
        for worker in workers:
            pipe.set(self._preempt(worker), time.time(), ex=max(1, math.ceil(hold_s)))
        pipe.execute()

    def preempting(self, worker: str) -> bool:
        return bool(worker) and bool(self.r.exists(self._preempt(worker)))

    def requeue_preempted(self, sweep_id: str, trial: int, worker: str, lease: str = "") -> bool:
        """Give back a running trial of a preempted ``worker``: off the running set, its
        lease dropped (only if ``lease`` holds it, when given), marked requeued; the attempt
        is not counted. False when the trial is not that worker's any more."""
        keys = self._requeue_keys(sweep_id, trial)
        return bool(self._requeue_preempted(keys=keys, args=[trial, worker, time.time(), lease]))

    def preempted(self, workers: Iterable[str]) -> None:
        """``workers`` are gone: their names may run trials again."""
        names = [self._preempt(worker) for worker in workers]
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

    def curves(self, sweep_id: str, trial: int) -> dict[int, tuple[float, ...]]:
        """The trial's validation score per epoch, by run."""
        return _curves(self.r.hgetall(self._curve(sweep_id, trial)))

    def finish_trial(
        self, sweep_id: str, trial: int, record: Mapping[str, Any], lease: str = ""
    ) -> int:
        """Write a trial's final record once and drop its lease.

        Returns :data:`RECORDED`, :data:`ALREADY_FINISHED` (another copy recorded it), or
        :data:`LEASE_LOST` (another live copy holds the lease; nothing written).
        """
        status = str(record["status"])
        counter = f"trials_{status}"
        fields = {k: "" if v is None else str(v) for k, v in record.items()}
        fields["finished"] = str(time.time())
        score = record.get("score") if status == "complete" else None
        if score is not None and not math.isfinite(score):
            score = None  # ZADD refuses NaN; such a trial is never "best so far"
        base = self._sweep(sweep_id)
        return int(
            self._finish_trial(
                keys=[
                    f"{base}:finished",
                    self._trial(sweep_id, trial),
                    base,
                    f"{base}:running",
                    f"{base}:scores",
                    self.lease_key(sweep_id, trial),
                ],
                args=[
                    trial,
                    counter,
                    json.dumps(fields),
                    "" if score is None else repr(score),
                    lease,
                    time.time(),
                ],
            )
        )

    def top_trials(self, sweep_id: str, mode: str, n: int) -> list[int]:
        """The ``n`` complete trials with the best scores, best first."""
        key = f"{self._sweep(sweep_id)}:scores"
        rows = (self.r.zrevrange if mode == "max" else self.r.zrange)(key, 0, n - 1)
        return [int(row) for row in rows]

    def best_score(self, sweep_id: str, mode: str) -> tuple[int, float] | None:
        """(trial, score) of the best complete trial so far, or None."""
        key = f"{self._sweep(sweep_id)}:scores"
        rows = (self.r.zrevrange if mode == "max" else self.r.zrange)(key, 0, 0, withscores=True)
        return (int(rows[0][0]), float(rows[0][1])) if rows else None

    def running(self, sweep_id: str) -> list[dict[str, Any]]:
        """The trials running now, with their worker, its share of its machine and the
        current fold."""
        numbers = self.running_numbers(sweep_id)
        pipe = self.r.pipeline(transaction=False)
        for n in numbers:
            pipe.hmget(self._trial(sweep_id, n), ["worker", "fold", "started", "share"])
        return [
            {
                "trial": n,
                "worker": w,
                "share": share or "",
                "fold": int(f or 0),
                "started": float(s or 0),
            }
            for n, (w, f, s, share) in zip(numbers, pipe.execute(), strict=True)
        ]

    def trials(self, sweep_id: str, numbers: Iterable[int] | None = None) -> list[TrialRecord]:
        """Every trial with its parameters, state and fold results, in trial order."""
        if numbers is None:
            numbers = range(self.get_sweep(sweep_id).n_trials)
        numbers = list(numbers)
        params = self.r.hgetall(f"{self._sweep(sweep_id)}:params")
        out: list[TrialRecord] = []
        for start in range(0, len(numbers), 1000):
            chunk = numbers[start : start + 1000]
            pipe = self.r.pipeline(transaction=False)
            for n in chunk:
                pipe.hgetall(self._trial(sweep_id, n))
                pipe.hgetall(self._folds(sweep_id, n))
                pipe.hgetall(self._curve(sweep_id, n))
            rows = pipe.execute()
            for i, n in enumerate(chunk):
                state, folds, curve = rows[3 * i], rows[3 * i + 1], rows[3 * i + 2]
                out.append(_trial_record(n, params.get(str(n)), state, folds, curve))
        return out


def _stop_reason(cancelled: str | None, deadline: str | None) -> str | None:
    if cancelled is not None:
        return "cancelled"
    if deadline is not None and time.time() >= float(deadline):
        return "out of time"
    return None


def _float(value: str | None) -> float | None:
    return float(value) if value not in (None, "") else None


def _json(value: str | None) -> Any:
    return json.loads(value) if value else None


def _request(value: str | None) -> TrialRequest | None:
    data = _json(value)
    return TrialRequest.from_dict(data) if data else None


def _sweep_record(raw: Mapping[str, str]) -> SweepRecord:
    """The sweep hash, decoded."""
    n_folds = int(raw.get("n_folds", 0))
    return SweepRecord(
        id=raw["id"],
        name=raw.get("name", raw["id"]),
        config=json.loads(raw["config"]),
        status=SweepStatus(raw.get("status", "queued")),
        created=float(raw.get("created", 0)),
        n_trials=int(raw.get("n_trials", 0)),
        n_folds=n_folds,
        n_runs=int(raw.get("n_runs") or n_folds),
        artifacts_dir=raw.get("artifacts_dir", ""),
        folds_done=int(raw.get("folds_done", 0)),
        counts={status: int(raw.get(status.counter, 0)) for status in OUTCOMES},
        finalize_runs=int(raw.get("finalize_runs", 0)),
        finalize_duplicates=int(raw.get("finalize_duplicates", 0)),
        finalize_fallback=_float(raw.get("finalize_fallback")),
        started=_float(raw.get("started")),
        finished=_float(raw.get("finished")),
        last_finished=_float(raw.get("last_finished")),
        finalized_at=_float(raw.get("finalized_at")),
        deadline=_float(raw.get("deadline")),
        budget_factor=_float(raw.get("budget_factor")),
        generation=int(raw.get("generation", 0)),
        submitting=_float(raw.get("submitting")),
        retrain_attempts=int(raw.get("retrain_attempts", 0)),
        retrained_trial=int(raw["retrained_trial"]) if raw.get("retrained_trial") else None,
        open_ended=raw.get("open_ended") == "1",
        cancel_requested=_float(raw.get("cancel_requested")),
        error=raw.get("error") or None,
        results=_json(raw.get("results")),
        test_metrics=_json(raw.get("test_metrics")),
        splits=_json(raw.get("splits")),
        trial_request=_request(raw.get("trial_request")),
        final_model_dir=raw.get("final_model_dir") or None,
        predictions_png=raw.get("predictions_png") or None,
    )


def _curves(raw: Mapping[str, str]) -> dict[int, tuple[float, ...]]:
    """``"<run>:<epoch>" -> score`` as each run's scores in epoch order (NaN for a gap)."""
    by_run: dict[int, dict[int, float]] = {}
    for key, value in raw.items():
        run, _, epoch = key.partition(":")
        by_run.setdefault(int(run), {})[int(epoch)] = float(value)
    return {
        run: tuple(epochs.get(e, math.nan) for e in range(1, max(epochs) + 1))
        for run, epochs in sorted(by_run.items())
    }


def _trial_record(
    n: int,
    params: str | None,
    state: Mapping[str, str],
    folds: Mapping[str, str],
    curve: Mapping[str, str] | None = None,
) -> TrialRecord:
    partial = _json(state.get("partial"))
    checkpoint = _json(state.get("checkpoint"))
    return TrialRecord(
        trial=n,
        status=TrialStatus(state.get("status", "pending")),
        params=json.loads(params) if params else {},
        folds={int(k): json.loads(v) for k, v in sorted(folds.items(), key=lambda i: int(i[0]))},
        worker=state.get("worker") or None,
        device=state.get("device") if "device" in state else None,
        fold=int(state["fold"]) if state.get("fold") else None,
        pid=int(state["pid"]) if state.get("pid") else None,
        attempts=int(state.get("attempts", 0)),
        requeues=int(state.get("requeues", 0)),
        error=state.get("error") or None,
        started=_float(state.get("started")),
        finished=_float(state.get("finished")),
        requeued_at=_float(state.get("requeued_at")),
        score=_float(state.get("score")),
        score_std=_float(state.get("score_std")),
        unstable=state.get("unstable") == "True",
        duration_s=_float(state.get("duration_s")),
        partial=PartialRun.from_dict(partial) if partial else None,
        preemptions=int(state.get("preemptions", 0)),
        checkpoint=SavedCheckpoint.from_dict(checkpoint) if checkpoint else None,
        curves=_curves(curve or {}),
    )
