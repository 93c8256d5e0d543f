"""Continuing a sweep: resume the trials an ended sweep did not finish, or extend a sweep
with more trials.

An interrupted sweep (Redis and every worker killed, then Redis restarted) still says it
runs; once no live worker holds any of its leases, a resume does at once what the workers'
reaper would do after its graces: its lost trials, retrain, chord or finalize are sent again.

An ended sweep (done, cancelled, failed) is reopened in the store and sent a new chord of the
trials it runs now, with a finalize task of its own (``<sweep>-finalize-<generation>``), so
it is ranked and finalized again exactly once; the ranking covers every trial. A resumed
trial keeps its recorded runs and trains from its first unrecorded one. A sweep whose chord
has not fired yet is extended in place: the chord's size grows with the new trials in the
same step that numbers them (as an open-ended sweep grows).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from smptune.config import SweepConfig
from smptune.errors import ConfigError
from smptune.lifecycle import crash_point
from smptune.messages import FINALIZE_SWEEP, TRIAL_PRIORITY, TrialRequest, finalize_task_id
from smptune.messages import send_trial as send_one
from smptune.params import Params, ParamsView
from smptune.queue.routing import register_planned, routed, trial_queues
from smptune.queue.store import SweepStore
from smptune.records import SweepRecord, SweepStatus, TrialStatus

__all__ = ["RESUMED_STATUSES", "Continued", "extend", "resume"]

#: Trial outcomes a resume runs again (``failed`` too with ``retry_failed``); complete, pruned
#: and infeasible (out of memory: it would run out again) trials are kept as they are.
RESUMED_STATUSES = (TrialStatus.CANCELLED, TrialStatus.SKIPPED, TrialStatus.STOPPED)


@dataclass(frozen=True)
class Continued:
    """What a resume or extend sent: the trials, whether a new chord was started, and
    whether the sweep was an interrupted one (its chord kept, its lost trials sent again)."""

    trials: list[int]
    new_chord: bool
    interrupted: bool = False


def resume(
    store: SweepStore,
    app: Any,
    sweep_id: str,
    *,
    time_budget_s: float | None = None,
    retry_failed: bool = False,
) -> Continued:
    """Run again the trials an ended sweep did not finish (cancelled, skipped, stopped;
    failed with ``retry_failed``), or what an interrupted one lost; raises
    :class:`ConfigError` when there is none, or when live workers still run the sweep."""
    sweep = store.get_sweep(sweep_id)
    if not sweep.status.terminal:
        if time_budget_s is not None:
            raise ConfigError(
                f"--time-budget: sweep {sweep_id} is {sweep.status}, not ended; it keeps the "
                "budget it has"
            )
        return _recover_interrupted(store, app, sweep)
    if sweep.open_ended and time_budget_s is None:
        raise ConfigError(
            f"sweep {sweep_id} has no n_trials: resume it with --time-budget, or it would "
            "start trials for ever"
        )
    again = set(RESUMED_STATUSES) | ({TrialStatus.FAILED} if retry_failed else set())
    trials = [t.trial for t in store.trials(sweep_id) if t.status in again]
    deadline = None if time_budget_s is None else store.now() + time_budget_s
    if not trials and sweep.status is SweepStatus.FAILED and sweep.test_metrics is None:
        # every trial ended, retrain-and-test did not: finalize (and retrain) once more
        generation = store.reopen(sweep_id, [], deadline=deadline, n_trials=sweep.n_trials)
        app.send_task(
            FINALIZE_SWEEP,
            args=([], sweep_id),
            kwargs={"generation": generation},
            queue=sweep.config.queue,
            task_id=finalize_task_id(sweep_id, generation),
        )
        return Continued([], new_chord=False)
    if not trials:
        hint = "" if retry_failed else " (failed trials run again with --retry-failed)"
        raise ConfigError(f"sweep {sweep_id}: no trial left to resume{hint}")
    _reopen_and_send(store, app, sweep, trials, trials, deadline=deadline)
    return Continued(trials, new_chord=True)


def _recover_interrupted(store: SweepStore, app: Any, sweep: SweepRecord) -> Continued:
    """Queue again what an interrupted sweep lost, unless a live worker still holds one of
    its trials (then its workers' reaper looks after it)."""
    from smptune.queue.lease import lease_ttl_s
    from smptune.queue.recovery import Reaper

    live = [n for n in store.running_numbers(sweep.id) if store.lease_exists(sweep.id, n)]
    retraining = sweep.status is SweepStatus.RETRAINING and store.retrain_held(sweep.id)
    if live or retraining:
        held = f"trial {', '.join(map(str, live))}" if live else "its retrain-and-test"
        raise ConfigError(
            f"sweep {sweep.id} is {sweep.status}: a live worker holds {held}, so it is "
            f"running (producer status shows it); a lost worker's lease lapses within "
            f"{lease_ttl_s():.0f} s, and its workers' reaper queues its trial again"
        )
    requeued = Reaper(store, app, grace_s=0.0, finalize_grace_s=0.0).recover(sweep.id)
    return Continued(requeued, new_chord=False, interrupted=True)


def extend(
    store: SweepStore,
    app: Any,
    sweep_id: str,
    n: int,
    *,
    defaults: ParamsView,
    time_budget_s: float | None = None,
) -> Continued:
    """``n`` more trials: random search continues its seeded stream (skipping configurations
    already trained), adaptive samplers choose each when it starts, from every trial."""
    if n < 1:
        raise ConfigError(f"--trials: must be >= 1, got {n}")
    sweep = store.get_sweep(sweep_id)
    config = sweep.config
    if config.is_grid:
        raise ConfigError(f"sweep {sweep_id} is a grid: it has no more configurations")
    if config.is_open_ended:
        raise ConfigError(f"sweep {sweep_id} has no n_trials: it grows until its budget ends")
    params = {} if config.is_adaptive else _more_configurations(store, config, sweep, n, defaults)
    request = sweep.trial_request
    if not sweep.status.terminal and request is not None and request.group:
        keys = (
            app.backend.get_key_for_group(request.group, ".s"),
            app.backend.get_key_for_group(request.group, ".t"),
            app.backend.get_key_for_group(request.group, ".j"),
        )
        first = store.extend_running(sweep_id, n, keys, params.values())
        if first is not None:
            crash_point("extend.counted")
            trials = list(range(first, first + n))
            register_planned(store.r, config, params.values())
            for number in trials:
                send_one(
                    app,
                    sweep_id,
                    number,
                    routed(store.r, sweep_id, config, number, request.for_trial(sweep_id, number)),
                    TRIAL_PRIORITY,
                    f"trial {number} (sweep={sweep_id}, extended)",
                )
            return Continued(trials, new_chord=False)
    if not sweep.status.terminal:
        raise ConfigError(
            f"sweep {sweep_id} is {sweep.status} and finalizing: extend it once it has ended"
        )
    trials = list(range(sweep.n_trials, sweep.n_trials + n))
    deadline = None if time_budget_s is None else store.now() + time_budget_s
    # numbered from the n_trials read above: a racing extend that reopened it first makes
    # this one fail, nothing written (SweepConflictError), never hand out its numbers too
    _reopen_and_send(store, app, sweep, [], trials, add=n, params=params, deadline=deadline)
    return Continued(trials, new_chord=True)


def _more_configurations(
    store: SweepStore, config: SweepConfig, sweep: SweepRecord, n: int, defaults: ParamsView
) -> dict[int, Params]:
    """``n`` configurations for trials ``n_trials ..``: the sampler's plan continued past
    those the sweep drew (random search: its seeded stream), without one it already has."""
    from smptune.search.distributions import with_defaults

    seen = {json.dumps(t.params, sort_keys=True) for t in store.trials(sweep.id)}
    out: dict[int, Params] = {}
    drawn = sweep.n_trials - len(config.enqueue)
    batch = config.sampler_spec.planned_after(config, drawn, 100 * n)
    for sample in batch:
        params = with_defaults(config.hyperparameters, defaults, sample)
        key = json.dumps(params, sort_keys=True)
        if key in seen:
            continue
        seen.add(key)
        out[sweep.n_trials + len(out)] = params
        if len(out) == n:
            return out
    raise ConfigError(
        f"--trials: the search space has only {len(out)} configurations this sweep has not "
        f"trained yet (asked for {n})"
    )


def _reopen_and_send(
    store: SweepStore,
    app: Any,
    sweep: SweepRecord,
    forget: list[int],
    trials: list[int],
    **reopen: Any,
) -> None:
    """Reopen an ended sweep (``forget``: the trials that run again; ``reopen``: the rest of
    :meth:`SweepStore.reopen`'s arguments) recorded ``submitting`` with a new chord whose
    finalize is the new generation's, then send that chord of ``trials``."""
    from smptune.queue.submit import new_chord, send_chord

    config = sweep.config
    templates: dict[int, TrialRequest] = {}

    def chord(generation: int) -> TrialRequest:
        templates[generation] = new_chord(app, config, sweep.id, generation)
        return templates[generation]

    generation = store.reopen(
        sweep.id, forget, n_trials=sweep.n_trials, chord=chord, chord_size=len(trials), **reopen
    )
    crash_point("continue.reopened")
    argsreprs = [f"trial {n} (sweep={sweep.id}, continued)" for n in trials]
    routes = trial_queues(store.r, sweep.id, config, trials)
    register_planned(store.r, config, [store.params_or_none(sweep.id, n) for n in routes])
    send_chord(
        app,
        sweep.id,
        templates[generation],
        argsreprs,
        trials=trials,
        alive=lambda: store.sending(sweep.id),
        routes=routes,
    )
    store.submitted(sweep.id)
