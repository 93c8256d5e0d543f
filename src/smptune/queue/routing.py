"""Routing trials by what they need: each trial's queue, the capability queues workers
discover, and the capabilities live workers advertise.

Keys::

    smptune:capability-queues   hash   capability queue -> JSON {base: its sweep's queue,
                                       needs: what its trials need}; written before a trial
                                       is sent there, read by workers to consume the ones
                                       they meet and by ``producer status``
    smptune:fleet               hash   worker name -> JSON {capabilities, queues, at}: a
                                       live worker's advertisement, renewed every few
                                       seconds (``at``: Redis's clock), live for
                                       :data:`FLEET_TTL_S` after its last renewal

A trial's queue follows from the sweep's ``requires`` and its parameters alone, so every
copy of a trial (submit, reaper, resume, extend) goes to the same queue under the same
task id: the exactly-once claims of the store see one trial, wherever it waits.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any

from smptune.config import SweepConfig
from smptune.messages import REQUEUE_PRIORITY, TrialRequest, send_trial
from smptune.params import ParamsView
from smptune.queue.keys import params_key
from smptune.requirements import Capabilities, Needs, capability_queue

__all__ = [
    "CAPABILITY_QUEUES_KEY",
    "FLEET_TTL_S",
    "FleetWorker",
    "advertise",
    "capability_queues",
    "live_fleet",
    "register_planned",
    "retrain_queue",
    "routed",
    "send_unmet_home",
    "sweep_queues",
    "trial_queue",
    "trial_queues",
    "unasked",
    "unmet",
    "withdraw",
]

CAPABILITY_QUEUES_KEY = "smptune:capability-queues"
FLEET_KEY = "smptune:fleet"
#: Seconds a worker's advertisement outlives its last renewal.
FLEET_TTL_S = 15.0


def trial_queue(config: SweepConfig, params: ParamsView | None) -> str:
    """The queue of a trial of ``config`` with ``params`` (None: not chosen yet)."""
    return capability_queue(config.queue, config.requirements.needs_for(params))


def trial_queues(
    r: Any, sweep_id: str, config: SweepConfig, trials: Iterable[int]
) -> dict[int, str]:
    """The queue of each of ``trials`` whose parameters decide it (``requires`` with
    ``when``: read from the store); the others go to the sweep's template queue."""
    numbers = list(trials)
    if not config.requirements.conditional or not numbers:
        return {}
    raws = r.hmget(params_key(sweep_id), [str(n) for n in numbers])
    return {
        n: trial_queue(config, None if raw is None else json.loads(raw))
        for n, raw in zip(numbers, raws, strict=True)
    }


def routed(
    r: Any, sweep_id: str, config: SweepConfig, trial: int, request: TrialRequest
) -> TrialRequest:
    """``request`` (from the template) sent to the trial's own capability queue."""
    queue = trial_queues(r, sweep_id, config, [trial]).get(trial)
    return request if queue is None or queue == request.queue else replace(request, queue=queue)


def retrain_queue(store: Any, sweep_id: str, queue: str) -> str:
    """The queue of a sweep's retrain-and-test: its best trial's (``queue`` without one)."""
    if not store.sweep_exists(sweep_id):
        return queue
    config = store.get_sweep(sweep_id).config
    if not config.requirements:
        return queue
    best = (store.sweep_results(sweep_id) or {}).get("best")
    trial = best.get("trial") if isinstance(best, dict) else None
    params = store.params_or_none(sweep_id, trial) if isinstance(trial, int) else None
    found = trial_queue(config, params)
    register_planned(store.r, config, [params])
    return found


def unasked(config: SweepConfig, request: TrialRequest) -> TrialRequest:
    """``request`` for a new trial whose parameters are not chosen yet: its base queue."""
    return replace(request, queue=trial_queue(config, None))


def sweep_queues(r: Any, sweep_id: str, config: SweepConfig, n_trials: int) -> list[str]:
    """Every queue a trial of the sweep may wait in."""
    queues = dict.fromkeys([config.queue, trial_queue(config, None)])
    queues.update(dict.fromkeys(trial_queues(r, sweep_id, config, range(n_trials)).values()))
    return list(queues)


def register_planned(
    r: Any, config: SweepConfig, planned: Iterable[ParamsView | None]
) -> dict[str, Needs]:
    """Record the capability queue of each planned configuration; returns queue -> needs."""
    out: dict[str, Needs] = {}
    for params in planned:
        needs = config.requirements.needs_for(params)
        if needs:
            out[capability_queue(config.queue, needs)] = needs
    if out:
        r.hset(
            CAPABILITY_QUEUES_KEY,
            mapping={
                q: json.dumps({"base": config.queue, "needs": n.to_dict()}) for q, n in out.items()
            },
        )
    return out


def capability_queues(r: Any) -> dict[str, tuple[str, Needs]]:
    """Every recorded capability queue: its sweep's queue and what its trials need."""
    out = {}
    for queue, raw in r.hgetall(CAPABILITY_QUEUES_KEY).items():
        try:
            data = json.loads(raw)
            out[_text(queue)] = (str(data["base"]), Needs.from_dict(data["needs"]))
        except (ValueError, KeyError, TypeError, AttributeError):
            continue
    return out


@dataclass(frozen=True)
class FleetWorker:
    """A live worker as it advertises itself."""

    name: str
    capabilities: Capabilities
    queues: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, **self.capabilities.to_dict(), "queues": list(self.queues)}


def _redis_now(r: Any) -> float:
    """Redis's clock: the same for every machine of the fleet."""
    seconds, micros = r.time()
    return float(seconds) + float(micros) / 1e6


def advertise(r: Any, worker: FleetWorker) -> None:
    """Say (again) that ``worker`` is live with its capabilities, for :data:`FLEET_TTL_S`."""
    value = {"capabilities": worker.capabilities.to_dict(), "queues": list(worker.queues)}
    r.hset(FLEET_KEY, worker.name, json.dumps({**value, "at": _redis_now(r)}))


def withdraw(r: Any, name: str) -> None:
    r.hdel(FLEET_KEY, name)


def live_fleet(r: Any) -> list[FleetWorker]:
    """The workers whose advertisement is live, by name (those gone silent are dropped)."""
    now, out, gone = _redis_now(r), [], []
    for key, raw in sorted(r.hgetall(FLEET_KEY).items()):
        name = _text(key)
        try:
            data = json.loads(raw)
            caps = Capabilities.from_dict(data["capabilities"])
            queues = tuple(str(q) for q in data.get("queues", []))
            live = now - float(data["at"]) <= FLEET_TTL_S
        except (ValueError, KeyError, TypeError, AttributeError):
            live = False
        if live:
            out.append(FleetWorker(name, caps, queues))
        else:
            gone.append(name)
    if gone:
        r.hdel(FLEET_KEY, *gone)
    return out


def unmet(needs: Iterable[Needs], fleet: Iterable[FleetWorker], queue: str) -> list[Needs]:
    """Those of ``needs`` that no worker of ``fleet`` consuming ``queue`` meets."""
    workers = [w for w in fleet if not w.queues or queue in w.queues]
    return [
        n for n in dict.fromkeys(needs) if n and not any(w.capabilities.meets(n) for w in workers)
    ]


def send_unmet_home(store: Any, app: Any, sweep_id: str) -> list[int]:
    """Send a cancelled sweep's trials that wait in capability queues no live worker meets
    again to the sweep's own queue, where any worker records them cancelled (the copy left
    waiting is ignored if a worker ever takes it: the trial has ended). Returns them."""
    sweep = store.get_sweep(sweep_id)
    config = sweep.config
    if not config.requirements or sweep.trial_request is None:
        return []
    trials = sorted(store.unaccounted(sweep_id, sweep.n_trials))
    queues = {n: sweep.trial_request.queue for n in trials}
    queues.update(trial_queues(store.r, sweep_id, config, trials))
    known = capability_queues(store.r)
    lacking = unmet(
        [known[q][1] for q in queues.values() if q in known], live_fleet(store.r), config.queue
    )
    sent = []
    for n, queue in queues.items():
        if queue in known and known[queue][1] in lacking:
            request = store.trial_request(sweep_id, n) or sweep.trial_request.for_trial(sweep_id, n)
            why = f"trial {n} (sweep={sweep_id}, cancelled: no worker has what it needs)"
            send_trial(
                app, sweep_id, n, replace(request, queue=config.queue), REQUEUE_PRIORITY, why
            )
            sent.append(n)
    return sent


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
