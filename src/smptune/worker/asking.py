"""Asking a trial's configuration when a worker starts it, through the sweep's sampler.

The sampler decides how (:meth:`smptune.search.samplers.base.Sampler.ask`: an adaptive one
asks this worker's view of the study, updated with what changed since its last ask, with no
fleet-wide lock; random search of an open-ended sweep draws the seeded sample of the trial's
number); :class:`StoreAsking` hands it the sweep store's side: the configuration recorded for
the trial, recording one once (a second copy of the trial gets the same), and the view.
"""

from __future__ import annotations

import os

from smptune.config import SweepConfig
from smptune.params import Params, ParamsView
from smptune.queue.store import SweepStore
from smptune.records import TrialStatus
from smptune.search.study_view import StudyView
from smptune.worker.capabilities import capabilities_from_env
from smptune.worker.stops import TrialStopped

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
    """The configuration of ``trial``, asked of the sweep's sampler now and recorded once.

    Raises :class:`TrialStopped` (``requeued``) when it needs what this worker lacks (a
    ``requires`` rule on its parameters): the trial goes, under its task id, to the
    capability queue its recorded configuration calls for, for a worker that has it."""
    params = config.sampler_spec.ask(config, StoreAsking(db, config, sweep_id, trial, defaults))
    needs = config.requirements.needs_for(params)
    if needs and not capabilities_from_env(os.environ).meets(needs):
        from smptune.queue.routing import register_planned

        register_planned(db.r, config, [params])  # for the workers that meet it to consume
        raise TrialStopped(
            TrialStatus.REQUEUED,
            f"its configuration needs {needs.text}, which this worker lacks; sent to its "
            "capability queue",
        )
    return params
