"""Each worker's views of the studies it asks, fed from the sweep store's change feed.

A worker process keeps one :class:`~smptune.search.study_view.StudyView` per sweep it asks
for (the few most recent), and before each ask enters only the trials whose configuration or
final record was written since its last read: O(changes) reads, where the view it replaces
rebuilt every trial under a fleet-wide lock.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import TYPE_CHECKING

from smptune.search.study_view import StudyView

if TYPE_CHECKING:
    from smptune.queue.store import SweepStore
    from smptune.search.adaptive import SearchSettings

__all__ = ["StudyFeed", "study_view"]

#: How many sweeps' views a worker process keeps.
KEPT = 4


class StudyFeed:
    """A sweep's study view and the last change of the sweep it entered."""

    def __init__(
        self, db: SweepStore, sweep_id: str, search: SearchSettings, n_randoms: int
    ) -> None:
        self.db = db
        self.sweep_id = sweep_id
        self.search = search
        self.n_randoms = n_randoms
        self.view = StudyView(search, n_randoms)
        self.seen = 0

    def refresh(self) -> StudyView:
        """The view with every change recorded so far entered; rebuilt from the whole
        sweep when a change cannot be entered in place (a finished trial that ran on) or
        the sweep's feed restarted (a sweep of that id deleted and created again)."""
        if self.db.change_count(self.sweep_id) < self.seen:
            self._rebuild()
        numbers, last = self.db.changed_since(self.sweep_id, self.seen)
        if self.view.update(self.db.trials(self.sweep_id, numbers)):
            self.seen = last
        else:
            self._rebuild()
        return self.view

    def _rebuild(self) -> None:
        """A new view of every trial the feed names."""
        self.view = StudyView(self.search, self.n_randoms)
        numbers, self.seen = self.db.changed_since(self.sweep_id, 0)
        self.view.update(self.db.trials(self.sweep_id, numbers))


_FEEDS: OrderedDict[tuple[str, str], StudyFeed] = OrderedDict()


def _where(db: SweepStore) -> str:
    """Which Redis ``db`` talks to (a worker may serve several brokers' sweeps in tests)."""
    kwargs = db.r.connection_pool.connection_kwargs
    return "|".join(str(kwargs.get(k, "")) for k in ("host", "port", "path", "db"))


def study_view(db: SweepStore, sweep_id: str, search: SearchSettings, n_randoms: int) -> StudyView:
    """This process's view of ``sweep_id``'s study, up to date with the store."""
    key = (_where(db), sweep_id)
    feed = _FEEDS.get(key)
    if feed is None:
        feed = _FEEDS[key] = StudyFeed(db, sweep_id, search, n_randoms)
        while len(_FEEDS) > KEPT:
            _FEEDS.popitem(last=False)
    _FEEDS.move_to_end(key)
    feed.db = db
    return feed.refresh()
