"""Search-space distributions, the config dialects that describe them, and sampling.

Each distribution is a small frozen value object: it validates itself on construction
(raising :class:`~smptune.errors.ConfigError` that names ``hyperparameters.<name>`` and quotes
the bad value), samples plain JSON values from a :class:`numpy.random.Generator`, and
round-trips through :meth:`Distribution.to_dict` / :func:`distribution_from_dict`.

:func:`parse_distribution` reads a config entry in any supported dialect. Only the darts
dialect exists so far; a dialect is a ``(name, claims, parse)`` triple in :data:`DIALECTS`,
tried per entry in order.
"""

from __future__ import annotations

import copy
import itertools
import math
import numbers
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from smptune.errors import ConfigError

__all__ = [
    "DIALECTS",
    "Choice",
    "Distribution",
    "IntUniform",
    "LogUniform",
    "ReversedLogUniform",
    "Space",
    "Uniform",
    "Value",
    "distribution_from_dict",
    "grid_configurations",
    "json_value",
    "parse_distribution",
    "sample_configurations",
    "space_to_dict",
]


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


def _check_bounds(where: str, low: float, high: float) -> None:
    if low >= high:
        raise ConfigError(f"{where}: low ({low!r}) must be < high ({high!r})")


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


class Distribution(ABC):
    """Base of every search-space distribution."""

    kind: ClassVar[str]
    name: str

    @abstractmethod
    def sample(self, rng: np.random.Generator) -> Any:
        """Draw one value (plain Python, JSON-serializable)."""

    @property
    def is_discrete(self) -> bool:
        """Whether the entry is a finite list of values a grid search can enumerate."""
        return False

    def grid_values(self) -> list[Any]:
        """The values a grid search enumerates; ConfigError for a non-discrete entry."""
        raise ConfigError(
            f"{_where(self.name)}: grid search needs a discrete entry (choice or value); "
            f"{self.kind} is continuous"
        )

    @abstractmethod
    def to_dict(self) -> dict[str, Any]:
        """The canonical explicit darts form, e.g. ``{"distribution": "uniform", ...}``."""


@dataclass(frozen=True)
class Uniform(Distribution):
    """Float uniform on ``[low, high)``."""

    kind: ClassVar[str] = "uniform"
    low: float
    high: float
    name: str = field(default="", compare=False, kw_only=True)

    def __post_init__(self) -> None:
        where = _where(self.name)
        object.__setattr__(self, "low", _number(where, "low", self.low))
        object.__setattr__(self, "high", _number(where, "high", self.high))
        _check_bounds(where, self.low, self.high)

    def sample(self, rng: np.random.Generator) -> float:
        value = float(rng.uniform(self.low, self.high))
        return min(value, math.nextafter(self.high, self.low))

    def to_dict(self) -> dict[str, Any]:
        return {"distribution": self.kind, "low": self.low, "high": self.high}


@dataclass(frozen=True)
class LogUniform(Distribution):
    """Log-uniform on ``[low, high]``: ``exp(uniform(log low, log high))``, ``low > 0``."""

    kind: ClassVar[str] = "loguniform"
    low: float
    high: float
    name: str = field(default="", compare=False, kw_only=True)

    def __post_init__(self) -> None:
        where = _where(self.name)
        object.__setattr__(self, "low", _number(where, "low", self.low))
        object.__setattr__(self, "high", _number(where, "high", self.high))
        if self.low <= 0:
            raise ConfigError(f"{where}: loguniform needs low > 0, got low ({self.low!r})")
        _check_bounds(where, self.low, self.high)

    def sample(self, rng: np.random.Generator) -> float:
        value = math.exp(rng.uniform(math.log(self.low), math.log(self.high)))
        return min(max(value, self.low), self.high)

    def to_dict(self) -> dict[str, Any]:
        return {"distribution": self.kind, "low": self.low, "high": self.high}


@dataclass(frozen=True)
class ReversedLogUniform(Distribution):
    """``X = n - Y`` with ``Y ~ loguniform(n - high, n - low)``; needs ``low < high < n``.

    Equal mass per decade of ``n - x``: for ``gamma`` in ``[0.9, 0.999]`` as many samples land
    in ``[0.9, 0.99]`` as in ``[0.99, 0.999]``.
    """

    kind: ClassVar[str] = "reversed-loguniform"
    low: float
    high: float
    n: float = 1.0
    name: str = field(default="", compare=False, kw_only=True)

    def __post_init__(self) -> None:
        where = _where(self.name)
        object.__setattr__(self, "low", _number(where, "low", self.low))
        object.__setattr__(self, "high", _number(where, "high", self.high))
        object.__setattr__(self, "n", _number(where, "n", self.n))
        _check_bounds(where, self.low, self.high)
        if self.high >= self.n:
            raise ConfigError(
                f"{where}: reversed-loguniform needs high < n, got high ({self.high!r}) "
                f"and n ({self.n!r})"
            )

    def sample(self, rng: np.random.Generator) -> float:
        y = math.exp(rng.uniform(math.log(self.n - self.high), math.log(self.n - self.low)))
        return min(max(self.n - y, self.low), self.high)

    def to_dict(self) -> dict[str, Any]:
        return {"distribution": self.kind, "low": self.low, "high": self.high, "n": self.n}


@dataclass(frozen=True)
class IntUniform(Distribution):
    """Integer uniform on ``[low, high]``, both ends inclusive."""

    kind: ClassVar[str] = "intuniform"
    low: int
    high: int
    name: str = field(default="", compare=False, kw_only=True)

    def __post_init__(self) -> None:
        where = _where(self.name)
        object.__setattr__(self, "low", _integer(where, "low", self.low))
        object.__setattr__(self, "high", _integer(where, "high", self.high))
        _check_bounds(where, self.low, self.high)

    def sample(self, rng: np.random.Generator) -> int:
        return int(rng.integers(self.low, self.high, endpoint=True))

    def grid_values(self) -> list[Any]:
        raise ConfigError(
            f"{_where(self.name)}: grid search needs a discrete entry (choice or value); "
            f"intuniform is a sampled range, list its values as a choice instead"
        )

    def to_dict(self) -> dict[str, Any]:
        return {"distribution": self.kind, "low": self.low, "high": self.high}


@dataclass(frozen=True)
class Choice(Distribution):
    """One of a non-empty list of values, each equally likely."""

    kind: ClassVar[str] = "choice"
    choices: tuple[Any, ...]
    name: str = field(default="", compare=False, kw_only=True)

    def __post_init__(self) -> None:
        where = _where(self.name)
        if isinstance(self.choices, (str, bytes, Mapping)) or not isinstance(
            self.choices, Sequence
        ):
            raise ConfigError(f"{where}: choices ({self.choices!r}) must be a list")
        if not self.choices:
            raise ConfigError(f"{where}: choices must not be empty")
        object.__setattr__(self, "choices", tuple(json_value(where, c) for c in self.choices))

    @property
    def is_discrete(self) -> bool:
        return True

    def sample(self, rng: np.random.Generator) -> Any:
        return copy.deepcopy(self.choices[int(rng.integers(len(self.choices)))])

    def grid_values(self) -> list[Any]:
        return copy.deepcopy(list(self.choices))

    def to_dict(self) -> dict[str, Any]:
        return {"distribution": self.kind, "choices": copy.deepcopy(list(self.choices))}


@dataclass(frozen=True)
class Value(Distribution):
    """A fixed value."""

    kind: ClassVar[str] = "value"
    value: Any
    name: str = field(default="", compare=False, kw_only=True)

    def __post_init__(self) -> None:
        object.__setattr__(self, "value", json_value(_where(self.name), self.value))

    @property
    def is_discrete(self) -> bool:
        return True

    def sample(self, rng: np.random.Generator) -> Any:
        return copy.deepcopy(self.value)

    def grid_values(self) -> list[Any]:
        return [copy.deepcopy(self.value)]

    def to_dict(self) -> dict[str, Any]:
        return {"distribution": self.kind, "value": copy.deepcopy(self.value)}


Space = dict[str, Distribution]
"""A search space: hyperparameter name → distribution, in config order."""


# --- the darts dialect -------------------------------------------------------------------

_BOUNDED: dict[str, type[Distribution]] = {
    "uniform": Uniform,
    "loguniform": LogUniform,
    "intuniform": IntUniform,
}
_ALIASES = {"reversed_loguniform": "reversed-loguniform", "constant": "value"}
_KEYS: dict[str, tuple[str, ...]] = {
    "uniform": ("low", "high"),
    "loguniform": ("low", "high"),
    "reversed-loguniform": ("low", "high", "n"),
    "intuniform": ("low", "high"),
    "choice": ("choices",),
    "value": ("value",),
}
_OPTIONAL = {"n"}


def _check_keys(
    where: str, label: str, data: Mapping[str, Any], allowed: Sequence[str], required: Sequence[str]
) -> None:
    missing = [key for key in required if key not in data]
    if missing:
        raise ConfigError(f"{where}: {label} needs {', '.join(map(repr, missing))}")
    extra = [key for key in data if key not in allowed]
    if extra:
        raise ConfigError(
            f"{where}: unexpected key(s) {', '.join(map(repr, extra))} in a {label} entry "
            f"(allowed: {', '.join(allowed)})"
        )


def _darts_explicit(name: str, data: Mapping[str, Any]) -> Distribution:
    where = _where(name)
    raw_kind = data["distribution"]
    kind = raw_kind.strip().lower() if isinstance(raw_kind, str) else raw_kind
    kind = _ALIASES.get(kind, kind)
    if kind not in _KEYS:
        raise ConfigError(
            f"{where}: unknown distribution {raw_kind!r} (known: {', '.join(_KEYS)}; "
            "aliases: reversed_loguniform, constant)"
        )
    required = [key for key in _KEYS[kind] if key not in _OPTIONAL]
    _check_keys(where, kind, data, ("distribution", *_KEYS[kind]), required)
    if kind in _BOUNDED:
        return _BOUNDED[kind](data["low"], data["high"], name=name)
    if kind == "reversed-loguniform":
        return ReversedLogUniform(data["low"], data["high"], data.get("n", 1.0), name=name)
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

DIALECTS: tuple[Dialect, ...] = (("darts", _claims_darts, _parse_darts),)
"""``(name, claims(raw), parse(name, raw))``, tried in order; the first that claims an entry
parses it. More specific dialects (Determined, Optuna, OpenVINO) go before darts."""


def parse_distribution(name: str, raw: Any) -> Distribution:
    """Read one ``hyperparameters`` entry in any supported dialect."""
    for _dialect, claims, parse in DIALECTS:
        if claims(raw):
            return parse(name, raw)
    raise ConfigError(
        f"{_where(name)}: {raw!r} matches no known form; write a value, a list of choices, "
        f"{{low, high}}, or a mapping with 'distribution' (one of: {', '.join(_KEYS)}); "
        "a fixed mapping is written {distribution: value, value: {...}}"
    )


def distribution_from_dict(name: str, data: Mapping[str, Any]) -> Distribution:
    """Invert :meth:`Distribution.to_dict` (the explicit darts form)."""
    if not isinstance(data, Mapping) or "distribution" not in data:
        raise ConfigError(f"{_where(name)}: {data!r} is not a mapping with a 'distribution' key")
    return _darts_explicit(name, data)


def space_to_dict(space: Mapping[str, Distribution]) -> dict[str, dict[str, Any]]:
    """Every entry of ``space`` in canonical explicit form, in space order."""
    return {name: dist.to_dict() for name, dist in space.items()}


# --- sampling ----------------------------------------------------------------------------


def sample_configurations(
    space: Mapping[str, Distribution], n: int, seed: int
) -> list[dict[str, Any]]:
    """``n`` random configurations from ``numpy.random.default_rng(seed)``.

    Deterministic: the same space, ``n`` and ``seed`` give the same list in every process.
    Configuration ``i`` does not depend on ``n`` (a longer run extends a shorter one).
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ConfigError(f"n_trials: must be an integer >= 0, got {n!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ConfigError(f"seed: must be an integer >= 0, got {seed!r}")
    rng = np.random.default_rng(seed)
    return [{key: dist.sample(rng) for key, dist in space.items()} for _ in range(n)]


def grid_configurations(space: Mapping[str, Distribution]) -> list[dict[str, Any]]:
    """The cartesian product of every entry's values, in space order (last key fastest)."""
    keys = list(space)
    axes = [space[key].grid_values() for key in keys]
    return [
        dict(zip(keys, copy.deepcopy(values), strict=True)) for values in itertools.product(*axes)
    ]
