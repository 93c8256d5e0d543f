"""What the sweep store's roles share: its client, its registered scripts, its clock, its answers.

:class:`~smptune.queue.store.SweepStore` is :class:`~smptune.queue.sweeps.SweepRecords`,
:class:`~smptune.queue.trials.TrialRecords` and :class:`~smptune.queue.claims.Claims` on
one client; each of those is a :class:`StoreBase`, which declares what they share (set up by
``SweepStore.__init__``) and, for the type checker only, the few methods one role calls of
another.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import redis
from redis.commands.core import Script

if TYPE_CHECKING:
    from smptune.records import SweepRecord, TrialRecord

#: What :meth:`SweepStore.record_epoch` returns when the run's worker is being preempted.
PREEMPTED = "preempted"
#: What :meth:`SweepStore.record_epoch` returns to a copy that lost the trial's lease.
LEASE_GONE = "lease lost"

#: Finish results of :meth:`SweepStore.finish_trial` and :meth:`SweepStore.finish_finalize`.
RECORDED, ALREADY_FINISHED, LEASE_LOST, STALE = 1, 0, -1, -2


class StoreBase:
    """The client and the registered scripts (:mod:`smptune.queue.scripts`) of a store."""

    r: redis.Redis
    _finish_trial: Script
    _claim_orphan: Script
    _extend: Script
    _extend_running: Script
    _record_epoch: Script
    _record_fold: Script
    _set_held: Script
    _requeue_preempted: Script
    _finish_finalize: Script
    _set_params_once: Script

    def now(self) -> float:
        """The Redis server's time: the one clock every host of a fleet compares."""
        seconds, micros = self.r.time()
        return float(seconds) + float(micros) / 1e6

    if TYPE_CHECKING:
        # One role's methods another calls (defined in sweeps.py, trials.py, claims.py).
        def get_sweep(self, sweep_id: str) -> SweepRecord: ...

        def active_sweeps(self) -> list[str]: ...

        def trials(
            self, sweep_id: str, numbers: Iterable[int] | None = None
        ) -> list[TrialRecord]: ...

        def running(self, sweep_id: str) -> list[dict[str, Any]]: ...

        def claim_send(self, sweep_id: str, step: str, hold_s: float) -> bool: ...
