"""Capabilities and requirements: what a trial needs of a worker, what a worker has, the match.

A config's ``requires`` is a mapping of fixed needs (``{gpu_memory_gb: 40, tags: [a100]}``)
or a list of rules, each with an optional ``when`` (parameter -> value or list of values)
that makes it apply only to the trials whose parameters match it. A trial's needs merge the
rules that apply: the most memory, the device if one names it, the union of tags. Trials
with the same needs share a capability class and its queue (``<queue>.needs.<class>``);
trials that need nothing stay on the sweep's own queue. Pure: imports only ``errors``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from smptune.errors import ConfigError

__all__ = [
    "DEVICES",
    "Capabilities",
    "Needs",
    "Requirements",
    "Rule",
    "capability_queue",
]

#: Device kinds a worker is pinned to (``workers start``: a GPU, or ``--cpu``).
DEVICES = ("cuda", "cpu")
NEED_KEYS = ("gpu_memory_gb", "device", "tags")
_TAG_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def _number(key: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise ConfigError(f"{key}: must be a number of GB > 0, got {value!r}")
    return float(value)


def parse_tags(key: str, value: object) -> frozenset[str]:
    """``value`` as tags: a name or a list of names of letters, digits, ``_ . -``."""
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list | tuple):
        raise ConfigError(f"{key}: must be a tag or a list of tags, got {value!r}")
    for item in items:
        if not isinstance(item, str) or not _TAG_RE.match(item):
            raise ConfigError(
                f"{key}: {item!r} is not a tag (letters, digits, '_', '.', '-'; not first)"
            )
    return frozenset(items)


@dataclass(frozen=True)
class Needs:
    """What a trial needs of its worker (None / empty: anything does)."""

    gpu_memory_gb: float | None = None
    device: str | None = None
    tags: frozenset[str] = frozenset()

    def __bool__(self) -> bool:
        return self.gpu_memory_gb is not None or self.device is not None or bool(self.tags)

    def merge(self, other: Needs, key: str = "requires") -> Needs:
        """Both needs at once: the more memory, the one device, every tag."""
        if self.device and other.device and self.device != other.device:
            raise ConfigError(
                f"{key}: a trial would need both device {self.device} and {other.device}"
            )
        memories = [m for m in (self.gpu_memory_gb, other.gpu_memory_gb) if m is not None]
        return Needs(
            max(memories) if memories else None,
            self.device or other.device,
            self.tags | other.tags,
        )

    @property
    def label(self) -> str:
        """The capability class: a short canonical name, e.g. ``mem40-cuda-tag_a100``."""
        parts = []
        if self.gpu_memory_gb is not None:
            parts.append(f"mem{self.gpu_memory_gb:g}")
        if self.device is not None:
            parts.append(self.device)
        parts += [f"tag_{t}" for t in sorted(self.tags)]
        return "-".join(parts)

    @property
    def text(self) -> str:
        """What a person reads: ``gpu_memory_gb>=40, tags=a100``."""
        parts = []
        if self.gpu_memory_gb is not None:
            parts.append(f"gpu_memory_gb>={self.gpu_memory_gb:g}")
        if self.device is not None:
            parts.append(f"device={self.device}")
        if self.tags:
            parts.append("tags=" + ",".join(sorted(self.tags)))
        return ", ".join(parts) or "nothing"

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.gpu_memory_gb is not None:
            out["gpu_memory_gb"] = self.gpu_memory_gb
        if self.device is not None:
            out["device"] = self.device
        if self.tags:
            out["tags"] = sorted(self.tags)
        return out

    @classmethod
    def parse(cls, key: str, raw: Mapping[str, Any], extra: Iterable[str] = ()) -> Needs:
        """Needs from ``raw`` (keys :data:`NEED_KEYS`, and ``extra`` which the caller reads)."""
        for name in raw:
            if name not in NEED_KEYS and name not in extra:
                known = ", ".join((*NEED_KEYS, *extra))
                raise ConfigError(f"{key}.{name}: unknown key (known: {known})")
        memory = raw.get("gpu_memory_gb")
        device = raw.get("device")
        if device is not None and device not in DEVICES:
            raise ConfigError(f"{key}.device: must be one of {', '.join(DEVICES)}, got {device!r}")
        return cls(
            None if memory is None else _number(f"{key}.gpu_memory_gb", memory),
            device,
            parse_tags(f"{key}.tags", raw.get("tags", [])),
        )

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Needs:
        return cls.parse("needs", data)


@dataclass(frozen=True)
class Capabilities:
    """What a worker has: its device kind, its GPU memory (None: unknown or no GPU), tags."""

    device: str = "cpu"
    gpu_memory_gb: float | None = None
    tags: frozenset[str] = frozenset()

    def meets(self, needs: Needs) -> bool:
        """Whether a trial that needs ``needs`` may run here."""
        if needs.gpu_memory_gb is not None and (
            self.gpu_memory_gb is None or self.gpu_memory_gb < needs.gpu_memory_gb
        ):
            return False
        if needs.device is not None and needs.device != self.device:
            return False
        return needs.tags <= self.tags

    @property
    def text(self) -> str:
        memory = f", {self.gpu_memory_gb:g} GB" if self.gpu_memory_gb is not None else ""
        tags = f", tags {','.join(sorted(self.tags))}" if self.tags else ""
        return f"{self.device}{memory}{tags}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "device": self.device,
            "gpu_memory_gb": self.gpu_memory_gb,
            "tags": sorted(self.tags),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Capabilities:
        memory = data.get("gpu_memory_gb")
        return cls(
            str(data.get("device", "cpu")),
            None if memory is None else float(memory),
            frozenset(str(t) for t in data.get("tags", [])),
        )


@dataclass(frozen=True)
class Rule:
    """Needs that apply to every trial (``when`` empty) or to those whose parameters match."""

    needs: Needs
    when: tuple[tuple[str, tuple[Any, ...]], ...] = ()

    def applies(self, params: Mapping[str, Any]) -> bool:
        return all(name in params and params[name] in values for name, values in self.when)

    def to_dict(self) -> dict[str, Any]:
        when = {name: list(values) for name, values in self.when}
        return {**({"when": when} if when else {}), **self.needs.to_dict()}


@dataclass(frozen=True)
class Requirements:
    """A config's ``requires``: its rules (none: a trial needs nothing)."""

    rules: tuple[Rule, ...] = ()
    #: the form it was given in: a mapping (one rule, no ``when``) or a list
    as_list: bool = field(default=False, compare=False)

    def __bool__(self) -> bool:
        return bool(self.rules)

    @property
    def conditional(self) -> bool:
        """Some rule applies only to some parameters."""
        return any(rule.when for rule in self.rules)

    @property
    def base(self) -> Needs:
        """What every trial needs (the rules without ``when``)."""
        return self.needs_for(None)

    def needs_for(self, params: Mapping[str, Any] | None) -> Needs:
        """What a trial with ``params`` needs (None: not known yet, only the base)."""
        out = Needs()
        for rule in self.rules:
            if not rule.when or (params is not None and rule.applies(params)):
                out = out.merge(rule.needs)
        return out

    def to_config(self) -> Any:
        if not self.as_list and len(self.rules) == 1 and not self.rules[0].when:
            return self.rules[0].needs.to_dict()
        return [rule.to_dict() for rule in self.rules]

    @classmethod
    def parse(cls, raw: Any, space: Iterable[str]) -> Requirements:
        """``requires`` from a config, its ``when`` checked against the space's names."""
        if raw is None:
            return cls()
        names = set(space)
        if isinstance(raw, Mapping):
            if "when" in raw:
                raise ConfigError("requires.when: a rule with when goes in a list of rules")
            return cls((Rule(Needs.parse("requires", raw)),))
        if not isinstance(raw, list):
            raise ConfigError(
                f"requires: must be a mapping of needs or a list of rules, got {raw!r}"
            )
        rules = []
        for i, item in enumerate(raw):
            key = f"requires[{i}]"
            if not isinstance(item, Mapping):
                raise ConfigError(f"{key}: must be a mapping, got {item!r}")
            needs = Needs.parse(key, item, extra=("when",))
            when = item.get("when", {})
            if not isinstance(when, Mapping):
                raise ConfigError(f"{key}.when: must be a mapping of parameter to value(s)")
            pairs = []
            for name, values in when.items():
                if name not in names:
                    raise ConfigError(
                        f"{key}.when.{name}: not a hyperparameter of the search space"
                    )
                listed = tuple(values) if isinstance(values, list) else (values,)
                try:
                    json.dumps(listed)
                except TypeError:
                    raise ConfigError(f"{key}.when.{name}: values must be plain data") from None
                pairs.append((str(name), listed))
            if not needs:
                raise ConfigError(f"{key}: names no need (one of {', '.join(NEED_KEYS)})")
            rules.append(Rule(needs, tuple(pairs)))
        out = cls(tuple(rules), as_list=True)
        _ = out.base  # a base that contradicts itself fails here
        return out


def capability_queue(queue: str, needs: Needs) -> str:
    """The queue of trials of ``queue``'s sweeps that need ``needs`` (``queue`` itself for
    none)."""
    return f"{queue}.needs.{needs.label}" if needs else queue
