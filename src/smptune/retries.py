"""The retry policy: what counts as an attempt, how many a trial and a retrain get, what a
preemption or a lost worker costs, and when lost work is sent again.

- **An attempt** is a start the store records: ``trial_started`` (a trial's copy taking its
  lease) and ``retrain_started`` each add one in the same write. A start past
  ``max_attempts`` (the sweep's config, default :data:`DEFAULT_MAX_ATTEMPTS`) records the
  trial, or the retrain's sweep, ``failed`` (:func:`gave_up`): its worker was lost each time.
- **A lost worker** costs an attempt. Its message is redelivered by Redis after
  :data:`VISIBILITY_TIMEOUT_S` (Celery acknowledges late and rejects on a lost worker:
  :data:`DELIVERY_SETTINGS`), or sooner by a reaper that saw its lease missing for a grace
  (:func:`reaper_graces`).
- **A preemption** costs none: the trial checkpoints and gives itself back within
  :data:`DEFAULT_PREEMPT_GRACE_S` (``workers start --preempt-grace``), and the store's give-back
  script takes the start back (``REQUEUE_PREEMPTED`` in :mod:`smptune.queue.scripts`).
- **A worker process** that exits is started again after a back-off doubling from 1 s to
  30 s (:func:`restart_backoff_s`); one that exits :data:`MAX_QUICK_EXITS` times in a row,
  each within :data:`QUICK_EXIT_S` of its start, is not started again.

The counting itself happens inside the store's scripts (one write with the state it guards);
this module is where its numbers and its rules are read from.
"""

from __future__ import annotations

import os

__all__ = [
    "DEFAULT_MAX_ATTEMPTS",
    "DEFAULT_PREEMPT_GRACE_S",
    "DELIVERY_SETTINGS",
    "HARD_LIMIT_GRACE_S",
    "MAX_QUICK_EXITS",
    "MAX_RESTART_BACKOFF_S",
    "QUICK_EXIT_S",
    "VISIBILITY_MARGIN_S",
    "VISIBILITY_TIMEOUT_S",
    "gave_up",
    "max_trial_timeout_s",
    "reaper_graces",
    "restart_backoff_s",
]

#: Starts a trial (or a sweep's retrain) gets before it is recorded failed.
DEFAULT_MAX_ATTEMPTS = 3
#: Redis redelivers an unacknowledged message after this many seconds, even while it runs.
VISIBILITY_TIMEOUT_S = int(os.environ.get("SMPTUNE_VISIBILITY_TIMEOUT", 12 * 3600))
#: Seconds between the soft and the hard time limit of a trial.
HARD_LIMIT_GRACE_S = 120
#: Room kept between a trial's hard time limit and the visibility timeout.
VISIBILITY_MARGIN_S = 600
#: A message is acknowledged when its task ends, and given back if its worker process dies:
#: a lost worker's trial runs again elsewhere (its attempt counted at the next start).
DELIVERY_SETTINGS = {"task_acks_late": True, "task_reject_on_worker_lost": True}
#: Seconds a preempted machine's trials have to checkpoint and give themselves back.
DEFAULT_PREEMPT_GRACE_S = 25.0
#: A worker that exits this many times in a row, each within :data:`QUICK_EXIT_S` of its
#: start, is not started again: it would fail the same way forever (a bad option, a broken
#: install, a device that is gone).
MAX_QUICK_EXITS = 5
QUICK_EXIT_S = 60.0
#: The longest wait before a worker that exited is started again.
MAX_RESTART_BACKOFF_S = 30.0


def max_trial_timeout_s() -> int:
    """The longest ``trial_timeout`` whose hard limit still ends before redelivery."""
    return VISIBILITY_TIMEOUT_S - HARD_LIMIT_GRACE_S - VISIBILITY_MARGIN_S


def gave_up(attempt: int, max_attempts: int, what: str) -> str | None:
    """Why the start numbered ``attempt`` (1 for the first) of ``what`` is refused, or None
    while it is within ``max_attempts``."""
    if attempt <= max_attempts:
        return None
    return f"gave up after {attempt - 1} attempts: {what} was lost each time"


def reaper_graces(lease_ttl_s: float) -> tuple[float, float]:
    """The reaper's two graces for a fleet whose leases live ``lease_ttl_s``: how long a
    trial's lease is seen missing before its trial is queued again (a third of the TTL, in two
    scans), and how long a finalize, a retrain or a submit may stay unclaimed (three TTLs)."""
    return lease_ttl_s / 3, 3 * lease_ttl_s


def restart_backoff_s(previous_s: float) -> float:
    """The wait before the next restart of a worker that exited after waiting
    ``previous_s`` before this one (1 s first; a worker that ran a minute starts over)."""
    return min(previous_s * 2, MAX_RESTART_BACKOFF_S)
