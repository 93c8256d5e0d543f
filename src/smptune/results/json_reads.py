"""Values read back from results.json (or the store's ``results``), each narrowed to the type
its record holds; a value of another type raises :class:`TypeError` naming it.

``whole`` and ``number`` convert as ``int()`` and ``float()`` do (a number or its text);
``count``, ``real`` and the ``maybe_*`` readers keep the value as JSON gave it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence


def _wrong(value: object, kind: str) -> TypeError:
    return TypeError(f"results.json: expected {kind}, got {value!r}")


def record(value: object) -> Mapping[str, object]:
    """A JSON object; an empty one for None."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise _wrong(value, "an object")
    return value


def items(value: object) -> Sequence[object]:
    """A JSON array; an empty one for None."""
    if value is None:
        return ()
    if not isinstance(value, list | tuple):
        raise _wrong(value, "an array")
    return value


def whole(value: object) -> int:
    """``int(value)`` of a number or its text."""
    if not isinstance(value, int | float | str):
        raise _wrong(value, "an integer")
    return int(value)


def number(value: object) -> float:
    """``float(value)`` of a number or its text."""
    if not isinstance(value, int | float | str):
        raise _wrong(value, "a number")
    return float(value)


def maybe_number(value: object) -> float | None:
    return None if value is None else number(value)


def count(value: object) -> int:
    """An integer, as it is."""
    if not isinstance(value, int):
        raise _wrong(value, "an integer")
    return value


def real(value: object) -> float:
    """A number, as it is."""
    if not isinstance(value, int | float):
        raise _wrong(value, "a number")
    return value


def maybe_real(value: object) -> float | None:
    return None if value is None else real(value)


def maybe_whole(value: object) -> int | None:
    return None if value is None else count(value)


def text(value: object) -> str:
    if not isinstance(value, str):
        raise _wrong(value, "a string")
    return value


def maybe_text(value: object) -> str | None:
    return None if value is None else text(value)


def flag(value: object) -> bool:
    if not isinstance(value, bool):
        raise _wrong(value, "true or false")
    return value
