"""Search-space distributions, the config dialects that describe them, and sampling.

Each distribution is a small frozen value object: it validates itself on construction
(raising :class:`~smptune.errors.ConfigError` that names ``hyperparameters.<name>`` and quotes
the bad value), samples plain JSON values from a :class:`numpy.random.Generator`, and
round-trips through :meth:`Distribution.to_dict` / :func:`distribution_from_dict`.

:func:`parse_distribution` reads a config entry in any supported dialect: darts (the canonical
form), Determined, Optuna-style YAML and OpenVINO Training Extensions. A dialect is a
``(name, claims, parse)`` triple in :data:`DIALECTS`, tried per entry in order.

Conditional entries: every distribution may carry ``when`` (the values earlier entries must
have), and :class:`Cases` picks an entry by the value of an earlier one. :func:`is_active`
and :func:`leaf` resolve both against the values chosen so far; configurations never carry an
inactive entry.

Quantized entries (``quniform``, ``qloguniform``, ``intuniform`` with ``step``) take values on
the lattice ``low, low + q, ..., low + K*q`` with ``K = floor((high - low) / q)``, computed in
decimal so that ``0.1 + 2 * 0.1`` is ``0.3``; values are ints when ``low``, ``high`` and ``q``
all are.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import numbers
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from functools import cached_property
from typing import Any, ClassVar

import numpy as np

from smptune.errors import ConfigError

__all__ = [
    "DIALECTS",
    "Cases",
    "Choice",
    "Distribution",
    "IntUniform",
    "LogUniform",
    "QLogUniform",
    "QUniform",
    "ReversedLogUniform",
    "Space",
    "Uniform",
    "Value",
    "check_space",
    "distribution_from_dict",
    "grid_configurations",
    "is_active",
    "json_value",
    "leaf",
    "parse_distribution",
    "sample_configurations",
    "space_to_dict",
    "with_defaults",
]

#: Most values one entry may contribute to a grid, and most lattice points of a quantized entry.
MAX_GRID_VALUES = 100_000
_MAX_LATTICE = 10**12

Conditions = tuple[tuple[str, tuple[Any, ...]], ...]
"""``when`` of a distribution: ``((parent, (value, ...)), ...)``; every parent must have one of
its values."""


def _where(name: str) -> str:
    return f"hyperparameters.{name}" if name else "hyperparameters"


def _number(where: str, key: str, value: Any) -> float:
    """A finite real number; numeric strings (YAML reads ``1e-4`` as one) are converted."""
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            raise ConfigError(f"{where}: {key} ({value!r}) must be a number") from None
    elif isinstance(value, numbers.Real) and not isinstance(value, bool):
        number = float(value)
    else:
        raise ConfigError(f"{where}: {key} ({value!r}) must be a number")
    if not math.isfinite(number):
        raise ConfigError(f"{where}: {key} ({value!r}) must be finite")
    return number


def _integer(where: str, key: str, value: Any) -> int:
    """An integer; integral floats and numeric strings (``5.0``, ``"5"``) are accepted."""
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return int(value)
    number = _number(where, key, value)
    if not number.is_integer():
        raise ConfigError(f"{where}: {key} ({value!r}) must be an integer")
    return int(number)


def _int_or_float(where: str, key: str, value: Any) -> int | float:
    """A number that keeps its type: ``32`` stays an int, ``32.0`` and ``"1e-3"`` are floats."""
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return int(value)
    if isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            pass
    return _number(where, key, value)


def _optional_count(where: str, count: Any) -> int | None:
    if count is None:
        return None
    number = _integer(where, "count", count)
    if number < 2:
        raise ConfigError(f"{where}: count ({count!r}) must be an integer >= 2")
    return number


def _check_bounds(where: str, low: float, high: float) -> None:
    if low >= high:
        raise ConfigError(f"{where}: low ({low!r}) must be < high ({high!r})")


def _dec(value: int | float) -> Decimal:
    """The decimal a number was written as (``0.1`` is ``Decimal('0.1')``, not its binary)."""
    return Decimal(value) if isinstance(value, int) else Decimal(repr(value))


def _clean(value: float) -> float:
    """``value`` without binary noise in its last digits (12 significant digits)."""
    return float(f"{value:.12g}")


def json_value(where: str, value: Any) -> Any:
    """Return ``value`` as plain JSON data (None, bool, int, float, str, list, str-keyed dict).

    Tuples become lists and numpy scalars become Python numbers; anything else (a YAML date,
    a set) raises :class:`ConfigError` naming ``where``.
    """
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value)
    if isinstance(value, (list, tuple)):
        return [json_value(where, item) for item in value]
    if isinstance(value, Mapping):
        out = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise ConfigError(f"{where}: mapping key {key!r} must be a string")
            out[key] = json_value(f"{where}.{key}", item)
        return out
    raise ConfigError(
        f"{where}: {value!r} is not JSON data "
        "(use null, a bool, a number, a string, a list or a mapping)"
    )


def same_value(a: Any, b: Any) -> bool:
    """JSON equality: ``8 == 8.0`` but ``True != 1`` and ``None`` only equals ``None``."""
    if isinstance(a, bool) or isinstance(b, bool) or a is None or b is None:
        return type(a) is type(b) and a == b
    if isinstance(a, numbers.Real) and isinstance(b, numbers.Real):
        return a == b
    if isinstance(a, str) or isinstance(b, str):
        return isinstance(a, str) and isinstance(b, str) and a == b
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(same_value(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        return a.keys() == b.keys() and all(same_value(a[k], b[k]) for k in a)
    return False


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _conditions(where: str, raw: Any) -> Conditions:
    """Normalise ``when``: ``{parent: value | [value, ...]}`` (a list means any of them)."""
    if isinstance(raw, tuple) and all(
        isinstance(item, tuple) and len(item) == 2 and isinstance(item[1], tuple) for item in raw
    ):
        items: Any = [(parent, list(values)) for parent, values in raw]
    elif isinstance(raw, Mapping):
        items = list(raw.items())
    elif raw is None:
        items = []
    else:
        raise ConfigError(
            f"{where}: when ({raw!r}) must be a mapping of an earlier entry's name to a value "
            "or a list of values"
        )
    out = []
    for parent, values in items:
        if not isinstance(parent, str) or not parent.strip():
            raise ConfigError(f"{where}: when: {parent!r} must be the name of an earlier entry")
        listed = list(values) if isinstance(values, (list, tuple)) else [values]
        if not listed:
            raise ConfigError(f"{where}: when.{parent} must list at least one value")
        normalised = tuple(json_value(f"{where}.when.{parent}", v) for v in listed)
        out.append((parent.replace("-", "_"), normalised))
    return tuple(out)


def _when_dict(when: Conditions) -> dict[str, list[Any]]:
    return {parent: copy.deepcopy(list(values)) for parent, values in when}


def _clip(value: float, low: float, high: float) -> float:
    return min(max(value, low), high)


def _optuna_choices(choices: Sequence[Any]) -> tuple[Any, ...] | None:
    """``choices`` as Optuna's CategoricalDistribution can hold them, or None where an index
    must stand in: a list or mapping, or two choices Python calls equal (``True``, ``1``)."""
    if not all(c is None or isinstance(c, (bool, int, float, str)) for c in choices):
        return None
    for i, a in enumerate(choices):
        if any(a == b for b in choices[i + 1 :]):
            return None
    return tuple(choices)


def _lattice_size(where: str, low: int | float, high: int | float, q: int | float) -> int:
    """``K``: the lattice is ``low + k*q`` for ``k = 0..K``, the last point ``<= high``."""
    if q <= 0:
        raise ConfigError(f"{where}: q ({q!r}) must be > 0")
    if q > high - low:
        raise ConfigError(f"{where}: q ({q!r}) must be <= high - low ({high!r} - {low!r})")
    size = int((_dec(high) - _dec(low)) // _dec(q))
    if size >= _MAX_LATTICE:
        raise ConfigError(
            f"{where}: q ({q!r}) makes more than {_MAX_LATTICE} values; "
            "use a continuous distribution"
        )
    return size


def _lattice_value(low: int | float, q: int | float, k: int, integer: bool) -> int | float:
    exact = _dec(low) + k * _dec(q)
    return int(exact) if integer else float(exact)


def _snap(x: float, low: float, q: float, size: int) -> int:
    """The lattice index nearest to ``x``, within ``0..size``."""
    return min(max(math.floor((x - low) / q + 0.5), 0), size)


def _on_lattice(value: Any, low: int | float, q: int | float, size: int) -> bool:
    if not _is_number(value) or not math.isfinite(value):
        return False
    steps = (_dec(value) - _dec(low)) / _dec(q)
    return steps == steps.to_integral_value() and 0 <= steps <= size


def _grid_guard(where: str, n: int) -> None:
    if n > MAX_GRID_VALUES:
        raise ConfigError(
            f"{where}: {n} grid values is more than {MAX_GRID_VALUES}; use a larger step"
        )


@dataclass(frozen=True)
class Distribution(ABC):
    """Base of every search-space distribution.

    ``when`` (every kind) lists the values earlier entries must have for this one to apply;
    ``name`` only labels error messages.
    """

    kind: ClassVar[str]
    name: str = field(default="", compare=False, kw_only=True)
    when: Conditions = field(default=(), kw_only=True)

    def __post_init__(self) -> None:
        object.__setattr__(self, "when", _conditions(self.where, self.when))
        self._validate(self.where)

    @property
    def where(self) -> str:
        """``hyperparameters.<name>``, the key error messages start with."""
        return _where(self.name)

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
    def _body(self) -> dict[str, Any]:
        """The explicit form's keys after ``distribution``."""

    def to_dict(self) -> dict[str, Any]:
        """The canonical explicit darts form, e.g. ``{"distribution": "uniform", ...}``."""
        out = {"distribution": self.kind, **self._body()}
        if self.when:
            out["when"] = _when_dict(self.when)
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
class Uniform(Distribution):
    """Float uniform on ``[low, high)``; ``count`` (Determined) grids ``count`` evenly spaced
    points from ``low`` to ``high``."""

    kind: ClassVar[str] = "uniform"
    low: float
    high: float
    count: int | None = field(default=None, kw_only=True)

    def _validate(self, where: str) -> None:
        self._set("low", _number(where, "low", self.low))
        self._set("high", _number(where, "high", self.high))
        _check_bounds(where, self.low, self.high)
        self._set("count", _optional_count(where, self.count))

    def sample(self, rng: np.random.Generator) -> float:
        return self.from_optuna(rng.uniform(self.low, self.high))

    def contains(self, value: Any) -> bool:
        return _is_number(value) and self.low <= value <= self.high

    @property
    def is_discrete(self) -> bool:
        return self.count is not None

    def grid_values(self) -> list[Any]:
        if self.count is None:
            return super().grid_values()
        points = np.linspace(self.low, self.high, self.count)
        return [self.low, *(_clean(float(p)) for p in points[1:-1]), self.high]

    def _body(self) -> dict[str, Any]:
        out: dict[str, Any] = {"low": self.low, "high": self.high}
        if self.count is not None:
            out["count"] = self.count
        return out

    def to_optuna(self) -> Any:
        from optuna.distributions import FloatDistribution

        return FloatDistribution(self.low, self.high)

    def from_optuna(self, internal: Any) -> float:
        return _clip(float(internal), self.low, math.nextafter(self.high, self.low))

    def to_optuna_value(self, value: Any) -> float:
        return float(value)


@dataclass(frozen=True)
class LogUniform(Distribution):
    """Log-uniform on ``[low, high]``: ``exp(uniform(log low, log high))``, ``low > 0``.

    In any base ``b`` this is the same distribution (``b**uniform(log_b low, log_b high)``);
    ``base`` is kept only to write the entry back as given. ``count`` grids ``count``
    geometrically spaced points.
    """

    kind: ClassVar[str] = "loguniform"
    low: float
    high: float
    base: float | None = field(default=None, kw_only=True)
    count: int | None = field(default=None, kw_only=True)

    def _validate(self, where: str) -> None:
        self._set("low", _number(where, "low", self.low))
        self._set("high", _number(where, "high", self.high))
        if self.low <= 0:
            raise ConfigError(f"{where}: loguniform needs low > 0, got low ({self.low!r})")
        _check_bounds(where, self.low, self.high)
        if self.base is not None:
            self._set("base", _number(where, "base", self.base))
            if self.base <= 1:
                raise ConfigError(f"{where}: base ({self.base!r}) must be > 1")
        self._set("count", _optional_count(where, self.count))

    def sample(self, rng: np.random.Generator) -> float:
        return self.from_optuna(math.exp(rng.uniform(math.log(self.low), math.log(self.high))))

    def contains(self, value: Any) -> bool:
        return _is_number(value) and self.low <= value <= self.high

    @property
    def is_discrete(self) -> bool:
        return self.count is not None

    def grid_values(self) -> list[Any]:
        if self.count is None:
            return super().grid_values()
        points = np.geomspace(self.low, self.high, self.count)
        return [self.low, *(_clean(float(p)) for p in points[1:-1]), self.high]

    def _body(self) -> dict[str, Any]:
        out: dict[str, Any] = {"low": self.low, "high": self.high}
        if self.base is not None:
            out["base"] = self.base
        if self.count is not None:
            out["count"] = self.count
        return out

    def to_optuna(self) -> Any:
        from optuna.distributions import FloatDistribution

        return FloatDistribution(self.low, self.high, log=True)

    def from_optuna(self, internal: Any) -> float:
        return _clip(float(internal), self.low, self.high)

    def to_optuna_value(self, value: Any) -> float:
        return float(value)


@dataclass(frozen=True)
class ReversedLogUniform(Distribution):
    """``X = n - Y`` with ``Y ~ loguniform(n - high, n - low)``; needs ``low < high < n``.

    Equal mass per decade of ``n - x``: for ``gamma`` in ``[0.9, 0.999]`` as many samples land
    in ``[0.9, 0.99]`` as in ``[0.99, 0.999]``. Optuna searches ``y = n - x`` on a log scale.
    """

    kind: ClassVar[str] = "reversed-loguniform"
    low: float
    high: float
    n: float = 1.0

    def _validate(self, where: str) -> None:
        self._set("low", _number(where, "low", self.low))
        self._set("high", _number(where, "high", self.high))
        self._set("n", _number(where, "n", self.n))
        _check_bounds(where, self.low, self.high)
        if self.high >= self.n:
            raise ConfigError(
                f"{where}: reversed-loguniform needs high < n, got high ({self.high!r}) "
                f"and n ({self.n!r})"
            )

    def sample(self, rng: np.random.Generator) -> float:
        y = math.exp(rng.uniform(math.log(self.n - self.high), math.log(self.n - self.low)))
        return self.from_optuna(y)

    def contains(self, value: Any) -> bool:
        return _is_number(value) and self.low <= value <= self.high

    def _body(self) -> dict[str, Any]:
        return {"low": self.low, "high": self.high, "n": self.n}

    def to_optuna(self) -> Any:
        from optuna.distributions import FloatDistribution

        return FloatDistribution(self.n - self.high, self.n - self.low, log=True)

    def from_optuna(self, internal: Any) -> float:
        return _clip(self.n - float(internal), self.low, self.high)

    def to_optuna_value(self, value: Any) -> float:
        low, high = self.n - self.high, self.n - self.low
        y = _clip(self.n - float(value), low, high)
        # n - (n - x) may miss x by an ulp: step y until it maps back exactly
        for _ in range(64):
            back = self.from_optuna(y)
            if back == value:
                break
            y = _clip(math.nextafter(y, math.inf if back > value else -math.inf), low, high)
        return y


@dataclass(frozen=True)
class IntUniform(Distribution):
    """Integers on ``[low, high]``, both ends inclusive.

    ``step`` (Optuna ``int`` with ``step``): the lattice ``low, low + step, ...`` up to
    ``high``, each value equally likely, and a grid enumerates it. ``log`` (Optuna ``int`` with
    ``log: true``, ``low >= 1``): ``round(exp(uniform(log(low - 0.5), log(high + 0.5))))``, so
    ``k`` has probability ``log((k + 0.5) / (k - 0.5)) / log((high + 0.5) / (low - 0.5))``.
    ``count`` (Determined): a grid of ``count`` evenly spaced points, rounded half up, without
    duplicates. Without ``step`` or ``count`` it is a sampled range that a grid refuses.
    """

    kind: ClassVar[str] = "intuniform"
    low: int
    high: int
    step: int | None = field(default=None, kw_only=True)
    log: bool = field(default=False, kw_only=True)
    count: int | None = field(default=None, kw_only=True)

    def _validate(self, where: str) -> None:
        self._set("low", _integer(where, "low", self.low))
        self._set("high", _integer(where, "high", self.high))
        _check_bounds(where, self.low, self.high)
        if not isinstance(self.log, bool):
            raise ConfigError(f"{where}: log ({self.log!r}) must be true or false")
        if self.step is not None:
            self._set("step", _integer(where, "step", self.step))
            if self.step < 1:
                raise ConfigError(f"{where}: step ({self.step!r}) must be an integer >= 1")
            if self.log and self.step != 1:
                raise ConfigError(
                    f"{where}: step ({self.step!r}) cannot be combined with log (as in Optuna)"
                )
        if self.log and self.low < 1:
            raise ConfigError(f"{where}: an integer log range needs low >= 1, got {self.low!r}")
        self._set("count", _optional_count(where, self.count))
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
        if not _is_number(value) or not float(value).is_integer():
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
                f"{self.where}: grid search needs a discrete entry; intuniform is a sampled "
                "range, give it a step or list its values as a choice instead"
            )
        _grid_guard(self.where, self._size + 1)
        return list(range(self.low, self.high + 1, self.step))

    def _body(self) -> dict[str, Any]:
        out: dict[str, Any] = {"low": self.low, "high": self.high}
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
        return self.low + step * _snap(float(internal), self.low, step, self._size)

    def to_optuna_value(self, value: Any) -> int:
        return int(value)


@dataclass(frozen=True)
class QUniform(Distribution):
    """Quantized uniform: ``low + k*q`` with ``k`` uniform on ``0..K``, ``K = floor((high -
    low) / q)``: every lattice point equally likely (as Optuna's ``step``; hyperopt's
    ``round(uniform(low, high) / q) * q`` would give the two ends half the weight). A grid
    enumerates the lattice. Ints when ``low``, ``high`` and ``q`` are ints.
    """

    kind: ClassVar[str] = "quniform"
    low: int | float
    high: int | float
    q: int | float

    def _validate(self, where: str) -> None:
        low = _int_or_float(where, "low", self.low)
        high = _int_or_float(where, "high", self.high)
        q = _int_or_float(where, "q", self.q)
        _check_bounds(where, low, high)
        if not self.integer_valued(low, high, q):
            low, high, q = float(low), float(high), float(q)
        self._set("low", low)
        self._set("high", high)
        self._set("q", q)
        _lattice_size(where, low, high, q)

    @staticmethod
    def integer_valued(*numbers_: int | float) -> bool:
        return all(isinstance(v, int) for v in numbers_)

    @property
    def _integer(self) -> bool:
        return self.integer_valued(self.low, self.high, self.q)

    @cached_property
    def _size(self) -> int:
        return _lattice_size(self.where, self.low, self.high, self.q)

    def _value(self, k: int) -> int | float:
        return _lattice_value(self.low, self.q, k, self._integer)

    def sample(self, rng: np.random.Generator) -> int | float:
        return self._value(int(rng.integers(0, self._size, endpoint=True)))

    def contains(self, value: Any) -> bool:
        return _on_lattice(value, self.low, self.q, self._size)

    @property
    def is_discrete(self) -> bool:
        return True

    def grid_values(self) -> list[Any]:
        _grid_guard(self.where, self._size + 1)
        return [self._value(k) for k in range(self._size + 1)]

    def _body(self) -> dict[str, Any]:
        return {"low": self.low, "high": self.high, "q": self.q}

    def to_optuna(self) -> Any:
        from optuna.distributions import FloatDistribution, IntDistribution

        top = self._value(self._size)
        if self._integer:
            return IntDistribution(int(self.low), int(top), step=int(self.q))
        return FloatDistribution(self.low, top, step=self.q)

    def from_optuna(self, internal: Any) -> int | float:
        return self._value(_snap(float(internal), self.low, self.q, self._size))

    def to_optuna_value(self, value: Any) -> int | float:
        return int(value) if self._integer else float(value)


@dataclass(frozen=True)
class QLogUniform(Distribution):
    """Quantized log-uniform: ``x ~ loguniform(low, high)`` moved to the nearest lattice point
    ``low + k*q`` (``k`` within ``0..K`` as for :class:`QUniform`), so point ``k`` has the
    log-uniform mass of ``[x_k - q/2, x_k + q/2]`` cut to ``[low, high]`` (the top point also
    takes what lies above it). ``base`` only records the config's log base.
    """

    kind: ClassVar[str] = "qloguniform"
    low: int | float
    high: int | float
    q: int | float
    base: float | None = field(default=None, kw_only=True)

    def _validate(self, where: str) -> None:
        low = _int_or_float(where, "low", self.low)
        high = _int_or_float(where, "high", self.high)
        q = _int_or_float(where, "q", self.q)
        if low <= 0:
            raise ConfigError(f"{where}: qloguniform needs low > 0, got low ({low!r})")
        _check_bounds(where, low, high)
        if not QUniform.integer_valued(low, high, q):
            low, high, q = float(low), float(high), float(q)
        self._set("low", low)
        self._set("high", high)
        self._set("q", q)
        _lattice_size(where, low, high, q)
        if self.base is not None:
            self._set("base", _number(where, "base", self.base))
            if self.base <= 1:
                raise ConfigError(f"{where}: base ({self.base!r}) must be > 1")

    @property
    def _integer(self) -> bool:
        return QUniform.integer_valued(self.low, self.high, self.q)

    @cached_property
    def _size(self) -> int:
        return _lattice_size(self.where, self.low, self.high, self.q)

    def _value(self, k: int) -> int | float:
        return _lattice_value(self.low, self.q, k, self._integer)

    def sample(self, rng: np.random.Generator) -> int | float:
        return self.from_optuna(math.exp(rng.uniform(math.log(self.low), math.log(self.high))))

    def contains(self, value: Any) -> bool:
        return _on_lattice(value, self.low, self.q, self._size)

    @property
    def is_discrete(self) -> bool:
        return True

    def grid_values(self) -> list[Any]:
        _grid_guard(self.where, self._size + 1)
        return [self._value(k) for k in range(self._size + 1)]

    def _body(self) -> dict[str, Any]:
        out: dict[str, Any] = {"low": self.low, "high": self.high, "q": self.q}
        if self.base is not None:
            out["base"] = self.base
        return out

    def to_optuna(self) -> Any:
        from optuna.distributions import FloatDistribution

        return FloatDistribution(float(self.low), float(self.high), log=True)

    def from_optuna(self, internal: Any) -> int | float:
        return self._value(_snap(float(internal), self.low, self.q, self._size))

    def to_optuna_value(self, value: Any) -> float:
        return float(value)


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

        raw = _optuna_choices(self._options)
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
        if _optuna_choices(self._options) is None:
            return copy.deepcopy(self._options[int(internal)])
        return copy.deepcopy(self._options[self._index(internal)])

    def to_optuna_value(self, value: Any) -> Any:
        i = self._index(value)
        return self._options[i] if _optuna_choices(self._options) is not None else i


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

    def _body(self) -> dict[str, Any]:
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

    def _body(self) -> dict[str, Any]:
        return {"value": copy.deepcopy(self.value)}


def _case_label(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


@dataclass(frozen=True)
class Cases(Distribution):
    """An entry that depends on an earlier one, ``parent``: ``cases`` pairs a value of the
    parent with the entry used then; a parent value without a case makes the entry inactive.

    A case is any entry form in any dialect (a raw entry is parsed), but neither a case table
    nor conditional itself. Resolve it with :func:`leaf`; it is not sampled directly.
    """

    kind: ClassVar[str] = "cases"
    parent: str
    cases: tuple[tuple[Any, Distribution], ...]

    def _validate(self, where: str) -> None:
        if not isinstance(self.parent, str) or not self.parent.strip():
            raise ConfigError(
                f"{where}: depends_on ({self.parent!r}) must be the name of an earlier entry"
            )
        self._set("parent", self.parent.replace("-", "_"))
        raw = self.cases
        if isinstance(raw, Mapping):
            pairs = list(raw.items())
        elif isinstance(raw, (list, tuple)) and all(
            isinstance(p, (list, tuple)) and len(p) == 2 for p in raw
        ):
            pairs = [(p[0], p[1]) for p in raw]
        else:
            raise ConfigError(
                f"{where}: cases ({raw!r}) must map each value of {self.parent!r} to an entry"
            )
        if not pairs:
            raise ConfigError(f"{where}: cases must not be empty")
        out: list[tuple[Any, Distribution]] = []
        for value, entry in pairs:
            value = json_value(f"{where}.cases", value)
            label = f"{self.name}.cases.{_case_label(value)}"
            if any(same_value(value, seen) for seen, _ in out):
                raise ConfigError(f"{where}: cases: {value!r} is listed twice")
            dist = entry if isinstance(entry, Distribution) else parse_distribution(label, entry)
            if isinstance(dist, Cases):
                raise ConfigError(f"{_where(label)}: a case cannot be a case table itself")
            if dist.when:
                raise ConfigError(
                    f"{_where(label)}: a case cannot have its own when; put it on the entry"
                )
            out.append((value, dataclasses.replace(dist, name=label)))
        self._set("cases", tuple(out))

    def case_for(self, value: Any) -> Distribution | None:
        """The entry used when the parent has ``value``, or None (inactive)."""
        for case, dist in self.cases:
            if same_value(case, value):
                return dist
        return None

    def sample(self, rng: np.random.Generator) -> Any:
        raise ConfigError(
            f"{self.where}: a case table is sampled through leaf(), "
            f"with the value of {self.parent!r}"
        )

    def contains(self, value: Any) -> bool:
        return any(dist.contains(value) for _, dist in self.cases)

    @property
    def is_discrete(self) -> bool:
        return all(dist.is_discrete for _, dist in self.cases)

    def grid_values(self) -> list[Any]:
        for _, dist in self.cases:
            dist.grid_values()  # names the first continuous case
        raise ConfigError(
            f"{self.where}: a case table's grid values depend on {self.parent!r}; use leaf()"
        )

    def _body(self) -> dict[str, Any]:
        return {
            "depends_on": self.parent,
            "cases": [[copy.deepcopy(v), dist.to_dict()] for v, dist in self.cases],
        }

    def _unresolved(self) -> ConfigError:
        return ConfigError(f"{self.where}: resolve the case table with leaf() before asking Optuna")

    def to_optuna(self) -> Any:
        raise self._unresolved()

    def from_optuna(self, internal: Any) -> Any:
        raise self._unresolved()

    def to_optuna_value(self, value: Any) -> Any:
        raise self._unresolved()


Space = dict[str, Distribution]
"""A search space: hyperparameter name → distribution, in config order."""


def is_active(dist: Distribution, config: Mapping[str, Any]) -> bool:
    """Whether ``dist`` applies given ``config``, the values chosen so far in space order:
    every ``when`` parent has one of its values, and a case table has a case for its parent's
    value (a parent that is absent, being inactive itself, makes the entry inactive)."""
    for parent, values in dist.when:
        if parent not in config or not any(same_value(config[parent], v) for v in values):
            return False
    if isinstance(dist, Cases):
        return dist.parent in config and dist.case_for(config[dist.parent]) is not None
    return True


def leaf(dist: Distribution, config: Mapping[str, Any]) -> Distribution:
    """The plain distribution of ``dist`` given ``config``: a case table's case for its
    parent's value; any other distribution itself. ConfigError for an inactive case table."""
    if not isinstance(dist, Cases):
        return dist
    chosen = dist.case_for(config[dist.parent]) if dist.parent in config else None
    if chosen is None:
        state = (
            f"{dist.parent} = {json.dumps(config[dist.parent])} has no case"
            if dist.parent in config
            else f"{dist.parent} is not set"
        )
        raise ConfigError(f"{dist.where}: inactive ({state}); check is_active() first")
    return chosen


def param_text(name: str, value: Any) -> str:
    """``name=value`` as logs, status and Flower show a parameter: floats to 4 significant
    digits."""
    return f"{name}={value:.4g}" if isinstance(value, float) else f"{name}={value}"


def with_defaults(
    space: Mapping[str, Any], defaults: Mapping[str, Any], config: Mapping[str, Any]
) -> dict[str, Any]:
    """``config`` completed with ``defaults`` for the names ``space`` does not list, in the
    defaults' order: an entry of the space that is inactive stays absent."""
    out = {k: config.get(k, v) for k, v in defaults.items() if k in config or k not in space}
    out.update((k, v) for k, v in config.items() if k not in out)
    return out


# --- dependencies between entries --------------------------------------------------------


def _finite(dist: Distribution) -> bool:
    """Whether ``dist`` takes a finite set of values (a condition can name them)."""
    if isinstance(dist, Cases):
        return all(_finite(d) for _, d in dist.cases)
    return isinstance(dist, (_Categorical, IntUniform, QUniform, QLogUniform))


def _parent_of(where: str, name: str, parent: str, earlier: Space, space: Mapping) -> Distribution:
    if parent == name:
        raise ConfigError(f"{where}: depends on itself")
    if parent not in earlier:
        if parent in space:
            raise ConfigError(
                f"{where}: depends on {parent!r}, which must come before it in hyperparameters"
            )
        raise ConfigError(
            f"{where}: depends on {parent!r}, which is not an entry of hyperparameters "
            f"(entries before it: {', '.join(earlier) or 'none'})"
        )
    dist = earlier[parent]
    if not _finite(dist):
        raise ConfigError(
            f"{where}: depends on {parent!r}, a continuous {dist.kind} entry; a condition "
            "needs a parent with a finite set of values (choice, value, integers or a "
            "quantized range)"
        )
    return dist


def _match(where: str, label: str, parent: str, dist: Distribution, value: Any) -> Any:
    """``value`` as one of the parent's values; a string key (TOML, JSON) may spell a number,
    a bool or null (``"8"`` matches ``8``)."""
    if dist.contains(value):
        return value
    if isinstance(value, str):
        try:
            decoded = json.loads(value)
        except ValueError:
            decoded = value
        if not isinstance(decoded, str) and dist.contains(decoded):
            return decoded
    described = {k: v for k, v in dist.to_dict().items() if k != "when"}
    raise ConfigError(
        f"{where}: {label} {value!r} is not a value {parent!r} can take "
        f"({parent} is {json.dumps(described)})"
    )


def check_space(space: Mapping[str, Distribution]) -> Space:
    """Validate the dependencies between entries: each parent (``when`` keys, a case table's
    ``depends_on``) is an earlier entry with a finite set of values, and each condition value
    or case key is one of them. Returns the space with those values matched to the parent's
    (so cycles cannot exist: a parent always comes first)."""
    out: Space = {}
    for name, dist in space.items():
        where = _where(name)
        if not isinstance(dist, Distribution):
            raise ConfigError(f"{where}: {dist!r} is not a distribution")
        when = tuple(
            (
                parent,
                tuple(_match(where, f"when.{parent}", parent, parent_dist, v) for v in values),
            )
            for parent, values in dist.when
            for parent_dist in [_parent_of(where, name, parent, out, space)]
        )
        changes: dict[str, Any] = {"when": when} if when != dist.when else {}
        if isinstance(dist, Cases):
            parent_dist = _parent_of(where, name, dist.parent, out, space)
            cases = tuple(
                (_match(where, "case", dist.parent, parent_dist, v), d) for v, d in dist.cases
            )
            if any(a is not b for (a, _), (b, _) in zip(cases, dist.cases, strict=True)):
                changes["cases"] = cases
        out[name] = dataclasses.replace(dist, **changes) if changes else dist
    return out


# --- dialects ----------------------------------------------------------------------------

_DIALECT_KEYS: dict[str, frozenset[str]] = {
    "darts": frozenset(
        ("distribution", "low", "high", "n", "choices", "value", "q", "step", "log", "base")
    )
    | {"count"},
    "Determined": frozenset(("type", "minval", "maxval", "base", "count", "vals", "val")),
    "Optuna": frozenset(("type", "low", "high", "log", "step", "choices")),
    "OpenVINO": frozenset(("param_type", "range", "min", "max", "step", "log_base")),
    "case table": frozenset(("distribution", "depends_on", "cases")),
}
_DETERMINED_BODY = frozenset(("minval", "maxval", "vals", "val", "base", "count"))
_OPTUNA_BODY = frozenset(("low", "high", "log", "step", "choices"))


def _check_keys(
    where: str,
    label: str,
    data: Mapping[str, Any],
    allowed: Sequence[str],
    required: Sequence[str],
    dialect: str = "darts",
) -> None:
    extra = [key for key in data if key not in allowed]
    if extra:
        owners = [d for d, keys in _DIALECT_KEYS.items() if extra[0] in keys]
        hint = (
            f"; {extra[0]!r} is a key of the {' / '.join(owners)} form, and an entry is "
            "written in one form"
            if owners and dialect not in owners
            else ""
        )
        raise ConfigError(
            f"{where}: unexpected key(s) {', '.join(map(repr, extra))} in a {label} entry "
            f"(allowed: {', '.join((*allowed, 'when'))}){hint}"
        )
    missing = [key for key in required if key not in data]
    if missing:
        raise ConfigError(f"{where}: {label} needs {', '.join(map(repr, missing))}")


def _type_name(where: str, key: str, raw: Any, known: Sequence[str], dialect: str) -> str:
    kind = raw.strip().lower() if isinstance(raw, str) else raw
    if kind not in known:
        raise ConfigError(f"{where}: unknown {dialect} {key} {raw!r} (known: {', '.join(known)})")
    return kind


def _pair(where: str, lo_key: str, hi_key: str, data: Mapping[str, Any]) -> tuple[float, float]:
    low, high = _number(where, lo_key, data[lo_key]), _number(where, hi_key, data[hi_key])
    if low >= high:
        raise ConfigError(
            f"{where}: {lo_key} ({data[lo_key]!r}) must be < {hi_key} ({data[hi_key]!r})"
        )
    return low, high


def _non_empty_list(where: str, key: str, value: Any) -> list[Any]:
    if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, Sequence) or not value:
        raise ConfigError(f"{where}: {key} ({value!r}) must be a non-empty list")
    return list(value)


def _check_one_form(where: str, data: Mapping[str, Any]) -> None:
    """One ConfigError for an entry that mixes the head keys or bodies of two dialects."""
    heads = [
        (key, owner)
        for key, owner in (
            ("distribution", "darts"),
            ("type", "Determined / Optuna"),
            ("param_type", "OpenVINO"),
            ("depends_on", "case table"),
        )
        if key in data and not (key == "distribution" and _darts_kind(data[key]) == "cases")
    ]
    pairs: list[tuple[str, str]] = heads[:2] if len(heads) > 1 else []
    if heads and heads[0][0] == "type":
        determined = [k for k in data if k in _DETERMINED_BODY]
        optuna = [k for k in data if k in _OPTUNA_BODY]
        if determined and optuna:
            pairs = [(determined[0], "Determined"), (optuna[0], "Optuna")]
    if pairs:
        (k1, d1), (k2, d2) = pairs
        raise ConfigError(
            f"{where}: mixes two forms, {k1!r} ({d1}) and {k2!r} ({d2}); write an entry in one form"
        )


# case table


def _claims_cases(raw: Any) -> bool:
    return isinstance(raw, Mapping) and (
        "depends_on" in raw or "cases" in raw or _darts_kind(raw.get("distribution")) == "cases"
    )


def _parse_cases(name: str, raw: Mapping[str, Any]) -> Distribution:
    """``{depends_on: parent, cases: {value: entry, ...}}`` (or the canonical list of pairs)."""
    where = _where(name)
    allowed = ("distribution", "depends_on", "cases")
    _check_keys(where, "case table", raw, allowed, ("depends_on", "cases"), "case table")
    return Cases(raw["depends_on"], raw["cases"], name=name)


# Determined

_DETERMINED: dict[str, tuple[str, ...]] = {
    "int": ("minval", "maxval", "count"),
    "double": ("minval", "maxval", "count"),
    "log": ("minval", "maxval", "base", "count"),
    "categorical": ("vals",),
    "const": ("val",),
}


def _claims_determined(raw: Any) -> bool:
    if not isinstance(raw, Mapping) or "type" not in raw:
        return False
    kind = raw["type"].strip().lower() if isinstance(raw["type"], str) else raw["type"]
    if kind in ("double", "log", "const"):
        return True
    return kind != "float" and any(key in raw for key in _DETERMINED_BODY)


def _parse_determined(name: str, raw: Mapping[str, Any]) -> Distribution:
    """``type: int|double|log|categorical|const`` with ``minval/maxval`` (``log``: exponents of
    ``base``, default 10), ``count`` (grid points), ``vals`` or ``val``."""
    where = _where(name)
    kind = _type_name(where, "type", raw["type"], tuple(_DETERMINED), "Determined")
    keys = _DETERMINED[kind]
    required = [k for k in keys if k not in ("base", "count")]
    _check_keys(where, f"Determined {kind}", raw, ("type", *keys), required, "Determined")
    if kind == "categorical":
        return Choice(_non_empty_list(where, "vals", raw["vals"]), name=name)
    if kind == "const":
        return Value(raw["val"], name=name)
    count = raw.get("count")
    if kind == "int":
        low, high = (_integer(where, k, raw[k]) for k in ("minval", "maxval"))
        if low >= high:
            raise ConfigError(f"{where}: minval ({low!r}) must be < maxval ({high!r})")
        return IntUniform(low, high, count=count, name=name)
    low, high = _pair(where, "minval", "maxval", raw)
    if kind == "double":
        return Uniform(low, high, count=count, name=name)
    base = _number(where, "base", raw.get("base", 10))
    if base <= 1:
        raise ConfigError(f"{where}: base ({raw.get('base')!r}) must be > 1")
    try:
        bounds = base**low, base**high
    except OverflowError:
        raise ConfigError(
            f"{where}: base ({base!r}) ** maxval ({raw['maxval']!r}) is too large"
        ) from None
    return LogUniform(*bounds, base=base, count=count, name=name)


# Optuna-style YAML

_OPTUNA: dict[str, tuple[str, ...]] = {
    "float": ("low", "high", "log", "step"),
    "int": ("low", "high", "log", "step"),
    "categorical": ("choices",),
}


def _claims_optuna(raw: Any) -> bool:
    if not isinstance(raw, Mapping) or "distribution" in raw or "param_type" in raw:
        return False
    return "type" in raw or set(raw) == {"choices"}


def _parse_optuna(name: str, raw: Mapping[str, Any]) -> Distribution:
    """``type: float|int|categorical`` with ``low/high``, ``log``, ``step`` or ``choices``; a
    bare ``{choices: [...]}`` is categorical."""
    where = _where(name)
    if "type" not in raw:
        return Choice(raw["choices"], name=name)
    kind = _type_name(where, "type", raw["type"], tuple(_OPTUNA), "Optuna")
    keys = _OPTUNA[kind]
    required = [k for k in keys if k not in ("log", "step")]
    _check_keys(where, f"Optuna {kind}", raw, ("type", *keys), required, "Optuna")
    if kind == "categorical":
        return Choice(raw["choices"], name=name)
    log, step = raw.get("log", False), raw.get("step")
    if not isinstance(log, bool):
        raise ConfigError(f"{where}: log ({log!r}) must be true or false")
    if kind == "int":
        return IntUniform(raw["low"], raw["high"], step=step, log=log, name=name)
    low, high = _pair(where, "low", "high", raw)
    if step is None:
        return (LogUniform if log else Uniform)(low, high, name=name)
    if log:
        raise ConfigError(
            f"{where}: step ({step!r}) cannot be combined with log: true for a float (as in Optuna)"
        )
    q = _number(where, "step", step)
    if not 0 < q <= high - low:
        raise ConfigError(f"{where}: step ({step!r}) must be > 0 and <= high - low")
    return QUniform(low, high, q, name=name)


# OpenVINO Training Extensions

_OPENVINO: dict[str, tuple[str, ...]] = {
    "uniform": ("min", "max"),
    "quniform": ("min", "max", "step"),
    "loguniform": ("min", "max", "log_base"),
    "qloguniform": ("min", "max", "step", "log_base"),
    "choice": (),
}


def _claims_openvino(raw: Any) -> bool:
    return isinstance(raw, Mapping) and ("param_type" in raw or "range" in raw)


def _parse_openvino(name: str, raw: Mapping[str, Any]) -> Distribution:
    """``param_type: uniform|quniform|loguniform|qloguniform|choice`` with ``range: [min, max,
    step?, log_base?]`` (positions as OpenVINO: ``loguniform`` is ``[min, max, log_base?]``)
    or the keys ``min``, ``max``, ``step``, ``log_base``; ``choice`` lists its values in
    ``range`` (or ``choice_list``)."""
    where = _where(name)
    if "param_type" not in raw:
        raise ConfigError(f"{where}: an OpenVINO entry with range needs 'param_type'")
    kind = _type_name(where, "param_type", raw["param_type"], tuple(_OPENVINO), "OpenVINO")
    names = _OPENVINO[kind]
    if kind == "choice":
        allowed = ("param_type", "range") if "range" in raw else ("param_type", "choice_list")
        _check_keys(where, "OpenVINO choice", raw, allowed, allowed[1:], "OpenVINO")
        return Choice(_non_empty_list(where, allowed[1], raw[allowed[1]]), name=name)
    optional = [k for k in names if k == "log_base"]
    if "range" in raw:
        _check_keys(where, f"OpenVINO {kind}", raw, ("param_type", "range"), (), "OpenVINO")
        values = _non_empty_list(where, "range", raw["range"])
        if not len(names) - len(optional) <= len(values) <= len(names):
            raise ConfigError(
                f"{where}: range ({raw['range']!r}) must be [{', '.join(names)}] for {kind}"
                + (" (log_base optional)" if optional else "")
            )
        data = dict(zip(names, values, strict=False))
    else:
        required = [k for k in names if k not in optional]
        _check_keys(where, f"OpenVINO {kind}", raw, ("param_type", *names), required, "OpenVINO")
        data = {k: raw[k] for k in names if k in raw}
    low, high, base = data["min"], data["max"], data.get("log_base")
    if kind == "uniform":
        return Uniform(low, high, name=name)
    if kind == "loguniform":
        return LogUniform(low, high, base=base, name=name)
    if kind == "quniform":
        return QUniform(low, high, data["step"], name=name)
    return QLogUniform(low, high, data["step"], base=base, name=name)


# darts (the canonical form)

_ALIASES = {"reversed_loguniform": "reversed-loguniform", "constant": "value"}
_KEYS: dict[str, tuple[str, ...]] = {
    "uniform": ("low", "high", "count"),
    "loguniform": ("low", "high", "base", "count"),
    "reversed-loguniform": ("low", "high", "n"),
    "intuniform": ("low", "high", "step", "log", "count"),
    "quniform": ("low", "high", "q"),
    "qloguniform": ("low", "high", "q", "base"),
    "choice": ("choices",),
    "value": ("value",),
}
_OPTIONAL = {"n", "base", "count", "step", "log"}


def _darts_kind(raw: Any) -> Any:
    kind = raw.strip().lower() if isinstance(raw, str) else raw
    return _ALIASES.get(kind, kind)


def _darts_explicit(name: str, data: Mapping[str, Any]) -> Distribution:
    where = _where(name)
    raw_kind = data["distribution"]
    kind = _darts_kind(raw_kind)
    if kind not in _KEYS:
        raise ConfigError(
            f"{where}: unknown distribution {raw_kind!r} (known: {', '.join(_KEYS)}, cases; "
            "aliases: reversed_loguniform, constant)"
        )
    required = [key for key in _KEYS[kind] if key not in _OPTIONAL]
    _check_keys(where, kind, data, ("distribution", *_KEYS[kind]), required)
    low, high = data.get("low"), data.get("high")
    optional = {k: data[k] for k in _KEYS[kind] if k in _OPTIONAL and k in data}
    if kind == "uniform":
        return Uniform(low, high, name=name, **optional)
    if kind == "loguniform":
        return LogUniform(low, high, name=name, **optional)
    if kind == "intuniform":
        return IntUniform(low, high, name=name, **optional)
    if kind == "reversed-loguniform":
        return ReversedLogUniform(low, high, data.get("n", 1.0), name=name)
    if kind == "quniform":
        return QUniform(low, high, data["q"], name=name)
    if kind == "qloguniform":
        return QLogUniform(low, high, data["q"], name=name, **optional)
    if kind == "choice":
        return Choice(data["choices"], name=name)
    return Value(data["value"], name=name)


def _darts_implicit_range(name: str, data: Mapping[str, Any]) -> Distribution:
    where = _where(name)
    _check_keys(where, "{low, high}", data, ("low", "high"), ("low", "high"))
    low, high = data["low"], data["high"]
    if all(isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in (low, high)):
        return IntUniform(low, high, name=name)
    return Uniform(low, high, name=name)


def _claims_darts(raw: Any) -> bool:
    if not isinstance(raw, Mapping):
        return True
    return "distribution" in raw or "low" in raw or "high" in raw


def _parse_darts(name: str, raw: Any) -> Distribution:
    """darts tune-smp: a scalar, a list, ``{low, high}`` or ``{distribution: ..., ...}``."""
    if isinstance(raw, Mapping):
        if "distribution" in raw:
            return _darts_explicit(name, raw)
        return _darts_implicit_range(name, raw)
    if isinstance(raw, (list, tuple)):
        return Choice(raw, name=name)
    return Value(raw, name=name)


Dialect = tuple[str, Callable[[Any], bool], Callable[[str, Any], Distribution]]

DIALECTS: tuple[Dialect, ...] = (
    ("case table", _claims_cases, _parse_cases),
    ("Determined", _claims_determined, _parse_determined),
    ("Optuna", _claims_optuna, _parse_optuna),
    ("OpenVINO", _claims_openvino, _parse_openvino),
    ("darts", _claims_darts, _parse_darts),
)
"""``(name, claims(raw), parse(name, raw))``, tried in order; the first that claims an entry
parses it. ``when`` is taken off a mapping before, and an entry mixing two forms is refused."""


def parse_distribution(name: str, raw: Any) -> Distribution:
    """Read one ``hyperparameters`` entry in any supported dialect, with its ``when``."""
    where = _where(name)
    when = None
    if isinstance(raw, Mapping):
        raw = dict(raw)
        when = raw.pop("when", None)
        _check_one_form(where, raw)
    for _dialect, claims, parse in DIALECTS:
        if claims(raw):
            dist = parse(name, raw)
            return dist if when is None else dataclasses.replace(dist, when=when)
    raise ConfigError(
        f"{where}: {raw!r} matches no known form; write a value, a list of choices, "
        f"{{low, high}}, a mapping with 'distribution' (one of: {', '.join(_KEYS)}), "
        "Determined 'type' + minval/maxval, Optuna 'type' + low/high, OpenVINO 'param_type' + "
        "range, or a case table {depends_on, cases}; a fixed mapping is written "
        "{distribution: value, value: {...}}"
    )


def distribution_from_dict(name: str, data: Mapping[str, Any]) -> Distribution:
    """Invert :meth:`Distribution.to_dict` (the explicit darts form)."""
    if not isinstance(data, Mapping) or "distribution" not in data:
        raise ConfigError(f"{_where(name)}: {data!r} is not a mapping with a 'distribution' key")
    return parse_distribution(name, data)


def space_to_dict(space: Mapping[str, Distribution]) -> dict[str, dict[str, Any]]:
    """Every entry of ``space`` in canonical explicit form, in space order."""
    return {name: dist.to_dict() for name, dist in space.items()}


# --- sampling ----------------------------------------------------------------------------


def sample_configurations(
    space: Mapping[str, Distribution], n: int, seed: int
) -> list[dict[str, Any]]:
    """``n`` random configurations from ``numpy.random.default_rng(seed)``.

    Entries are drawn in space order; an inactive entry is left out and draws nothing.
    Deterministic: the same space, ``n`` and ``seed`` give the same list in every process.
    Configuration ``i`` does not depend on ``n`` (a longer run extends a shorter one).
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ConfigError(f"n_trials: must be an integer >= 0, got {n!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ConfigError(f"seed: must be an integer >= 0, got {seed!r}")
    checked = check_space(space)
    rng = np.random.default_rng(seed)
    configurations = []
    for _ in range(n):
        config: dict[str, Any] = {}
        for name, dist in checked.items():
            if is_active(dist, config):
                config[name] = leaf(dist, config).sample(rng)
        configurations.append(config)
    return configurations


def grid_configurations(space: Mapping[str, Distribution]) -> list[dict[str, Any]]:
    """Every combination of the entries' grid values, in space order (last key fastest).

    With conditions, the union over the active branches: an entry is enumerated only where
    it is active (a case table with its case's values) and is absent elsewhere; no
    configuration appears twice.
    """
    checked = check_space(space)
    axes: dict[str, list[list[Any]]] = {}
    for name, dist in checked.items():
        leaves = [d for _, d in dist.cases] if isinstance(dist, Cases) else [dist]
        axes[name] = [d.grid_values() for d in leaves]
    names = list(checked)
    out: list[dict[str, Any]] = []
    seen: set[str] = set()

    def walk(i: int, config: dict[str, Any]) -> None:
        if i == len(names):
            key = json.dumps(config, sort_keys=True)
            if key not in seen:
                seen.add(key)
                out.append(copy.deepcopy(config))
            return
        name, dist = names[i], checked[names[i]]
        if not is_active(dist, config):
            walk(i + 1, config)
            return
        chosen = leaf(dist, config)
        values = (
            axes[name][[d for _, d in dist.cases].index(chosen)]
            if isinstance(dist, Cases)
            else axes[name][0]
        )
        for value in values:
            config[name] = value
            walk(i + 1, config)
        del config[name]

    walk(0, {})
    return out
