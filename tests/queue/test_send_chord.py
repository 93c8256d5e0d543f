"""A chord's trial messages sent as copies of one are what Celery's ``send_task`` sends."""

from __future__ import annotations

import base64
import json
from typing import Any

from smptune.messages import FINALIZE_SWEEP, TrialRequest, finalize_task_id
from smptune.queue.store import SweepStore
from smptune.queue.submit import chord_template, send_chord


def _queued(store: SweepStore, queue: str) -> dict[str, dict[str, Any]]:
    """The messages waiting on ``queue`` (any of its priority lists) by task id, body
    decoded, without what differs between any two sends (kombu's random delivery tag)."""
    messages = {}
    keys = [queue, *store.r.keys(f"{queue}\x06\x16*")]
    for raw in (raw for key in keys for raw in store.r.lrange(key, 0, -1)):
        message = json.loads(raw)
        message["body"] = json.loads(base64.b64decode(message["body"]))
        assert message["properties"].pop("delivery_tag")
        messages[message["headers"]["id"]] = message
    return messages


def _send(celery_app: Any, queue: str, sent_events: bool, trials: list[int] | None) -> None:
    callback = celery_app.signature(
        FINALIZE_SWEEP, args=("s1",), queue=queue, task_id=finalize_task_id("s1")
    )
    template = chord_template(
        TrialRequest(queue=queue, soft_time_limit=60.0, time_limit=90.0), callback
    )
    # one group id for both sends, as a resend of the same chord has
    template = TrialRequest(**{**template.to_dict(), "group": "the-group"})
    template.chord.options["group_id"] = "the-group"
    celery_app.conf.task_send_sent_event = sent_events
    argsreprs = [f"trial {n}: x=0.{n}" for n in trials or range(5)]
    send_chord(celery_app, "s1", template, argsreprs, trials=trials, chord_size=5)


def test_copies_of_one_message_are_the_messages_send_task_sends(store, celery_app):
    # Given a chord of five trials sent the usual way (task-sent events on: one send_task
    # per trial) and the same chord sent as copies (events off)
    _send(celery_app, "usual", sent_events=True, trials=None)
    _send(celery_app, "copies", sent_events=False, trials=None)

    # Then both queues hold the same five messages but for the routing key
    usual, copies = _queued(store, "usual"), _queued(store, "copies")
    assert sorted(usual) == [f"s1-trial-{n}" for n in range(5)]
    for message in copies.values():
        assert message["properties"]["delivery_info"]["routing_key"] == "copies"
        message["properties"]["delivery_info"]["routing_key"] = "usual"
        message["body"][2]["chord"]["options"]["queue"] = "usual"
        message["headers"]["origin"] = usual["s1-trial-0"]["headers"]["origin"]
    assert copies == usual
    assert copies["s1-trial-3"]["body"][0] == ["s1", 3]
    assert copies["s1-trial-3"]["headers"]["group_index"] == 3


def test_copies_of_some_trials_keep_their_numbers(store, celery_app):
    # Given the reaper's resend of trials 1 and 4 only
    _send(celery_app, "usual", sent_events=True, trials=[1, 4])
    _send(celery_app, "copies", sent_events=False, trials=[1, 4])

    # Then each copy is that trial's message, with its own task id, args and group index
    usual, copies = _queued(store, "usual"), _queued(store, "copies")
    assert sorted(copies) == sorted(usual) == ["s1-trial-1", "s1-trial-4"]
    for task_id, message in copies.items():
        assert message["headers"]["root_id"] == task_id == message["properties"]["correlation_id"]
        assert message["headers"]["group_index"] == usual[task_id]["headers"]["group_index"]
        assert message["body"][0] == usual[task_id]["body"][0]
        assert message["headers"]["argsrepr"] == usual[task_id]["headers"]["argsrepr"]
