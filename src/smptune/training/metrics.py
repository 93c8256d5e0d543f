"""Metric names and their definitions from confusion counts (pure Python, no torch).

Training computes the metrics with torchmetrics (:mod:`smptune.training.evaluation`); these
formulas are the same ones, for :func:`~smptune.training.baseline_metrics` and the tests.
Counts are summed over every valid pixel of a whole evaluation set (not averaged per image or
per batch). A ratio whose denominator is 0 is 0 (torchmetrics' ``zero_division=0``).

- Binary (``data.classes: 1``): the foreground class at ``sigmoid(logit) > 0.5``; ``dice`` is
  its Dice coefficient, the same figure as ``f1``.
- Multi-class (``classes: N``): the prediction is the arg-max class; ``iou``, ``dice``,
  ``f1``, ``precision`` and ``recall`` are macro averages over the classes that occur in the
  targets or the predictions (a class absent from both is left out, as torchmetrics does;
  a class's Dice is its F1, so ``dice`` equals ``f1``); ``accuracy`` is the share of valid
  pixels predicted right; ``iou_class_<k>`` and ``dice_class_<k>`` are class ``k``'s IoU and
  Dice (0 when it is absent from both). People read them under the config's
  ``class_names`` (:mod:`smptune.results.labels`).

``loss`` is the training loss on the evaluation set (mean over its batches, weighted by
their sizes); lower is better.
"""

from __future__ import annotations

from collections.abc import Sequence

METRICS: tuple[str, ...] = ("iou", "dice", "f1", "precision", "recall", "accuracy", "loss")
"""The metrics of binary segmentation."""


#: The cost of a trained model, measured after each run when a sweep's ``metrics`` names one
#: (:mod:`smptune.training.latency`).
COST_METRICS: tuple[str, ...] = ("latency_ms", "param_count")

#: The metrics reported per class of multi-class data, as ``<name>_class_<k>``.
PER_CLASS: tuple[str, ...] = ("iou", "dice")


def metric_names(classes: int) -> tuple[str, ...]:
    """The metrics reported for ``classes`` (1: binary)."""
    if classes <= 1:
        return METRICS
    return (*METRICS, *(f"{m}_class_{k}" for m in PER_CLASS for k in range(classes)))


def _ratio(numerator: float, denominator: float) -> float:
    return float(numerator) / float(denominator) if denominator else 0.0


def metrics_from_counts(tp: int, fp: int, fn: int, tn: int) -> dict[str, float]:
    """iou (Jaccard), dice (= f1), precision, recall and accuracy of the foreground class."""
    dice = _ratio(2 * tp, 2 * tp + fp + fn)
    return {
        "iou": _ratio(tp, tp + fp + fn),
        "dice": dice,
        "f1": dice,
        "precision": _ratio(tp, tp + fp),
        "recall": _ratio(tp, tp + fn),
        "accuracy": _ratio(tp + tn, tp + fp + fn + tn),
    }


def metrics_from_confusion(confusion: Sequence[Sequence[int]]) -> dict[str, float]:
    """Multi-class metrics of a confusion matrix (``confusion[target][prediction]``)."""
    k = len(confusion)
    total = sum(sum(row) for row in confusion)
    tp = [confusion[c][c] for c in range(k)]
    fp = [sum(confusion[t][c] for t in range(k)) - tp[c] for c in range(k)]
    fn = [sum(confusion[c]) - tp[c] for c in range(k)]
    present = [c for c in range(k) if tp[c] + fp[c] + fn[c] > 0]
    per_class = [metrics_from_counts(tp[c], fp[c], fn[c], 0) for c in range(k)]

    def macro(name: str) -> float:
        return _ratio(sum(per_class[c][name] for c in present), len(present))

    out = {name: macro(name) for name in ("iou", "dice", "f1", "precision", "recall")}
    out["accuracy"] = _ratio(sum(tp), total)
    for name in PER_CLASS:
        out.update({f"{name}_class_{c}": per_class[c][name] for c in range(k)})
    return out
