"""Message identity: the names, ids, priorities, queue and request of every smptune task.

Whatever a message carries on the wire is defined here once, so that a submitted trial, the
same trial recorded at its start, and its copy queued again by the reaper agree. Imports
nothing else of smptune: config, queue/, tasks and workers all read it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import Any, TypeVar

__all__ = [
    "CHORD_FIELDS",
    "CV_TRIAL",
    "DEFAULT_QUEUE",
    "FINALIZE_SWEEP",
    "REQUEUE_PRIORITY",
    "RETRAIN_AND_TEST",
    "TEMPLATE_FIELDS",
    "TRIAL_PRIORITY",
    "TrialRequest",
    "finalize_task_id",
    "send_trial",
    "trial_task_id",
]

#: Task names on the wire.
CV_TRIAL = "smptune.cv_trial"
FINALIZE_SWEEP = "smptune.finalize_sweep"
RETRAIN_AND_TEST = "smptune.retrain_and_test"

#: The queue a sweep's tasks go to, and workers consume, unless the config names another.
DEFAULT_QUEUE = "smptune"

#: Trials are queued at priority 5; a lost trial goes back at 0, ahead of those never started.
TRIAL_PRIORITY = 5
REQUEUE_PRIORITY = 0

#: The fields of a sweep's ``trial_request`` template: what all its trials share.
TEMPLATE_FIELDS = ("group", "chord", "queue", "soft_time_limit", "time_limit")
#: What the trials of one chord share, stored once per chord (its group) beside each
#: trial's compact request (see :meth:`TrialRequest.compact`).
CHORD_FIELDS = ("chord", "queue", "soft_time_limit", "time_limit")


def trial_task_id(sweep_id: str, trial: int) -> str:
    """The Celery task id of a trial: stable, so a requeued copy keeps it."""
    return f"{sweep_id}-trial-{trial}"


def finalize_task_id(sweep_id: str, generation: int = 0) -> str:
    """The Celery task id of a sweep's chord callback (``generation``: how many times the
    sweep was resumed or extended since it was submitted)."""
    return f"{sweep_id}-finalize" + (f"-{generation}" if generation else "")


@dataclass(frozen=True)
class TrialRequest:
    """What a trial's message carries besides its args: enough to send it again under the
    same task id, group and chord, so that the chord still counts it once.

    Stored as JSON twice: the sweep's ``trial_request`` template at submit
    (:meth:`template_dict`, no task id or group index) and each trial's ``request`` at its
    start (:meth:`to_dict`, every field).
    """

    id: str | None = None
    group: str | None = None
    group_index: int | None = None
    chord: dict[str, object] | None = None
    root_id: str | None = None
    parent_id: str | None = None
    queue: str = DEFAULT_QUEUE
    soft_time_limit: float | None = None
    time_limit: float | None = None

    @classmethod
    def from_dict(cls, data: Mapping[str, object] | None) -> TrialRequest:
        """The request stored as ``data``; missing fields (an empty or absent record, a
        template) are None, a missing queue the default one, unknown keys ignored; a field
        of the wrong JSON type is a ``ValueError``."""
        data = data or {}
        queue = _field(data, "queue", str)
        chord = _field(data, "chord", dict)
        return cls(
            id=_field(data, "id", str),
            group=_field(data, "group", str),
            group_index=_field(data, "group_index", int),
            chord=None if chord is None else {str(k): v for k, v in chord.items()},
            root_id=_field(data, "root_id", str),
            parent_id=_field(data, "parent_id", str),
            queue=queue or DEFAULT_QUEUE,
            soft_time_limit=_number(data, "soft_time_limit"),
            time_limit=_number(data, "time_limit"),
        )

    @classmethod
    def from_celery(cls, request: Any, queue: str) -> TrialRequest:
        """The request of the running task ``request`` (Celery's ``Task.request``)."""
        soft, hard = (request.timelimit or (None, None))[::-1]
        return cls(
            id=request.id,
            group=request.group,
            group_index=request.group_index,
            chord=request.chord,
            root_id=request.root_id,
            parent_id=request.parent_id,
            queue=queue,
            soft_time_limit=soft,
            time_limit=hard,
        )

    def to_dict(self) -> dict[str, object]:
        """The JSON form recorded with a started trial."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def template_dict(self) -> dict[str, object]:
        """The JSON form of the sweep's template: only :data:`TEMPLATE_FIELDS`."""
        return {name: getattr(self, name) for name in TEMPLATE_FIELDS}

    def compact(
        self, sweep_id: str, trial: int
    ) -> tuple[dict[str, object], dict[str, object] | None]:
        """This request of ``trial`` in two parts: what only the trial has, and what the
        trials of its chord share (None outside a chord: the first part is then all of it).

        The first is the trial's ``group`` and whatever differs from what its task id,
        group index, root id (its task id) and parent id (none) are for a chord's trial:
        ~50 bytes instead of ~640 with the callback, so that a trial's hash stays in
        Redis's compact encoding. :meth:`expand` puts the two together again.
        """
        if self.group is None or self.chord is None:
            return self.to_dict(), None
        own: dict[str, object] = {"group": self.group}
        for name, value in _derived(sweep_id, trial, self.id).items():
            if getattr(self, name) != value:
                own[name] = getattr(self, name)
        return own, {name: getattr(self, name) for name in CHORD_FIELDS}

    @classmethod
    def expand(
        cls,
        sweep_id: str,
        trial: int,
        own: Mapping[str, object],
        shared: Mapping[str, object] | None,
    ) -> TrialRequest:
        """The request :meth:`compact` split into ``own`` and ``shared`` (``own`` as it
        is when it holds the chord itself, the form recorded before there were compact
        ones)."""
        if "chord" in own or "group" not in own or shared is None:
            return cls.from_dict(own)
        task_id = own.get("id", trial_task_id(sweep_id, trial))
        derived = _derived(sweep_id, trial, task_id if isinstance(task_id, str) else None)
        return cls.from_dict({**shared, **derived, **own})

    def for_trial(self, sweep_id: str, trial: int) -> TrialRequest:
        """This template completed for ``trial``: its own task id and group index."""
        return replace(self, id=trial_task_id(sweep_id, trial), group_index=trial)


def _derived(sweep_id: str, trial: int, task_id: str | None) -> dict[str, object]:
    """What a chord's trial ``trial`` sent under ``task_id`` has for ids by default."""
    own_id = trial_task_id(sweep_id, trial)
    return {"id": own_id, "group_index": trial, "root_id": task_id or own_id, "parent_id": None}


_T = TypeVar("_T")


def _field(data: Mapping[str, object], name: str, kind: type[_T]) -> _T | None:
    """``data[name]`` if it is a ``kind`` (None when absent or null)."""
    value = data.get(name)
    if value is None or isinstance(value, kind):
        return value
    raise ValueError(f"trial request: {name} must be a {kind.__name__}, got {value!r}")


def _number(data: Mapping[str, object], name: str) -> float | None:
    """``data[name]`` if it is a number (None when absent or null)."""
    value = data.get(name)
    if value is None or (isinstance(value, int | float) and not isinstance(value, bool)):
        return value
    raise ValueError(f"trial request: {name} must be a number, got {value!r}")


def send_trial(
    app: Any,
    sweep_id: str,
    trial: int,
    request: TrialRequest,
    priority: int,
    argsrepr: str,
    **options: Any,
) -> None:
    """Send ``cv_trial(sweep_id, trial)`` as ``request`` says; ``options`` go to
    ``send_task`` as they are (a batching producer, ...)."""
    app.send_task(
        CV_TRIAL,
        args=(sweep_id, trial),
        task_id=request.id,
        queue=request.queue,
        group_id=request.group,
        group_index=request.group_index,
        chord=request.chord,
        root_id=request.root_id,
        parent_id=request.parent_id,
        soft_time_limit=request.soft_time_limit,
        time_limit=request.time_limit,
        priority=priority,
        argsrepr=argsrepr,
        **options,
    )
