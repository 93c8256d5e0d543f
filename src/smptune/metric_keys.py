"""How a test figure of a refined evaluation is keyed beside the plain one: ``iou/flips``,
``dice/largest_component``, ``iou/flips_largest_component`` (see
:mod:`smptune.training.refine`); written by the trainable, read by the results and the CLI."""

from __future__ import annotations

from collections.abc import Mapping

#: Between a metric's name and its variant: allowed in every logger's metric names.
SEPARATOR = "/"


def refined_key(metric: str, variant: str) -> str:
    """``iou/flips``: ``metric`` of the evaluation ``variant``."""
    return f"{metric}{SEPARATOR}{variant}"


def split_refined(
    metrics: Mapping[str, float],
) -> tuple[dict[str, float], dict[str, dict[str, float]]]:
    """``metrics`` as (the plain figures, ``{variant: its figures}``)."""
    plain: dict[str, float] = {}
    refined: dict[str, dict[str, float]] = {}
    for key, value in metrics.items():
        metric, _, variant = key.partition(SEPARATOR)
        if variant:
            refined.setdefault(variant, {})[metric] = value
        else:
            plain[key] = value
    return plain, refined
