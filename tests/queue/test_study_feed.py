"""A worker's view of a study, fed from the store's change feed: what it reads, what it asks."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

from queue_sweeps import adaptive_sweep, record_trials

from smptune.fakes import QuadraticTrainable
from smptune.queue.store import SweepStore
from smptune.queue.study_feed import StudyFeed
from smptune.worker.asking import choose_params


def test_the_feed_names_each_trial_once_per_change_in_the_order_written(
    store: SweepStore, tmp_path: Path
):
    sweep_id = adaptive_sweep(store, tmp_path, n_trials=10)
    assert store.changed_since(sweep_id, 0) == ([], 0)
    record_trials(store, sweep_id, range(3))  # params, then the final record: 2 changes each
    numbers, last = store.changed_since(sweep_id, 0)
    assert (numbers, last) == ([0, 1, 2], 6)
    store.set_params_once(sweep_id, 5, {"x": 0.0})
    store.set_params_once(sweep_id, 5, {"x": 2.0})  # a second copy records nothing
    assert store.changed_since(sweep_id, last) == ([5], 7)
    assert store.params(sweep_id, 5) == {"x": 0.0}


def test_a_view_enters_only_what_changed_and_holds_running_trials_as_running(
    store: SweepStore, tmp_path: Path
):
    sweep_id = adaptive_sweep(store, tmp_path, n_trials=40)
    config = store.get_sweep(sweep_id).config
    record_trials(store, sweep_id, range(20))
    feed = StudyFeed(store, sweep_id, config, 1)
    view = feed.refresh()
    states = [t.state.name for t in view.study.trials]
    assert len(view) == 20 and states.count("COMPLETE") == 18 and states.count("FAIL") == 2
    # a trial that starts (its configuration recorded) enters as RUNNING, then finishes
    store.set_params_once(sweep_id, 20, {**QuadraticTrainable.defaults, "x": 1.0})
    assert [t.state.name for t in feed.refresh().study.trials][-1] == "RUNNING"
    reads = []
    original = store.trials
    store.trials = lambda s, numbers=None: reads.append(list(numbers)) or original(s, numbers)
    store.finish_trial(sweep_id, 20, {"status": "complete", "score": 0.2})
    view = feed.refresh()
    assert reads == [[20]]  # one trial read, not 21
    assert view.study.trials[-1].state.name == "COMPLETE" and len(view) == 21


def test_a_finished_trial_that_ran_on_and_a_sweep_created_again_rebuild_the_view(
    store: SweepStore, tmp_path: Path
):
    sweep_id = adaptive_sweep(store, tmp_path, n_trials=10)
    config = store.get_sweep(sweep_id).config
    record_trials(store, sweep_id, range(1, 4))
    feed = StudyFeed(store, sweep_id, config, 1)
    assert all(t.value is not None for t in feed.refresh().study.trials)
    # trial 1 is reopened (a continued sweep) and ends again with another score
    store.r.srem(f"smptune:sweep:{sweep_id}:finished", 1)
    store.finish_trial(sweep_id, 1, {"status": "complete", "score": 0.99})
    values = {t.user_attrs["trial"]: t.value for t in feed.refresh().study.trials}
    assert values[1] == 0.99 and len(values) == 3
    # the sweep is deleted and one of the same id created: its feed starts again
    store.delete_sweep(sweep_id, force=True)
    adaptive_sweep(store, tmp_path, n_trials=10)
    record_trials(store, sweep_id, range(1))
    assert [t.user_attrs["trial"] for t in feed.refresh().study.trials] == [0]


def test_an_ask_is_recorded_once_and_stays_in_the_view_as_its_trial(
    store: SweepStore, tmp_path: Path
):
    sweep_id = adaptive_sweep(store, tmp_path, n_trials=40)
    config = store.get_sweep(sweep_id).config
    record_trials(store, sweep_id, range(30))
    params = choose_params(store, config, sweep_id, 30, QuadraticTrainable.defaults)
    assert store.params(sweep_id, 30) == params
    assert choose_params(store, config, sweep_id, 30, QuadraticTrainable.defaults) == params
    # TPE learnt: the score peaks at x = 1, most of the recorded x are far from it
    asked = [
        choose_params(store, config, sweep_id, n, QuadraticTrainable.defaults)["x"]
        for n in range(31, 40)
    ]
    assert sum(abs(x - 1) < 1.0 for x in asked) >= 5, asked


def _ask_many(url: str, sweep_id: str, numbers: list[int], out: multiprocessing.Queue) -> None:
    """One worker process's asks: the configuration of each trial, or the error it raised."""
    store = SweepStore.from_url(url)
    config = store.get_sweep(sweep_id).config
    for n in numbers:
        try:
            params = choose_params(store, config, sweep_id, n, QuadraticTrainable.defaults)
            out.put((n, params["x"], None))
        except Exception as exc:  # a trial that would be recorded failed
            out.put((n, None, repr(exc)))


def test_sixteen_concurrent_asks_on_two_thousand_recorded_trials_fail_none(
    store: SweepStore, redis_server, tmp_path: Path
):
    """16 worker processes ask at once, 3 trials each, on a sweep of 2,000 recorded trials:
    no ask fails (there is no fleet-wide lock to wait for), each trial gets one recorded
    configuration, and the asks do not collapse onto one point."""
    sweep_id = adaptive_sweep(store, tmp_path, n_trials=2048)
    record_trials(store, sweep_id, range(2000))
    context = multiprocessing.get_context("spawn")
    out = context.Queue()
    askers = [
        context.Process(
            target=_ask_many,
            args=(redis_server.url, sweep_id, [2000 + 3 * k + i for i in range(3)], out),
        )
        for k in range(16)
    ]
    for process in askers:
        process.start()
    answers = [out.get(timeout=300) for _ in range(48)]
    for process in askers:
        process.join(timeout=60)
    failed = [(n, error) for n, _, error in answers if error is not None]
    assert failed == []
    assert sorted(n for n, _, _ in answers) == list(range(2000, 2048))
    for n, x, _ in answers:
        assert store.params(sweep_id, n)["x"] == x  # what the trial runs is what was recorded
    assert len({round(x, 6) for _, x, _ in answers}) == 48


def test_gp_asks_a_study_of_the_best_and_the_most_recent_past_its_limit(
    store: SweepStore, tmp_path: Path
):
    from smptune.search.study_view import GP_LIMIT

    sweep_id = adaptive_sweep(store, tmp_path, n_trials=GP_LIMIT + 120, sampler="gp")
    config = store.get_sweep(sweep_id).config
    record_trials(store, sweep_id, range(GP_LIMIT + 100))
    store.set_params_once(sweep_id, GP_LIMIT + 100, {**QuadraticTrainable.defaults, "x": 0.5})
    view = StudyFeed(store, sweep_id, config, 1).refresh()
    subset = view._gp_subset()
    finished = [t for t in subset.trials if t.state.is_finished()]
    running = [t for t in subset.trials if not t.state.is_finished()]
    assert len(finished) == GP_LIMIT and len(running) == 1
    every = [t for t in view.study.trials if t.state.name == "COMPLETE"]
    best = sorted(every, key=lambda t: t.value, reverse=True)[: GP_LIMIT // 2]
    kept = {t.user_attrs["trial"] for t in finished}
    assert {t.user_attrs["trial"] for t in best} <= kept  # the best half
    assert set(range(GP_LIMIT + 100 - 50, GP_LIMIT + 100)) <= kept  # and the latest


def test_a_trial_that_ran_out_of_memory_reaches_the_view_as_a_violated_constraint(
    store: SweepStore, tmp_path: Path
):
    import json

    # Given a TPE sweep with finished trials, and trial 20 running in this worker's view
    sweep_id = adaptive_sweep(store, tmp_path, n_trials=40)
    config = store.get_sweep(sweep_id).config
    record_trials(store, sweep_id, range(20))
    feed = StudyFeed(store, sweep_id, config, 1)
    store.set_params_once(sweep_id, 20, {**QuadraticTrainable.defaults, "x": 2.5})
    assert [t.state.name for t in feed.refresh().study.trials][-1] == "RUNNING"

    # When it ends infeasible (out of memory), as a worker records it
    oom = {"fold": 0, "repeat": 0, "batch_size": 64, "error": "OutOfMemoryError: CUDA"}
    record = {"status": "infeasible", "error": "out of memory at fold 0 seed 0"}
    store.finish_trial(sweep_id, 20, {**record, "out_of_memory": json.dumps(oom)})

    # Then the change feed brings it to the view: complete, its constraint violated, valued
    # at the worst complete score; the complete trials meet the constraint
    trials = feed.refresh().study.trials
    held = next(t for t in trials if t.user_attrs["trial"] == 20)
    assert held.state.name == "COMPLETE" and held.system_attrs["constraints"] == (1.0,)
    complete = [t for t in trials if t.user_attrs["trial"] != 20 and t.state.name == "COMPLETE"]
    assert held.value == min(t.value for t in complete)
    assert all(t.system_attrs["constraints"] == (0.0,) for t in complete)
    # and the store counts it, and reads back what it tried
    assert store.get_sweep(sweep_id).count("infeasible") == 1
    (infeasible,) = [t for t in store.trials(sweep_id) if t.status == "infeasible"]
    assert infeasible.out_of_memory is not None and infeasible.out_of_memory.batch_size == 64
