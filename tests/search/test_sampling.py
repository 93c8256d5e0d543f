"""Sampling a hyperparameter space: seeded random configurations and grids, with and without
conditional entries."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from smptune.errors import ConfigError
from smptune.search.conditions import Cases
from smptune.search.distributions import (
    Choice,
    IntUniform,
    LogUniform,
    ReversedLogUniform,
    Uniform,
    Value,
)
from smptune.search.sampling import (
    MAX_PLANNED,
    grid_configurations,
    grid_size,
    sample_configurations,
)

from conditional_space import CONDITIONAL

# --- random configurations ---------------------------------------------------------------

SPACE = {
    "learning_rate": LogUniform(1e-4, 1e-2),
    "gamma": ReversedLogUniform(0.9, 0.999),
    "batch_size": IntUniform(4, 16),
    "model_arch": Choice(("Unet", "FPN", "DeepLabV3")),
    "augment": Value(True),
}


def test_same_seed_gives_identical_configurations():
    first = sample_configurations(SPACE, 8, seed=42)
    second = sample_configurations(dict(SPACE), 8, seed=42)
    assert first == second
    assert json.loads(json.dumps(first)) == first
    assert [list(c) for c in first] == [list(SPACE)] * 8


def test_different_seed_gives_different_configurations():
    assert sample_configurations(SPACE, 8, seed=1) != sample_configurations(SPACE, 8, seed=2)


def test_sampling_is_pinned_across_processes():
    # Given seed 0 / Then the first learning rate is the same value in every process
    # (a change here would reshuffle every existing sweep's configurations)
    config = sample_configurations({"lr": LogUniform(1e-4, 1e-2)}, 1, seed=0)[0]
    expected = math.exp(np.random.default_rng(0).uniform(math.log(1e-4), math.log(1e-2)))
    assert config["lr"] == expected


@pytest.mark.parametrize(("n", "seed"), [(-1, 0), (2, -1), (1.5, 0)])
def test_sample_configurations_rejects_bad_n_and_seed(n, seed):
    with pytest.raises(ConfigError):
        sample_configurations(SPACE, n, seed)


# --- grid --------------------------------------------------------------------------------


def test_grid_is_the_cartesian_product_in_space_order():
    space = {
        "model_arch": Choice(("Unet", "FPN")),
        "augment": Value(False),
        "batch_size": Choice((4, 8, 16)),
    }
    grid = grid_configurations(space)
    assert len(grid) == 6
    assert grid[0] == {"model_arch": "Unet", "augment": False, "batch_size": 4}
    assert grid[-1] == {"model_arch": "FPN", "augment": False, "batch_size": 16}
    assert {(c["model_arch"], c["batch_size"]) for c in grid} == {
        (a, b) for a in ("Unet", "FPN") for b in (4, 8, 16)
    }
    assert all(list(c) == list(space) for c in grid)


@pytest.mark.parametrize(
    ("dist", "word"),
    [
        (LogUniform(1e-4, 1e-2, name="learning_rate"), "loguniform is continuous"),
        (IntUniform(1, 4, name="learning_rate"), "intuniform"),
    ],
)
def test_grid_with_a_sampled_entry_names_the_key(dist, word):
    space = {"model_arch": Choice(("Unet",), name="model_arch"), "learning_rate": dist}
    with pytest.raises(ConfigError) as info:
        grid_configurations(space)
    message = str(info.value)
    assert message.startswith("hyperparameters.learning_rate: grid search needs a discrete entry")
    assert word in message


# --- conditional entries -----------------------------------------------------------------


def _expected_active(config):
    arch = config["model_arch"]
    return {
        "model_arch",
        *(["decoder_attention_type"] if arch == "Unet" else []),
        *(["model_encoder"] if arch in ("Unet", "FPN") else []),
        *(["encoder_depth"] if config.get("model_encoder") == "resnet34" else []),
    }


def test_random_configurations_never_carry_an_inactive_entry():
    configs = sample_configurations(CONDITIONAL, 300, seed=3)
    for config in configs:
        assert set(config) == _expected_active(config)
        if config["model_arch"] == "FPN":
            assert config["model_encoder"] == "mobilenet_v2"
    assert {c["model_arch"] for c in configs} == {"Unet", "FPN", "DeepLabV3"}
    assert any("encoder_depth" in c for c in configs)
    # configuration i does not depend on n
    assert sample_configurations(CONDITIONAL, 7, seed=3) == configs[:7]


def test_grid_is_the_union_over_active_branches():
    grid = grid_configurations(CONDITIONAL)
    unet = [
        {"model_arch": "Unet", "decoder_attention_type": a, "model_encoder": e}
        | ({"encoder_depth": d} if e == "resnet34" else {})
        for a in (None, "scse")
        for e in ("resnet18", "resnet34")
        for d in ((4, 5) if e == "resnet34" else (None,))
    ]
    assert grid == [
        *unet,
        {"model_arch": "FPN", "model_encoder": "mobilenet_v2"},
        {"model_arch": "DeepLabV3"},
    ]
    assert len({json.dumps(c, sort_keys=True) for c in grid}) == len(grid) == 8


def test_grid_refuses_a_continuous_case_naming_it():
    space = {
        "model_arch": Choice(("Unet", "FPN")),
        "lr": Cases("model_arch", {"Unet": Choice((0.1,)), "FPN": Uniform(0.0, 1.0)}, name="lr"),
    }
    with pytest.raises(ConfigError, match=r"^hyperparameters\.lr\.cases\.FPN: grid search"):
        grid_configurations(space)


def test_grid_size_counts_without_listing_and_a_huge_grid_is_refused_with_its_size():
    # a conditional grid: the count is the listing's length
    assert grid_size(CONDITIONAL) == len(grid_configurations(CONDITIONAL))
    # ten lists of ten values: 10^10 configurations, refused before any is listed
    huge = {f"p{i}": Choice(tuple(range(10))) for i in range(10)}
    assert grid_size(huge) == 10**10 > MAX_PLANNED
    with pytest.raises(ConfigError, match=r"10,000,000,000 configurations, more than"):
        grid_configurations(huge)
