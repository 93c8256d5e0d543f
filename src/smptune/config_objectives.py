"""The config's multi-objective keys (``metrics``, ``modes``, ``select``) checked against the
rest of the sweep: not with ``metric``/``mode``/``combine``, no pruner, and a sampler that
searches several objectives (random, grid, ``tpe``, ``nsga2``)."""

from __future__ import annotations

from typing import Any

from smptune.errors import ConfigError
from smptune.search.objectives import Objectives
from smptune.search.samplers.base import Sampler
from smptune.search.scoring import MetricSpec, Scoring
from smptune.search.specs import PrunerSpec

__all__ = ["MULTI_OBJECTIVE_SAMPLERS", "check_objectives", "objective_scoring"]

#: Samplers that search several objectives at once.
MULTI_OBJECTIVE_SAMPLERS = ("random", "grid", "tpe", "nsga2")


def check_objectives(
    metrics: Any,
    modes: Any,
    select: Any,
    single: tuple[Any, Any, Any],
    sampler: Sampler,
    pruner: PrunerSpec,
) -> Objectives | None:
    """The sweep's :class:`Objectives`, or None without ``metrics``; ``single`` is the
    config's ``(metric, mode, combine)`` as resolved so far (``metric`` may be the default
    ``iou`` or the first objective, ``mode`` None or the first objective's mode)."""
    if metrics is None:
        for key, value in (("modes", modes), ("select", select)):
            if value is not None:
                raise ConfigError(f"{key}: goes with metrics: (two or more objectives)")
        return None
    objectives = Objectives.from_config(metrics, modes, select)
    metric, mode, combine = single
    first = objectives.objectives[0]
    if metric not in ("iou", first.name) or isinstance(metric, list) or combine is not None:
        raise ConfigError(
            "metrics: give metrics (several objectives, each searched) or metric/combine "
            "(one score), not both"
        )
    if mode is not None and mode != first.mode:
        raise ConfigError("metrics: give modes (one per metric) rather than mode")
    if pruner.enabled:
        raise ConfigError(
            f"pruner: {pruner.kind!r} compares one score and a multi-objective sweep has "
            "several; use pruner: none with metrics"
        )
    if sampler.name not in MULTI_OBJECTIVE_SAMPLERS:
        raise ConfigError(
            f"sampler: {sampler.name!r} searches one objective; with metrics use one of "
            f"{', '.join(MULTI_OBJECTIVE_SAMPLERS)}"
        )
    return objectives


def objective_scoring(objectives: Objectives) -> Scoring:
    """The score a multi-objective sweep ranks and picks each run's best epoch by: its first
    objective."""
    first = objectives.objectives[0]
    return Scoring((MetricSpec(first.name, higher=first.mode == "max"),))
