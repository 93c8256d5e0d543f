"""Conditional entries: case tables, which entries apply to a configuration, and the checks
of the dependencies between entries.

Every distribution may carry ``when`` (the values earlier entries must have), and
:class:`Cases` picks an entry by the value of an earlier one. :func:`is_active` and
:func:`leaf` resolve both against the values chosen so far, and :func:`check_space` checks a
space's dependencies; configurations never carry an inactive entry.
"""

from __future__ import annotations

import copy
import dataclasses
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from smptune.errors import ConfigError
from smptune.params import ParamsView
from smptune.search.distributions import (
    Distribution,
    FloatRange,
    IntRange,
    Space,
    _Categorical,
    json_value,
    same_value,
)
from smptune.search.fields import where_of

__all__ = [
    "Cases",
    "case_entry",
    "case_items",
    "case_parent",
    "check_space",
    "is_active",
    "leaf",
]


def _case_label(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def case_parent(where: str, parent: Any) -> str:
    """A case table's ``depends_on``, normalised (``model-arch`` is ``model_arch``)."""
    if not isinstance(parent, str) or not parent.strip():
        raise ConfigError(f"{where}: depends_on ({parent!r}) must be the name of an earlier entry")
    return parent.replace("-", "_")


def case_items(where: str, name: str, parent: str, raw: Any) -> Iterator[tuple[Any, str, Any]]:
    """``(value, label, entry)`` for each case of ``raw`` (``{value: entry}`` or a list of
    pairs), in order; ``label`` (``<name>.cases.<value>``) names the case's entry. Each value is
    checked as it comes: JSON data, and not listed twice."""
    if isinstance(raw, Mapping):
        pairs = list(raw.items())
    elif isinstance(raw, (list, tuple)) and all(
        isinstance(p, (list, tuple)) and len(p) == 2 for p in raw
    ):
        pairs = [(p[0], p[1]) for p in raw]
    else:
        raise ConfigError(f"{where}: cases ({raw!r}) must map each value of {parent!r} to an entry")
    if not pairs:
        raise ConfigError(f"{where}: cases must not be empty")
    seen: list[Any] = []
    for value, entry in pairs:
        value = json_value(f"{where}.cases", value)
        if any(same_value(value, earlier) for earlier in seen):
            raise ConfigError(f"{where}: cases: {value!r} is listed twice")
        seen.append(value)
        yield value, f"{name}.cases.{_case_label(value)}", entry


def case_entry(label: str, dist: Any) -> Distribution:
    """``dist`` as the case ``label`` (a plain, unconditional distribution), named so."""
    if not isinstance(dist, Distribution):
        raise ConfigError(
            f"{where_of(label)}: {dist!r} is not a distribution; parse_distribution reads a "
            "raw case"
        )
    if isinstance(dist, Cases):
        raise ConfigError(f"{where_of(label)}: a case cannot be a case table itself")
    if dist.when:
        raise ConfigError(
            f"{where_of(label)}: a case cannot have its own when; put it on the entry"
        )
    return dataclasses.replace(dist, name=label)


@dataclass(frozen=True)
class Cases(Distribution):
    """An entry that depends on an earlier one, ``parent``: ``cases`` pairs a value of the
    parent with the entry used then; a parent value without a case makes the entry inactive.

    Each case is a distribution already (a dialect parses a raw case table's entries), but
    neither a case table nor conditional itself. Resolve it with :func:`leaf`; it is not
    sampled directly.
    """

    kind: ClassVar[str] = "cases"
    parent: str
    cases: tuple[tuple[Any, Distribution], ...]

    def _validate(self, where: str) -> None:
        self._set("parent", case_parent(where, self.parent))
        items = case_items(where, self.name, self.parent, self.cases)
        self._set("cases", tuple((value, case_entry(label, d)) for value, label, d in items))

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

    def _body(self) -> dict[str, object]:
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


def is_active(dist: Distribution, config: ParamsView) -> bool:
    """Whether ``dist`` applies given ``config``, the values chosen so far in space order:
    every ``when`` parent has one of its values, and a case table has a case for its parent's
    value (a parent that is absent, being inactive itself, makes the entry inactive)."""
    for parent, values in dist.when:
        if parent not in config or not any(same_value(config[parent], v) for v in values):
            return False
    if isinstance(dist, Cases):
        return dist.parent in config and dist.case_for(config[dist.parent]) is not None
    return True


def leaf(dist: Distribution, config: ParamsView) -> Distribution:
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


# --- dependencies between entries --------------------------------------------------------


def _finite(dist: Distribution) -> bool:
    """Whether ``dist`` takes a finite set of values (a condition can name them)."""
    if isinstance(dist, Cases):
        return all(_finite(d) for _, d in dist.cases)
    if isinstance(dist, FloatRange):
        return dist.quantized
    return isinstance(dist, (_Categorical, IntRange))


def _parent_of(
    where: str, name: str, parent: str, earlier: Space, space: Mapping[str, Distribution]
) -> Distribution:
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
        where = where_of(name)
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
        if isinstance(dist, Cases):
            parent_dist = _parent_of(where, name, dist.parent, out, space)
            cases = tuple(
                (_match(where, "case", dist.parent, parent_dist, v), d) for v, d in dist.cases
            )
            if any(a is not b for (a, _), (b, _) in zip(cases, dist.cases, strict=True)):
                dist = dataclasses.replace(dist, when=when, cases=cases)
        out[name] = dist if when == dist.when else dataclasses.replace(dist, when=when)
    return out
