"""A worker's Optuna study of a sweep: out-of-memory (``infeasible``) trials enter as a
violated constraint for the samplers that honour constraints (TPE, GP), as failed for CMA-ES,
and TPE learns to keep away from the infeasible region."""

from __future__ import annotations

import warnings

import pytest
from optuna.trial import TrialState

from smptune.config import config_from_dict
from smptune.records import TrialRecord, TrialStatus
from smptune.search.adaptive import ask, frozen_trial, worst_score
from smptune.search.study_view import StudyView


def _config(sampler: object):
    return config_from_dict(
        {
            "trainable": "smptune.fakes:MemoryBoundTrainable",
            "n_trials": 40,
            "sampler": sampler,
            "metric": "score",
            "hyperparameters": {
                "x": {"low": -2.0, "high": 3.0},
                "width": {"low": 0.5, "high": 4.0},
            },
        }
    )


def _trial(n: int, x: float, width: float) -> TrialRecord:
    """Trial ``n`` as it ends on a device where width over 2 does not fit."""
    if width > 2.0:
        return TrialRecord(n, TrialStatus.INFEASIBLE, params={"x": x, "width": width})
    score = 1.0 / (1.0 + (x - 1.0) ** 2)
    return TrialRecord(n, TrialStatus.COMPLETE, params={"x": x, "width": width}, score=score)


@pytest.mark.parametrize("sampler", ["tpe", "gp"])
def test_an_infeasible_trial_enters_complete_with_its_constraint_violated(sampler):
    config = _config(sampler)
    view = StudyView(config, 1)
    # Given a complete trial and then one that ran out of memory
    assert view.update([_trial(0, 1.0, 1.0), _trial(1, 0.0, 3.0), _trial(2, -1.0, 1.5)])
    by_trial = {t.user_attrs["trial"]: t for t in view.study.trials}
    # Then the infeasible one is complete, valued at the worst score then known, constraint 1
    assert by_trial[1].state is TrialState.COMPLETE
    assert by_trial[1].system_attrs["constraints"] == (1.0,)
    assert by_trial[1].value == 1.0  # the only score known as it entered
    # and every complete one meets it (Optuna's GP needs the constraint on all of them)
    assert by_trial[0].system_attrs["constraints"] == (0.0,)
    assert by_trial[2].system_attrs["constraints"] == (0.0,)
    # and entering the same records again changes nothing
    assert view.update([_trial(1, 0.0, 3.0)])
    # and the sampler asks with them, without warnings
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        params, _ = view.ask(3, {})
    assert -2.0 <= params["x"] <= 3.0


def test_a_running_trial_that_runs_out_of_memory_takes_its_constraint_in_the_view():
    config = _config("tpe")
    view = StudyView(config, 1)
    running = TrialRecord(0, TrialStatus.RUNNING, params={"x": 0.0, "width": 3.0})
    assert view.update([running])
    assert view.update([_trial(0, 0.0, 3.0)])
    (held,) = view.study.trials
    assert held.state is TrialState.COMPLETE and held.system_attrs["constraints"] == (1.0,)


def test_cmaes_has_no_constraints_so_an_infeasible_trial_fails():
    config = _config("cmaes")
    frozen = frozen_trial(_trial(1, 0.0, 3.0), config, 1)
    assert frozen.state is TrialState.FAIL and "constraints" not in frozen.system_attrs
    complete = frozen_trial(_trial(0, 1.0, 1.0), config, 1)
    assert complete.state is TrialState.COMPLETE and "constraints" not in complete.system_attrs


def test_the_worst_score_values_an_infeasible_trial():
    assert worst_score([0.2, None, 0.9, float("nan")], "max") == 0.2
    assert worst_score([0.2, 0.9], "min", known=1.5) == 1.5
    assert worst_score([], "max") == 0.0


def _infeasible_asked(sampler: object, n: int = 30) -> int:
    """How many of trials 10.. of a sequential sweep of ``n`` ran out of memory."""
    config = _config(sampler)
    trials: list[TrialRecord] = []
    for number in range(n):
        params = ask(trials, config, number, {})
        trials.append(_trial(number, params["x"], params["width"]))
    return sum(t.status is TrialStatus.INFEASIBLE for t in trials[10:])


def test_tpe_keeps_away_from_the_infeasible_region_it_would_sample_again_as_failed(
    monkeypatch,
):
    # Given a space whose half (width over 2 of 0.5..4, 57 %) runs out of memory, and a score
    # that does not depend on width: only the constraint tells TPE to keep away
    tpe = {"type": "tpe", "n_startup_trials": 5}
    constrained = _infeasible_asked(tpe)
    # When out-of-memory trials enter as failed instead (as before: TPE ignores them)
    from smptune.search.samplers.optuna import TPESampler

    monkeypatch.setattr(TPESampler, "honours_constraints", False)
    as_failed = _infeasible_asked(tpe)
    # Then with the constraint TPE asks far fewer infeasible configurations after its start
    # than the 57 % (11 of 20) random search would, and than it asks when they fail
    assert constrained <= 5, constrained
    assert as_failed >= 2 * constrained + 4, (as_failed, constrained)
