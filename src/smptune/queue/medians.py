"""The median pruner's steps in Redis: a percentile of the complete trials at one step in
O(log trials).

Keys (``{id}`` is the sweep id, ``{s}`` a pruner step: a fold, or ``run × max_epochs +
epoch − 1``)::

    smptune:sweep:{id}:step:{s}   zset  complete trial -> its value at step s

A trial's values enter when its final record is written, in the same script
(:meth:`~smptune.queue.trials.TrialRecords.finish_trial`), only for a complete trial with a
finite score: the trials an Optuna study of the sweep holds as COMPLETE. The count of those
is the sweep's scores zset's size. A percentile is two ``ZRANGE`` reads of the neighbouring
ranks, interpolated as :func:`numpy.nanpercentile` does.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from smptune.queue.keys import scores_key, step_key

if TYPE_CHECKING:
    from smptune.queue._base import StoreBase
    from smptune.records import TrialRecord

__all__ = ["CompleteTrialStats"]


class CompleteTrialStats:
    """One sweep's complete trials as a pruner reads them (a
    :class:`~smptune.search.adaptive.CompleteTrials`): their count, a percentile of their
    values per pruner step, the best of them."""

    def __init__(self, store: StoreBase, sweep_id: str, mode: str) -> None:
        self.store = store
        self.r = store.r
        self.sweep_id = sweep_id
        self.mode = mode

    def count(self) -> int:
        """How many trials are complete with a finite score."""
        return int(self.r.zcard(scores_key(self.sweep_id)))

    def percentile(self, step: int, q: float, n_min: int = 1) -> float:
        """The ``q``-th percentile (0..100, linear interpolation) of the complete trials'
        values at ``step``; NaN when fewer than ``n_min`` (at least one) have one."""
        key = step_key(self.sweep_id, step)
        count = int(self.r.zcard(key))
        if count < max(n_min, 1):
            return math.nan
        position = q / 100 * (count - 1)
        low = math.floor(position)
        rows = self.r.zrange(key, low, min(low + 1, count - 1), withscores=True)
        values = [float(score) for _, score in rows]
        if len(values) == 1:
            return values[0]
        return values[0] + (values[1] - values[0]) * (position - low)

    def best(self) -> TrialRecord | None:
        """The complete trial with the best score, with its runs and curves."""
        key = scores_key(self.sweep_id)
        top = (self.r.zrevrange if self.mode == "max" else self.r.zrange)(key, 0, 0)
        return self.store.trials(self.sweep_id, [int(top[0])])[0] if top else None
