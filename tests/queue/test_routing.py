"""Routing by needs: a sweep's trials go to the capability queue their parameters call for,
workers find those queues recorded, the reaper finds trials waiting there (and sends none
again), and the fleet's advertisements come and go."""

from __future__ import annotations

from typing import Any

from smptune.config import config_from_dict
from smptune.messages import TrialRequest
from smptune.queue.recovery import Reaper, send_again
from smptune.queue.routing import (
    FleetWorker,
    advertise,
    capability_queues,
    live_fleet,
    sweep_queues,
    trial_queue,
    trial_queues,
    unasked,
    unmet,
    withdraw,
)
from smptune.queue.store import SweepStore
from smptune.queue.submit import plan_configurations, submit
from smptune.requirements import Capabilities, Needs

BIG = "smptune.needs.mem40"


def _config(**overrides: Any) -> Any:
    return config_from_dict(
        {
            "name": "routed",
            "trainable": "smptune.fakes:QuadraticTrainable",
            "n_trials": 8,
            "seed": 5,
            "metric": "score",
            "cv": {"n_folds": 2},
            "hyperparameters": {"x": [-1.0, 0.0, 1.0, 2.0], "y": {"low": -3.0, "high": 0.0}},
            "requires": [{"when": {"x": [1.0, 2.0]}, "gpu_memory_gb": 40}],
            **overrides,
        }
    )


def _waiting(store: SweepStore, queue: str) -> int:
    """Messages waiting on ``queue``, over its priority lists."""
    return sum(int(store.r.llen(k)) for k in [queue, *store.r.keys(f"{queue}\x06\x16*")])


def test_each_trial_is_sent_to_the_queue_its_parameters_need(store, celery_app, tmp_path):
    # Given a sweep whose trials with x of 1 or 2 need 40 GB
    config = _config()
    configurations = plan_configurations(config)
    needy = [n for n, p in enumerate(configurations) if p["x"] >= 1]
    assert needy and len(needy) < 8

    # When it is submitted
    sweep_id = submit(store, config, configurations, tmp_path, celery_app)

    # Then those trials wait in the 40 GB queue, the rest in the sweep's own
    assert _waiting(store, BIG) == len(needy) and _waiting(store, "smptune") == 8 - len(needy)
    assert trial_queues(store.r, sweep_id, config, range(8)) == {
        n: BIG if n in needy else "smptune" for n in range(8)
    }
    assert trial_queue(config, None) == "smptune"  # before its parameters: nothing
    # and a trial added before its parameters are chosen goes to the base queue
    assert unasked(config, TrialRequest(queue=BIG)).queue == "smptune"
    # and workers find the queue recorded with what its trials need
    assert capability_queues(store.r) == {BIG: ("smptune", Needs(40.0))}
    assert sweep_queues(store.r, sweep_id, config, 8) == ["smptune", BIG]


def test_the_reaper_sees_trials_waiting_in_a_capability_queue_and_sends_them_there(
    store, celery_app, tmp_path
):
    # Given a submitted sweep whose plain queue a worker drained, its needy trials waiting
    config = _config()
    configurations = plan_configurations(config)
    needy = [n for n, p in enumerate(configurations) if p["x"] >= 1]
    sweep_id = submit(store, config, configurations, tmp_path, celery_app)
    for key in ["smptune", *store.r.keys("smptune\x06\x16*")]:
        store.r.delete(key)
    for n in set(range(8)) - set(needy):
        store.r.sadd(f"smptune:sweep:{sweep_id}:finished", n)

    # When the reaper looks for lost messages, with no grace, twice
    reaper = Reaper(store, celery_app, grace_s=0.0, finalize_grace_s=0.0)
    sent = reaper.scan() + reaper.scan()

    # Then it sends none again: they are queued, in their own queue
    assert sent == [] and _waiting(store, BIG) == len(needy)
    assert reaper.recover(sweep_id) == []
    # and a needy trial sent again goes back to its capability queue
    send_again(store, celery_app, sweep_id, needy[0], "test")
    assert _waiting(store, BIG) == len(needy) + 1 and _waiting(store, "smptune") == 0


def test_fixed_needs_route_every_trial_even_those_asked_when_they_start(
    store, celery_app, tmp_path
):
    # Given a TPE sweep whose every trial needs the tag big
    config = _config(sampler="tpe", n_trials=3, requires={"tags": ["big"]})
    sweep_id = submit(store, config, plan_configurations(config), tmp_path, celery_app)

    # Then its template, and so every trial, goes to the queue of that tag
    assert store.get_sweep(sweep_id).trial_request.queue == "smptune.needs.tag_big"
    assert _waiting(store, "smptune.needs.tag_big") == 3 and _waiting(store, "smptune") == 0


def test_live_workers_advertise_and_withdraw_and_what_none_meets_is_found(store):
    # Given two live workers, one with 48 GB on the queue smptune
    big = FleetWorker("gpu0@a", Capabilities("cuda", 48.0, frozenset({"big"})), ("smptune",))
    small = FleetWorker("cpu0@b", Capabilities(), ("smptune",))
    advertise(store.r, big)
    advertise(store.r, small)

    # Then the fleet lists both, by name, with what they have
    assert live_fleet(store.r) == [small, big]
    # and 40 GB is met (on smptune, not on a queue only small consumes), 80 GB by none
    needs = [Needs(40.0), Needs(80.0), Needs()]
    assert unmet(needs, [big, small], "smptune") == [Needs(80.0)]
    other = FleetWorker("cpu0@c", Capabilities("cuda", 48.0), ("other",))
    assert unmet([Needs(40.0)], [small, other], "smptune") == [Needs(40.0)]
    # and a withdrawn one is gone
    withdraw(store.r, big.name)
    assert live_fleet(store.r) == [small]
