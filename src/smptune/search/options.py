"""Settings of a sampler or a pruner: the checks of their options, and the one reading of
``kind`` or ``{type: kind, <option>: ...}``.

No Optuna import here: the producer validates configs without it (:func:`quiet_optuna`
imports it only when a worker builds an Optuna sampler or pruner).
"""

from __future__ import annotations

import contextlib
import numbers
import warnings
from collections.abc import Callable, Iterator, Mapping
from typing import Any, TypeAlias, cast

from smptune.errors import ConfigError

__all__ = [
    "BOOL",
    "FACTOR",
    "INT",
    "POSITIVE",
    "PROB",
    "Check",
    "OptionValue",
    "check_options",
    "quiet_optuna",
    "read_kind",
]

#: A checked option's value: every check passes only a bool, an integer, a real or a string.
OptionValue: TypeAlias = bool | int | float | str

#: An option's check: whether a value is valid, and what a valid one is (for the error).
Check: TypeAlias = tuple[Callable[[Any], bool], str]

# (The casts: typeshed's numbers.Integral/Real declare no ``>=``/``>`` and no comparison
# with an int on the left; every concrete integral and real type has them.)
INT: Check = (
    lambda v: isinstance(v, numbers.Integral) and not isinstance(v, bool) and cast(int, v) >= 0,
    "an integer >= 0",
)
PROB: Check = (
    lambda v: isinstance(v, numbers.Real) and not isinstance(v, bool) and 0 < cast(float, v) < 1,
    "a number in (0, 1)",
)
BOOL: Check = (lambda v: isinstance(v, bool), "true or false")
POSITIVE: Check = (
    lambda v: isinstance(v, numbers.Integral) and not isinstance(v, bool) and cast(int, v) >= 1,
    "an integer >= 1",
)
FACTOR: Check = (
    lambda v: isinstance(v, numbers.Integral) and not isinstance(v, bool) and cast(int, v) >= 2,
    "an integer >= 2",
)


def read_kind(key: str, raw: object, known: tuple[str, ...]) -> tuple[str, dict[str, object]]:
    """The kind (one of ``known``, lower-cased; None: the first) and the options given."""
    options: dict[str, object]
    if isinstance(raw, Mapping):
        options = dict(raw)
        kind = options.pop("type", None)
        if "type" not in raw:
            raise ConfigError(f"{key}: a mapping needs 'type' (one of {', '.join(known)})")
    else:
        kind, options = raw, {}
    if kind is None or (kind is False and key == "pruner"):
        kind = known[0]
    if not isinstance(kind, str) or kind.strip().lower() not in known:
        raise ConfigError(f"{key}: must be one of {', '.join(known)}, got {kind!r}")
    return kind.strip().lower(), options


def check_options(
    key: str,
    kind: str,
    options: Mapping[str, object],
    allowed: Mapping[str, Check],
    defaults: Mapping[str, OptionValue],
) -> dict[str, OptionValue]:
    """``options`` checked against ``allowed``, over ``defaults`` (a numpy scalar that
    passes becomes a Python number)."""
    checked: dict[str, OptionValue] = {}
    for name, value in options.items():
        if name not in allowed:
            listed = ", ".join(allowed) or "none"
            raise ConfigError(f"{key}.{name}: unknown option for {kind} (known: {listed})")
        check, described = allowed[name]
        if not check(value):
            raise ConfigError(f"{key}.{name}: must be {described}, got {value!r}")
        checked[name] = _option_value(f"{key}.{name}", value)
    return {**defaults, **checked}


def _option_value(where: str, value: object) -> OptionValue:
    if isinstance(value, (bool, str)):
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value)
    raise ConfigError(f"{where}: must be true, false, a number or a string, got {value!r}")


@contextlib.contextmanager
def quiet_optuna() -> Iterator[None]:
    """Optuna marks some samplers and pruners experimental: we pin its version instead."""
    from optuna.exceptions import ExperimentalWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExperimentalWarning)
        yield
