"""Trial and sweep states and records: one enum each, frozen records decoded by the store."""

from __future__ import annotations

import dataclasses
import json

import pytest

from smptune.config import SweepConfig
from smptune.records import (
    OUTCOMES,
    OutOfMemory,
    SweepRecord,
    SweepStatus,
    TrialRecord,
    TrialStatus,
)


def test_final_and_scored_trial_statuses():
    assert [s.value for s in OUTCOMES] == [
        "complete",
        "pruned",
        "stopped",
        "skipped",
        "failed",
        "cancelled",
        "infeasible",
    ]
    assert {s for s in TrialStatus if s.finished} == set(OUTCOMES)
    assert {s.value for s in TrialStatus if s.scored} == {"complete", "pruned", "stopped"}
    assert {s.value for s in TrialStatus if s.partial} == {"pruned", "stopped"}
    assert TrialStatus.PRUNED.counter == "trials_pruned"
    assert {s.value for s in SweepStatus if s.terminal} == {"done", "failed", "cancelled"}


def test_a_status_reads_and_writes_as_its_string():
    status = TrialStatus("complete")
    assert status is TrialStatus.COMPLETE and status == "complete"
    assert f"{status}" == str(status) == "complete" and f"{status:>9}" == " complete"
    assert json.dumps({"status": status}) == '{"status": "complete"}'
    assert {status: 1}["complete"] == 1
    with pytest.raises(ValueError):
        TrialStatus("exploded")


def test_records_are_frozen_and_a_trial_record_becomes_plain_data():
    trial = TrialRecord(3, TrialStatus.PRUNED, params={"x": 1}, folds={0: {"metrics": {}}})
    with pytest.raises(dataclasses.FrozenInstanceError):
        trial.score = 1.0  # type: ignore[misc]
    row = trial.to_dict()
    assert row["status"] == "pruned" and type(row["status"]) is str
    assert json.loads(json.dumps(row))["folds"] == {"0": {"metrics": {}}}
    assert row["device_s"] == trial.device_s == 0.0
    sweep = SweepRecord(
        id="s",
        name="s",
        config=SweepConfig(hyperparameters={"x": [1, 2]}),
        status=SweepStatus.RUNNING,
        created=0.0,
        n_trials=4,
        n_folds=2,
        n_runs=2,
        artifacts_dir="/tmp",
        counts={TrialStatus.COMPLETE: 2, TrialStatus.FAILED: 1},
    )
    assert sweep.count("complete") == 2 and sweep.count(TrialStatus.PRUNED) == 0
    assert sweep.n_finished == 3 and not sweep.status.terminal


def test_an_infeasible_trial_is_final_unscored_and_keeps_what_it_tried():
    # Given a trial that ran out of memory in fold 1 with batch size 32, tried again with 16
    hit = OutOfMemory(
        fold=1, repeat=0, batch_size=32, error="OutOfMemoryError: CUDA", retried_batch_size=16
    )
    trial = TrialRecord(
        4, TrialStatus.INFEASIBLE, params={"x": 1}, out_of_memory=hit, batch_size=16
    )
    # Then it is final, has no score, and is counted as trials_infeasible
    status = trial.status
    assert status.finished and not status.scored and not status.partial
    assert status.counter == "trials_infeasible"
    # and its plain data holds what it tried, which reads back equal
    row = json.loads(json.dumps(trial.to_dict()))
    assert row["out_of_memory"] == {
        "fold": 1,
        "repeat": 0,
        "batch_size": 32,
        "error": "OutOfMemoryError: CUDA",
        "retried_batch_size": 16,
    }
    assert row["batch_size"] == 16
    assert OutOfMemory.from_dict(row["out_of_memory"]) == hit
    assert hit.describe() == "fold 1 seed 0 with batch_size 32"
    assert OutOfMemory(0, 1, None, "MemoryError").describe() == "fold 0 seed 1"
