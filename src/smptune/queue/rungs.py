"""The rungs of a sweep's successive-halving pruner in Redis: a decision in one round trip.

Keys (``{id}`` is the sweep id, ``{b}`` the bracket, ``{k}`` the rung)::

    smptune:sweep:{id}:rung:{b}:{k}          zset  trial -> its score at rung k
    smptune:sweep:{id}:rung:{b}:{k}:kept     set   trials rung k let go on
    smptune:sweep:{id}:rung:{b}:{k}:stopped  set   trials rung k stopped

Scores enter as "higher is better" (a ``min`` metric negated; an unstable score as the
lowest). Each decision is ``ZADD``, ``ZCARD`` and ``ZCOUNT``, O(log trials), in one Lua
script. A trial's first decision at a rung is its decision there: a copy of the trial that
reaches the rung again (queued again after its worker was lost, restarted without its
checkpoint) is told the same, so a trial that was promoted is never stopped at that rung
later by trials that arrived since. The rule is :mod:`smptune.search.halving`'s.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import redis

from smptune.queue.keys import rung_keys
from smptune.queue.scripts import RUNG_DECIDE
from smptune.search.halving import Halving, Rung, RungDecision

__all__ = ["UNSTABLE_SCORE", "RungCount", "Rungs"]

#: How an unstable (NaN or infinite) score enters a rung: below every real one.
UNSTABLE_SCORE = -1e300


@dataclass(frozen=True)
class RungCount:
    """How many trials reached one rung, and what it told them."""

    bracket: int
    rung: Rung
    reached: int
    promoted: int
    stopped: int


class Rungs:
    """One sweep's rungs: record a trial's score at a rung and say whether it goes on."""

    def __init__(self, client: redis.Redis, sweep_key: str, halving: Halving, mode: str) -> None:
        self.r = client
        self.key = sweep_key
        self.halving = halving
        self.sign = 1.0 if mode == "max" else -1.0
        self._decide = client.register_script(RUNG_DECIDE)

    def score(self, value: float) -> float:
        """``value`` as a rung holds it: higher is better; unstable lowest."""
        return self.sign * value if math.isfinite(value) else UNSTABLE_SCORE

    def _keys(self, bracket: int, rung: int) -> tuple[str, str, str]:
        """The rung's scores, kept set and stopped set."""
        return rung_keys(self.key, bracket, rung)

    def decide(self, trial: int, bracket: int, rung: int, value: float) -> RungDecision:
        """Record ``value`` (the trial's score at rung ``rung`` of ``bracket``) and decide;
        the trial's first decision there if it had one."""
        keep, reached, better, kept = self._decide(
            keys=list(self._keys(bracket, rung)),
            args=[
                trial,
                repr(self.score(value)),
                self.halving.bootstrap_count,
                self.halving.reduction_factor,
            ],
        )
        return RungDecision(bool(keep), int(reached), int(better), int(kept))

    def counts(self) -> list[RungCount]:
        """Every rung of every bracket with what it decided so far (three O(1) reads a rung),
        for ``producer status``."""
        plan = [(b, rung) for b in range(self.halving.brackets) for rung in self.halving.rungs(b)]
        pipe = self.r.pipeline(transaction=False)
        for b, rung in plan:
            scores, kept, stopped = self._keys(b, rung.index)
            pipe.zcard(scores)
            pipe.scard(kept)
            pipe.scard(stopped)
        replies = pipe.execute()
        return [
            RungCount(b, rung, *(int(v) for v in replies[3 * i : 3 * i + 3]))
            for i, (b, rung) in enumerate(plan)
        ]

    def members(self, bracket: int, rung: int) -> tuple[dict[int, float], set[int]]:
        """``(score by trial, trials stopped)`` at one rung, scores in the metric's own
        terms (None-free: an unstable score reads as NaN); for the report."""
        key, _, stopped_key = self._keys(bracket, rung)
        scores = {
            int(trial): (self.sign * value if value > UNSTABLE_SCORE else math.nan)
            for trial, value in self.r.zrange(key, 0, -1, withscores=True)
        }
        stopped = {int(t) for t in self.r.smembers(stopped_key)}
        return scores, stopped
