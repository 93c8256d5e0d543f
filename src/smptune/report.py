"""The results folder: config.yaml, trials.csv, results.json, best_config.yaml and
final/test_metrics.json, written from what the sweep store holds."""

from __future__ import annotations

import copy
import csv
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from smptune.config import config_from_dict, config_to_yaml
from smptune.scoring import best_epochs, fold_scores, rank_trials
from smptune.store import SweepStore


def summarize(db: SweepStore, sweep_id: str) -> dict[str, Any]:
    """The ranking and the best trial, as results.json holds them."""
    sweep = db.get_sweep(sweep_id)
    config = config_from_dict(sweep["config"])
    ranked = rank_trials(db.trials(sweep_id), config.mode)
    for t in ranked:
        t["fold_scores"] = fold_scores(t["folds"], config.metric) if t["folds"] else []
    best = ranked[0] if ranked and ranked[0]["status"] == "complete" else None
    return {
        "sweep_id": sweep_id,
        "name": config.name,
        "metric": config.metric,
        "mode": config.mode,
        "n_trials": sweep["n_trials"],
        "n_folds": sweep["n_folds"],
        "hyperparameters": list(config.hyperparameters),
        "trials_complete": sweep["trials_complete"],
        "trials_failed": sweep["trials_failed"],
        "trials_cancelled": sweep["trials_cancelled"],
        "best": None
        if best is None
        else {
            "trial": best["trial"],
            "score": best["score"],
            "score_std": best["score_std"],
            "params": best["params"],
            "epochs": best_epochs(best["folds"]),
        },
        "ranking": ranked,
    }


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


def write_trials_csv(results: Mapping[str, Any], path: Path) -> None:
    """A row per trial: number, status, parameters, per-fold scores, mean, std, duration."""
    params = _param_names(results)
    n_folds = int(results["n_folds"])
    header = [
        "trial",
        "rank",
        "status",
        *params,
        *(f"fold_{k}" for k in range(n_folds)),
        "mean",
        "std",
        "duration_s",
        "worker",
        "error",
    ]
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        for t in sorted(results["ranking"], key=lambda t: t["trial"]):
            scores = dict(enumerate(t.get("fold_scores", [])))
            writer.writerow(
                [
                    t["trial"],
                    t["rank"],
                    t["status"],
                    *(
                        json.dumps(t["params"].get(p))
                        if isinstance(t["params"].get(p), list | dict)
                        else t["params"].get(p)
                        for p in params
                    ),
                    *(scores.get(k, "") for k in range(n_folds)),
                    "" if t.get("score") is None else t["score"],
                    "" if t.get("score_std") is None else t["score_std"],
                    "" if t.get("duration_s") is None else round(t["duration_s"], 3),
                    t.get("worker") or "",
                    t.get("error") or "",
                ]
            )


def write_results(
    results: Mapping[str, Any],
    config: Mapping[str, Any],
    out_dir: Path,
    test_metrics: Mapping[str, float] | None = None,
) -> Path:
    """Write the results folder ``out_dir``; returns it."""
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "config.yaml").write_text(config_to_yaml(dict(config)))
    write_trials_csv(results, out_dir / "trials.csv")
    payload = dict(results)
    if test_metrics is not None:
        payload["test_metrics"] = dict(test_metrics)
    (out_dir / "results.json").write_text(json.dumps(payload, indent=2, default=str))
    if results.get("best"):
        (out_dir / "best_config.yaml").write_text(
            config_to_yaml(best_config(config, results["best"]["params"]))
        )
    if test_metrics is not None:
        final = out_dir / "final"
        final.mkdir(exist_ok=True)
        (final / "test_metrics.json").write_text(json.dumps(dict(test_metrics), indent=2))
    return out_dir
