"""The rungs of a sweep's successive-halving pruner in Redis: a decision in one round trip.

Keys (``{id}`` is the sweep id, ``{b}`` the bracket, ``{k}`` the rung)::

    smptune:sweep:{id}:rung:{b}:{k}          zset  trial -> its first run's score at rung k
    smptune:sweep:{id}:gap:{b}:{run}:{k}     zset  trial -> its score in ``run`` at rung k
                                                   less its first run's score there

Scores enter as "higher is better" (a ``min`` metric negated; an unstable epoch as the lowest
score). Each decision is ``ZADD``, ``ZCARD`` and ``ZCOUNT`` (a later run adds the median of its
gaps: ``ZRANGE`` at one index), all O(log trials), in one Lua script. The rule is
:mod:`smptune.search.halving`'s.
"""

from __future__ import annotations

import math

import redis

from smptune.search.halving import Halving, RungDecision

__all__ = ["UNSTABLE_SCORE", "Rungs"]

#: How an unstable (NaN or infinite) epoch score enters a rung: below every real one.
UNSTABLE_SCORE = -1e300

# KEYS[1] the first run's rung, KEYS[2] this run's gaps ('' for the first run)
# ARGV: trial, score, first run's score ('' for the first run), bootstrap, factor
_DECIDE = """
local trial, score = ARGV[1], tonumber(ARGV[2])
local bootstrap, factor = tonumber(ARGV[4]), tonumber(ARGV[5])
local value = score
if ARGV[3] == '' then
  redis.call('ZADD', KEYS[1], score, trial)
else
  local first = tonumber(ARGV[3])
  redis.call('ZADD', KEYS[2], score - first, trial)
  local m = redis.call('ZCARD', KEYS[2])
  if m <= bootstrap then return {1, m, 0, m} end
  local mid = redis.call('ZRANGE', KEYS[2], math.floor((m - 1) / 2), math.floor((m - 1) / 2),
                         'WITHSCORES')
  value = score - tonumber(mid[2])
end
local n = redis.call('ZCARD', KEYS[1])
local kept = math.max(1, math.floor(n / factor))
if n <= bootstrap then return {1, n, 0, n} end
local better = redis.call('ZCOUNT', KEYS[1], '(' .. string.format('%.17g', value), '+inf')
if ARGV[3] ~= '' then
  local own = redis.call('ZSCORE', KEYS[1], trial)
  if own and tonumber(own) > value then better = better - 1 end
end
local keep = 0
if better < kept then keep = 1 end
return {keep, n, better, kept}
"""


class Rungs:
    """One sweep's rungs: record a run's score at a rung and say whether it goes on."""

    def __init__(self, client: redis.Redis, sweep_key: str, halving: Halving, mode: str) -> None:
        self.r = client
        self.key = sweep_key
        self.halving = halving
        self.sign = 1.0 if mode == "max" else -1.0
        self._decide = client.register_script(_DECIDE)

    def score(self, value: float) -> float:
        """``value`` as a rung holds it: higher is better; unstable lowest."""
        return self.sign * value if math.isfinite(value) else UNSTABLE_SCORE

    def decide(
        self,
        trial: int,
        bracket: int,
        rung: int,
        run: int,
        value: float,
        first_run_value: float | None = None,
    ) -> RungDecision:
        """Record ``value`` (run ``run`` at rung ``rung``) and decide; a later run passes its
        trial's first-run score at the same rung as ``first_run_value``."""
        if run and first_run_value is None:  # nothing to put it on the first run's scale
            return RungDecision(True, 0, 0, 0)
        first_key = f"{self.key}:rung:{bracket}:{rung}"
        gap_key = f"{self.key}:gap:{bracket}:{run}:{rung}" if run else first_key
        first = "" if first_run_value is None or not run else repr(self.score(first_run_value))
        keep, reached, better, kept = self._decide(
            keys=[first_key, gap_key],
            args=[
                trial,
                repr(self.score(value)),
                first,
                self.halving.bootstrap_count,
                self.halving.reduction_factor,
            ],
        )
        return RungDecision(bool(keep), int(reached), int(better), int(kept))
