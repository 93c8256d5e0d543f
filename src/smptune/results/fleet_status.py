"""What ``producer status`` says of the fleet: the live workers with their capabilities, and
the trials that wait for a capability none of them has."""

from __future__ import annotations

import json
from collections import Counter

from smptune.queue.keys import params_key
from smptune.queue.routing import FleetWorker, live_fleet, unmet
from smptune.queue.store import SweepStore
from smptune.records import SweepRecord
from smptune.requirements import Needs
from smptune.results.status_snapshot import StatusSnapshot, WaitingForCapability

__all__ = ["fleet_lines", "fleet_reads"]


def fleet_reads(
    store: SweepStore, sweep: SweepRecord
) -> tuple[tuple[FleetWorker, ...], tuple[WaitingForCapability, ...]]:
    """The live fleet, and (for a sweep that is not over) its trials neither running nor
    finished whose needs no live worker consuming the sweep's queue meets."""
    if sweep.status.terminal:
        return (), ()
    fleet = tuple(live_fleet(store.r))
    config = sweep.config
    if not config.requirements:
        return fleet, ()
    waiting = sorted(store.unaccounted(sweep.id, sweep.n_trials))
    raws = store.r.hmget(params_key(sweep.id), [str(n) for n in waiting]) if waiting else []
    needs: Counter[Needs] = Counter(
        config.requirements.needs_for(None if raw is None else json.loads(raw)) for raw in raws
    )
    lacking = unmet(needs, fleet, config.queue)
    return fleet, tuple(WaitingForCapability(n.text, needs[n]) for n in lacking)


def fleet_lines(snap: StatusSnapshot) -> list[str]:
    """The fleet section of ``producer status``: one line counting the live workers by what
    they have (a fleet of a hundred stays one line; ``--json`` lists each), then one per
    capability trials wait for."""
    lines = []
    if snap.fleet:
        kinds = Counter(w.capabilities.text for w in snap.fleet)
        groups = "; ".join(f"{n}: {text}" for text, n in sorted(kinds.items(), key=_most_first))
        workers = "1 live worker" if len(snap.fleet) == 1 else f"{len(snap.fleet)} live workers"
        lines.append(f"fleet: {workers} ({groups})")
    for w in snap.waiting_for:
        trials = "1 trial" if w.trials == 1 else f"{w.trials} trials"
        lines.append(f"{trials} waiting for a capability no live worker has: {w.needs}")
    return lines


def _most_first(item: tuple[str, int]) -> tuple[int, str]:
    return -item[1], item[0]
