"""A sweep's and a trial's life as a table of steps, each with the crash point that tests it.

Every step is either one atomic Redis script (its claim and its effect together) or
idempotent and driven again, by the reaper or by a redelivered message, until its effect is
seen; a claim that can be lost is a lease or a key with a TTL, never a permanent flag set
before the work. ``docs/reliability.md`` states the same table with what survives a crash at
each step; ``tests/system/test_crash_points.py`` crashes at every point listed here.

A crash point is a test-only hook: with ``SMPTUNE_CRASH_AT=<point>`` in its environment a
process ends itself there (``os._exit(137)``, or SIGKILL to its whole process group with
``SMPTUNE_CRASH_KILL=group``: a machine lost with its supervisor and every worker), once:
``SMPTUNE_CRASH_MARKER`` names a file created as it crashes, and a process that finds the
file goes on.
"""

from __future__ import annotations

import os
import signal
from dataclasses import dataclass

__all__ = ["CRASH_AT_ENV", "CRASH_KILL_ENV", "CRASH_MARKER_ENV", "POINTS", "STEPS", "Step"]

CRASH_AT_ENV = "SMPTUNE_CRASH_AT"
CRASH_KILL_ENV = "SMPTUNE_CRASH_KILL"
CRASH_MARKER_ENV = "SMPTUNE_CRASH_MARKER"


@dataclass(frozen=True)
class Step:
    """One step of the life of a sweep: who takes it, what it writes, and what drives the
    sweep on when its process dies right after it (at its crash ``point``)."""

    point: str
    actor: str
    writes: str
    recovery: str


STEPS: tuple[Step, ...] = (
    Step(
        "submit.recorded",
        "producer",
        "the sweep, `submitting`, with its chord's template (one transaction, id refused "
        "if it exists)",
        "the reaper sends the chord once `submitting` is older than the finalize grace",
    ),
    Step(
        "submit.sent",
        "producer",
        "every trial's message, then `submitting` cleared",
        "the reaper sends the unstarted trials again; copies of one trial share its task id",
    ),
    Step(
        "trial.claimed",
        "worker",
        "the trial's lease and its running mark (one script)",
        "the lease lapses; the reaper takes the orphan off the running set and sends it again",
    ),
    Step(
        "trial.started",
        "worker",
        "the trial's running record and the request to send it again",
        "as trial.claimed",
    ),
    Step(
        "trial.epoch",
        "worker",
        "one epoch's score, only while the lease is held (one script)",
        "as trial.claimed; the new copy resumes from its last checkpoint",
    ),
    Step(
        "trial.checkpointed",
        "worker",
        "the run's checkpoint file, then its path, only while the lease is held",
        "as trial.claimed; the new copy resumes after that epoch",
    ),
    Step(
        "trial.run_recorded",
        "worker",
        "one run's result, once and only while the lease is held (one script)",
        "as trial.claimed; the new copy trains from its first unrecorded run",
    ),
    Step(
        "trial.finished",
        "worker",
        "the trial's final record, once, with its counters (one script)",
        "its chord part never returns: the reaper finalizes once every trial is recorded",
    ),
    Step(
        "finalize.claimed",
        "worker",
        "the finalize lease of the sweep's generation and its running mark (one script)",
        "the lease lapses; the reaper sends the finalize of that generation again",
    ),
    Step(
        "finalize.results",
        "worker",
        "the ranking and splits (their own keys under the sweep, one transaction) and the "
        "results folder (both rewritten whole)",
        "as finalize.claimed",
    ),
    Step(
        "finalize.status",
        "worker",
        "the status, `finalized_at` of the generation and the active set (one script, "
        "only while the finalize lease is held and the generation is current)",
        "a retraining sweep whose retrain was never sent gets it from the reaper",
    ),
    Step(
        "retrain.claimed",
        "worker",
        "the retrain lease and its running mark (one script), then its attempt",
        "the lease lapses; the reaper sends the retrain again (max_attempts bounds it)",
    ),
    Step(
        "retrain.tested",
        "worker",
        "the test metrics and the final model, then status `done` under the lease",
        "as retrain.claimed: retrained again, `final/` rewritten",
    ),
    Step(
        "extend.counted",
        "producer",
        "the new trials counted in the running chord (one script, refused once it fired)",
        "the reaper sends trials neither queued, held, running nor finished",
    ),
    Step(
        "continue.reopened",
        "producer",
        "the ended sweep reopened with its new chord's template and `submitting` (one transaction)",
        "as submit.recorded",
    ),
    Step(
        "reaper.orphan_claimed",
        "supervisor",
        "an orphaned trial off the running set, marked requeued and to be sent (one script)",
        "any reaper sends a trial marked to be sent once its mark is older than the grace",
    ),
    Step(
        "reaper.lost_claimed",
        "supervisor",
        "the right to send a lost message again (a key with a TTL)",
        "the key lapses; the next reaper pass sends it",
    ),
    Step(
        "reaper.submit_claimed",
        "supervisor",
        "the right to send a half-sent chord (a key with a TTL)",
        "the key lapses; `submitting` is still set, so the next pass sends it",
    ),
    Step(
        "reaper.finalize_claimed",
        "supervisor",
        "the right to send a missing finalize (a key with a TTL)",
        "the key lapses; the next pass sends it (until a finalize starts)",
    ),
    Step(
        "reaper.retrain_claimed",
        "supervisor",
        "the right to send a missing or orphaned retrain (a key with a TTL)",
        "the key lapses; the next pass sends it (until a retrain starts)",
    ),
    Step(
        "supervisor.given_back",
        "supervisor",
        "a preempted trial off the running set, marked requeued and to be sent (one script)",
        "as reaper.orphan_claimed",
    ),
)

#: Every crash point, in the order of the table.
POINTS: tuple[str, ...] = tuple(step.point for step in STEPS)
_KNOWN = frozenset(POINTS)


def crash_point(point: str) -> None:
    """End this process here when a test asked for ``point`` (see the module docstring)."""
    if point not in _KNOWN:
        raise AssertionError(f"crash point {point!r} is not in smptune.lifecycle.STEPS")
    if os.environ.get(CRASH_AT_ENV) != point:
        return
    marker = os.environ.get(CRASH_MARKER_ENV)
    if marker:
        try:
            os.close(os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            return  # crashed here once already: go on
    if os.environ.get(CRASH_KILL_ENV) == "group":
        os.killpg(os.getpgrp(), signal.SIGKILL)
    os._exit(137)
