"""SweepResults: summarize's typed record writes exactly the results.json the dict-building
code wrote before it (kept here as the golden), and reads it back equal."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any

from smptune.config import config_to_yaml, load_config
from smptune.fakes import QuadraticTrainable
from smptune.queue.store import SweepStore
from smptune.records import OUTCOMES, OutOfMemory, PartialRun, SavedCheckpoint, TrialStatus
from smptune.results.folder import write_results
from smptune.results.summary import FoldEnsemble, RankedTrial, SweepResults, summarize
from smptune.search.halving import Halving
from smptune.search.scoring import (
    best_epochs,
    may_be_best,
    rank_trials,
    run_scores,
    score_at_epoch,
)

from conftest import write_config

# --- the golden: results.json as smptune built it before SweepResults (bd2ad3d) ----------


def _golden(db: SweepStore, sweep_id: str) -> dict[str, Any]:
    sweep = db.get_sweep(sweep_id)
    config = sweep.config
    ranked = rank_trials(db.trials(sweep_id), config.scoring.mode)
    best = next((t for t in ranked if may_be_best(t)), None)
    epochs = best_epochs(best.folds, config.retrain_epochs) if best is not None else 1
    at = score_at_epoch(best.curves, epochs) if best is not None else None
    counts = {status.counter: sweep.count(status) for status in OUTCOMES}
    ended = ", ".join(f"{counts[s.counter]} {s}" for s in OUTCOMES if counts.get(s.counter))
    no_best = (
        f"no trial finished its cross-validation ({ended or 'no trials'}), so there is no "
        "best configuration and nothing is retrained"
    )
    top = [t for t in ranked if t.status is TrialStatus.COMPLETE and t.curves][:5]
    stopped = [t for t in ranked if t.partial is not None and t.curves][:10]
    rank = {t.trial: n for n, t in enumerate(ranked, start=1)}
    return {
        "sweep_id": sweep_id,
        "name": config.name,
        "metric": config.scoring.label,
        "mode": config.mode,
        "n_trials": sweep.n_trials,
        "n_folds": sweep.n_folds,
        "hyperparameters": list(config.hyperparameters),
        "n_randoms": config.cv_settings.n_randoms,
        "scoring": config.scoring.to_dict(),
        "sampler": config.sampler,
        "pruner": config.pruner,
        "class_names": config.class_names,
        **counts,
        "no_best": None if best is not None else no_best,
        "best": None
        if best is None
        else {
            "trial": best.trial,
            "status": best.status.value,
            "score": best.score,
            "score_std": best.score_std,
            "params": dict(best.params),
            "epochs": epochs,
            "cv_at_epochs": None
            if at is None
            else {
                "epochs": at.epochs,
                "score": at.score,
                "std": at.std,
                "per_run": dict(at.per_run),
            },
        },
        "best_params": None
        if best is None
        else {k: best.params[k] for k in config.hyperparameters if k in best.params},
        "best_value": None if best is None else best.score,
        "direction": "minimize" if config.mode == "min" else "maximize",
        "ranking": [
            {**t.to_dict(), "rank": rank, "fold_scores": run_scores(t.folds, config.scoring)}
            for rank, t in enumerate(ranked, start=1)
        ],
        "learning_curves": [
            {
                "trial": t.trial,
                "rank": rank[t.trial],
                "status": t.status.value,
                "partial": t.partial.to_dict() if t.partial else None,
                "curves": {str(run): list(curve) for run, curve in t.curves.items()},
            }
            for t in (*top, *stopped)
        ],
        "rungs": _golden_rungs(db, sweep_id, config),
    }


def _golden_rungs(db: SweepStore, sweep_id: str, config: Any) -> list[dict[str, Any]] | None:
    if not config.pruner_spec.halving:
        return None
    halving = Halving.from_spec(config.pruner_spec, config.max_epochs, config.n_runs)
    rungs = db.rungs(sweep_id, halving, config.scoring.mode)
    out = []
    for bracket in range(halving.brackets):
        for rung in halving.rungs(bracket):
            scores, stopped = rungs.members(bracket, rung.index)
            out.append(
                {
                    "bracket": bracket,
                    "rung": rung.index,
                    "where": rung.where(config.cv_settings.n_randoms),
                    "resource": rung.resource,
                    "reached": len(scores),
                    "promoted": len(scores.keys() - stopped),
                    "stopped": len(scores.keys() & stopped),
                    "trials": [
                        {
                            "trial": trial,
                            "score": score if math.isfinite(score) else None,
                            "promoted": trial not in stopped,
                        }
                        for trial, score in sorted(scores.items())
                    ],
                }
            )
    return out


# --- a sweep with every kind of row ------------------------------------------------------


def _sweep(store: SweepStore, tmp_path: Path, **cfg: Any) -> str:
    """Complete trials with epoch curves (one with an unstable run), a pruned one stopped
    inside fold 0, a failed one; with ``pruner: asha``, rung decisions too."""
    path = write_config(tmp_path / "s.yaml", n_trials=5, training={"max_epochs": 4}, **cfg)
    config = load_config(path)
    params = [{**QuadraticTrainable.defaults, "x": 0.5 * i, "y": -1.0 - 0.25 * i} for i in range(5)]
    store.create_sweep("s1", config.to_dict(), params, 3, str(tmp_path))
    scores = {0: [0.5, 0.6, 0.55], 1: [0.7, 0.8, 0.75], 2: [0.9, math.nan, 0.95]}
    for trial, runs in scores.items():
        for run, score in enumerate(runs):
            for epoch in range(1, 5):
                store.record_epoch("s1", trial, run, epoch, score * epoch / 4)
            result = {"metrics": {"score": score, "loss": 1.0}, "best_epoch": 3, "epochs_run": 4}
            store.record_fold("s1", trial, run, {**result, "duration_s": 0.1 + run})
        stable = [r for r in runs if not math.isnan(r)]
        record = {"status": "complete", "score": sum(stable) / len(stable)}
        store.finish_trial("s1", trial, {**record, "unstable": len(stable) < len(runs)})
    for epoch, score in enumerate([0.2, 0.3], start=1):
        store.record_epoch("s1", 3, 0, epoch, score)
    partial = {"fold": 0, "repeat": 0, "epochs": 2, "score": 0.3, "reason": "pruned at 2"}
    partial |= {"duration_s": 0.2}
    store.finish_trial("s1", 3, {"status": "pruned", "score": 0.3, "partial": json.dumps(partial)})
    store.finish_trial("s1", 4, {"status": "failed", "error": "out of memory"})
    if config.pruner_spec.halving:
        halving = Halving.from_spec(config.pruner_spec, config.max_epochs, config.n_runs)
        rungs = store.rungs("s1", halving, "max")
        for trial, value in ((0, 0.3), (1, 0.5), (2, math.nan), (3, 0.1)):
            rungs.decide(trial, 0, 0, value)
    return "s1"


def _json(data: Any) -> Any:
    """As Redis and results.json hold it."""
    return json.loads(json.dumps(data, default=str))


def test_to_dict_is_the_results_json_of_before_and_from_dict_reads_it_back(
    store: SweepStore, tmp_path
):
    # Given a sweep with complete, unstable, pruned and failed trials and a rung pruner
    sweep_id = _sweep(store, tmp_path, pruner="asha")

    # When it is summarized
    results = summarize(store, sweep_id)

    # Then its dict is exactly the old one: same keys, order and values
    golden = _golden(store, sweep_id)
    assert results.rungs and results.learning_curves and results.best
    assert json.dumps(results.to_dict(), default=str) == json.dumps(golden, default=str)
    assert list(results.to_dict()) == list(golden)
    # and it reads back equal, from memory and from its JSON (as the store returns it)
    assert SweepResults.from_dict(results.to_dict()) == results
    again = SweepResults.from_dict(_json(results.to_dict()))
    assert json.dumps(again.to_dict()) == json.dumps(_json(golden))
    # (the records equal too, but for a NaN, which JSON reads back as another NaN)
    assert again.best == results.best and again.rungs == results.rungs
    assert again.learning_curves[:2] == results.learning_curves[:2]


def test_a_sweep_without_a_best_or_rungs_round_trips_too(store: SweepStore, tmp_path):
    sweep_id = _sweep(store, tmp_path, metric=["score", "loss:lower"])
    results = summarize(store, sweep_id)
    assert results.rungs is None
    assert json.dumps(results.to_dict(), default=str) == json.dumps(
        _golden(store, sweep_id), default=str
    )
    assert SweepResults.from_dict(results.to_dict()) == results


def test_the_fold_ensemble_comes_last_and_round_trips(store: SweepStore, tmp_path):
    results = summarize(store, _sweep(store, tmp_path))
    ensemble = {"trial": 1, "members": ["fold_0"], "test_metrics": {"score": 0.7}, "dir": "/e"}
    with_it = dataclasses.replace(results, fold_ensemble=FoldEnsemble.from_dict(ensemble))
    data = with_it.to_dict()
    assert list(data)[-1] == "fold_ensemble" and data["fold_ensemble"] == ensemble
    assert data == {**results.to_dict(), "fold_ensemble": ensemble}
    assert SweepResults.from_dict(data) == with_it
    assert with_it.default_model == "fold_ensemble"
    failed = FoldEnsemble.from_dict({"error": "no fold models"})
    assert failed.to_dict() == {"error": "no fold models"}
    assert dataclasses.replace(results, fold_ensemble=failed).default_model == "retrained_model"


def test_config_yaml_is_the_stored_config_as_before(store: SweepStore, tmp_path):
    # Given a sweep stored with a sampler, a pruner and class names
    sweep_id = _sweep(store, tmp_path, sampler="tpe", pruner="asha", class_names=["bg", "fg"])
    stored = store.get_sweep(sweep_id).config

    # When its results folder is written from the typed config
    write_results(summarize(store, sweep_id), stored, tmp_path / "out")

    # Then config.yaml is what the stored mapping wrote before
    assert (tmp_path / "out" / "config.yaml").read_text() == config_to_yaml(stored.to_dict())


def test_a_ranked_trial_with_every_field_set_reads_back_equal_from_its_json():
    # Given a row of the ranking with every field of the trial's record away from its default
    trial = RankedTrial(
        trial=7,
        status=TrialStatus.PRUNED,
        params={"x": 0.5, "encoder": "resnet18"},
        folds={0: {"metrics": {"score": 0.4}, "duration_s": 1.5}},
        worker="cpu0@h",
        device="cuda:0",
        fold=1,
        pid=4242,
        attempts=2,
        error="stopped",
        started=10.0,
        finished=20.5,
        requeues=1,
        unstable=True,
        score=0.4,
        score_std=0.01,
        duration_s=10.5,
        requeued_at=12.0,
        partial=PartialRun(fold=1, repeat=0, epochs=2, score=0.3, reason="pruned at 2"),
        preemptions=3,
        checkpoint=SavedCheckpoint(run=1, epoch=2, path="/ckpt/7"),
        out_of_memory=OutOfMemory(
            fold=1, repeat=0, batch_size=8, error="oom", retried_batch_size=4
        ),
        batch_size=4,
        rank=4,
        fold_scores=(0.4,),
    )
    defaults = RankedTrial(trial=0)
    kept = [f.name for f in dataclasses.fields(RankedTrial) if f.name != "curves"]
    assert all(getattr(trial, name) != getattr(defaults, name) for name in kept)
    # Then results.json's row of it reads back as the same record
    assert RankedTrial.from_dict(_json(trial.to_dict())) == trial
