"""Sampling a hyperparameter space: seeded random configurations and grid expansion.

Both check the space's dependencies first (:func:`~smptune.search.distributions.check_space`)
and draw entries in space order; an inactive entry is left out of a configuration. Each
distribution draws its own values (:meth:`~smptune.search.distributions.Distribution.sample`,
:meth:`~smptune.search.distributions.Distribution.grid_values`).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from typing import Any

import numpy as np

from smptune.errors import ConfigError
from smptune.params import Params, ParamsView
from smptune.search.conditions import Cases, check_space, is_active, leaf
from smptune.search.distributions import Distribution

__all__ = ["grid_configurations", "sample_configurations"]


def sample_configurations(space: Mapping[str, Distribution], n: int, seed: int) -> list[Params]:
    """``n`` random configurations from ``numpy.random.default_rng(seed)``.

    Entries are drawn in space order; an inactive entry is left out and draws nothing.
    Deterministic: the same space, ``n`` and ``seed`` give the same list in every process.
    Configuration ``i`` does not depend on ``n`` (a longer run extends a shorter one).
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ConfigError(f"n_trials: must be an integer >= 0, got {n!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ConfigError(f"seed: must be an integer >= 0, got {seed!r}")
    checked = check_space(space)
    rng = np.random.default_rng(seed)
    configurations = []
    for _ in range(n):
        config: Params = {}
        for name, dist in checked.items():
            if is_active(dist, config):
                config[name] = leaf(dist, config).sample(rng)
        configurations.append(config)
    return configurations


def complete_configuration(
    space: Mapping[str, Distribution], given: ParamsView, seed: int, where: str
) -> Params:
    """A configuration with ``given``'s values (checked against the space, reported under
    ``where``) and, for the active entries it leaves out, values drawn from
    ``numpy.random.default_rng(seed)``; names outside the space are kept as they are (fixed
    values for the trainable)."""
    checked = check_space(space)
    rng = np.random.default_rng(seed)
    config: Params = {}
    for name, dist in checked.items():
        if not is_active(dist, config):
            if name in given:
                raise ConfigError(f"{where}.{name}: inactive given the values before it")
            continue
        chosen = leaf(dist, config)
        if name in given:
            if not chosen.contains(given[name]):
                raise ConfigError(
                    f"{where}.{name}: {given[name]!r} is outside the search space "
                    f"({json.dumps(chosen.to_dict(), default=str)})"
                )
            config[name] = given[name]
        else:
            config[name] = chosen.sample(rng)
    return {**{k: v for k, v in given.items() if k not in checked}, **config}


#: The most configurations a sweep plans (a grid, or ``n_trials``); a larger one is refused.
MAX_PLANNED = 1_000_000


def grid_size(space: Mapping[str, Distribution], limit: int = MAX_PLANNED) -> int:
    """How many configurations :func:`grid_configurations` lists, counted without listing
    them (entries that no other entry depends on multiply; only parents are walked). Past
    ``limit`` the count may stop early, above ``limit``; configurations that two case tables
    make equal count twice."""
    checked = check_space(space)
    parents = {p for d in checked.values() for p, _ in d.when}
    parents |= {d.parent for d in checked.values() if isinstance(d, Cases)}
    names = list(checked)

    def count(i: int, config: Params) -> int:
        product = 1
        for j in range(i, len(names)):
            name, dist = names[j], checked[names[j]]
            if not is_active(dist, config):
                continue
            values = leaf(dist, config).grid_values()
            if name not in parents:
                product *= len(values)
                continue
            total = 0
            for value in values:
                config[name] = value
                total += count(j + 1, config)
                if product * total > limit:
                    break
            config.pop(name, None)
            return product * total
        return product

    return count(0, {})


def grid_configurations(space: Mapping[str, Distribution]) -> list[Params]:
    """Every combination of the entries' grid values, in space order (last key fastest).

    With conditions, the union over the active branches: an entry is enumerated only where
    it is active (a case table with its case's values) and is absent elsewhere; no
    configuration appears twice. A grid of more than :data:`MAX_PLANNED` configurations
    raises :class:`ConfigError` with its size, before any is listed.
    """
    size = grid_size(space)
    if size > MAX_PLANNED:
        shown = f"{size:,}" if size < 10**15 else f"{size:.2e}"
        raise ConfigError(
            f"n_trials: grid: the grid has {shown} configurations, more than the "
            f"{MAX_PLANNED:,} a sweep plans; shorten its lists, or sample it (sampler: "
            "random or tpe with n_trials)"
        )
    checked = check_space(space)
    axes: dict[str, list[list[Any]]] = {}
    for name, dist in checked.items():
        leaves = [d for _, d in dist.cases] if isinstance(dist, Cases) else [dist]
        axes[name] = [d.grid_values() for d in leaves]
    names = list(checked)
    out: list[Params] = []
    seen: set[str] = set()

    def walk(i: int, config: Params) -> None:
        if i == len(names):
            key = json.dumps(config, sort_keys=True)
            if key not in seen:
                seen.add(key)
                out.append(copy.deepcopy(config))
            return
        name, dist = names[i], checked[names[i]]
        if not is_active(dist, config):
            walk(i + 1, config)
            return
        chosen = leaf(dist, config)
        values = (
            axes[name][[d for _, d in dist.cases].index(chosen)]
            if isinstance(dist, Cases)
            else axes[name][0]
        )
        for value in values:
            config[name] = value
            walk(i + 1, config)
        del config[name]

    walk(0, {})
    return out
