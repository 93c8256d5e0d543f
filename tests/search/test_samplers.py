"""The samplers: one interface, one module per family, one registry line each."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import pytest

from smptune.config import config_from_dict
from smptune.errors import ConfigError
from smptune.params import Params, ParamsView
from smptune.search.samplers import registry
from smptune.search.samplers.base import PlanSettings, Sampler
from smptune.search.samplers.grid import GridSampler
from smptune.search.samplers.optuna import GPSampler, TPESampler
from smptune.search.samplers.random import RandomSampler
from smptune.search.sampling import grid_configurations, sample_configurations

SPACE = {"x": {"low": 0.0, "high": 1.0}, "y": [1, 2, 3]}


def test_the_registry_names_each_sampler_once_with_the_default_first():
    assert list(registry.SAMPLERS) == ["random", "grid", "tpe", "gp", "cmaes", "nsga2"]
    assert all(cls.name == name for name, cls in registry.SAMPLERS.items())
    assert registry.default_sampler(None) == registry.default_sampler(5) == "random"
    assert registry.default_sampler("grid") == "grid"
    assert registry.n_trials_words() == ("grid",)
    assert [n for n, cls in registry.SAMPLERS.items() if cls.adaptive] == [
        "tpe",
        "gp",
        "cmaes",
        "nsga2",
    ]


def test_settings_are_checked_against_the_samplers_options_over_its_defaults():
    tpe = registry.parse_sampler({"type": "TPE", "n_startup_trials": 3})
    assert isinstance(tpe, TPESampler) and tpe.kind == "tpe"
    assert tpe.options == {"n_startup_trials": 3, "constant_liar": True, "multivariate": True}
    assert registry.parse_sampler(tpe.to_config()) == tpe
    assert (
        registry.parse_sampler(None) == RandomSampler() and RandomSampler().to_config() == "random"
    )
    with pytest.raises(ConfigError, match=r"^sampler\.seed: unknown option for gp"):
        registry.parse_sampler({"type": "gp", "seed": 1})
    with pytest.raises(ConfigError, match=r"^sampler\.multivariate: must be true or false"):
        registry.parse_sampler({"type": "tpe", "multivariate": 1})
    with pytest.raises(ConfigError, match=r"^sampler: must be one of random, grid, tpe"):
        registry.parse_sampler("bohb")
    assert type(GPSampler().build(seed=1)).__name__ == "GPSampler"
    with pytest.raises(ValueError, match="not adaptive"):
        GridSampler().build(seed=1)


def test_random_and_grid_plan_every_configuration_and_adaptive_ones_only_the_enqueued():
    random = config_from_dict(
        {"hyperparameters": SPACE, "n_trials": 5, "seed": 3, "enqueue": [{"x": 0.5}]}
    )
    planned = random.sampler_spec.plan(random)
    assert planned[0]["x"] == 0.5 and planned[1:] == sample_configurations(
        random.hyperparameters, 4, 3
    )
    grid_space = {"y": [1, 2, 3], "z": ["a", "b"]}
    grid = config_from_dict({"hyperparameters": grid_space, "sampler": "grid"})
    assert grid.sampler_spec.plan(grid) == grid_configurations(grid.hyperparameters)
    tpe = config_from_dict(
        {"hyperparameters": SPACE, "n_trials": 5, "sampler": "tpe", "enqueue": [{"x": 0.5}]}
    )
    assert tpe.sampler_spec.plan(tpe) == tpe.enqueue
    open_ended = config_from_dict({"hyperparameters": SPACE, "time_budget": "1h"})
    assert open_ended.sampler_spec.plan(open_ended) == []
    # which sweeps ask at start: adaptive ones, and any open-ended one
    assert [
        c.sampler_spec.asks_at_start(c.is_open_ended) for c in (random, grid, tpe, open_ended)
    ] == [
        False,
        False,
        True,
        True,
    ]


@dataclass
class _Asking:
    trial: int
    defaults: ParamsView
    held: Params | None = None

    def recorded(self) -> Params | None:
        return self.held

    def record(self, params: Params) -> Params:
        if self.held is None:
            self.held = params
        return self.held

    def view(self):  # pragma: no cover - random search never asks a study
        raise AssertionError


def test_random_search_of_an_open_ended_sweep_asks_the_seeded_sample_of_the_trials_number():
    config = config_from_dict({"hyperparameters": SPACE, "time_budget": "1h", "seed": 7})
    asked = [
        config.sampler_spec.ask(config, _Asking(n, {"x": 0.0, "y": 0, "z": 9})) for n in range(4)
    ]
    drawn = sample_configurations(config.hyperparameters, 4, 7)
    assert asked == [{"x": d["x"], "y": d["y"], "z": 9} for d in drawn]
    with pytest.raises(ValueError, match="plans every configuration"):
        GridSampler().ask(config, _Asking(0, {}))


def test_a_new_sampler_is_one_class_and_one_registry_line(monkeypatch):
    @dataclass(frozen=True)
    class Corners(Sampler):
        """Every configuration at the low end of the space (a toy)."""

        name: ClassVar[str] = "corners"

        def plan(self, search: PlanSettings) -> list[Params]:
            low = {
                n: d.grid_values()[0] if d.is_discrete else d.low
                for n, d in search.hyperparameters.items()
            }
            return [
                *super().plan(search),
                *[dict(low)] * (int(search.n_trials or 0) - len(search.enqueue)),
            ]

    monkeypatch.setitem(registry.SAMPLERS, "corners", Corners)
    config = config_from_dict({"hyperparameters": SPACE, "n_trials": 2, "sampler": "corners"})
    assert config.sampler == "corners" and not config.is_adaptive
    assert config.configurations() == [{"x": 0.0, "y": 1}, {"x": 0.0, "y": 1}]
    assert config_from_dict(config.to_dict()) == config


def test_an_extended_random_sweep_continues_its_seeded_stream():
    config = config_from_dict({"hyperparameters": SPACE, "n_trials": 3, "seed": 5})
    stream = sample_configurations(config.hyperparameters, 7, 5)
    assert config.sampler_spec.planned_after(config, 3, 4) == stream[3:]
    with pytest.raises(ConfigError, match="no more configurations"):
        GridSampler().planned_after(config, 3, 4)
