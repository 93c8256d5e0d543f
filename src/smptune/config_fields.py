"""Reading one value of a sweep config: integers, strings, fractions, durations, sections,
keys and Lightning's precision names, each refused with the dotted key at fault."""

from __future__ import annotations

import math
import numbers
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from smptune.errors import ConfigError
from smptune.requirements import Requirements
from smptune.search.distributions import json_value

__all__ = [
    "ON_OOM",
    "PRECISIONS",
    "CvSettings",
    "fraction_field",
    "host_memory_gb",
    "int_field",
    "is_int",
    "normalise_keys",
    "on_oom",
    "parse_duration",
    "parse_time_budget",
    "precision",
    "requirements_field",
    "section",
    "str_field",
]

PRECISIONS = (
    "auto",
    "32-true",
    "64-true",
    "16-true",
    "bf16-true",
    "16-mixed",
    "bf16-mixed",
    "transformer-engine",
    "transformer-engine-float16",
)
# Lightning's legacy spellings, mapped the way Lightning maps them.
_PRECISION_ALIASES = {"32": "32-true", "64": "64-true", "16": "16-mixed", "bf16": "bf16-mixed"}
_DURATION_RE = re.compile(r"(\d+(?:\.\d*)?|\.\d+)\s*([dhms])", re.IGNORECASE)
_UNIT_S = {"d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0}


def is_int(value: Any) -> bool:
    """An integer, and not a bool (YAML reads ``true`` as one)."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def int_field(key: str, value: Any, minimum: int) -> int:
    """``value`` as an integer of at least ``minimum``."""
    if not is_int(value) or value < minimum:
        raise ConfigError(f"{key}: must be an integer >= {minimum}, got {value!r}")
    return int(value)


def str_field(key: str, value: Any) -> str:
    """``value`` as a non-empty string."""
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{key}: must be a non-empty string, got {value!r}")
    return value


def fraction_field(key: str, value: Any) -> float:
    number: float | None = None
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            number = None
    if number is None or not 0.0 < number < 1.0:
        raise ConfigError(f"{key}: must be a number in (0, 1), got {value!r}")
    return number


def parse_duration(key: str, value: Any) -> float:
    """Seconds from a number or a string like ``"90m"``, ``"2h"``, ``"45s"``, ``"1h30m"``."""
    seconds: float | None = None
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str):
        text = value.strip()
        try:
            seconds = float(text)
        except ValueError:
            parts = _DURATION_RE.findall(text)
            if parts and _DURATION_RE.sub("", text).strip() == "":
                seconds = sum(float(n) * _UNIT_S[unit.lower()] for n, unit in parts)
    if seconds is None or not math.isfinite(seconds) or seconds <= 0:
        raise ConfigError(
            f"{key}: must be a positive number of seconds or a duration like '90m', '2h' or "
            f"'1h30m', got {value!r}"
        )
    return seconds


def parse_time_budget(value: Any) -> float | str:
    """Seconds (see :func:`parse_duration`), or ``"<k>x"``: ``k`` (>= 1) times the duration of
    the sweep's first complete trial, kept as that string."""
    if isinstance(value, str) and value.strip().lower().endswith("x"):
        text = value.strip().lower()[:-1].strip()
        try:
            factor = float(text)
        except ValueError:
            factor = math.nan
        if not math.isfinite(factor) or factor < 1:
            raise ConfigError(
                f"time_budget: {value!r} is not a multiple of one trial's duration; give a "
                "number >= 1 before the x ('4x': four times the first complete trial)"
            )
        return f"{factor:g}x"
    return parse_duration("time_budget", value)


def section(key: str, value: Any) -> dict[str, Any]:
    """A sub-mapping as plain JSON data with its keys normalised (None counts as empty)."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ConfigError(f"{key}: must be a mapping, got {value!r}")
    data: dict[str, Any] = json_value(key, normalise_keys(key, value, recursive=True))
    return data


def normalise_keys(where: str, data: Mapping[Any, Any], recursive: bool = False) -> dict[Any, Any]:
    """Replace hyphens by underscores in every key; two keys that collide are an error."""
    out: dict[str, object] = {}
    originals: dict[str, str] = {}
    for key, value in data.items():
        if not isinstance(key, str):
            raise ConfigError(f"{where}: key {key!r} must be a string")
        norm = key.replace("-", "_")
        if norm in out:
            raise ConfigError(
                f"{where}: {originals[norm]!r} and {key!r} name the same key "
                "(hyphens read as underscores)"
            )
        if recursive and isinstance(value, Mapping):
            value = normalise_keys(f"{where}.{norm}", value, recursive=True)
        out[norm] = value
        originals[norm] = key
    return out


def precision(value: Any) -> str:
    text = str(value) if is_int(value) else value
    if isinstance(text, str):
        text = _PRECISION_ALIASES.get(text, text)
        if text in PRECISIONS:
            return text
    raise ConfigError(
        f"training.precision: unknown precision {value!r} (known: {', '.join(PRECISIONS)})"
    )


#: What a trial that runs out of memory does (``on_oom``): end ``infeasible``, or try its
#: run once more with half the batch size (``halve_batch``: random and grid search only).
ON_OOM = ("infeasible", "halve_batch")


def on_oom(value: Any, adaptive: bool, sampler: str) -> str:
    """``on_oom`` checked: one of :data:`ON_OOM`; ``halve_batch`` only for a sampler that
    plans its configurations (an adaptive one learns the region as a constraint)."""
    if value not in ON_OOM:
        raise ConfigError(f"on_oom: must be one of {', '.join(ON_OOM)}, got {value!r}")
    if value == "halve_batch" and adaptive:
        raise ConfigError(
            f"on_oom: halve_batch is for random and grid search; sampler {sampler!r} learns "
            "the out-of-memory region as a violated constraint instead (leave on_oom out)"
        )
    return str(value)


def host_memory_gb(value: Any) -> float | None:
    """``training.max_host_memory_gb``: None (no limit) or a number of GB above 0."""
    if value is None:
        return None
    if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
        return float(value)
    raise ConfigError(f"training.max_host_memory_gb: must be a number > 0, got {value!r}")


@dataclass(frozen=True)
class CvSettings:
    """What the queue and the search read of the ``cv`` section: folds, and seeds per fold
    (``cv.n_randoms``, darts' name). The section itself, with the trainable's own keys
    (``fold_method``, ``group_column``, ...), stays in :attr:`SweepConfig.cv`."""

    n_folds: int = 5
    n_randoms: int = 1

    @property
    def n_runs(self) -> int:
        """Runs per trial: folds × seeds per fold."""
        return self.n_folds * self.n_randoms


def requirements_field(raw: Any, space: Mapping[str, Any]) -> Requirements:
    """``requires``: fixed needs, or rules on the parameters (see :mod:`smptune.requirements`).
    A trial whose parameters are asked as it starts (an adaptive sampler, an open-ended
    sweep) and need what its worker lacks goes on to a worker that has it."""
    return Requirements.parse(raw, space)
