"""Asking a trial's configuration when a worker starts it, through the sweep's sampler.

The sampler decides how (:meth:`smptune.search.samplers.base.Sampler.ask`: an adaptive one
asks this worker's view of the study, updated with what changed since its last ask, with no
fleet-wide lock; random search of an open-ended sweep draws the seeded sample of the trial's
number); :class:`StoreAsking` hands it the sweep store's side: the configuration recorded for
the trial, recording one once (a second copy of the trial gets the same), and the view.
"""

from __future__ import annotations

from smptune.config import SweepConfig
from smptune.params import Params, ParamsView
from smptune.queue.store import SweepStore
from smptune.search.study_view import StudyView

__all__ = ["StoreAsking", "choose_params"]


class StoreAsking:
    """One trial's ask, on the sweep store (a :class:`~smptune.search.samplers.base.Asking`)."""

    def __init__(
        self, db: SweepStore, config: SweepConfig, sweep_id: str, trial: int, defaults: ParamsView
    ) -> None:
        self.db = db
        self.config = config
        self.sweep_id = sweep_id
        self.trial = trial
        self.defaults = defaults

    def recorded(self) -> Params | None:
        return self.db.params_or_none(self.sweep_id, self.trial)

    def record(self, params: Params) -> Params:
        return self.db.set_params_once(self.sweep_id, self.trial, params)

    def view(self) -> StudyView:
        from smptune.queue.study_feed import study_view

        config = self.config
        return study_view(self.db, self.sweep_id, config, config.cv_settings.n_randoms)


def choose_params(
    db: SweepStore, config: SweepConfig, sweep_id: str, trial: int, defaults: ParamsView
) -> Params:
    """The configuration of ``trial``, asked of the sweep's sampler now and recorded once."""
    return config.sampler_spec.ask(config, StoreAsking(db, config, sweep_id, trial, defaults))
