"""A distribution's fields: numbers read from a config, its ``when``, and the decimal lattice.

What :mod:`smptune.search.distributions` validates its entries with: finite numbers and
integers read the way YAML writes them (``1e-4`` as a string), the ``when`` conditions
normalised, and the lattice ``low, low + q, ..., low + K*q`` of a quantized entry, computed
in decimal so that ``0.1 + 2 * 0.1`` is ``0.3``.
"""

from __future__ import annotations

import copy
import math
import numbers
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

from smptune.errors import ConfigError
from smptune.search.values import json_value

#: Most values one entry may contribute to a grid, and most lattice points of a quantized entry.
MAX_GRID_VALUES = 100_000
MAX_LATTICE = 10**12

Conditions = tuple[tuple[str, tuple[Any, ...]], ...]
"""``when`` of a distribution: ``((parent, (value, ...)), ...)``; every parent must have one of
its values."""


def where_of(name: str) -> str:
    """``hyperparameters.<name>``: the key an entry's errors start with."""
    return f"hyperparameters.{name}" if name else "hyperparameters"


def read_number(where: str, key: str, value: Any) -> float:
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


def read_integer(where: str, key: str, value: Any) -> int:
    """An integer; integral floats and numeric strings (``5.0``, ``"5"``) are accepted."""
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return int(value)
    number = read_number(where, key, value)
    if not number.is_integer():
        raise ConfigError(f"{where}: {key} ({value!r}) must be an integer")
    return int(number)


def read_int_or_float(where: str, key: str, value: Any) -> int | float:
    """A number that keeps its type: ``32`` stays an int, ``32.0`` and ``"1e-3"`` are floats."""
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return int(value)
    if isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            pass
    return read_number(where, key, value)


def read_count(where: str, count: Any) -> int | None:
    if count is None:
        return None
    number = read_integer(where, "count", count)
    if number < 2:
        raise ConfigError(f"{where}: count ({count!r}) must be an integer >= 2")
    return number


def check_bounds(where: str, low: float, high: float) -> None:
    if low >= high:
        raise ConfigError(f"{where}: low ({low!r}) must be < high ({high!r})")


def decimal_of(value: int | float) -> Decimal:
    """The decimal a number was written as (``0.1`` is ``Decimal('0.1')``, not its binary)."""
    return Decimal(value) if isinstance(value, int) else Decimal(repr(value))


def clean_float(value: float) -> float:
    """``value`` without binary noise in its last digits (12 significant digits)."""
    return float(f"{value:.12g}")


def is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def read_conditions(where: str, raw: Any) -> Conditions:
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


def when_dict(when: Conditions) -> dict[str, list[Any]]:
    return {parent: copy.deepcopy(list(values)) for parent, values in when}


def clip(value: float, low: float, high: float) -> float:
    return min(max(value, low), high)


def lattice_size(where: str, low: int | float, high: int | float, q: int | float) -> int:
    """``K``: the lattice is ``low + k*q`` for ``k = 0..K``, the last point ``<= high``."""
    if q <= 0:
        raise ConfigError(f"{where}: q ({q!r}) must be > 0")
    if q > high - low:
        raise ConfigError(f"{where}: q ({q!r}) must be <= high - low ({high!r} - {low!r})")
    size = int((decimal_of(high) - decimal_of(low)) // decimal_of(q))
    if size >= MAX_LATTICE:
        raise ConfigError(
            f"{where}: q ({q!r}) makes more than {MAX_LATTICE} values; "
            "use a continuous distribution"
        )
    return size


def lattice_value(low: int | float, q: int | float, k: int, integer: bool) -> int | float:
    exact = decimal_of(low) + k * decimal_of(q)
    return int(exact) if integer else float(exact)


def snap(x: float, low: float, q: float, size: int) -> int:
    """The lattice index nearest to ``x``, within ``0..size``."""
    return min(max(math.floor((x - low) / q + 0.5), 0), size)


def on_lattice(value: Any, low: int | float, q: int | float, size: int) -> bool:
    if not is_number(value) or not math.isfinite(value):
        return False
    steps = (decimal_of(value) - decimal_of(low)) / decimal_of(q)
    return steps == steps.to_integral_value() and 0 <= steps <= size


def grid_guard(where: str, n: int) -> None:
    if n > MAX_GRID_VALUES:
        raise ConfigError(
            f"{where}: {n} grid values is more than {MAX_GRID_VALUES}; use a larger step"
        )


def optuna_choices(choices: Sequence[Any]) -> tuple[Any, ...] | None:
    """``choices`` as Optuna's CategoricalDistribution can hold them, or None where an index
    must stand in: a list or mapping, or two choices Python calls equal (``True``, ``1``)."""
    if not all(c is None or isinstance(c, (bool, int, float, str)) for c in choices):
        return None
    for i, a in enumerate(choices):
        if any(a == b for b in choices[i + 1 :]):
            return None
    return tuple(choices)
