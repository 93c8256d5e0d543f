"""The results folder: config.yaml, trials.csv, results.json, best_config.yaml and
final/test_metrics.json, written from what the sweep store holds."""

from __future__ import annotations

import copy
import csv
import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from smptune.config import SweepConfig, config_from_dict, config_to_yaml
from smptune.metric_keys import split_refined
from smptune.queue.store import SweepStore
from smptune.records import OUTCOMES, PartialRun, TrialRecord, TrialStatus
from smptune.results.indented_json import dumps_indented
from smptune.results.optuna_export import direction
from smptune.results.per_class import per_class_rows
from smptune.search.halving import Halving
from smptune.search.scoring import (
    best_epochs,
    cv_versus_test,
    may_be_best,
    rank_trials,
    retrain_floor,
    run_index,
    run_scores,
    score_at_epoch,
)


def summarize(db: SweepStore, sweep_id: str) -> dict[str, Any]:
    """The ranking and the best trial, as results.json holds them."""
    sweep = db.get_sweep(sweep_id)
    config = config_from_dict(sweep.config)
    ranked = rank_trials(db.trials(sweep_id), config.scoring.mode)
    best = next((t for t in ranked if may_be_best(t)), None)
    epochs = best_epochs(best.folds, config.retrain_epochs) if best is not None else 1
    counts = {status.counter: sweep.count(status) for status in OUTCOMES}
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
        "no_best": None if best is not None else no_best_reason(counts),
        "best": None
        if best is None
        else {
            "trial": best.trial,
            "status": best.status.value,
            "score": best.score,
            "score_std": best.score_std,
            "params": dict(best.params),
            "epochs": epochs,
            # the folds at the retrain's epoch count, beside each at its best epoch
            "cv_at_epochs": score_at_epoch(best.curves, epochs),
        },
        # Optuna's names for the same answer (study.best_params, best_value, direction)
        "best_params": None
        if best is None
        else {k: best.params[k] for k in config.hyperparameters if k in best.params},
        "best_value": None if best is None else best.score,
        "direction": direction(config.mode),
        "ranking": [
            {**t.to_dict(), "rank": rank, "fold_scores": run_scores(t.folds, config.scoring)}
            for rank, t in enumerate(ranked, start=1)
        ],
        "learning_curves": learning_curves(ranked),
        "rungs": rung_results(db, sweep_id, config),
    }


def rung_results(db: SweepStore, sweep_id: str, config: SweepConfig) -> list[dict[str, Any]] | None:
    """What each rung of a successive-halving pruner decided: where it is read, how many
    trials reached it, were promoted and stopped there, and each trial's score there (None
    for an unstable one); None without such a pruner."""
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


def no_best_reason(counts: Mapping[str, int]) -> str:
    """Why a sweep has no best configuration, in one line: no trial finished its
    cross-validation stably (``8 pruned, 2 failed``)."""
    ended = ", ".join(f"{counts[s.counter]} {s}" for s in OUTCOMES if counts.get(s.counter))
    return (
        f"no trial finished its cross-validation ({ended or 'no trials'}), so there is no "
        "best configuration and nothing is retrained"
    )


#: How many of the best complete trials, and of the trials stopped inside a run, the report
#: draws the learning curves of.
CURVES_TOP, CURVES_STOPPED = 5, 10


def learning_curves(ranked: list[TrialRecord]) -> list[dict[str, Any]]:
    """The validation score per epoch of each run (by run index) of the best complete trials
    and of those stopped inside a run (up to where they stopped), best first; none for a
    trainable that reports no epochs."""
    top = [t for t in ranked if t.status is TrialStatus.COMPLETE and t.curves][:CURVES_TOP]
    stopped = [t for t in ranked if t.partial is not None and t.curves][:CURVES_STOPPED]
    rank = {t.trial: n for n, t in enumerate(ranked, start=1)}
    return [
        {
            "trial": t.trial,
            "rank": rank[t.trial],
            "status": t.status.value,
            "partial": t.partial.to_dict() if t.partial else None,
            "curves": {str(run): list(curve) for run, curve in t.curves.items()},
        }
        for t in (*top, *stopped)
    ]


def ensemble_metrics(results: Mapping[str, Any]) -> dict[str, float] | None:
    """The fold ensemble's test metrics, when it was tested."""
    return (results.get("fold_ensemble") or {}).get("test_metrics")


#: The model smptune gives by default, and where it is: the fold ensemble when there is one
#: (on real data it scored at least as well as the retrained model in 10 of 12 measured
#: settings, docs/performance.md), else the retrained model.
MODEL_FOLDERS = {"fold_ensemble": "final/ensemble", "retrained_model": "final/model"}


def default_model(results: Mapping[str, Any]) -> str:
    """``fold_ensemble`` when the fold ensemble was exported and tested, else
    ``retrained_model``: what ``producer predict`` runs and the report leads with."""
    return "fold_ensemble" if ensemble_metrics(results) else "retrained_model"


def retrain_check(
    results: Mapping[str, Any], test_metrics: Mapping[str, Any]
) -> dict[str, Any] | None:
    """results.json's ``retrain_check``: the retrained model's test score against
    :func:`~smptune.search.scoring.retrain_floor` (``below``: it scored worse)."""
    figures = cv_versus_test(test_metrics, results)
    floor = retrain_floor(results)
    if figures is None or floor is None:
        return None
    test = figures[2]
    below = test < floor if (results.get("mode") or "max") == "max" else test > floor
    return {"test": test, "floor": floor, "below": below}


def best_config(config: Mapping[str, Any], best_params: Mapping[str, Any]) -> dict[str, Any]:
    """A config that trains the best configuration again: every parameter fixed, one trial."""
    again = copy.deepcopy(dict(config))
    again["name"] = f"{config.get('name', 'sweep')}-best"
    again["n_trials"] = 1
    again.pop("sampler", None)
    again["hyperparameters"] = {
        name: {"distribution": "value", "value": value} for name, value in best_params.items()
    }
    return again


def _param_names(results: Mapping[str, Any]) -> list[str]:
    names: dict[str, None] = {}
    for t in results["ranking"]:
        names.update(dict.fromkeys(t["params"]))
    return list(names)


def _run_columns(results: Mapping[str, Any]) -> list[tuple[int, str, str | None]]:
    """``(run index, column, metric)``: the score of every run and, when several metrics
    combine, each of its metrics (``fold_0``, ``fold_0_seed_1``, ``fold_0:iou``, ...)."""
    n_folds, n_randoms = int(results["n_folds"]), int(results.get("n_randoms", 1))
    scoring = results.get("scoring") or {"metrics": [results["metric"]]}
    metrics = [m.partition(":")[0] for m in scoring["metrics"]]
    columns: list[tuple[int, str, str | None]] = []
    for fold in range(n_folds):
        for repeat in range(n_randoms):
            run = run_index(fold, repeat, n_randoms)
            name = f"fold_{fold}" if n_randoms == 1 else f"fold_{fold}_seed_{repeat}"
            columns.append((run, name, None))
            if len(metrics) > 1:
                columns += [(run, f"{name}:{m}", m) for m in metrics]
    return columns


def trial_rows(results: Mapping[str, Any]) -> list[dict[str, Any]]:
    """A row per trial, by trial number, as trials.csv holds it: number, rank, status,
    parameters, every run's score (and each metric of it when several combine), mean, std,
    unstable flag, where a stopped trial stopped (``fold 0, epoch 3``), duration, worker,
    error. A run or value that does not exist is None."""
    params = _param_names(results)
    runs = _run_columns(results)
    rows = []
    for t in sorted(results["ranking"], key=lambda t: t["trial"]):
        folds = {int(k): v for k, v in t.get("folds", {}).items()}  # JSON keys are str
        scores = dict(zip(sorted(folds), t.get("fold_scores", []), strict=False))
        row: dict[str, Any] = {"trial": t["trial"], "rank": t["rank"], "status": t["status"]}
        row.update({p: t["params"].get(p) for p in params})
        for run, column, metric in runs:
            if run not in scores:
                row[column] = None
            elif metric is None:
                row[column] = scores[run]
            else:
                row[column] = folds[run]["metrics"].get(metric)
        row.update(
            {
                "mean": t.get("score"),
                "std": t.get("score_std"),
                "unstable": bool(t.get("unstable")),
                "stopped_at": _stopped_at(t.get("partial")) or None,
                "duration_s": t.get("duration_s"),
                "worker": t.get("worker") or None,
                "error": t.get("error") or None,
            }
        )
        rows.append(row)
    return rows


def write_trials_csv(results: Mapping[str, Any], path: Path) -> None:
    """:func:`trial_rows` as CSV: lists and mappings as JSON, None as an empty cell."""
    header = [
        "trial",
        "rank",
        "status",
        *_param_names(results),
        *(column for _, column, _ in _run_columns(results)),
        *("mean", "std", "unstable", "stopped_at", "duration_s", "worker", "error"),
    ]
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        for row in trial_rows(results):
            row["unstable"] = "yes" if row["unstable"] else None
            if row["duration_s"] is not None:
                row["duration_s"] = round(row["duration_s"], 3)
            writer.writerow([_cell(row[column]) for column in header])


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    return json.dumps(value) if isinstance(value, list | dict) else value


def _stopped_at(partial: Mapping[str, Any] | None) -> str:
    """``fold 0, epoch 3`` for a trial stopped inside a run, else empty."""
    return PartialRun.from_dict(partial).describe() if partial else ""


def final_metrics(
    retrained: Mapping[str, float], ensemble: Mapping[str, float] | None
) -> dict[str, Any]:
    """final/test_metrics.json: the plain figures of the retrained model and the fold
    ensemble, and under ``refined`` those of each configured test-time augmentation or
    post-processing (``{"flips": {"retrained_model": …, "fold_ensemble": …}}``)."""
    mine, mine_refined = split_refined(retrained)
    theirs, theirs_refined = split_refined(ensemble or {})
    out: dict[str, Any] = {
        "retrained_model": mine,
        "fold_ensemble": theirs if ensemble is not None else None,
    }
    if mine_refined or theirs_refined:
        out["refined"] = {
            variant: {
                "retrained_model": mine_refined.get(variant),
                "fold_ensemble": theirs_refined.get(variant),
            }
            for variant in dict.fromkeys([*mine_refined, *theirs_refined])
        }
    return out


def write_results(
    results: Mapping[str, Any],
    config: Mapping[str, Any],
    out_dir: Path,
    test_metrics: Mapping[str, float] | None = None,
    splits: Mapping[str, Any] | None = None,
) -> Path:
    """Write the results folder ``out_dir``; returns it. ``splits``: the samples of the test
    split and of each fold's validation set, as the trainable recorded them."""
    out_dir.mkdir(parents=True, exist_ok=True)
    if splits:
        (out_dir / "splits.json").write_text(json.dumps(dict(splits), indent=2))
    (out_dir / "config.yaml").write_text(config_to_yaml(dict(config)))
    write_trials_csv(results, out_dir / "trials.csv")
    payload = dict(results)
    if test_metrics is not None:
        payload["test_metrics"] = dict(test_metrics)
        chosen = default_model(results)
        payload["default_model"] = {"model": chosen, "path": MODEL_FOLDERS[chosen]}
        payload["retrain_check"] = retrain_check(results, test_metrics)
    per_class = per_class_rows(results, test_metrics, config.get("class_names"))
    if per_class:
        payload["per_class"] = [row.to_dict() for row in per_class]
    (out_dir / "results.json").write_text(dumps_indented(payload, default=str))
    if results.get("best"):
        header = ""
        if test_metrics is not None:
            chosen = default_model(results)
            header = (
                f"# Trains the best configuration again. Its model from this sweep: "
                f"{MODEL_FOLDERS[chosen]}/ ({chosen.replace('_', ' ')}, the default of "
                "producer predict)\n"
            )
        (out_dir / "best_config.yaml").write_text(
            header + config_to_yaml(best_config(config, results["best"]["params"]))
        )
    if test_metrics is not None:
        final = out_dir / "final"
        final.mkdir(exist_ok=True)
        (final / "test_metrics.json").write_text(
            json.dumps(final_metrics(test_metrics, ensemble_metrics(results)), indent=2)
        )
    from smptune.results.html import write_report_safely  # matplotlib only when writing

    write_report_safely(results, config, out_dir, test_metrics)  # never fails the sweep
    return out_dir
