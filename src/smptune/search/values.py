"""A configuration's values as JSON data: conversion, JSON equality, the text logs show of
one, and a configuration completed with its trainable's defaults."""

from __future__ import annotations

import numbers
from collections.abc import Mapping
from typing import Any

from smptune.errors import ConfigError
from smptune.params import Params, ParamsView

__all__ = ["json_value", "param_text", "same_value", "with_defaults"]


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


def param_text(name: str, value: Any) -> str:
    """``name=value`` as logs, status and Flower show a parameter: floats to 4 significant
    digits."""
    return f"{name}={value:.4g}" if isinstance(value, float) else f"{name}={value}"


def with_defaults(space: Mapping[str, object], defaults: ParamsView, config: ParamsView) -> Params:
    """``config`` completed with ``defaults`` for the names ``space`` does not list, in the
    defaults' order: an entry of the space that is inactive stays absent."""
    out = {k: config.get(k, v) for k, v in defaults.items() if k in config or k not in space}
    out.update((k, v) for k, v in config.items() if k not in out)
    return out
