"""Binary segmentation metrics from a confusion count (pure Python).

Counts are summed over every valid pixel of a whole evaluation set (not averaged per image or
per batch); a prediction is foreground where ``sigmoid(logit) > 0.5``. A ratio whose
denominator is 0 is 0 (torchmetrics' default ``zero_division=0``), so predicting all background
scores iou = f1 = precision = recall = 0.
"""

from __future__ import annotations

METRICS: tuple[str, ...] = ("iou", "f1", "precision", "recall", "accuracy")


def _ratio(numerator: float, denominator: float) -> float:
    return float(numerator) / float(denominator) if denominator else 0.0


def metrics_from_counts(tp: int, fp: int, fn: int, tn: int) -> dict[str, float]:
    """iou (Jaccard), f1 (Dice), precision, recall and accuracy of the foreground class."""
    return {
        "iou": _ratio(tp, tp + fp + fn),
        "f1": _ratio(2 * tp, 2 * tp + fp + fn),
        "precision": _ratio(tp, tp + fp),
        "recall": _ratio(tp, tp + fn),
        "accuracy": _ratio(tp + tn, tp + fp + fn + tn),
    }


def best_epoch(history: list[dict[str, float]], metric: str, mode: str) -> int:
    """0-based index of the best entry (the first one among equals)."""
    if not history:
        raise ValueError("no epoch was evaluated")
    best = 0
    for i, entry in enumerate(history):
        value, current = entry[metric], history[best][metric]
        if (mode == "max" and value > current) or (mode == "min" and value < current):
            best = i
    return best
