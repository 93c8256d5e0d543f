"""``json.dumps(obj, indent=2, default=...)``, the same bytes, several times faster.

The standard library encodes with an indent in pure Python (its C encoder only writes
without one): ~13 s for the 15 MB ``results.json`` of 10,000 trials on a loaded core. Here
the C encoder writes every container that holds only plain values (a trial's metrics, its
fold scores, its parameters: most of the file) in one call, with the item separator carrying
the line break and indent of its depth; only containers that hold containers are walked in
Python.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import lru_cache
from typing import Any

_PLAIN = (str, int, float, bool, type(None))
_INDENT = "  "


@lru_cache(maxsize=64)
def _encoder(depth: int, default: Callable[[Any], Any] | None) -> json.JSONEncoder:
    """Writes a container of plain values at ``depth``, its items on lines of their own."""
    return json.JSONEncoder(
        separators=(",\n" + _INDENT * (depth + 1), ": "), default=default, check_circular=False
    )


@lru_cache(maxsize=8)
def _scalars(default: Callable[[Any], Any] | None) -> json.JSONEncoder:
    return json.JSONEncoder(default=default)


def dumps_indented(obj: Any, default: Callable[[Any], Any] | None = None) -> str:
    """What ``json.dumps(obj, indent=2, default=default)`` returns."""
    parts: list[str] = []
    _write(obj, 0, default, parts)
    return "".join(parts)


def _plain(values: Any) -> bool:
    return all(type(v) in _PLAIN for v in values)


def _write(obj: Any, depth: int, default: Callable[[Any], Any] | None, out: list[str]) -> None:
    if isinstance(obj, dict):
        items: Any = obj.values()
    elif isinstance(obj, list | tuple):
        items = obj
    else:
        if isinstance(obj, _PLAIN):
            out.append(_scalars(default).encode(obj))
        elif default is None:
            out.append(json.dumps(obj))  # raises TypeError as json.dumps does
        else:
            _write(default(obj), depth, default, out)
        return
    if not obj:
        out.append("{}" if isinstance(obj, dict) else "[]")
        return
    outer = "\n" + _INDENT * depth
    inner = outer + _INDENT
    if _plain(items):
        text = _encoder(depth, default).encode(obj)
        out.append(text[0] + inner + text[1:-1] + outer + text[-1])
        return
    # runs of plain items go to the C encoder too, a run at a time
    is_dict = isinstance(obj, dict)
    pairs = obj.items() if is_dict else enumerate(obj)
    encoder = _encoder(depth, default)
    out.append("{" if is_dict else "[")
    run: Any = {} if is_dict else []
    first = True
    for key, value in pairs:
        if type(value) in _PLAIN:
            if is_dict:
                run[key] = value
            else:
                run.append(value)
            continue
        if run:
            out.append((inner if first else "," + inner) + encoder.encode(run)[1:-1])
            first = False
            run = {} if is_dict else []
        out.append(inner if first else "," + inner)
        first = False
        if is_dict:
            # the key as json.dumps writes it (a number or None as its JSON text, quoted)
            out.append(_scalars(None).encode({key: None})[1:-7] + ": ")
        _write(value, depth + 1, default, out)
    if run:
        out.append((inner if first else "," + inner) + encoder.encode(run)[1:-1])
    out.append(outer + ("}" if is_dict else "]"))
