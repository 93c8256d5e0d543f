"""The config dialects: read a ``hyperparameters`` entry into a distribution.

:func:`parse_distribution` reads an entry in any supported dialect: darts (the canonical
form, which :meth:`~smptune.search.distributions.Distribution.to_dict` writes), Determined,
Optuna-style YAML, OpenVINO Training Extensions (whose ``hp_space`` the config reads as
``hyperparameters``) and case tables ``{depends_on, cases}``. A dialect is a
``(name, claims, parse)`` triple in :data:`DIALECTS`, tried per entry in order; an entry that
mixes two forms is refused. A case table's entries are parsed here, each in any dialect, and
handed to :class:`~smptune.search.distributions.Cases` as distributions.
"""

from __future__ import annotations

import dataclasses
import numbers
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from smptune.errors import ConfigError
from smptune.search.conditions import Cases, case_entry, case_items, case_parent
from smptune.search.distributions import (
    Choice,
    Distribution,
    IntUniform,
    LogUniform,
    QLogUniform,
    QUniform,
    ReversedLogUniform,
    Uniform,
    Value,
)
from smptune.search.fields import read_integer, read_number, where_of

__all__ = ["DIALECTS", "Dialect", "distribution_from_dict", "parse_distribution"]


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
    data: Mapping[str, object],
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


def _pair(where: str, lo_key: str, hi_key: str, data: Mapping[str, object]) -> tuple[float, float]:
    low, high = read_number(where, lo_key, data[lo_key]), read_number(where, hi_key, data[hi_key])
    if low >= high:
        raise ConfigError(
            f"{where}: {lo_key} ({data[lo_key]!r}) must be < {hi_key} ({data[hi_key]!r})"
        )
    return low, high


def _non_empty_list(where: str, key: str, value: Any) -> tuple[Any, ...]:
    if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, Sequence) or not value:
        raise ConfigError(f"{where}: {key} ({value!r}) must be a non-empty list")
    return tuple(value)


def _check_one_form(where: str, data: Mapping[str, object]) -> None:
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


def _parse_cases(name: str, raw: Mapping[str, object]) -> Distribution:
    """``{depends_on: parent, cases: {value: entry, ...}}`` (or the canonical list of pairs);
    each case is an entry in any dialect, parsed here (as the case's label)."""
    where = where_of(name)
    allowed = ("distribution", "depends_on", "cases")
    _check_keys(where, "case table", raw, allowed, ("depends_on", "cases"), "case table")
    parent = case_parent(where, raw["depends_on"])
    cases = [
        (
            value,
            case_entry(label, e if isinstance(e, Distribution) else parse_distribution(label, e)),
        )
        for value, label, e in case_items(where, name, parent, raw["cases"])
    ]
    return Cases(parent, tuple(cases), name=name)


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
    where = where_of(name)
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
        minval, maxval = (read_integer(where, k, raw[k]) for k in ("minval", "maxval"))
        if minval >= maxval:
            raise ConfigError(f"{where}: minval ({minval!r}) must be < maxval ({maxval!r})")
        return IntUniform(minval, maxval, count=count, name=name)
    low, high = _pair(where, "minval", "maxval", raw)
    if kind == "double":
        return Uniform(low, high, count=count, name=name)
    base = read_number(where, "base", raw.get("base", 10))
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
    where = where_of(name)
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
    q = read_number(where, "step", step)
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
    where = where_of(name)
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
    where = where_of(name)
    raw_kind = data["distribution"]
    kind = _darts_kind(raw_kind)
    if kind not in _KEYS:
        raise ConfigError(
            f"{where}: unknown distribution {raw_kind!r} (known: {', '.join(_KEYS)}, cases; "
            "aliases: reversed_loguniform, constant)"
        )
    required = [key for key in _KEYS[kind] if key not in _OPTIONAL]
    _check_keys(where, kind, data, ("distribution", *_KEYS[kind]), required)
    low: Any = data.get("low")
    high: Any = data.get("high")
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
    where = where_of(name)
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
        return Choice(tuple(raw), name=name)
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
    where = where_of(name)
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


def distribution_from_dict(name: str, data: Mapping[str, object]) -> Distribution:
    """Invert :meth:`Distribution.to_dict` (the explicit darts form)."""
    if not isinstance(data, Mapping) or "distribution" not in data:
        raise ConfigError(f"{where_of(name)}: {data!r} is not a mapping with a 'distribution' key")
    return parse_distribution(name, data)
