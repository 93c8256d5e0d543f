"""Trial scores and the ranking: a trial's score is the mean over its folds of the scoring
metric at each fold's best epoch; failed trials rank below every complete one."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any


def fold_scores(folds: Mapping[int, Mapping[str, Any]], metric: str) -> list[float]:
    """The scoring metric of each fold, in fold order."""
    return [float(folds[k]["metrics"][metric]) for k in sorted(folds)]


def mean_std(values: list[float]) -> tuple[float, float]:
    """Mean and population standard deviation."""
    mean = sum(values) / len(values)
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / len(values))


def rank_trials(trials: Iterable[dict[str, Any]], mode: str) -> list[dict[str, Any]]:
    """Trials best first, each given a 1-based ``rank``; unscored trials come last."""
    sign = -1.0 if mode == "max" else 1.0

    def key(t: dict[str, Any]) -> tuple[int, float, int]:
        score = t.get("score")
        scored = t.get("status") == "complete" and score is not None and math.isfinite(score)
        return (0 if scored else 1, sign * score if scored else 0.0, int(t["trial"]))

    ranked = sorted(trials, key=key)
    for i, t in enumerate(ranked, start=1):
        t["rank"] = i
    return ranked


def best_epochs(folds: Mapping[int, Mapping[str, Any]]) -> int:
    """Epochs for retrain-and-test: the rounded mean best epoch of the folds (at least 1)."""
    epochs = [int(f["best_epoch"]) for f in folds.values()]
    return max(1, round(sum(epochs) / len(epochs))) if epochs else 1
