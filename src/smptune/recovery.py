"""Fast recovery of lost trials: the reaper every ``workers`` supervisor runs.

A trial whose lease has expired while it is marked running lost its worker process or its
whole machine. The reaper takes it off the running set (once, fleet-wide) and queues it
again under the same task id, group and chord, so the chord still counts it once; the new
copy resumes from its first unrecorded fold. Without this, Redis would redeliver the
message only after the broker's visibility timeout (12 h by default).

The reaper also finalizes a sweep whose every trial is recorded but whose chord did not fire
within ``finalize_grace_s`` (Celery's chord counter lives in Redis too, and a result stored
during a Redis restart can miss it); ``finalize_sweep`` does its work once either way.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from smptune.store import SweepStore

log = logging.getLogger("smptune.recovery")

#: Trials are queued at priority 5 (see :mod:`smptune.sweep`); a lost trial goes back at 0,
#: ahead of the trials that never started.
TRIAL_PRIORITY = 5
REQUEUE_PRIORITY = 0


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

    def scan(self, now: float | None = None) -> list[tuple[str, int]]:
        """One pass over the active sweeps; returns the trials queued again."""
        now = time.monotonic() if now is None else now
        requeued: list[tuple[str, int]] = []
        seen: set[tuple[str, int]] = set()
        for sweep_id in self.store.active_sweeps():
            self._finalize_if_stuck(sweep_id)
            for trial in self.store.running_numbers(sweep_id):
                key = (sweep_id, trial)
                if self.store.lease_exists(sweep_id, trial):
                    continue
                seen.add(key)
                # a lease missing in two scans a grace apart, not a heartbeat in flight
                first = self._missing_since.setdefault(key, now)
                if now - first < self.grace_s:
                    continue
                if self.store.claim_orphan(sweep_id, trial):
                    self.requeue(sweep_id, trial)
                    requeued.append(key)
        self._missing_since = {k: v for k, v in self._missing_since.items() if k in seen}
        return requeued

    def _finalize_if_stuck(self, sweep_id: str) -> None:
        sweep = self.store.get_sweep(sweep_id)
        if sweep.get("finalized_at") or self.store.finished_count(sweep_id) < sweep["n_trials"]:
            return
        if time.time() - sweep.get("last_finished", time.time()) < self.finalize_grace_s:
            return
        if self.store.claim_finalize_fallback(sweep_id):
            log.warning(
                "sweep %s: every trial is recorded but the chord did not fire; finalizing it",
                sweep_id,
            )
            queue = sweep["config"].get("queue", "smptune")
            self.app.send_task("smptune.finalize_sweep", args=([], sweep_id), queue=queue)

    def requeue(self, sweep_id: str, trial: int) -> None:
        request = self.store.trial_request(sweep_id, trial)
        log.warning(
            "sweep %s trial %d lost its worker; queueing it again (task %s)",
            sweep_id,
            trial,
            request.get("id"),
        )
        self.app.send_task(
            "smptune.cv_trial",
            args=(sweep_id, trial),
            task_id=request.get("id"),
            queue=request.get("queue") or "smptune",
            group_id=request.get("group"),
            group_index=request.get("group_index"),
            chord=request.get("chord"),
            root_id=request.get("root_id"),
            parent_id=request.get("parent_id"),
            soft_time_limit=request.get("soft_time_limit"),
            time_limit=request.get("time_limit"),
            priority=REQUEUE_PRIORITY,
        )
