"""What lives in Redis or travels on the queue.

:mod:`.submit` (a config becomes a recorded sweep and one chord), :mod:`.store` (the sweep
store and its key schema), :mod:`.lease` (which copy of a trial is live), :mod:`.recovery`
(the reaper), :mod:`.backend` (the send-only result backend), :mod:`.embedded_redis` and
:mod:`.local` (local mode). What a message carries (task names, ids, priorities, the trial
request) is :mod:`smptune.messages`, below this package: config and the Celery app read it
too. Importing the package imports none of its modules.
"""

__all__ = [
    "backend",
    "embedded_redis",
    "lease",
    "local",
    "recovery",
    "store",
    "submit",
]
