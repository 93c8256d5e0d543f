"""How a person reads a metric's name: ``dice · tumour`` for ``dice_class_2`` under the
config's ``class_names``; machine-read places (run records, trials.csv, the keys of
results.json's metrics) keep the indices."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from smptune.metric_keys import split_refined

#: The figures of a refined evaluation that log lines show.
REFINED_SHOWN = ("iou", "dice")
_VARIANT_PARTS = re.compile(r"flips|largest_component")
_PER_CLASS = re.compile(r"^(?P<metric>[A-Za-z]\w*?)_class_(?P<index>\d+)$")


def split_class_metric(name: str) -> tuple[str, int] | None:
    """``("dice", 2)`` for ``dice_class_2``; None for a metric of no one class."""
    found = _PER_CLASS.match(name)
    return (found["metric"], int(found["index"])) if found else None


def class_name(index: int, class_names: Sequence[str] | None) -> str:
    """Class ``index``'s name, or ``class <index>`` without one."""
    if class_names and 0 <= index < len(class_names):
        return class_names[index]
    return f"class {index}"


def metric_label(name: str, class_names: Sequence[str] | None) -> str:
    """``dice · tumour`` for ``dice_class_2`` under ``class_names``; any other name, or one
    whose class has no name, as it is."""
    split = split_class_metric(name)
    if split is None or not class_names or split[1] >= len(class_names):
        return name
    return f"{split[0]} · {class_names[split[1]]}"


def metrics_text(metrics: Mapping[str, float], class_names: Sequence[str] | None) -> str:
    """``iou=0.8123, iou · tumour=0.7012, ...; with flips: iou=0.8201, dice=0.8843``: metrics
    for a log line, a refined evaluation's (:mod:`smptune.metric_keys`) by its macro IoU
    and Dice."""
    plain, refined = split_refined(metrics)
    text = ", ".join(f"{metric_label(k, class_names)}={v:.4f}" for k, v in plain.items())
    for variant, figures in refined.items():
        shown = ", ".join(f"{k}={figures[k]:.4f}" for k in REFINED_SHOWN if k in figures)
        text += f"; with {variant_label(variant)}: {shown}"
    return text


def variant_label(variant: str) -> str:
    """``flips + largest component`` for ``flips_largest_component``."""
    return " + ".join(part.replace("_", " ") for part in _VARIANT_PARTS.findall(variant))
