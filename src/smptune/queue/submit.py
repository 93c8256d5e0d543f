"""Turning a validated config into a recorded sweep and ONE chord on the queue."""

from __future__ import annotations

import json
import re
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from smptune.config import SweepConfig
from smptune.errors import BrokerError, ConfigError
from smptune.lifecycle import crash_point
from smptune.messages import (
    FINALIZE_SWEEP,
    TRIAL_PRIORITY,
    TrialRequest,
    finalize_task_id,
    send_trial,
    trial_task_id,
)
from smptune.params import Params, ParamsView
from smptune.queue.routing import register_planned, trial_queue
from smptune.queue.store import SweepStore
from smptune.trainable import load_trainable


def plan_configurations(config: SweepConfig) -> list[Params]:
    """The configurations the sweep's sampler plans at submit, each complete with the
    trainable's defaults (an adaptive or open-ended sweep: only its enqueued ones, the rest
    are asked when each trial starts, checked here on the sampler's probe of them).

    Raises :class:`ConfigError` naming the key for an unknown hyperparameter, a value the
    trainable cannot use, or a trial timeout longer than the broker allows.
    """
    from smptune.retries import max_trial_timeout_s

    if config.trial_timeout > max_trial_timeout_s():
        raise ConfigError(
            f"trial_timeout: {config.trial_timeout:g} s is longer than the broker's visibility "
            f"timeout allows ({max_trial_timeout_s()} s); raise SMPTUNE_VISIBILITY_TIMEOUT"
        )
    trainable = load_trainable(config.trainable)
    for name in config.hyperparameters:
        if name not in trainable.defaults:
            raise ConfigError(
                f"hyperparameters.{name}: unknown hyperparameter for {config.trainable}; "
                f"known: {', '.join(trainable.defaults)}"
            )
    for i, given in enumerate(config.enqueue):
        for name in given:
            if name not in trainable.defaults:
                raise ConfigError(
                    f"enqueue[{i}].{name}: unknown hyperparameter for {config.trainable}; "
                    f"known: {', '.join(trainable.defaults)}"
                )
    sampler = config.sampler_spec
    if sampler.asks_at_start(config.is_open_ended):
        # chosen when each trial starts: check a sample that holds every listed value
        probed = [_complete(trainable, config, c) for c in sampler.probe(config)]
        _validate(trainable, config, probed)
    configurations = [_complete(trainable, config, c) for c in sampler.plan(config)]
    _validate(trainable, config, configurations)
    return configurations


def _complete(trainable: Any, config: SweepConfig, params: ParamsView) -> Params:
    """``params`` with the trainable's defaults for every name the space does not list (an
    inactive conditional entry stays absent)."""
    from smptune.search.distributions import with_defaults

    return with_defaults(config.hyperparameters, trainable.defaults, params)


def _validate(trainable: Any, config: SweepConfig, configurations: list[Params]) -> None:
    settings = config.settings()
    seen: set[str] = set()
    for params in configurations:
        key = json.dumps(params, sort_keys=True, default=str)
        if key not in seen:
            seen.add(key)
            trainable.validate(params, settings)


#: Trials an open-ended sweep is sent with: each that starts queues one more, so this many
#: wait for the next free workers until the time budget is spent.
OPEN_ENDED_QUEUED = 2
#: Messages per Redis round trip when a sweep is sent.
PUBLISH_BATCH = 2000
#: Larger sweeps are sent without task-sent events (see :func:`send_chord`).
SENT_EVENTS_MAX_TRIALS = 1000


def new_sweep_id(name: str) -> str:
    """A sweep id no other producer will draw: ``<name>-<UTC yyyymmdd-hhmmss>-<64 random
    bits in hex>``, readable and sorting by time within a name."""
    slug = re.sub(r"[^a-zA-Z0-9]+", "-", name).strip("-").lower()[:40] or "sweep"
    return f"{slug}-{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}-{secrets.token_hex(8)}"


def submit(
    store: SweepStore,
    config: SweepConfig,
    configurations: list[Params],
    artifacts_dir: Path,
    app: Any,
) -> str:
    """Record the sweep and send one chord on ``app`` (the Celery app, configured for the
    sweep's broker): a ``cv_trial`` per configuration → finalize."""
    from kombu.exceptions import BatchPublishError

    sweep_id = new_sweep_id(config.name)
    if config.n_trials is None:  # open-ended: each trial that starts queues one more
        n_trials = max(OPEN_ENDED_QUEUED, len(configurations))
    elif config.is_adaptive:
        n_trials = int(config.n_trials)
    else:
        n_trials = len(configurations)
    template = new_chord(app, config, sweep_id)
    planned = [configurations[n] if n < len(configurations) else None for n in range(n_trials)]
    routes = {n: trial_queue(config, p) for n, p in enumerate(planned) if p is not None}
    register_planned(store.r, config, planned)  # before a trial waits there
    # recorded "submitting" with its chord's template: a producer killed from here on leaves
    # the reaper what it needs to send the chord itself
    store.create_sweep(
        sweep_id,
        config.to_dict(),
        configurations,
        config.cv_settings.n_folds,
        str(artifacts_dir.resolve()),
        n_trials=n_trials,
        n_runs=config.n_runs,
        time_budget_s=config.time_budget_s,
        time_budget_factor=config.time_budget_factor,
        open_ended=config.is_open_ended,
        trial_request=template,
    )
    crash_point("submit.recorded")
    from smptune.task_labels import trial_argsrepr

    # what Flower shows as args; an adaptive trial's parameters are chosen at run time
    argsreprs = [
        trial_argsrepr(
            sweep_id,
            n,
            configurations[n] if n < len(configurations) else None,
            config.hyperparameters,
        )
        for n in range(n_trials)
    ]
    try:
        send_chord(
            app, sweep_id, template, argsreprs, alive=lambda: store.sending(sweep_id), routes=routes
        )
    except BatchPublishError as exc:  # Redis went away part-way: some trials may be queued
        raise BrokerError(
            f"sending sweep {sweep_id} failed part-way ({exc.__cause__ or exc}); the workers' "
            f"reaper sends the rest, or cancel it (producer cancel {sweep_id})"
        ) from exc
    crash_point("submit.sent")
    # every trial's message is sent: from now on the reaper may treat a missing one as lost,
    # and queue it again with the template (its own task id and group index added)
    store.submitted(sweep_id)
    return sweep_id


def new_chord(app: Any, config: SweepConfig, sweep_id: str, generation: int = 0) -> TrialRequest:
    """The trial template of a new chord of ``sweep_id`` whose callback is the finalize of
    ``generation`` (0: the submit; one more per resume or extend), fenced by it."""
    from smptune.retries import HARD_LIMIT_GRACE_S

    callback = app.signature(
        FINALIZE_SWEEP,
        args=(sweep_id,),
        kwargs={"generation": generation},
        queue=config.queue,
        task_id=finalize_task_id(sweep_id, generation),
    )
    return chord_template(
        TrialRequest(
            queue=trial_queue(config, None),  # what every trial needs (`requires`)
            soft_time_limit=config.trial_timeout,
            time_limit=config.trial_timeout + HARD_LIMIT_GRACE_S,
        ),
        callback,
    )


def chord_template(template: TrialRequest, callback: Any) -> TrialRequest:
    """``template`` with a new chord: its group id, and ``callback`` frozen into it."""
    from celery.utils import uuid

    group_id = uuid()
    callback.freeze(callback.options["task_id"], group_id=group_id)
    return replace(template, group=group_id, chord=callback)


def send_chord(
    app: Any,
    sweep_id: str,
    template: TrialRequest,
    argsreprs: list[str],
    trials: list[int] | None = None,
    chord_size: int | None = None,
    alive: Callable[[], None] | None = None,
    routes: Mapping[int, str] | None = None,
) -> None:
    """Send a sweep's chord (``template``, from :func:`chord_template`): ``cv_trial`` for
    each trial ``trials[i]`` (default ``i``; shown as ``argsreprs[i]``), whose results go to
    the template's callback once all ``chord_size`` (default: these) are in. Sending it again
    is safe: the chord size is set, not added to, and a trial's copies share its task id.
    ``alive()`` is called before each batch (the sender's sign of life). ``routes`` sends
    trial ``n`` to the queue ``routes[n]`` (its capability queue) instead of the template's.

    It sends what ``celery.chord`` sends for a group of plain tasks on the Redis backend (the
    chord size, then each task with its group id, group index and the callback), but through
    one producer that pipelines its publishes in batches of :data:`PUBLISH_BATCH` (one round
    trip per batch instead of one per message) and without Celery's per-signature canvas
    work: 10,000 trials in ~3 s instead of ~60 s on 2 cores.

    Sweeps of more than :data:`SENT_EVENTS_MAX_TRIALS` trials are sent without Celery's
    task-sent events: Flower keeps 10,000 tasks in memory, and the events would double the
    time to submit; their trials show in Flower once a worker receives them. Those are sent
    as copies of one message that Celery and kombu build (see :class:`_MessageCopies`):
    10,000 in ~1 s instead of ~4.5 s.
    """
    assert template.group is not None
    size = len(argsreprs) if chord_size is None else chord_size
    app.backend.set_chord_size(template.group, size)  # before any part can return
    sent_events = app.conf.task_send_sent_event
    app.conf.task_send_sent_event = sent_events and len(argsreprs) <= SENT_EVENTS_MAX_TRIALS
    try:
        # kombu batches only on a connection that never replays a write on its own
        options = {"retry_on_timeout": False}
        with app.connection_for_write(transport_options=options) as conn:
            producer = app.amqp.Producer(conn)
            numbers = list(range(len(argsreprs))) if trials is None else trials
            parts: dict[str, list[tuple[int, str]]] = {}
            for n, argsrepr in zip(numbers, argsreprs, strict=True):
                parts.setdefault((routes or {}).get(n, template.queue), []).append((n, argsrepr))
            for queue, pairs in parts.items():
                _send_part(app, producer, sweep_id, replace(template, queue=queue), pairs, alive)
    finally:
        app.conf.task_send_sent_event = sent_events


def _send_part(
    app: Any,
    producer: Any,
    sweep_id: str,
    template: TrialRequest,
    pairs: list[tuple[int, str]],
    alive: Callable[[], None] | None,
) -> None:
    """Send the trials ``pairs`` (number, argsrepr) of a chord to ``template``'s queue."""
    producer.maybe_declare(app.amqp.queues[template.queue])  # once, not per message

    def send(n: int, argsrepr: str) -> None:
        """Trial ``n``'s message, through Celery."""
        send_trial(
            app,
            sweep_id,
            n,
            template.for_trial(sweep_id, n),
            TRIAL_PRIORITY,
            argsrepr,
            producer=producer,
            declare=[],
            retry=False,  # sent at the batch's flush: retrying is unsafe
        )

    copies = None
    if not app.conf.task_send_sent_event and pairs:
        copies = _MessageCopies.capture(producer, sweep_id, send, pairs[0])
    for start in range(0, len(pairs), PUBLISH_BATCH):
        if alive is not None:
            alive()  # the reaper leaves a sweep alone while its sender makes progress
        if copies is not None:
            copies.send(pairs[start : start + PUBLISH_BATCH])
            continue
        with producer.batch(PUBLISH_BATCH):
            for n, argsrepr in pairs[start : start + PUBLISH_BATCH]:
                send(n, argsrepr)


class _MessageCopies:
    """A chord's trial messages as copies of one that Celery and kombu built.

    ``send_task`` costs ~0.35 ms of Python per message (routing, ``as_task_v2``, saferepr
    of the args, kombu's serialising and augmenting); all a chord's trial messages share
    everything but the trial: its task id (also the message's ``correlation_id`` and, when
    it had none, its ``root_id``), its group index, its args, its argsrepr and kombu's
    ``delivery_tag``. So one message is built the usual way with kombu's ``_put`` caught
    (nothing is sent then), and each trial's is that one with those fields replaced, pushed
    in pipelines of :data:`PUBLISH_BATCH` on a connection that never replays a write, as
    kombu's own batches are (a failure raises :class:`kombu.exceptions.BatchPublishError`).

    Celery's ``before_task_publish``/``after_task_publish`` signals fire once, for the
    caught message; smptune connects neither. A transport other than Redis, a queue with
    ``x-expires``, or an exchange that routes to several queues is sent the usual way.
    """

    def __init__(self, channel: Any, sweep_id: str, queue: str, message: dict[str, Any]) -> None:
        from kombu.utils.json import loads

        self.channel = channel
        self.sweep_id = sweep_id
        self.key = channel._q_for_pri(queue, channel._get_message_priority(message))
        self.message = message
        self.encoding = message["properties"]["body_encoding"]
        _, self.kwargs, self.embed = loads(channel.decode_body(message["body"], self.encoding))  # type: ignore[no-untyped-call]  # kombu leaves it unannotated
        self.first_id = message["headers"]["id"]

    @classmethod
    def capture(
        cls,
        producer: Any,
        sweep_id: str,
        send: Callable[[int, str], None],
        first: tuple[int, str],
    ) -> _MessageCopies | None:
        """The message of trial ``first`` as ``send`` (the chord's own send of one trial)
        builds it, caught before kombu's ``_put``; None where copies of it cannot be sent
        (see the class)."""
        channel = producer.channel
        if not getattr(channel, "supports_batch_publish", False) or not hasattr(
            channel, "_q_for_pri"
        ):
            return None
        caught: list[tuple[str, dict[str, Any]]] = []

        def catch(queue: str, message: dict[str, Any], **kwargs: Any) -> None:
            caught.append((queue, message))

        channel._put = catch  # this instance only, for this one message
        try:
            send(*first)  # as the chord sends each trial
        finally:
            del channel._put
        if len(caught) != 1 or (channel._expires and caught[0][0] in channel._expires):
            return None
        return cls(channel, sweep_id, *caught[0])

    def payload(self, trial: int, argsrepr: str) -> str:
        """Trial ``trial``'s message, as kombu's ``_put`` would push it."""
        from kombu.utils.json import dumps
        from kombu.utils.uuid import uuid

        sweep_id = self.sweep_id
        task_id = trial_task_id(sweep_id, trial)
        message = self.message
        headers = {**message["headers"], "id": task_id, "group_index": trial}
        headers["argsrepr"] = argsrepr
        if headers.get("root_id") == self.first_id:
            headers["root_id"] = task_id
        properties = {**message["properties"], "correlation_id": task_id, "delivery_tag": uuid()}
        if "argsrepr" in properties:
            properties["argsrepr"] = argsrepr
        body = dumps([[sweep_id, trial], self.kwargs, self.embed]).encode()  # type: ignore[no-untyped-call]  # kombu leaves it unannotated
        encoded, _ = self.channel.encode_body(body, self.encoding)
        return str(
            dumps({**message, "body": encoded, "headers": headers, "properties": properties})  # type: ignore[no-untyped-call]  # kombu leaves it unannotated
        )

    def send(self, pairs: list[tuple[int, str]]) -> None:
        """Push the messages of ``pairs`` (trial, argsrepr), in order, in ONE ``LPUSH``:
        Redis appends (and with ``appendfsync always`` fsyncs) its AOF once for the lot,
        where a pipeline of one ``LPUSH`` a message is fsynced once per 16 KB it reads (3.4 s
        for 10,000 trials on a loaded disk, 0.8 s so). All of them are queued or none."""
        from kombu.exceptions import BatchPublishError

        payloads = [self.payload(trial, argsrepr) for trial, argsrepr in pairs]
        with self.channel.conn_or_acquire() as client:
            try:
                client.lpush(self.key, *payloads)
            except Exception as exc:
                why = "Redis publish batch failed; delivery is uncertain"
                raise BatchPublishError(why) from exc
