"""What lives in Redis or travels on the queue.

:mod:`.submit` (a config becomes a recorded sweep and one chord), :mod:`.store` (the sweep
store: :mod:`.sweeps`, :mod:`.trials` and :mod:`.claims` on :mod:`._base`, its key schema in
:mod:`.keys`, its Lua scripts in :mod:`.scripts`, its decoders in :mod:`.decode`),
:mod:`.lease` (which copy of a trial is live), :mod:`.rungs` (successive-halving rungs),
:mod:`.resume` (resume and extend), :mod:`.recovery` (the reaper), :mod:`.backend` (the
send-only result backend), :mod:`.embedded_redis` (a private Redis server, for local mode and
tests). What a message carries (task names, ids, priorities, the trial request) is
:mod:`smptune.messages`, below this package: config and the Celery app read it
too. Importing the package imports none of its modules.
"""

__all__ = [
    "backend",
    "claims",
    "decode",
    "embedded_redis",
    "keys",
    "lease",
    "recovery",
    "resume",
    "rungs",
    "scripts",
    "store",
    "submit",
    "sweeps",
    "trials",
]
