"""The median pruner's steps in Redis: percentiles as numpy's, written with a trial's end."""

from __future__ import annotations

import math
import random

import numpy as np
from queue_sweeps import adaptive_sweep

from smptune.queue.store import SweepStore
from smptune.records import TrialStatus


def test_a_percentile_of_the_complete_trials_at_a_step_is_numpys(store: SweepStore, tmp_path):
    sweep_id = adaptive_sweep(store, tmp_path, n_trials=60)
    rng = random.Random(3)
    values: dict[int, list[float]] = {0: [], 1: []}
    for n in range(60):
        status = rng.choice([TrialStatus.COMPLETE] * 3 + [TrialStatus.FAILED])
        steps = {0: rng.random(), 1: rng.random()} if n % 5 else {0: rng.random()}
        if n == 7:
            steps[1] = math.nan  # no value: left out, as nanpercentile leaves it
        score = rng.random() if status is TrialStatus.COMPLETE else None
        record = {"status": status.value, "score": score}
        store.finish_trial(sweep_id, n, record, steps=steps)
        if status is TrialStatus.COMPLETE:
            for step, value in steps.items():
                if math.isfinite(value):
                    values[step].append(value)
    stats = store.complete_trials(sweep_id, "max")
    assert stats.count() == len(values[0])
    for step in (0, 1):
        for q in (0.0, 25.0, 50.0, 90.0, 100.0):
            assert math.isclose(stats.percentile(step, q, 1), np.percentile(values[step], q))
    assert math.isnan(stats.percentile(2, 50.0, 1))  # no trial reached step 2
    assert math.isnan(stats.percentile(1, 50.0, len(values[1]) + 1))  # fewer than n_min
    best = stats.best()
    assert (
        best is not None
        and best.score
        == max(
            store.r.zrange(  # the scores zset's top
                f"smptune:sweep:{sweep_id}:scores", 0, -1, withscores=True
            ),
            key=lambda row: row[1],
        )[1]
    )


def test_a_second_copy_of_a_trial_end_adds_no_second_value(store: SweepStore, tmp_path):
    sweep_id = adaptive_sweep(store, tmp_path, n_trials=2)
    record = {"status": "complete", "score": 0.5}
    store.finish_trial(sweep_id, 0, record, steps={0: 0.5})
    store.finish_trial(sweep_id, 0, {"status": "complete", "score": 0.9}, steps={0: 0.9})
    stats = store.complete_trials(sweep_id, "max")
    assert stats.count() == 1 and stats.percentile(0, 50.0, 1) == 0.5
