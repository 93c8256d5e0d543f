"""A worker's Optuna study of a sweep, kept between asks and updated with what changed.

An ask costs the sampler's own fit and the trials that changed since the last one, not a
rebuild of every trial: the caller hands :meth:`StudyView.update` the records written since
its last read (the store's change feed, :meth:`~smptune.queue.trials.TrialRecords.changed_since`)
and asks without any fleet-wide lock. Concurrent asks are kept apart as before: each running
trial is in every view as RUNNING from the moment its configuration is recorded (TPE's
constant liar), and each ask's sampler is seeded by its trial number.

GP fits a Gaussian process, cubic in its trials: past :data:`GP_LIMIT` trials it asks a
study of the best half and the most recent half of that many finished trials, plus the
running ones. TPE and CMA-ES ask the whole study.

An out-of-memory (``infeasible``) trial enters as COMPLETE with its constraint
(:data:`~smptune.search.adaptive.OOM_CONSTRAINT`) violated, valued at the worst complete score
the view held then, for TPE and GP; as FAIL for CMA-ES, which has no constraints.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from smptune.params import Params, ParamsView
from smptune.records import TrialRecord, TrialStatus
from smptune.search.adaptive import (
    OOM_CONSTRAINT,
    SearchSettings,
    frozen_trial,
    new_study,
    sampler_for,
    suggest_all,
    worst_score,
)

__all__ = ["GP_LIMIT", "StudyView"]

#: The most finished trials a GP sampler fits (Optuna's GP is cubic in them).
GP_LIMIT = 500


class StudyView:
    """One sweep's trials as an Optuna study, updated in place as they change."""

    def __init__(self, search: SearchSettings, n_randoms: int) -> None:
        self.search = search
        self.n_randoms = n_randoms
        self.study = new_study(search)
        #: sweep trial number -> Optuna's trial id in :attr:`study`
        self._ids: dict[int, int] = {}
        self._finished: set[int] = set()
        #: The worst complete score entered so far (what an infeasible trial is valued at).
        self._worst: float | None = None

    def __len__(self) -> int:
        return len(self._ids)

    def update(self, records: Iterable[TrialRecord]) -> bool:
        """Enter the changed ``records``; False (nothing more entered) when one changes a
        trial the study holds as finished, which only a rebuilt view can show (a reopened
        sweep's trial that ran on)."""
        from optuna.trial import TrialState

        storage = self.study._storage
        mode = self.search.scoring.mode
        for record in records:
            if record.status is TrialStatus.COMPLETE:
                self._worst = worst_score([record.score], mode, self._worst)
            worst = worst_score([], mode, self._worst)
            frozen = frozen_trial(record, self.search, self.n_randoms, infeasible_value=worst)
            if frozen is None:
                continue
            number = record.trial
            if number in self._finished:
                if self._same_finish(number, frozen):
                    continue
                return False
            if number not in self._ids:  # Study.add_trial, keeping the new trial's id
                self._ids[number] = storage.create_new_trial(
                    self.study._study_id, template_trial=frozen
                )
            elif frozen.state is not TrialState.RUNNING:
                trial_id = self._ids[number]
                for step, value in frozen.intermediate_values.items():
                    storage.set_trial_intermediate_value(trial_id, step, value)
                for key, attr in frozen.system_attrs.items():  # its constraint, if any
                    storage.set_trial_system_attr(trial_id, key, attr)
                storage.set_trial_state_values(trial_id, frozen.state, frozen.values)
            if frozen.state is not TrialState.RUNNING:
                self._finished.add(number)
        return True

    def _same_finish(self, number: int, frozen: Any) -> bool:
        """Whether ``frozen`` is what the study already holds of finished trial ``number``."""
        held = self.study._storage.get_trial(self._ids[number])
        violated = frozen.system_attrs.get(OOM_CONSTRAINT, (0.0,))[0] > 0
        if violated:  # valued at the worst score known as it entered
            same = held.system_attrs.get(OOM_CONSTRAINT) == frozen.system_attrs[OOM_CONSTRAINT]
            return bool(held.state == frozen.state and same)
        return bool(held.state == frozen.state and held.values == frozen.values)

    def ask(self, trial: int, defaults: ParamsView) -> tuple[Params, Any]:
        """The configuration the sweep's sampler (seeded for ``trial``) chooses now, and
        the asked Optuna trial to :meth:`settle` once the configuration is recorded."""
        study = self._gp_subset() if self._gp_limited() else self.study
        study.sampler = sampler_for(self.search, trial)
        asked = study.ask()
        return suggest_all(asked, self.search, defaults), asked

    def settle(self, trial: int, asked: Any, chosen: ParamsView, recorded: Any) -> None:
        """Keep the asked trial as ``trial``'s RUNNING entry when its configuration is the
        one recorded; else mark it failed (the recorded one enters with the next update)."""
        from optuna.trial import TrialState

        if asked.study is not self.study:
            return  # asked on a GP subset: the recorded trial enters with the next update
        if recorded == chosen and trial not in self._ids:
            asked.set_user_attr("trial", trial)
            self._ids[trial] = asked._trial_id
        else:
            self.study.tell(asked, state=TrialState.FAIL)

    def _gp_limited(self) -> bool:
        return self.search.sampler_spec.asks_a_subset and len(self._finished) > GP_LIMIT

    def _gp_subset(self) -> Any:
        """A study of the running trials and :data:`GP_LIMIT` finished ones: the best half
        by value and the most recent half by trial number."""
        from optuna.trial import TrialState

        trials = self.study.get_trials(deepcopy=False)
        running = [t for t in trials if t.state is TrialState.RUNNING]
        complete = [t for t in trials if t.state is TrialState.COMPLETE]
        ranked = sorted(complete, key=lambda t: t.value, reverse=self.search.scoring.mode == "max")
        best = ranked[: GP_LIMIT // 2]
        chosen = {t.number for t in best}
        finished = [t for t in trials if t.state.is_finished() and t.number not in chosen]
        recent = finished[-(GP_LIMIT - len(best)) :]
        subset = new_study(self.search)
        subset.add_trials(sorted([*best, *recent], key=lambda t: t.number) + running)
        return subset
