"""What lives in Redis or travels on the queue.

:mod:`.messages` (task names, task ids, priorities, the trial request), :mod:`.submit` (a
config becomes a recorded sweep and one chord), :mod:`.store` (the sweep store and its key
schema), :mod:`.lease` (which copy of a trial is live), :mod:`.recovery` (the reaper),
:mod:`.backend` (the send-only result backend), :mod:`.embedded_redis` and :mod:`.local`
(local mode). Importing the package imports none of them: ``config`` reads
:mod:`.messages` without pulling in Redis or Celery.
"""

__all__ = [
    "backend",
    "embedded_redis",
    "lease",
    "local",
    "messages",
    "recovery",
    "store",
    "submit",
]
