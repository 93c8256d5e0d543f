"""Fences between hosts, on a real Redis: a finalize of an earlier generation writes nothing
once the sweep was reopened, and the stamps the reaper compares are Redis's time whatever a
host's own clock says."""

from __future__ import annotations

import time

from smptune.config import load_config
from smptune.fakes import QuadraticTrainable
from smptune.queue.store import STALE, SweepStore
from smptune.records import SweepStatus

from conftest import write_config


def _sweep(store: SweepStore, tmp_path) -> str:
    config = load_config(write_config(tmp_path / "s.yaml", n_trials=1)).to_dict()
    store.create_sweep("s1", config, [dict(QuadraticTrainable.defaults)], 2, str(tmp_path))
    return "s1"


def test_a_finalize_of_an_earlier_generation_writes_nothing_once_the_sweep_was_reopened(
    store: SweepStore, tmp_path
):
    # Given a finalize of generation 0 holding its lease (a fallback queued behind long
    # trials), and the user's extend that reopened the sweep meanwhile
    sweep_id = _sweep(store, tmp_path)
    lease = store.finalize_lease(sweep_id, 0, host="host-a")
    assert lease.try_acquire()
    store.set_sweep_fields(sweep_id, generation=1, status="running")

    # When it writes its outcome
    outcome = store.finish_finalize(sweep_id, 0, lease.value, SweepStatus.DONE, ended=True)

    # Then it is refused as stale: the reopened sweep runs on, unfinalized and active
    assert outcome == STALE
    sweep = store.get_sweep(sweep_id)
    assert sweep.status is SweepStatus.RUNNING and sweep.finalized_at is None
    assert sweep_id in store.active_sweeps()


def test_a_host_whose_clock_is_90_s_behind_stamps_its_trials_with_redis_time(
    store: SweepStore, tmp_path, monkeypatch
):
    # Given a worker host whose clock is 90 s behind the fleet's
    sweep_id = _sweep(store, tmp_path)
    real = time.time
    monkeypatch.setattr(time, "time", lambda: real() - 90)

    # When it records a trial's end and a cancel
    store.finish_trial(sweep_id, 0, {"status": "complete", "score": 1.0})
    store.request_cancel(sweep_id)

    # Then the stamps another host's reaper compares are the Redis server's time
    redis_now = store.now()
    sweep = store.get_sweep(sweep_id)
    assert sweep.last_finished is not None and abs(redis_now - sweep.last_finished) < 5
    assert sweep.cancel_requested is not None and abs(redis_now - sweep.cancel_requested) < 5
    (trial,) = store.trials(sweep_id)
    assert trial.finished is not None and abs(redis_now - trial.finished) < 5
