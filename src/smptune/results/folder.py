"""The results folder: config.yaml, trials.csv, results.json, best_config.yaml and
final/test_metrics.json, written from a sweep's :class:`~.summary.SweepResults`."""

from __future__ import annotations

import csv
import json
from collections.abc import Mapping
from pathlib import Path

from smptune.config import SweepConfig, config_to_yaml
from smptune.metric_keys import split_refined
from smptune.params import ParamsView
from smptune.results.indented_json import dumps_indented
from smptune.results.per_class import per_class_rows
from smptune.results.summary import MODEL_FOLDERS, SweepResults, retrain_check
from smptune.search.scoring import run_index


def best_config(config: SweepConfig, best_params: ParamsView) -> dict[str, object]:
    """A config that trains the best configuration again: every parameter fixed, one trial
    (as plain data, for best_config.yaml)."""
    again: dict[str, object] = config.to_dict()
    again["name"] = f"{config.name}-best"
    again["n_trials"] = 1
    again.pop("sampler", None)
    again["hyperparameters"] = {
        name: {"distribution": "value", "value": value} for name, value in best_params.items()
    }
    return again


def _param_names(results: SweepResults) -> list[str]:
    names: dict[str, None] = {}
    for t in results.ranking:
        names.update(dict.fromkeys(t.params))
    return list(names)


def _run_columns(results: SweepResults) -> list[tuple[int, str, str | None]]:
    """``(run index, column, metric)``: the score of every run and, when several metrics
    combine or are searched (``metrics``), each of its metrics (``fold_0``, ``fold_0_seed_1``,
    ``fold_0:iou``, ...)."""
    n_folds, n_randoms = results.n_folds, results.n_randoms
    pareto = results.pareto
    metrics = list(pareto.objectives.names if pareto else results.scoring.names)
    columns: list[tuple[int, str, str | None]] = []
    for fold in range(n_folds):
        for repeat in range(n_randoms):
            run = run_index(fold, repeat, n_randoms)
            name = f"fold_{fold}" if n_randoms == 1 else f"fold_{fold}_seed_{repeat}"
            columns.append((run, name, None))
            if len(metrics) > 1:
                columns += [(run, f"{name}:{m}", m) for m in metrics]
    return columns


def trial_rows(results: SweepResults) -> list[dict[str, object]]:
    """A row per trial, by trial number, as trials.csv holds it: number, rank, status,
    parameters, every run's score (and each metric of it when several combine), mean, std,
    unstable flag, where a stopped trial stopped (``fold 0, epoch 3``), duration, worker,
    error. A run or value that does not exist is None."""
    params = _param_names(results)
    runs = _run_columns(results)
    rows = []
    for t in sorted(results.ranking, key=lambda t: t.trial):
        scores = t.run_scores
        row: dict[str, object] = {"trial": t.trial, "rank": t.rank, "status": t.status.value}
        row.update({p: t.params.get(p) for p in params})
        for run, column, metric in runs:
            if run not in scores:
                row[column] = None
            elif metric is None:
                row[column] = scores[run]
            else:
                row[column] = t.folds[run]["metrics"].get(metric)
        row.update(
            {
                "mean": t.score,
                "std": t.score_std,
                "unstable": bool(t.unstable),
                "stopped_at": t.partial.describe() if t.partial else None,
                "duration_s": t.duration_s,
                "worker": t.worker or None,
                "error": t.error or None,
            }
        )
        rows.append(row)
    return rows


def write_trials_csv(results: SweepResults, path: Path) -> None:
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
            duration = row["duration_s"]
            if isinstance(duration, int | float):
                row["duration_s"] = round(duration, 3)
            writer.writerow([_cell(row[column]) for column in header])


def _cell(value: object) -> object:
    if value is None:
        return ""
    return json.dumps(value) if isinstance(value, list | dict) else value


def final_metrics(
    retrained: Mapping[str, float], ensemble: Mapping[str, float] | None
) -> dict[str, object]:
    """final/test_metrics.json: the plain figures of the retrained model and the fold
    ensemble, and under ``refined`` those of each configured test-time augmentation or
    post-processing (``{"flips": {"retrained_model": …, "fold_ensemble": …}}``)."""
    mine, mine_refined = split_refined(retrained)
    theirs, theirs_refined = split_refined(ensemble or {})
    out: dict[str, object] = {
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
    results: SweepResults,
    config: SweepConfig,
    out_dir: Path,
    test_metrics: Mapping[str, float] | None = None,
    splits: Mapping[str, object] | None = None,
) -> Path:
    """Write the results folder ``out_dir``; returns it. ``splits``: the samples of the test
    split and of each fold's validation set, as the trainable recorded them."""
    out_dir.mkdir(parents=True, exist_ok=True)
    if splits:
        (out_dir / "splits.json").write_text(json.dumps(dict(splits), indent=2))
    (out_dir / "config.yaml").write_text(config_to_yaml(config.to_dict()))
    write_trials_csv(results, out_dir / "trials.csv")
    payload = results.to_dict()
    chosen = results.default_model
    if test_metrics is not None:
        payload["test_metrics"] = dict(test_metrics)
        payload["default_model"] = {"model": chosen, "path": MODEL_FOLDERS[chosen]}
        check = retrain_check(results, test_metrics)
        payload["retrain_check"] = None if check is None else check.to_dict()
    per_class = per_class_rows(results, test_metrics, config.class_names)
    if per_class:
        payload["per_class"] = [row.to_dict() for row in per_class]
    (out_dir / "results.json").write_text(dumps_indented(payload, default=str))
    if results.best:
        header = ""
        if test_metrics is not None:
            header = (
                f"# Trains the best configuration again. Its model from this sweep: "
                f"{MODEL_FOLDERS[chosen]}/ ({chosen.replace('_', ' ')}, the default of "
                "producer predict)\n"
            )
        (out_dir / "best_config.yaml").write_text(
            header + config_to_yaml(best_config(config, results.best.params))
        )
    if test_metrics is not None:
        final = out_dir / "final"
        final.mkdir(exist_ok=True)
        (final / "test_metrics.json").write_text(
            json.dumps(final_metrics(test_metrics, results.ensemble_metrics), indent=2)
        )
    from smptune.results.html import write_report_safely  # matplotlib only when writing

    write_report_safely(results, config, out_dir, test_metrics)  # never fails the sweep
    return out_dir
