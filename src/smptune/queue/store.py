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

A trial's hash holds its run in progress's last ``checkpoint`` (JSON: run, epoch, path),
and ``topped_up``: the generation in which its start added a trial to an open-ended sweep.

A fold result and a trial's final record are each written at most once (HSETNX and a
Lua script guarded by the ``finished`` set and the trial's lease), so a redelivered task
cannot count twice.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import redis
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

from smptune.errors import BrokerError, ConfigError, SweepConflictError, SweepNotFoundError
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

# Times written here are the Redis server's (TIME), so that every host compares one clock.
_NOW = """
local t = redis.call('TIME')
local now = tostring(tonumber(t[1]) + tonumber(t[2]) / 1000000)
"""

_FINISH_TRIAL = _NOW + """
if redis.call('HEXISTS', KEYS[3], 'id') == 0 then return 0 end
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
redis.call('HSET', KEYS[3], 'last_finished', now)
redis.call('SREM', KEYS[4], ARGV[1])
if ARGV[4] ~= '' then
  redis.call('ZADD', KEYS[5], ARGV[4], ARGV[1])
end
return 1
"""


# KEYS: running set, finished set, lease, trial hash, the to-send set; ARGV: trial
_CLAIM_ORPHAN = _NOW + """
if redis.call('SISMEMBER', KEYS[1], ARGV[1]) == 0 then return 0 end
if redis.call('SISMEMBER', KEYS[2], ARGV[1]) == 1 then return 0 end
if redis.call('EXISTS', KEYS[3]) == 1 then return 0 end
redis.call('SREM', KEYS[1], ARGV[1])
redis.call('HSET', KEYS[4], 'status', 'requeued', 'requeued_at', now)
redis.call('HINCRBY', KEYS[4], 'requeues', 1)
redis.call('SADD', KEYS[5], ARGV[1])
return 1
"""

# Lua helpers of the scripts below. ``holds``: whether the copy whose lease value is
# ``value`` holds ``lease``, the lease of ``member`` (a trial, or "retrain"): the lease is
# its, or it lapsed while ``member`` still runs unfinished (as lease.py's renewal re-creates
# it); '' holds any. ``chord_waits``: whether a chord (Celery's ``<group>.s``, ``.t`` and
# ``.j``) still waits for results: its size is set and fewer results than ``.s + .t`` are
# in (Celery counts them in ``.j``, a zset or a list, and fires at ``.s + .t``; it deletes
# the three only after it published the callback).
_HELPERS = """
local function holds(lease, running, finished, member, value)
  if value == '' then return true end
  local holder = redis.call('GET', lease)
  if holder then return holder == value end
  return redis.call('SISMEMBER', running, member) == 1
    and redis.call('SISMEMBER', finished, member) == 0
end
local function chord_waits(size, diff, results)
  local s = redis.call('GET', size)
  if not s then return false end
  local kind = redis.call('TYPE', results)['ok']
  local ready = 0
  if kind == 'zset' then ready = redis.call('ZCARD', results) end
  if kind == 'list' then ready = redis.call('LLEN', results) end
  return ready < tonumber(s) + tonumber(redis.call('GET', diff) or '0')
end
"""

# KEYS: the sweep hash, the trial's hash, its chord's ``<group>.s``, ``.t`` and ``.j``;
# ARGV: now. Once per trial and generation (``topped_up`` in the trial's hash): a trial
# started again after a preemption gave its attempt back adds no second trial.
_EXTEND = _HELPERS + """
local sweep = KEYS[1]
if redis.call('HGET', sweep, 'open_ended') ~= '1' then return -1 end
if redis.call('HEXISTS', sweep, 'cancel_requested') == 1 then return -1 end
local deadline = redis.call('HGET', sweep, 'deadline')
local t = redis.call('TIME')
if deadline and tonumber(t[1]) + tonumber(t[2]) / 1000000 >= tonumber(deadline) then
  return -1
end
if not chord_waits(KEYS[3], KEYS[4], KEYS[5]) then return -1 end
local generation = redis.call('HGET', sweep, 'generation') or '0'
if redis.call('HGET', KEYS[2], 'topped_up') == generation then return -1 end
redis.call('HSET', KEYS[2], 'topped_up', generation)
redis.call('INCR', KEYS[4])
return redis.call('HINCRBY', sweep, 'n_trials', 1) - 1
"""

# KEYS: the sweep hash, its chord's ``<group>.s``, ``.t`` and ``.j``; ARGV: how many trials
# to add. The chord must still wait: not fired, nor firing.
_EXTEND_RUNNING = _HELPERS + """
local sweep = KEYS[1]
if redis.call('HEXISTS', sweep, 'finalized_at') == 1 then return -1 end
if redis.call('EXISTS', KEYS[6]) == 1 then return -1 end
if not chord_waits(KEYS[2], KEYS[3], KEYS[4]) then return -1 end
redis.call('INCRBY', KEYS[3], tonumber(ARGV[1]))
local first = redis.call('HINCRBY', sweep, 'n_trials', tonumber(ARGV[1])) - tonumber(ARGV[1])
for i = 2, #ARGV do
  redis.call('HSETNX', KEYS[5], tostring(first + i - 2), ARGV[i])
end
return first
"""

# The writes of a trial's copy, each only while it holds the trial's lease (see ``holds``).
# KEYS: the lease, the running and finished sets, then the script's own; ARGV: the lease's
# value, the trial, then the script's own.
# KEYS[4..6]: curve, sweep hash, preempt flag; ARGV[3..4]: "<run>:<epoch>", score.
_RECORD_EPOCH = _HELPERS + """
if not holds(KEYS[1], KEYS[2], KEYS[3], ARGV[2], ARGV[1]) then return -1 end
redis.call('HSET', KEYS[4], ARGV[3], ARGV[4])
local stop = redis.call('HMGET', KEYS[5], 'cancel_requested', 'deadline')
local t = redis.call('TIME')
return {stop[1], stop[2], redis.call('EXISTS', KEYS[6]), t[1], t[2]}
"""
# KEYS[4..5]: folds, sweep hash; ARGV[3..4]: run, result
_RECORD_FOLD = _HELPERS + """
if not holds(KEYS[1], KEYS[2], KEYS[3], ARGV[2], ARGV[1]) then return -1 end
if redis.call('HSETNX', KEYS[4], ARGV[3], ARGV[4]) == 0 then return 0 end
redis.call('HINCRBY', KEYS[5], 'folds_done', 1)
return 1
"""
# KEYS[4]: the hash to write; ARGV[3]: its fields (JSON object of strings)
_SET_HELD = _HELPERS + """
if not holds(KEYS[1], KEYS[2], KEYS[3], ARGV[2], ARGV[1]) then return 0 end
for k, v in pairs(cjson.decode(ARGV[3])) do
  redis.call('HSET', KEYS[4], k, v)
end
return 1
"""

# KEYS: running set, finished set, lease, trial hash, the to-send set; ARGV: trial, worker
# name, (unused), the lease's value ('': whoever holds it; the worker is known to be gone)
_REQUEUE_PREEMPTED = _NOW + """
if redis.call('SISMEMBER', KEYS[2], ARGV[1]) == 1 then return 0 end
if redis.call('SISMEMBER', KEYS[1], ARGV[1]) == 0 then return 0 end
if redis.call('HGET', KEYS[4], 'worker') ~= ARGV[2] then return 0 end
local holder = redis.call('GET', KEYS[3])
if ARGV[4] ~= '' and holder and holder ~= ARGV[4] then return 0 end
redis.call('DEL', KEYS[3])
redis.call('SREM', KEYS[1], ARGV[1])
redis.call('HSET', KEYS[4], 'status', 'requeued', 'requeued_at', now)
redis.call('HINCRBY', KEYS[4], 'preemptions', 1)
redis.call('HINCRBY', KEYS[4], 'attempts', -1)
redis.call('SADD', KEYS[5], ARGV[1])
return 1
"""

# The end of a generation's finalize, only from the copy that holds its lease and only
# while that generation is current. KEYS: sweep hash, finalize lease, finalizing set,
# finalized set, active set; ARGV: generation, holder, status, '1' to deactivate, sweep id
_FINISH_FINALIZE = _NOW + """
if tonumber(redis.call('HGET', KEYS[1], 'generation') or '0') ~= tonumber(ARGV[1]) then
  return -2
end
if redis.call('GET', KEYS[2]) ~= ARGV[2] then return -1 end
if redis.call('SISMEMBER', KEYS[4], ARGV[1]) == 1 then return 0 end
redis.call('SADD', KEYS[4], ARGV[1])
redis.call('SREM', KEYS[3], ARGV[1])
redis.call('HSET', KEYS[1], 'status', ARGV[3], 'finalized_at', now)
redis.call('HINCRBY', KEYS[1], 'finalize_runs', 1)
if ARGV[4] == '1' then
  redis.call('HSET', KEYS[1], 'finished', now)
  redis.call('SREM', KEYS[5], ARGV[5])
end
redis.call('DEL', KEYS[2])
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
    "finalize_sends",
    "finalize_takes",
    "retrain_sends",
    "retrain_takes",
    "finished",
    "deadline",
    "budget_factor",
    "error",
)

#: Reads of a sweep's hash :meth:`SweepStore.reopen` tries while other writes change it.
_REOPEN_TRIES = 5

#: What :meth:`SweepStore.record_epoch` returns when the run's worker is being preempted.
PREEMPTED = "preempted"
#: What :meth:`SweepStore.record_epoch` returns to a copy that lost the trial's lease.
LEASE_GONE = "lease lost"

#: Finish results of :meth:`SweepStore.finish_trial` and :meth:`SweepStore.finish_finalize`.
RECORDED, ALREADY_FINISHED, LEASE_LOST, STALE = 1, 0, -1, -2


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
        self._record_epoch = client.register_script(_RECORD_EPOCH)
        self._record_fold = client.register_script(_RECORD_FOLD)
        self._set_held = client.register_script(_SET_HELD)
        self._requeue_preempted = client.register_script(_REQUEUE_PREEMPTED)
        self._finish_finalize = client.register_script(_FINISH_FINALIZE)

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
        now = self.now()
        extra: dict[str, Any] = {}
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
        pipe.watch(self._sweep(sweep_id))  # recorded once: a second writer of the id fails
        if pipe.exists(self._sweep(sweep_id)):
            pipe.reset()
            raise _recorded_already(sweep_id)
        pipe.multi()
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
        try:
            pipe.execute()
        except redis.WatchError:
            raise _recorded_already(sweep_id) from None

    def sending(self, sweep_id: str) -> None:
        """The producer of a ``submitting`` sweep is still sending it (its sign of life)."""
        self.r.hset(self._sweep(sweep_id), "submitting", self.now())

    def submitted(self, sweep_id: str) -> None:
        """Every message of a ``submitting`` sweep's chord is sent."""
        self.r.hdel(self._sweep(sweep_id), "submitting")

    def claim_submit_recovery(self, sweep_id: str, hold_s: float) -> bool:
        """The right, for ``hold_s`` seconds fleet-wide, to send the chord of a sweep its
        producer left ``submitting`` (it stays ``submitting`` until the chord is sent)."""
        return self.claim_send(sweep_id, "submit", hold_s)

    def now(self) -> float:
        """The Redis server's time: the one clock every host of a fleet compares."""
        seconds, micros = self.r.time()
        return float(seconds) + float(micros) / 1e6

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
        pipe = self.r.pipeline(transaction=False)
        pipe.hmget(self._sweep(sweep_id), "cancel_requested", "deadline").time()
        (cancelled, deadline), (seconds, micros) = pipe.execute()
        return _stop_reason(cancelled, deadline, seconds + micros / 1e6)

    def plan_deadline(self, sweep_id: str, trial_duration_s: float) -> float | None:
        """Set the deadline of a sweep whose budget is a multiple of one trial, from its first
        complete trial (``trial_duration_s``), counted from the sweep's start; the deadline
        (None without such a budget). Only the first call sets it."""
        key = self._sweep(sweep_id)
        factor, started = self.r.hmget(key, "budget_factor", "started")
        if factor is None:
            return None
        start = float(started) if started else self.now()
        self.r.hsetnx(key, "deadline", start + float(factor) * trial_duration_s)
        return _float(self.r.hget(key, "deadline"))

    def extend(self, sweep_id: str, trial: int, chord_keys: tuple[str, str, str]) -> int | None:
        """One more trial for an open-ended sweep that may still start trials, once per
        starting ``trial`` (however often it starts): its number, with the chord
        (``chord_keys``: Celery's ``<group>.s``, ``.t`` and ``.j``) waiting for it too, in one
        step; None when the sweep is closed, cancelled or out of time, ``trial`` already
        added one, or the chord fired or is firing."""
        keys = [self._sweep(sweep_id), self._trial(sweep_id, trial), *chord_keys]
        number = int(self._extend(keys=keys))
        return None if number < 0 else number

    def extend_running(
        self,
        sweep_id: str,
        n: int,
        chord_keys: tuple[str, str, str],
        params: Iterable[Mapping[str, Any]] = (),
    ) -> int | None:
        """Add ``n`` trials to a sweep whose chord still waits, the chord (``chord_keys``:
        Celery's ``<group>.s``, ``.t`` and ``.j``) waiting for them too, and their
        configurations (``params``, in order; none for an adaptive sampler), in one step;
        the first new trial's number, or None when the chord fired or is firing (all its
        results are in) or a finalize holds the sweep."""
        base = self._sweep(sweep_id)
        keys = [base, *chord_keys, f"{base}:params", f"{base}:lease:finalize"]
        args = [n, *(json.dumps(p) for p in params)]
        first = int(self._extend_running(keys=keys, args=args))
        return None if first < 0 else first

    def reopen(
        self,
        sweep_id: str,
        trials: Iterable[int],
        *,
        add: int = 0,
        params: Mapping[int, Mapping[str, Any]] | None = None,
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
        base = self._sweep(sweep_id)
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
                        pipe.srem(f"{base}:finished", t.trial)
                        pipe.hincrby(base, t.status.counter, -1)
                    pipe.hdel(self._trial(sweep_id, t.trial), *_TRIAL_ATTEMPT_FIELDS)
                    pipe.hset(self._trial(sweep_id, t.trial), "status", TrialStatus.PENDING.value)
                if params:
                    mapping = {str(n): json.dumps(p) for n, p in params.items()}
                    pipe.hset(f"{base}:params", mapping=mapping)
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
                pipe.sadd(f"{PREFIX}:active", sweep_id)
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
        pipe.zrem(f"{PREFIX}:sweeps", sweep_id)
        pipe.srem(f"{PREFIX}:active", sweep_id)
        pipe.execute()
        removed = len(keys)
        for _ in range(3 if live else 0):
            # a copy that read the sweep's hash just before it went may have written once
            # more; with the hash gone it writes no further
            base = self._sweep(sweep_id)
            late = [k for p in (base, f"{base}:*") for k in self.r.scan_iter(match=p, count=1000)]
            if not late:
                break
            for start in range(0, len(late), 1000):
                self.r.delete(*late[start : start + 1000])
            removed += len(late)
        return removed

    def sweep_exists(self, sweep_id: str) -> bool:
        """Whether the sweep is recorded (a message of a deleted one is ignored; so is one
        whose hash a late write of a stopped copy made again without its record)."""
        return bool(self.r.hexists(self._sweep(sweep_id), "id"))

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

    def set_sweep_fields_held(self, sweep_id: str, lease: Lease, **fields: Any) -> bool:
        """:meth:`set_sweep_fields` from the holder of ``lease`` (a retrain's) only; False,
        nothing written, when another copy holds it."""
        encoded = {
            k: json.dumps(v) if isinstance(v, dict | list) else str(v) for k, v in fields.items()
        }
        keys = [lease.key, lease.running_key, lease.finished_key, self._sweep(sweep_id)]
        args = [lease.value, lease.member, json.dumps(encoded)]
        return bool(self._set_held(keys=keys, args=args))

    def finalize_lease(self, sweep_id: str, generation: int, host: str) -> Lease:
        """The lease of the finalize of a sweep's ``generation``, to be held by this process:
        taken, it marks that finalize running; it lapses with the process that held it."""
        base = self._sweep(sweep_id)
        return Lease(
            self.r,
            f"{base}:lease:finalize",
            host,
            running_key=f"{base}:finalizing",
            finished_key=f"{base}:finalized",
            member=str(generation),
        )

    def finalize_held(self, sweep_id: str) -> bool:
        """Whether a live worker holds the sweep's finalize lease."""
        return bool(self.r.exists(f"{self._sweep(sweep_id)}:lease:finalize"))

    def finalize_orphaned(self, sweep_id: str, generation: int) -> bool:
        """Whether ``generation``'s finalize is marked running without a live lease."""
        base = self._sweep(sweep_id)
        pipe = self.r.pipeline(transaction=False)
        pipe.sismember(f"{base}:finalizing", str(generation)).exists(f"{base}:lease:finalize")
        running, held = pipe.execute()
        return bool(running) and not held

    def finalize_duplicate(self, sweep_id: str) -> None:
        """Count a finalize that found its generation finalized, stale or held."""
        self.r.hincrby(self._sweep(sweep_id), "finalize_duplicates", 1)

    def finish_finalize(
        self, sweep_id: str, generation: int, lease: str, status: SweepStatus, *, ended: bool
    ) -> int:
        """Write the outcome of ``generation``'s finalize, once, from the copy holding its
        ``lease``: the status and ``finalized_at`` (and, ``ended``, ``finished`` and the
        sweep off the active set). Returns :data:`RECORDED`, :data:`ALREADY_FINISHED`,
        :data:`LEASE_LOST`, or :data:`STALE` (the sweep was reopened since)."""
        base = self._sweep(sweep_id)
        keys = [base, f"{base}:lease:finalize", f"{base}:finalizing", f"{base}:finalized"]
        args = [generation, lease, status.value, "1" if ended else "0", sweep_id]
        return int(self._finish_finalize(keys=[*keys, f"{PREFIX}:active"], args=args))

    def finished_count(self, sweep_id: str) -> int:
        return int(self.r.scard(f"{self._sweep(sweep_id)}:finished"))

    def count_take(self, sweep_id: str, step: str) -> int:
        """A worker took a message of ``step`` (``finalize`` or ``retrain``); how many were
        taken so far."""
        return int(self.r.hincrby(self._sweep(sweep_id), f"{step}_takes", 1))

    def count_send(self, sweep_id: str, step: str) -> None:
        """A message of ``step`` was sent (counted once it is)."""
        self.r.hincrby(self._sweep(sweep_id), f"{step}_sends", 1)

    def unsent(self, sweep_id: str, step: str) -> bool:
        """Whether no message of ``step`` waits to be taken: as many were taken as were
        sent (a message lost in the broker's own gap is not seen here)."""
        sends, takes = self.r.hmget(self._sweep(sweep_id), f"{step}_sends", f"{step}_takes")
        return int(sends or 0) <= int(takes or 0)

    def claim_send(self, sweep_id: str, step: str, hold_s: float) -> bool:
        """The right, for ``hold_s`` seconds fleet-wide, to send ``step``'s message again (a
        claim that lapses with the reaper that took it)."""
        key = f"{self._sweep(sweep_id)}:claim:{step}"
        return bool(self.r.set(key, self.now(), nx=True, ex=max(1, math.ceil(hold_s))))

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

    def finished(self, sweep_id: str) -> set[int]:
        """The numbers of the trials whose final record is written."""
        return {int(n) for n in self.r.smembers(f"{self._sweep(sweep_id)}:finished")}

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
        now = self.now()
        pipe = self.r.pipeline(transaction=True)
        pipe.hset(
            self._trial(sweep_id, trial),
            mapping={
                "status": "running",
                "worker": worker,
                "device": device,
                "share": share,
                "started": now,
                "fold": 0,
                "pid": os.getpid(),
                "request": json.dumps(request.to_dict() if request is not None else {}),
            },
        )
        pipe.hincrby(self._trial(sweep_id, trial), "attempts", 1)
        pipe.sadd(f"{self._sweep(sweep_id)}:running", trial)
        pipe.hsetnx(self._sweep(sweep_id), "started", now)
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
            f"{base}:to-send",
        ]

    def claim_orphan(self, sweep_id: str, trial: int) -> bool:
        """Take a running trial whose lease has expired off the running set, once, and mark
        it to be sent again (:meth:`to_send`) in the same step."""
        keys = self._requeue_keys(sweep_id, trial)
        return bool(self._claim_orphan(keys=keys, args=[trial]))

    def to_send(self, sweep_id: str) -> dict[int, float]:
        """Trials marked requeued and not yet sent again, with when they were marked (Redis
        time): a reaper that died between the two leaves them here for the next."""
        base = self._sweep(sweep_id)
        numbers = sorted(int(n) for n in self.r.smembers(f"{base}:to-send"))
        pipe = self.r.pipeline(transaction=False)
        for n in numbers:
            pipe.hget(self._trial(sweep_id, n), "requeued_at")
        return {n: float(at or 0) for n, at in zip(numbers, pipe.execute(), strict=True)}

    def sent_again(self, sweep_id: str, trial: int) -> None:
        """A trial marked requeued was sent again (or its message put back)."""
        self.r.srem(f"{self._sweep(sweep_id)}:to-send", trial)

    def fold_started(self, sweep_id: str, trial: int, fold: int) -> None:
        self.r.hset(self._trial(sweep_id, trial), "fold", fold)

    def _held_keys(self, sweep_id: str, trial: int) -> list[str]:
        """The keys that say whether a copy holds a trial's lease: the lease, the running
        and finished sets."""
        base = self._sweep(sweep_id)
        return [self.lease_key(sweep_id, trial), f"{base}:running", f"{base}:finished"]

    def record_fold(
        self, sweep_id: str, trial: int, fold: int, result: Mapping[str, Any], lease: str = ""
    ) -> bool | None:
        """Store a finished fold once, counted in ``folds_done``; False if that fold was
        already recorded, None (nothing written) if ``lease`` is given and the trial's lease
        is another copy's."""
        keys = [*self._held_keys(sweep_id, trial), self._folds(sweep_id, trial)]
        args = [lease, trial, str(fold), json.dumps(result)]
        added = int(self._record_fold(keys=[*keys, self._sweep(sweep_id)], args=args))
        return None if added < 0 else bool(added)

    def folds(self, sweep_id: str, trial: int) -> dict[int, dict[str, Any]]:
        raw = self.r.hgetall(self._folds(sweep_id, trial))
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
            self._curve(sweep_id, trial),
            self._sweep(sweep_id),
            self._preempt(worker),
        ]
        args = [lease, trial, f"{run}:{epoch}", repr(float(score))]
        reply = self._record_epoch(keys=keys, args=args)
        if reply == -1:
            return LEASE_GONE
        cancelled, deadline, preempted, seconds, micros = reply
        reason = _stop_reason(cancelled, deadline, int(seconds) + int(micros) / 1e6)
        return reason or (PREEMPTED if worker and preempted else None)

    # -- checkpoints and preemption -----------------------------------------------------
    def checkpointed(
        self, sweep_id: str, trial: int, checkpoint: SavedCheckpoint, lease: str = ""
    ) -> bool:
        """Record the last checkpoint of the trial's run in progress; False (nothing
        written) if ``lease`` is given and the trial's lease is another copy's."""
        keys = [*self._held_keys(sweep_id, trial), self._trial(sweep_id, trial)]
        fields = json.dumps({"checkpoint": json.dumps(checkpoint.to_dict())})
        return bool(self._set_held(keys=keys, args=[lease, trial, fields]))

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
        return bool(self._requeue_preempted(keys=keys, args=[trial, worker, "", lease]))

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


def _recorded_already(sweep_id: str) -> SweepConflictError:
    return SweepConflictError(
        f"sweep id {sweep_id} is already recorded in this broker (another producer's sweep); "
        "nothing was written: submit again for a new id"
    )


def _stop_reason(cancelled: str | None, deadline: str | None, now: float) -> str | None:
    """``now``: the Redis server's time, the clock the deadline was set by."""
    if cancelled is not None:
        return "cancelled"
    if deadline is not None and now >= float(deadline):
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
        chord_size=int(raw["chord_size"]) if raw.get("chord_size") else None,
        finalize_sends=int(raw.get("finalize_sends", 0)),
        finalize_takes=int(raw.get("finalize_takes", 0)),
        retrain_sends=int(raw.get("retrain_sends", 0)),
        retrain_takes=int(raw.get("retrain_takes", 0)),
        retrain_requeued_at=_float(raw.get("retrain_requeued_at")),
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
