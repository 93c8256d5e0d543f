"""The per-class table: each class's IoU and Dice in cross-validation (mean ± std over the
best trial's runs), from the retrained model and from the fold ensemble, side by side.

Multi-class data reports ``iou_class_<k>`` and ``dice_class_<k>``; binary data reports the
foreground's ``iou`` and ``dice`` only, so its table has one row, the foreground's.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from smptune.results.labels import class_name, split_class_metric
from smptune.results.summary import SweepResults
from smptune.search.scoring import mean_std

#: The figures of each class, in the table's order.
FIGURES = ("iou", "dice")


@dataclass(frozen=True)
class Spread:
    """A mean over runs and its (population) standard deviation."""

    mean: float
    std: float

    def to_dict(self) -> dict[str, float]:
        return {"mean": self.mean, "std": self.std}


@dataclass(frozen=True)
class ClassRow:
    """One class's figures; a figure that was not measured is None."""

    index: int
    name: str
    cv: Mapping[str, Spread | None]
    retrained: Mapping[str, float | None]
    ensemble: Mapping[str, float | None]

    def to_dict(self) -> dict[str, object]:
        return {
            "class": self.index,
            "name": self.name,
            "cv": {k: v.to_dict() if v else None for k, v in self.cv.items()},
            "retrained_model": dict(self.retrained),
            "fold_ensemble": dict(self.ensemble),
        }


def _finite(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None


def _classes(metrics: Sequence[Mapping[str, float]]) -> list[int]:
    found = {split[1] for m in metrics for k in m if (split := split_class_metric(k))}
    return sorted(found)


def _key(figure: str, index: int | None) -> str:
    return figure if index is None else f"{figure}_class_{index}"


def per_class_rows(
    results: SweepResults,
    test_metrics: Mapping[str, float] | None,
    class_names: Sequence[str] | None = None,
) -> list[ClassRow]:
    """The table for a sweep's results (its best trial's runs in ``ranking``), the retrained
    model's ``test_metrics`` and the fold ensemble's; empty when nothing reports a per-class
    or a foreground figure."""
    trial = None if results.best is None else results.trial(results.best.trial)
    runs = [r["metrics"] for r in (trial.folds if trial else {}).values() if "metrics" in r]
    retrained = dict(test_metrics or {})
    ensemble = dict(results.ensemble_metrics or {})
    indices: list[int | None] = list(_classes([*runs, retrained, ensemble]))
    if not indices:
        if not any(f in m for m in (*runs, retrained, ensemble) for f in FIGURES):
            return []
        indices = [None]  # binary: the foreground's figures
    rows = []
    for index in indices:
        cv: dict[str, Spread | None] = {}
        for figure in FIGURES:
            values = [v for r in runs if (v := _finite(r.get(_key(figure, index)))) is not None]
            cv[figure] = Spread(*mean_std(values)) if values else None
        name = (
            class_name(index, class_names)
            if index is not None
            else (class_names[1] if class_names and len(class_names) > 1 else "foreground")
        )
        rows.append(
            ClassRow(
                index=1 if index is None else index,
                name=name,
                cv=cv,
                retrained={f: _finite(retrained.get(_key(f, index))) for f in FIGURES},
                ensemble={f: _finite(ensemble.get(_key(f, index))) for f in FIGURES},
            )
        )
    return rows
