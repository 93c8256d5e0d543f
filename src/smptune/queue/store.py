"""The sweep store in Redis: sweeps, trials and fold results, written as they happen.

:class:`SweepStore` is three roles on one client: :class:`~smptune.queue.sweeps.SweepRecords`
(sweeps), :class:`~smptune.queue.trials.TrialRecords` (trials, their runs and epochs) and
:class:`~smptune.queue.claims.Claims` (leases and the reaper's claims). The keys they write
are :mod:`smptune.queue.keys`'s, the Lua scripts :mod:`smptune.queue.scripts`'.

The rule every write keeps, so that a redelivered task, a copy that lost its lease or a
reaper racing another cannot count twice or write over a live copy:

- a run (fold) result is written at most once (HSETNX); a copy that gives its lease's value
  writes it, its epochs' scores and its checkpoints only while it holds the trial's lease;
- a trial's final record is written at most once (a Lua script guarded by the ``finished``
  set and the trial's lease), and drops the lease in the same step;
- a sweep is recorded once (a second writer of its id fails, nothing written); it is
  reopened in one transaction, only while it is still ended; a generation's finalize
  outcome is written once, by the holder of that finalize's lease, while that generation
  is current;
- a claim of the reaper (an orphan, a lost trial, a message to send again) is taken by one
  reaper fleet-wide: an orphan once, in the Lua step that takes it off the running set, the
  others for a hold that lapses with the reaper that took them;
- the times compared across hosts (a deadline, a trial's start and requeue, a finalize's
  end, a claim's) are the Redis server's clock.
"""

from __future__ import annotations

import redis
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

from smptune.errors import BrokerError
from smptune.queue import scripts
from smptune.queue._base import (
    ALREADY_FINISHED,
    LEASE_GONE,
    LEASE_LOST,
    PREEMPTED,
    RECORDED,
    STALE,
)
from smptune.queue.claims import Claims
from smptune.queue.keys import PREFIX
from smptune.queue.sweeps import SweepRecords
from smptune.queue.trials import TrialRecords
from smptune.urls import mask_url

__all__ = [
    "ALREADY_FINISHED",
    "LEASE_GONE",
    "LEASE_LOST",
    "PREEMPTED",
    "PREFIX",
    "RECORDED",
    "STALE",
    "SweepStore",
    "connect",
]


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


class SweepStore(SweepRecords, TrialRecords, Claims):
    """Read and write sweeps in one Redis database."""

    def __init__(self, client: redis.Redis) -> None:
        self.r = client
        self._finish_trial = client.register_script(scripts.FINISH_TRIAL)
        self._claim_orphan = client.register_script(scripts.CLAIM_ORPHAN)
        self._extend = client.register_script(scripts.EXTEND)
        self._extend_running = client.register_script(scripts.EXTEND_RUNNING)
        self._record_epoch = client.register_script(scripts.RECORD_EPOCH)
        self._record_fold = client.register_script(scripts.RECORD_FOLD)
        self._set_held = client.register_script(scripts.SET_HELD)
        self._requeue_preempted = client.register_script(scripts.REQUEUE_PREEMPTED)
        self._finish_finalize = client.register_script(scripts.FINISH_FINALIZE)
        self._set_params_once = client.register_script(scripts.SET_PARAMS_ONCE)

    @classmethod
    def from_url(cls, url: str) -> SweepStore:
        return cls(connect(url))
