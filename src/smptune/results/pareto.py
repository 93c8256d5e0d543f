"""A multi-objective sweep's Pareto front: every complete trial's objective means, the
non-dominated ones among them, and the trial ``select`` chose (results.json's
``objectives``, ``pareto_front``, ``pareto_points`` and ``selected``)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from smptune.records import TrialRecord, TrialStatus
from smptune.results.json_reads import items, maybe_whole, real, record, whole
from smptune.search.objectives import Objectives

__all__ = ["Pareto", "ParetoPoint", "non_dominated", "pareto_of"]


@dataclass(frozen=True)
class ParetoPoint:
    """One complete trial's mean of each objective."""

    trial: int
    values: Mapping[str, float]

    def to_dict(self) -> dict[str, object]:
        return {"trial": self.trial, **self.values}

    @classmethod
    def from_dict(cls, data: Mapping[str, object], names: Iterable[str]) -> ParetoPoint:
        return cls(whole(data["trial"]), {n: real(data[n]) for n in names})


def non_dominated(points: Iterable[ParetoPoint], objectives: Objectives) -> tuple[int, ...]:
    """The trial numbers of ``points`` that no other point dominates, in trial order.

    Sorted best-first on the objectives (each turned to "higher is better"), a point can only
    be dominated by one before it, and then by one already on the front (domination is
    transitive): each point is compared with the front only, not with every trial (the
    pairwise rule is quadratic when the front is large). A point with a NaN mean neither
    dominates nor is dominated (it stays on the front, as the pairwise rule has it)."""
    sign = [1.0 if m == "max" else -1.0 for m in objectives.modes]
    oriented: list[tuple[tuple[float, ...], int]] = []
    front: list[int] = []
    for p in points:
        v = tuple(s * x for s, x in zip(sign, objectives.ordered(p.values), strict=True))
        if any(math.isnan(x) for x in v):
            front.append(p.trial)
        else:
            oriented.append((v, p.trial))
    oriented.sort(key=lambda item: item[0], reverse=True)
    kept: list[tuple[float, ...]] = []
    for v, trial in oriented:
        if not any(_dominates(w, v) for w in kept):
            kept.append(v)
            front.append(trial)
    return tuple(sorted(front))


def _dominates(a: tuple[float, ...], b: tuple[float, ...]) -> bool:
    """Whether ``a`` is at least ``b`` everywhere and more somewhere (higher is better)."""
    return all(x >= y for x, y in zip(a, b, strict=True)) and a != b


@dataclass(frozen=True)
class Pareto:
    """The objectives, every complete trial's point, the front, and the selected trial
    (None when no trial meets ``select.where``)."""

    objectives: Objectives
    points: tuple[ParetoPoint, ...]
    front: tuple[int, ...]
    selected: int | None

    def point(self, trial: int) -> ParetoPoint | None:
        return next((p for p in self.points if p.trial == trial), None)

    @property
    def no_selection(self) -> str:
        """Why no trial was selected, in one line."""
        where = self.objectives.select.where
        return (
            f"no complete trial meets select.where ({where}), so there is no final "
            "configuration and nothing is retrained; see pareto_front for the trade-offs"
        )

    def front_line(self) -> str:
        """The front in one line, for the console: ``Pareto front (iou max, latency_ms
        min): trial 3 (0.91, 18.2); ...; selected: trial 3 (max iou where ...)``."""
        names = ", ".join(f"{o.name} {o.mode}" for o in self.objectives.objectives)
        shown = "; ".join(
            f"trial {p.trial} ({_figures(self.objectives.ordered(p.values))})"
            for p in self.points
            if p.trial in self.front
        )
        chosen = "none" if self.selected is None else f"trial {self.selected}"
        select = self.objectives.select
        return f"Pareto front ({names}): {shown or 'empty'}; selected: {chosen} ({select})"

    def to_dict(self) -> dict[str, object]:
        front = [p for p in self.points if p.trial in self.front]
        return {
            "objectives": self.objectives.to_dict(),
            "pareto_front": [p.to_dict() for p in front],
            "pareto_points": [p.to_dict() for p in self.points],
            "selected": self.selected,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> Pareto:
        objectives = Objectives.from_dict(record(data["objectives"]))
        names = objectives.names
        points = tuple(
            ParetoPoint.from_dict(record(p), names) for p in items(data.get("pareto_points"))
        )
        front = tuple(whole(record(p)["trial"]) for p in items(data.get("pareto_front")))
        return cls(objectives, points, front, maybe_whole(data.get("selected")))


def _figures(values: Iterable[float]) -> str:
    return ", ".join(f"{v:.4g}" for v in values)


def pareto_of(trials: Iterable[TrialRecord], objectives: Objectives) -> Pareto:
    """The front of the complete, stable ``trials`` whose runs report every objective, and
    the trial ``objectives.select`` chooses among them."""
    points = []
    for t in sorted(trials, key=lambda t: t.trial):
        if t.status is not TrialStatus.COMPLETE or t.unstable:
            continue
        values = objectives.values(t.folds)
        if values is not None:
            points.append(ParetoPoint(t.trial, values))
    selected = objectives.select.choose({p.trial: p.values for p in points})
    return Pareto(objectives, tuple(points), non_dominated(points, objectives), selected)
