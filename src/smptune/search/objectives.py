"""Two or more objectives: the config's ``metrics`` with a mode each, and the rule that picks
the final trial from them (``select: {max: iou, where: "latency_ms <= 20"}``).

A multi-objective sweep searches every metric at once (Optuna's ``directions``) and keeps
the Pareto front; the trial it retrains is the best by ``select``'s metric among the
complete trials whose means meet ``where``. A trial's value of a metric is the mean over its
runs of the metric at each run's best epoch (chosen by the first metric).
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from smptune.errors import ConfigError
from smptune.records import RunResults

__all__ = ["LOWER_IS_BETTER", "Objective", "Objectives", "SelectRule", "Where"]

#: Metrics whose mode defaults to ``min`` (else ``max``).
LOWER_IS_BETTER = ("latency_ms", "param_count", "loss")
_OPS: dict[str, Callable[[float, float], bool]] = {
    "<=": operator.le,
    "<": operator.lt,
    ">=": operator.ge,
    ">": operator.gt,
}
_WHERE_RE = re.compile(
    r"^\s*([A-Za-z_]\w*)\s*(<=|>=|<|>)\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*$"
)

Mode = Literal["max", "min"]


@dataclass(frozen=True)
class Objective:
    """One searched metric and its direction."""

    name: str
    mode: Mode

    @property
    def direction(self) -> Literal["maximize", "minimize"]:
        return "maximize" if self.mode == "max" else "minimize"


@dataclass(frozen=True)
class Where:
    """``select.where``: ``<metric> <op> <number>`` (``<=``, ``<``, ``>=``, ``>``)."""

    metric: str
    op: str
    bound: float

    @classmethod
    def parse(cls, text: Any) -> Where:
        found = _WHERE_RE.match(text) if isinstance(text, str) else None
        if found is None:
            raise ConfigError(
                f"select.where: must read '<metric> <op> <number>' with op one of "
                f"{', '.join(_OPS)}, got {text!r}"
            )
        return cls(found.group(1), found.group(2), float(found.group(3)))

    def holds(self, values: Mapping[str, float]) -> bool:
        value = values.get(self.metric, math.nan)
        return math.isfinite(value) and _OPS[self.op](value, self.bound)

    def __str__(self) -> str:
        return f"{self.metric} {self.op} {self.bound:g}"


@dataclass(frozen=True)
class SelectRule:
    """Which trial of the front is the sweep's answer: the ``mode`` (max or min) of
    ``metric`` among the complete trials that meet ``where`` (all, without one)."""

    metric: str
    mode: Mode
    where: Where | None = None

    def choose(self, values: Mapping[int, Mapping[str, float]]) -> int | None:
        """The chosen trial number among ``values`` (trial -> metric means; the lowest
        number among equals), or None when no trial meets ``where``."""
        sign = 1.0 if self.mode == "max" else -1.0
        passing = [
            (sign * v[self.metric], -trial)
            for trial, v in values.items()
            if math.isfinite(v.get(self.metric, math.nan))
            and (self.where is None or self.where.holds(v))
        ]
        return -max(passing)[1] if passing else None

    def to_dict(self) -> dict[str, object]:
        out: dict[str, object] = {self.mode: self.metric}
        if self.where is not None:
            out["where"] = str(self.where)
        return out

    def __str__(self) -> str:
        where = f" where {self.where}" if self.where else ""
        return f"{self.mode} {self.metric}{where}"


@dataclass(frozen=True)
class Objectives:
    """A multi-objective sweep's metrics, their modes, and its select rule."""

    objectives: tuple[Objective, ...]
    select: SelectRule

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(o.name for o in self.objectives)

    @property
    def modes(self) -> tuple[Mode, ...]:
        return tuple(o.mode for o in self.objectives)

    @property
    def directions(self) -> list[Literal["maximize", "minimize"]]:
        """Optuna's ``directions`` of the study."""
        return [o.direction for o in self.objectives]

    @classmethod
    def from_config(cls, metrics: Any, modes: Any = None, select: Any = None) -> Objectives:
        """Read ``metrics`` (2 or more names), ``modes`` (one each; default ``min`` for
        :data:`LOWER_IS_BETTER`, else ``max``) and ``select``."""
        if not isinstance(metrics, list | tuple) or not all(
            isinstance(m, str) and m.strip() for m in metrics
        ):
            raise ConfigError(f"metrics: must be a list of metric names, got {metrics!r}")
        names = [m.strip() for m in metrics]
        if len(names) < 2:
            raise ConfigError(
                f"metrics: names {len(names)} metric; a multi-objective sweep needs 2 or more "
                "(use metric: for one)"
            )
        repeated = next((n for n in names if names.count(n) > 1), None)
        if repeated is not None:
            raise ConfigError(f"metrics: {repeated!r} is named twice")
        if modes is None:
            modes = ["min" if n in LOWER_IS_BETTER else "max" for n in names]
        if not isinstance(modes, list | tuple) or len(modes) != len(names):
            raise ConfigError(f"modes: must be a list of one mode per metric, got {modes!r}")
        for i, mode in enumerate(modes):
            if mode not in ("max", "min"):
                raise ConfigError(f"modes[{i}]: must be 'max' or 'min', got {mode!r}")
        objectives = tuple(Objective(n, m) for n, m in zip(names, modes, strict=True))
        return cls(objectives, _select(select, objectives))

    def values(self, runs: RunResults) -> dict[str, float] | None:
        """The trial's mean of each objective over its ``runs`` (None when a run lacks one
        or holds a value that is not finite)."""
        out: dict[str, float] = {}
        for name in self.names:
            seen = [runs[k]["metrics"].get(name, math.nan) for k in sorted(runs)]
            finite = [float(v) for v in seen if math.isfinite(float(v))]
            if not seen or len(finite) < len(seen):
                return None
            out[name] = sum(finite) / len(finite)
        return out

    def ordered(self, values: Mapping[str, float]) -> list[float]:
        """``values`` in the order of the objectives (Optuna's ``values``)."""
        return [float(values[n]) for n in self.names]

    def dominates(self, a: Sequence[float], b: Sequence[float]) -> bool:
        """Whether ``a`` is at least as good as ``b`` on every objective and better on one."""
        sign = [1.0 if m == "max" else -1.0 for m in self.modes]
        pairs = [(s * x, s * y) for s, x, y in zip(sign, a, b, strict=True)]
        return all(x >= y for x, y in pairs) and any(x > y for x, y in pairs)

    def to_dict(self) -> dict[str, object]:
        """results.json's ``objectives`` (and the config's keys)."""
        return {
            "metrics": list(self.names),
            "modes": list(self.modes),
            "select": self.select.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Objectives:
        return cls.from_config(data.get("metrics"), data.get("modes"), data.get("select"))


def _select(raw: Any, objectives: tuple[Objective, ...]) -> SelectRule:
    """``select``: ``{max|min: <metric>, where: "<metric> <op> <number>"}``; None: the first
    metric in its mode, with no filter."""
    if raw is None:
        return SelectRule(objectives[0].name, objectives[0].mode)
    if not isinstance(raw, Mapping):
        raise ConfigError(f"select: must be a mapping like {{max: iou}}, got {raw!r}")
    unknown = [k for k in raw if k not in ("max", "min", "where")]
    if unknown:
        raise ConfigError(f"select.{unknown[0]}: unknown key (known: max, min, where)")
    chosen = [k for k in ("max", "min") if k in raw]
    if len(chosen) != 1:
        raise ConfigError("select: give exactly one of max: <metric> or min: <metric>")
    mode: Mode = "max" if chosen[0] == "max" else "min"
    names = [o.name for o in objectives]
    metric = raw[mode]
    if metric not in names:
        raise ConfigError(f"select.{mode}: {metric!r} is not one of metrics ({', '.join(names)})")
    where = Where.parse(raw["where"]) if raw.get("where") is not None else None
    if where is not None and where.metric not in names:
        raise ConfigError(
            f"select.where: {where.metric!r} is not one of metrics ({', '.join(names)})"
        )
    return SelectRule(str(metric), mode, where)
