"""Message identity: task names and ids, and the trial request as it is stored and read back,
including the JSON that sweeps recorded before this module existed."""

from __future__ import annotations

import json

from smptune.messages import (
    CV_TRIAL,
    DEFAULT_QUEUE,
    FINALIZE_SWEEP,
    RETRAIN_AND_TEST,
    TrialRequest,
    finalize_task_id,
    trial_task_id,
)

#: A trial's ``request`` field as a worker recorded it before the change (``tasks._request_info``).
STORED_REQUEST = {
    "id": "s-20261201-trial-3",
    "group": "g-1",
    "group_index": 3,
    "chord": {"task": "smptune.finalize_sweep", "args": ["s-20261201"], "options": {}},
    "root_id": "r-1",
    "parent_id": None,
    "queue": "gpus",
    "soft_time_limit": 600.0,
    "time_limit": 630.0,
}


def test_names_and_ids_on_the_wire():
    assert (CV_TRIAL, FINALIZE_SWEEP, RETRAIN_AND_TEST) == (
        "smptune.cv_trial",
        "smptune.finalize_sweep",
        "smptune.retrain_and_test",
    )
    assert trial_task_id("s", 7) == "s-trial-7" and finalize_task_id("s") == "s-finalize"
    assert DEFAULT_QUEUE == "smptune"


def test_a_stored_request_reads_back_and_writes_the_same_json():
    request = TrialRequest.from_dict(json.loads(json.dumps(STORED_REQUEST)))
    assert request.id == "s-20261201-trial-3" and request.group_index == 3
    assert request.to_dict() == STORED_REQUEST


def test_a_template_completed_for_a_trial_gets_its_own_id_and_group_index():
    template = TrialRequest.from_dict(
        {"group": "g-1", "chord": {"task": "x"}, "queue": "gpus", "soft_time_limit": 5.0}
    )
    assert set(template.template_dict()) == {
        "group",
        "chord",
        "queue",
        "soft_time_limit",
        "time_limit",
    }
    request = template.for_trial("s", 4)
    assert (request.id, request.group_index, request.group) == ("s-trial-4", 4, "g-1")
    assert request.queue == "gpus" and template.id is None


def test_an_empty_or_partial_record_reads_with_defaults():
    assert TrialRequest.from_dict(None) == TrialRequest.from_dict({}) == TrialRequest()
    partial = TrialRequest.from_dict({"id": "x", "queue": "", "unknown": 1})
    assert partial.id == "x" and partial.queue == DEFAULT_QUEUE and partial.chord is None


def test_a_chord_trials_compact_request_expands_to_what_it_was():
    from smptune.messages import TrialRequest, trial_task_id

    chord = {"task": "smptune.finalize_sweep", "args": ["s"], "options": {"group_id": "g"}}
    template = TrialRequest(group="g", chord=chord, queue="q", soft_time_limit=5.0, time_limit=9.0)
    usual = template.for_trial("s", 7)
    usual = TrialRequest(**{**usual.to_dict(), "root_id": usual.id})
    own, shared = usual.compact("s", 7)
    assert own == {"group": "g"} and shared is not None and "chord" in shared
    assert TrialRequest.expand("s", 7, own, shared) == usual
    # what differs from a chord trial's defaults is kept with the trial
    odd = TrialRequest(**{**usual.to_dict(), "root_id": "r", "parent_id": "p"})
    own, shared = odd.compact("s", 7)
    assert own == {"group": "g", "root_id": "r", "parent_id": "p"}
    assert TrialRequest.expand("s", 7, own, shared) == odd
    # a request outside a chord, and the full form recorded before, stay whole
    alone = TrialRequest(id=trial_task_id("s", 7), queue="q")
    assert alone.compact("s", 7) == (alone.to_dict(), None)
    assert TrialRequest.expand("s", 7, usual.to_dict(), None) == usual
