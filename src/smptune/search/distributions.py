"""Search-space distributions: small validated frozen value objects.

Each distribution validates itself on construction (raising
:class:`~smptune.errors.ConfigError` that names ``hyperparameters.<name>`` and quotes the bad
value), samples plain JSON values from a :class:`numpy.random.Generator`, converts to and from
Optuna, and writes itself in the canonical darts form with :meth:`Distribution.to_dict`
(:mod:`smptune.search.dialects` reads it back).

Ranges have one implementation each in Optuna's shape, :class:`FloatRange` and
:class:`IntRange` (``low``, ``high``, ``log``, ``step``); the config kinds (:class:`Uniform`,
:class:`LogUniform`, :class:`ReversedLogUniform`, :class:`QUniform`, :class:`QLogUniform`,
:class:`IntUniform`) are thin subclasses that fix or carry those.

Quantized entries (``quniform``, ``qloguniform``, ``intuniform`` with ``step``) take values on
the decimal lattice of :mod:`smptune.search.fields`; ints when ``low``, ``high`` and ``q`` are.

Every distribution may carry ``when``: the values earlier entries must have for it to apply
(:mod:`smptune.search.conditions` resolves and checks those, and holds the case tables).
"""

from __future__ import annotations

import copy
import math
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, ClassVar, cast

import numpy as np

import smptune.search.fields as fields
from smptune.errors import ConfigError
from smptune.search.fields import MAX_GRID_VALUES, Conditions
from smptune.search.values import json_value, param_text, same_value, with_defaults

__all__ = [
    "MAX_GRID_VALUES",
    "Choice",
    "Distribution",
    "FloatRange",
    "IntRange",
    "IntUniform",
    "LogUniform",
    "QLogUniform",
    "QUniform",
    "ReversedLogUniform",
    "Space",
    "Uniform",
    "Value",
    "json_value",
    "param_text",
    "same_value",
    "space_to_dict",
    "with_defaults",
]


@dataclass(frozen=True)
class Distribution(ABC):
    """Base of every hyperparameter distribution.

    ``when`` (every kind) lists the values earlier entries must have for this one to apply;
    ``name`` only labels error messages.
    """

    kind: ClassVar[str]
    name: str = field(default="", compare=False, kw_only=True)
    when: Conditions = field(default=(), kw_only=True)

    def __post_init__(self) -> None:
        object.__setattr__(self, "when", fields.read_conditions(self.where, self.when))
        self._validate(self.where)

    @property
    def where(self) -> str:
        """``hyperparameters.<name>``, the key error messages start with."""
        return fields.where_of(self.name)

    def _set(self, key: str, value: Any) -> None:
        object.__setattr__(self, key, value)

    @abstractmethod
    def _validate(self, where: str) -> None:
        """Check and normalise the fields (idempotent)."""

    @abstractmethod
    def sample(self, rng: np.random.Generator) -> Any:
        """Draw one value (plain Python, JSON-serializable)."""

    @abstractmethod
    def contains(self, value: Any) -> bool:
        """Whether ``value`` is one this entry can produce (JSON-equal)."""

    @property
    def is_discrete(self) -> bool:
        """Whether the entry is a finite list of values a grid search can enumerate."""
        return False

    def grid_values(self) -> list[Any]:
        """The values a grid search enumerates; ConfigError for a non-discrete entry."""
        raise ConfigError(
            f"{self.where}: grid search needs a discrete entry (choice, value, a quantized "
            f"range or a count); {self.kind} is continuous"
        )

    @abstractmethod
    def _body(self) -> dict[str, object]:
        """The explicit form's keys after ``distribution``."""

    def to_dict(self) -> dict[str, object]:
        """The canonical explicit darts form, e.g. ``{"distribution": "uniform", ...}``."""
        out = {"distribution": self.kind, **self._body()}
        if self.when:
            out["when"] = fields.when_dict(self.when)
        return out

    @abstractmethod
    def to_optuna(self) -> Any:
        """The ``optuna.distributions.BaseDistribution`` an adaptive sampler searches."""

    @abstractmethod
    def from_optuna(self, internal: Any) -> Any:
        """The configuration value for Optuna's ``internal`` (as :meth:`sample` would give)."""

    @abstractmethod
    def to_optuna_value(self, value: Any) -> Any:
        """Optuna's value for configuration value ``value``; inverts :meth:`from_optuna`."""


@dataclass(frozen=True)
class FloatRange(Distribution):
    """A float range in the shape of Optuna's ``FloatDistribution``: ``low``, ``high``, ``log``
    and ``step``, plus ``base`` (the config's log base, only recorded), ``count`` (a grid of
    ``count`` evenly, or for ``log`` geometrically, spaced points) and ``n`` (reversed:
    ``x = n - y``, Optuna searching ``y`` on a log scale).

    Validation, sampling, membership, grids and the Optuna conversions are written here once;
    the kinds below fix ``log`` and carry as fields only what they vary (a float step is
    written ``q``, as in darts).
    """

    log: ClassVar[bool] = False
    quantized: ClassVar[bool] = False
    """The kind carries a step ``q``: its values are the lattice ``low + k*q``."""
    reflected: ClassVar[bool] = False
    """The kind carries ``n``: ``x = n - y`` with ``y`` log-uniform on ``[n - high, n - low]``."""

    low: int | float
    high: int | float

    @property
    def step(self) -> int | float | None:
        """The lattice spacing of a quantized kind (its ``q``), else None."""
        return None

    @property
    def n(self) -> float | None:
        """What a reversed kind subtracts from, else None."""
        return None

    @property
    def base(self) -> float | None:
        """The log base the config gave, if any; it does not change the distribution."""
        return None

    @property
    def count(self) -> int | None:
        """How many points a grid takes, if any."""
        return None

    def _validate(self, where: str) -> None:
        read = fields.read_int_or_float if self.quantized else fields.read_number
        low, high = read(where, "low", self.low), read(where, "high", self.high)
        q = fields.read_int_or_float(where, "q", self.step) if self.quantized else None
        n = fields.read_number(where, "n", self.n) if self.reflected else None
        if self.log and n is None and low <= 0:
            raise ConfigError(f"{where}: {self.kind} needs low > 0, got low ({low!r})")
        fields.check_bounds(where, low, high)
        if q is not None:
            if not self.integer_valued(low, high, q):
                low, high, q = float(low), float(high), float(q)
            fields.lattice_size(where, low, high, q)
            self._set("q", q)
        if n is not None:
            if high >= n:
                raise ConfigError(
                    f"{where}: {self.kind} needs high < n, got high ({high!r}) and n ({n!r})"
                )
            self._set("n", n)
        self._set("low", low)
        self._set("high", high)
        if self.base is not None:
            self._set("base", fields.read_number(where, "base", self.base))
            if self.base <= 1:
                raise ConfigError(f"{where}: base ({self.base!r}) must be > 1")
        if self.count is not None:
            self._set("count", fields.read_count(where, self.count))

    @staticmethod
    def integer_valued(*numbers_: int | float) -> bool:
        """Whether a lattice with these bounds and step holds ints."""
        return all(isinstance(v, int) for v in numbers_)

    @property
    def _q(self) -> int | float:
        """The step, where the kind is quantized."""
        return cast("int | float", self.step)

    @property
    def _integer(self) -> bool:
        return self.integer_valued(self.low, self.high, self._q)

    @cached_property
    def _size(self) -> int:
        return fields.lattice_size(self.where, self.low, self.high, self._q)

    def _value(self, k: int) -> int | float:
        return fields.lattice_value(self.low, self._q, k, self._integer)

    @property
    def _searched(self) -> tuple[float, float]:
        """The bounds Optuna searches: ``[n - high, n - low]`` for a reversed kind."""
        n = self.n
        return (n - self.high, n - self.low) if n is not None else (self.low, self.high)

    def sample(self, rng: np.random.Generator) -> int | float:
        if self.quantized and not self.log:
            return self._value(int(rng.integers(0, self._size, endpoint=True)))
        low, high = self._searched
        if self.log:
            return self.from_optuna(math.exp(rng.uniform(math.log(low), math.log(high))))
        return self.from_optuna(rng.uniform(low, high))

    def contains(self, value: Any) -> bool:
        if self.quantized:
            return fields.on_lattice(value, self.low, self._q, self._size)
        return fields.is_number(value) and self.low <= value <= self.high

    @property
    def is_discrete(self) -> bool:
        return self.quantized or self.count is not None

    def grid_values(self) -> list[Any]:
        if self.quantized:
            fields.grid_guard(self.where, self._size + 1)
            return [self._value(k) for k in range(self._size + 1)]
        if self.count is None:
            return super().grid_values()
        spaced = np.geomspace if self.log else np.linspace
        points = spaced(self.low, self.high, self.count)
        return [self.low, *(fields.clean_float(float(p)) for p in points[1:-1]), self.high]

    def _body(self) -> dict[str, object]:
        out: dict[str, object] = {"low": self.low, "high": self.high}
        for key, value in (("q", self.step), ("n", self.n), ("base", self.base)):
            if value is not None:
                out[key] = value
        if self.count is not None:
            out["count"] = self.count
        return out

    def to_optuna(self) -> Any:
        from optuna.distributions import FloatDistribution, IntDistribution

        if self.quantized and not self.log:
            top = self._value(self._size)
            if self._integer:
                return IntDistribution(int(self.low), int(top), step=int(self._q))
            return FloatDistribution(self.low, top, step=self._q)
        low, high = self._searched
        return FloatDistribution(float(low), float(high), log=self.log)

    def from_optuna(self, internal: Any) -> int | float:
        n = self.n
        if self.quantized:
            return self._value(fields.snap(float(internal), self.low, self._q, self._size))
        if n is not None:
            return fields.clip(n - float(internal), self.low, self.high)
        top = self.high if self.log else math.nextafter(self.high, self.low)
        return fields.clip(float(internal), self.low, top)

    def to_optuna_value(self, value: Any) -> int | float:
        n = self.n
        if n is None:
            quantized_int = self.quantized and not self.log and self._integer
            return int(value) if quantized_int else float(value)
        low, high = self._searched
        y = fields.clip(n - float(value), low, high)
        # n - (n - x) may miss x by an ulp: step y until it maps back exactly
        for _ in range(64):
            back = self.from_optuna(y)
            if back == value:
                break
            y = fields.clip(math.nextafter(y, math.inf if back > value else -math.inf), low, high)
        return y


@dataclass(frozen=True)
class Uniform(FloatRange):
    """Float uniform on ``[low, high)``; ``count`` (Determined) grids ``count`` evenly spaced
    points from ``low`` to ``high``."""

    kind: ClassVar[str] = "uniform"
    count: int | None = field(default=None, kw_only=True)


@dataclass(frozen=True)
class LogUniform(FloatRange):
    """Log-uniform on ``[low, high]``: ``exp(uniform(log low, log high))``, ``low > 0``.

    In any base ``b`` this is the same distribution (``b**uniform(log_b low, log_b high)``);
    ``base`` is kept only to write the entry back as given. ``count`` grids ``count``
    geometrically spaced points.
    """

    kind: ClassVar[str] = "loguniform"
    log: ClassVar[bool] = True
    base: float | None = field(default=None, kw_only=True)
    count: int | None = field(default=None, kw_only=True)


@dataclass(frozen=True)
class ReversedLogUniform(FloatRange):
    """``X = n - Y`` with ``Y ~ loguniform(n - high, n - low)``; needs ``low < high < n``.

    Equal mass per decade of ``n - x``: for ``gamma`` in ``[0.9, 0.999]`` as many samples land
    in ``[0.9, 0.99]`` as in ``[0.99, 0.999]``. Optuna searches ``y = n - x`` on a log scale.
    """

    kind: ClassVar[str] = "reversed-loguniform"
    log: ClassVar[bool] = True
    reflected: ClassVar[bool] = True
    n: float = 1.0


@dataclass(frozen=True)
class QUniform(FloatRange):
    """Quantized uniform: ``low + k*q`` with ``k`` uniform on ``0..K``, ``K = floor((high -
    low) / q)``: every lattice point equally likely (as Optuna's ``step``; hyperopt's
    ``round(uniform(low, high) / q) * q`` would give the two ends half the weight). A grid
    enumerates the lattice. Ints when ``low``, ``high`` and ``q`` are ints.
    """

    kind: ClassVar[str] = "quniform"
    quantized: ClassVar[bool] = True
    q: int | float

    @property
    def step(self) -> int | float:
        return self.q


@dataclass(frozen=True)
class QLogUniform(FloatRange):
    """Quantized log-uniform: ``x ~ loguniform(low, high)`` moved to the nearest lattice point
    ``low + k*q`` (``k`` within ``0..K`` as for :class:`QUniform`), so point ``k`` has the
    log-uniform mass of ``[x_k - q/2, x_k + q/2]`` cut to ``[low, high]`` (the top point also
    takes what lies above it). ``base`` only records the config's log base.
    """

    kind: ClassVar[str] = "qloguniform"
    log: ClassVar[bool] = True
    quantized: ClassVar[bool] = True
    q: int | float
    base: float | None = field(default=None, kw_only=True)

    @property
    def step(self) -> int | float:
        return self.q


@dataclass(frozen=True)
class IntRange(Distribution):
    """Integers on ``[low, high]``, both ends inclusive, in the shape of Optuna's
    ``IntDistribution`` (``low``, ``high``, ``log``, ``step``) plus Determined's ``count``.

    ``step``: the lattice ``low, low + step, ...`` up to ``high``, each value equally likely,
    and a grid enumerates it. ``log`` (``low >= 1``): ``round(exp(uniform(log(low - 0.5),
    log(high + 0.5))))``, so ``k`` has probability ``log((k + 0.5) / (k - 0.5)) / log((high +
    0.5) / (low - 0.5))``. ``count``: a grid of ``count`` evenly spaced points, rounded half
    up, without duplicates. Without ``step`` or ``count`` it is a sampled range that a grid
    refuses. :class:`IntUniform` is its kind.
    """

    low: int
    high: int
    step: int | None = field(default=None, kw_only=True)
    log: bool = field(default=False, kw_only=True)
    count: int | None = field(default=None, kw_only=True)

    def _validate(self, where: str) -> None:
        self._set("low", fields.read_integer(where, "low", self.low))
        self._set("high", fields.read_integer(where, "high", self.high))
        fields.check_bounds(where, self.low, self.high)
        if not isinstance(self.log, bool):
            raise ConfigError(f"{where}: log ({self.log!r}) must be true or false")
        if self.step is not None:
            self._set("step", fields.read_integer(where, "step", self.step))
            if self.step < 1:
                raise ConfigError(f"{where}: step ({self.step!r}) must be an integer >= 1")
            if self.log and self.step != 1:
                raise ConfigError(
                    f"{where}: step ({self.step!r}) cannot be combined with log (as in Optuna)"
                )
        if self.log and self.low < 1:
            raise ConfigError(f"{where}: an integer log range needs low >= 1, got {self.low!r}")
        self._set("count", fields.read_count(where, self.count))
        if self.count is not None and (self.step is not None or self.log):
            raise ConfigError(f"{where}: count cannot be combined with step or log")

    @cached_property
    def _size(self) -> int:
        return (self.high - self.low) // (self.step or 1)

    def sample(self, rng: np.random.Generator) -> int:
        if self.log:
            x = math.exp(rng.uniform(math.log(self.low - 0.5), math.log(self.high + 0.5)))
            return self.from_optuna(x)
        if self.step is not None:
            return self.low + self.step * int(rng.integers(0, self._size, endpoint=True))
        return int(rng.integers(self.low, self.high, endpoint=True))

    def contains(self, value: Any) -> bool:
        if not fields.is_number(value) or not float(value).is_integer():
            return False
        return self.low <= value <= self.high and (int(value) - self.low) % (self.step or 1) == 0

    @property
    def is_discrete(self) -> bool:
        return self.step is not None or self.count is not None

    def grid_values(self) -> list[Any]:
        if self.count is not None:
            points = np.linspace(self.low, self.high, self.count)
            return sorted({math.floor(float(p) + 0.5) for p in points})
        if self.step is None:
            raise ConfigError(
                f"{self.where}: grid search needs a discrete entry; {self.kind} is a sampled "
                "range, give it a step or list its values as a choice instead"
            )
        fields.grid_guard(self.where, self._size + 1)
        return list(range(self.low, self.high + 1, self.step))

    def _body(self) -> dict[str, object]:
        out: dict[str, object] = {"low": self.low, "high": self.high}
        if self.step is not None:
            out["step"] = self.step
        if self.log:
            out["log"] = True
        if self.count is not None:
            out["count"] = self.count
        return out

    def to_optuna(self) -> Any:
        from optuna.distributions import IntDistribution

        step = self.step or 1
        return IntDistribution(self.low, self.low + self._size * step, log=self.log, step=step)

    def from_optuna(self, internal: Any) -> int:
        step = self.step or 1
        return self.low + step * fields.snap(float(internal), self.low, step, self._size)

    def to_optuna_value(self, value: Any) -> int:
        return int(value)


@dataclass(frozen=True)
class IntUniform(IntRange):
    """Integers on ``[low, high]`` (darts ``intuniform``, Optuna ``int``, Determined ``int``);
    ``step``, ``log`` and ``count`` as :class:`IntRange`."""

    kind: ClassVar[str] = "intuniform"


class _Categorical(Distribution):
    """Choice and Value: Optuna holds them as a CategoricalDistribution."""

    @property
    @abstractmethod
    def _options(self) -> tuple[Any, ...]:
        """The values, in order."""

    def contains(self, value: Any) -> bool:
        return any(same_value(value, c) for c in self._options)

    def to_optuna(self) -> Any:
        from optuna.distributions import CategoricalDistribution

        raw = fields.optuna_choices(self._options)
        return CategoricalDistribution(raw if raw is not None else range(len(self._options)))

    def _index(self, value: Any) -> int:
        """Position of ``value``: the same type first (``1.0`` before ``1``), else JSON-equal."""
        for i, option in enumerate(self._options):
            if type(option) is type(value) and same_value(value, option):
                return i
        for i, option in enumerate(self._options):
            if same_value(value, option):
                return i
        raise ConfigError(f"{self.where}: {value!r} is not one of {list(self._options)!r}")

    def from_optuna(self, internal: Any) -> Any:
        if fields.optuna_choices(self._options) is None:
            return copy.deepcopy(self._options[int(internal)])
        return copy.deepcopy(self._options[self._index(internal)])

    def to_optuna_value(self, value: Any) -> Any:
        i = self._index(value)
        return self._options[i] if fields.optuna_choices(self._options) is not None else i


@dataclass(frozen=True)
class Choice(_Categorical):
    """One of a non-empty list of values, each equally likely."""

    kind: ClassVar[str] = "choice"
    choices: tuple[Any, ...]

    def _validate(self, where: str) -> None:
        if isinstance(self.choices, (str, bytes, Mapping)) or not isinstance(
            self.choices, Sequence
        ):
            raise ConfigError(f"{where}: choices ({self.choices!r}) must be a list")
        if not self.choices:
            raise ConfigError(f"{where}: choices must not be empty")
        self._set("choices", tuple(json_value(where, c) for c in self.choices))

    @property
    def _options(self) -> tuple[Any, ...]:
        return self.choices

    @property
    def is_discrete(self) -> bool:
        return True

    def sample(self, rng: np.random.Generator) -> Any:
        return copy.deepcopy(self.choices[int(rng.integers(len(self.choices)))])

    def grid_values(self) -> list[Any]:
        return copy.deepcopy(list(self.choices))

    def _body(self) -> dict[str, object]:
        return {"choices": copy.deepcopy(list(self.choices))}


@dataclass(frozen=True)
class Value(_Categorical):
    """A fixed value."""

    kind: ClassVar[str] = "value"
    value: Any

    def _validate(self, where: str) -> None:
        self._set("value", json_value(where, self.value))

    @property
    def _options(self) -> tuple[Any, ...]:
        return (self.value,)

    @property
    def is_discrete(self) -> bool:
        return True

    def sample(self, rng: np.random.Generator | None) -> Any:
        return copy.deepcopy(self.value)

    def grid_values(self) -> list[Any]:
        return [copy.deepcopy(self.value)]

    def _body(self) -> dict[str, object]:
        return {"value": copy.deepcopy(self.value)}


Space = dict[str, Distribution]
"""A space: hyperparameter name → distribution, in config order."""


def space_to_dict(space: Mapping[str, Distribution]) -> dict[str, dict[str, object]]:
    """Every entry of ``space`` in canonical explicit form, in space order."""
    return {name: dist.to_dict() for name, dist in space.items()}
