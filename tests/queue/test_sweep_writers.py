"""Two writers of one sweep: ids that cannot collide, a sweep recorded once, and two extends
of one ended sweep racing each other, on a real Redis."""

from __future__ import annotations

import calendar
import re
import threading
import time

import pytest

from smptune.config import load_config
from smptune.errors import ExitCode, SmptuneError
from smptune.fakes import QuadraticTrainable
from smptune.queue import resume
from smptune.queue.store import SweepStore
from smptune.queue.submit import new_sweep_id, plan_configurations

from conftest import write_config


def test_sweep_ids_of_one_name_in_one_second_never_collide_and_sort_by_time():
    # When many sweeps of one name are given ids within the same second
    ids = [new_sweep_id("My Sweep!") for _ in range(3000)]

    # Then each is different, readable (name, UTC time, 64 random bits) and sorts by time
    assert len(set(ids)) == len(ids)
    pattern = re.compile(r"^my-sweep-(\d{8}-\d{6})-[0-9a-f]{16}$")
    assert all(pattern.match(i) for i in ids), ids[0]
    stamp = pattern.match(ids[0]).group(1)  # type: ignore[union-attr]
    assert abs(calendar.timegm(time.strptime(stamp, "%Y%m%d-%H%M%S")) - time.time()) < 5
    later = new_sweep_id("My Sweep!")
    time.sleep(1.1)
    assert new_sweep_id("My Sweep!")[:24] > later[:24]


def test_a_second_sweep_under_an_existing_id_is_refused_and_the_first_kept(
    store: SweepStore, tmp_path
):
    # Given a recorded sweep
    config = load_config(write_config(tmp_path / "s.yaml", n_trials=2)).to_dict()
    first = [{**QuadraticTrainable.defaults, "x": float(i)} for i in range(2)]
    store.create_sweep("same", config, first, 3, str(tmp_path))

    # When another producer records a sweep under the same id
    other = [{**QuadraticTrainable.defaults, "x": 9.0}]
    with pytest.raises(SmptuneError, match="already recorded") as refused:
        store.create_sweep("same", {**config, "name": "other"}, other, 2, "/elsewhere")

    # Then it is refused with an exit code, and nothing of the first sweep changed
    assert refused.value.exit_code != ExitCode.OK
    sweep = store.get_sweep("same")
    assert (sweep.name, sweep.n_trials, sweep.n_folds) == ("quad", 2, 3)
    assert [t.params["x"] for t in store.trials("same")] == [0.0, 1.0]


def _ended_sweep(store: SweepStore, tmp_path, n_trials: int = 4) -> tuple[str, dict]:
    """An ended random-search sweep of ``n_trials`` complete trials."""
    loaded = load_config(write_config(tmp_path / "s.yaml", n_trials=n_trials))
    store.create_sweep("ended", loaded.to_dict(), plan_configurations(loaded), 3, str(tmp_path))
    for n in range(n_trials):
        store.finish_trial("ended", n, {"status": "complete", "score": 0.1 * n})
    store.set_sweep_fields("ended", status="done", finalized_at=time.time(), finished=time.time())
    return "ended", dict(QuadraticTrainable.defaults)


def test_two_racing_extends_of_an_ended_sweep_never_hand_out_one_trial_number_twice(
    store: SweepStore, celery_app, tmp_path, monkeypatch
):
    # Given an ended sweep of four trials, and two producers that both read it before
    # either reopens it (each has chosen its new configurations from the same n_trials)
    sweep_id, defaults = _ended_sweep(store, tmp_path)
    both_read = threading.Barrier(2, timeout=30)
    choose = resume._more_configurations

    def read_then_wait(*args, **kwargs):
        chosen = choose(*args, **kwargs)
        both_read.wait()
        return chosen

    monkeypatch.setattr(resume, "_more_configurations", read_then_wait)
    outcomes: list[object] = [None, None]

    def extend(i: int) -> None:
        try:
            outcomes[i] = resume.extend(store, celery_app, sweep_id, 2, defaults=defaults)
        except SmptuneError as exc:
            outcomes[i] = exc

    # When both extend it at once by two trials
    threads = [threading.Thread(target=extend, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)

    # Then the trials each was given are disjoint, or the later one was refused with a
    # clear message and an exit code, having written nothing
    done = [o for o in outcomes if isinstance(o, resume.Continued)]
    refused = [o for o in outcomes if isinstance(o, SmptuneError)]
    assert len(done) + len(refused) == 2 and done, outcomes
    numbers = [n for o in done for n in o.trials]
    assert len(numbers) == len(set(numbers)), f"one trial number handed out twice: {outcomes}"
    for exc in refused:
        assert "run it again" in str(exc) and exc.exit_code != ExitCode.OK
    sweep = store.get_sweep(sweep_id)
    assert sweep.n_trials == 4 + len(numbers)
    assert sweep.generation == len(done)
    assert sorted(numbers) == list(range(4, sweep.n_trials))
    assert all(store.params_or_none(sweep_id, n) is not None for n in numbers)
    assert store.params_or_none(sweep_id, sweep.n_trials) is None
