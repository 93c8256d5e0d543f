"""Search-space distributions: the darts forms, sampling, grids and error messages."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from smptune.errors import ConfigError
from smptune.space import (
    Choice,
    IntUniform,
    LogUniform,
    ReversedLogUniform,
    Uniform,
    Value,
    distribution_from_dict,
    grid_configurations,
    parse_distribution,
    sample_configurations,
)

# --- reading the darts forms -------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (0.001, Value(0.001)),
        (8, Value(8)),
        ("Unet", Value("Unet")),
        (True, Value(True)),
        (None, Value(None)),
        (["Unet", "FPN"], Choice(("Unet", "FPN"))),
        ([None, 0.25], Choice((None, 0.25))),
        ({"low": 2, "high": 16}, IntUniform(2, 16)),
        ({"low": 0.1, "high": 1}, Uniform(0.1, 1.0)),
        ({"low": 0.0, "high": 1.0}, Uniform(0.0, 1.0)),
    ],
    ids=["float", "int", "str", "bool", "none", "list", "list-none", "int-range", "mixed", "float"],
)
def test_implicit_forms(raw, expected):
    # Given an implicit darts entry / When it is parsed / Then it is the matching distribution
    parsed = parse_distribution("x", raw)
    assert parsed == expected
    assert type(parsed) is type(expected)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ({"distribution": "uniform", "low": 0, "high": 1}, Uniform(0.0, 1.0)),
        ({"distribution": "loguniform", "low": 1e-4, "high": 1e-2}, LogUniform(1e-4, 1e-2)),
        (
            {"distribution": "reversed-loguniform", "low": 0.9, "high": 0.999},
            ReversedLogUniform(0.9, 0.999, 1.0),
        ),
        (
            {"distribution": "reversed_loguniform", "low": 5, "high": 9, "n": 10},
            ReversedLogUniform(5.0, 9.0, 10.0),
        ),
        ({"distribution": "intuniform", "low": 1, "high": 4}, IntUniform(1, 4)),
        ({"distribution": "intuniform", "low": 1.0, "high": 4.0}, IntUniform(1, 4)),
        ({"distribution": "choice", "choices": ["a", "b"]}, Choice(("a", "b"))),
        ({"distribution": "value", "value": [1, 2]}, Value([1, 2])),
        ({"distribution": "constant", "value": {"k": 1}}, Value({"k": 1})),
    ],
    ids=[
        "uniform",
        "loguniform",
        "reversed",
        "reversed-underscore-n",
        "intuniform",
        "intuniform-integral-floats",
        "choice",
        "value",
        "constant",
    ],
)
def test_explicit_forms(raw, expected):
    # Given an explicit darts entry / When it is parsed / Then it is the named distribution
    parsed = parse_distribution("x", raw)
    assert parsed == expected
    assert type(parsed) is type(expected)


def test_numeric_string_bounds_are_read_as_numbers():
    # Given bounds as PyYAML gives them for `1e-4` (a string)
    raw = {"distribution": "loguniform", "low": "1e-4", "high": "1e-2"}
    # When parsed / Then they are floats
    assert parse_distribution("learning_rate", raw) == LogUniform(1e-4, 1e-2)


@pytest.mark.parametrize(
    "dist",
    [
        Uniform(-1.0, 2.5),
        LogUniform(1e-5, 1e-1),
        ReversedLogUniform(0.5, 0.99, 1.0),
        IntUniform(-3, 7),
        Choice(("Unet", None, 3, 0.5, True)),
        Value({"nested": [1, "two"]}),
    ],
    ids=lambda d: type(d).__name__,
)
def test_to_dict_round_trips_through_json(dist):
    # Given a distribution / When written as JSON and read back / Then it is equal
    data = json.loads(json.dumps(dist.to_dict()))
    assert distribution_from_dict("x", data) == dist
    assert parse_distribution("x", data) == dist


def test_to_dict_is_the_explicit_darts_form():
    assert LogUniform(1e-4, 1e-2).to_dict() == {
        "distribution": "loguniform",
        "low": 1e-4,
        "high": 1e-2,
    }
    assert ReversedLogUniform(0.9, 0.99).to_dict() == {
        "distribution": "reversed-loguniform",
        "low": 0.9,
        "high": 0.99,
        "n": 1.0,
    }


# --- errors ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "fragments"),
    [
        (
            {"distribution": "normal", "low": 0, "high": 1},
            ["unknown distribution 'normal'", "loguniform"],
        ),
        ({"distribution": "uniform", "low": 0}, ["needs 'high'"]),
        ({"distribution": "loguniform", "high": 1}, ["needs 'low'"]),
        ({"distribution": "choice"}, ["needs 'choices'"]),
        ({"distribution": "value"}, ["needs 'value'"]),
        ({"distribution": "uniform", "low": 0, "high": 1, "step": 2}, ["unexpected", "'step'"]),
        ({"low": 0, "high": 1, "log": True}, ["unexpected", "'log'"]),
        ({"low": 1}, ["needs 'high'"]),
        (
            {"distribution": "uniform", "low": "small", "high": 1},
            ["low ('small') must be a number"],
        ),
        ({"distribution": "uniform", "low": True, "high": 2}, ["low (True) must be a number"]),
        (
            {"distribution": "uniform", "low": 0.1, "high": 0.01},
            ["low (0.1) must be < high (0.01)"],
        ),
        ({"low": 3, "high": 3}, ["low (3) must be < high (3)"]),
        ({"distribution": "uniform", "low": 0, "high": "inf"}, ["high ('inf') must be finite"]),
        ({"distribution": "choice", "choices": []}, ["choices must not be empty"]),
        ([], ["choices must not be empty"]),
        ({"distribution": "choice", "choices": "abc"}, ["choices ('abc') must be a list"]),
        ({"distribution": "loguniform", "low": 0, "high": 1}, ["low > 0", "low (0.0)"]),
        ({"distribution": "intuniform", "low": 1.5, "high": 4}, ["low (1.5) must be an integer"]),
        ({"distribution": "reversed-loguniform", "low": 0.5, "high": 1.0}, ["high < n"]),
        ({"learning_rate": 0.1}, ["matches no known form"]),
        ({}, ["matches no known form"]),
    ],
    ids=[
        "unknown",
        "missing-high",
        "missing-low",
        "missing-choices",
        "missing-value",
        "extra-key",
        "implicit-extra-key",
        "implicit-missing-high",
        "string-bound",
        "bool-bound",
        "low-above-high",
        "equal-bounds",
        "infinite",
        "empty-choices",
        "empty-list",
        "choices-not-list",
        "loguniform-zero",
        "intuniform-fraction",
        "reversed-high-at-n",
        "no-form",
        "empty-mapping",
    ],
)
def test_bad_entries_raise_config_error_naming_the_key(raw, fragments):
    # Given a bad entry / When parsed / Then one ConfigError names the key and the problem
    with pytest.raises(ConfigError) as info:
        parse_distribution("learning_rate", raw)
    message = str(info.value)
    assert message.startswith("hyperparameters.learning_rate: ")
    for fragment in fragments:
        assert fragment in message


def test_non_json_value_is_rejected():
    import datetime

    with pytest.raises(ConfigError, match=r"hyperparameters\.when: .*not JSON data"):
        parse_distribution("when", datetime.date(2024, 1, 1))


# --- sampling ----------------------------------------------------------------------------


def _draw(dist, n=20_000, seed=1):
    rng = np.random.default_rng(seed)
    return [dist.sample(rng) for _ in range(n)]


@pytest.mark.parametrize(
    "dist",
    [Uniform(-1.0, 2.0), LogUniform(1e-4, 1e-2), ReversedLogUniform(0.9, 0.999), IntUniform(2, 5)],
    ids=lambda d: type(d).__name__,
)
def test_samples_stay_within_bounds_and_are_plain_python(dist):
    values = _draw(dist, n=5_000)
    assert min(values) >= dist.low
    assert max(values) <= dist.high
    expected_type = int if isinstance(dist, IntUniform) else float
    assert {type(v) for v in values} == {expected_type}


def test_uniform_never_returns_high():
    values = _draw(Uniform(0.0, 1e-300), n=2_000)
    assert max(values) < 1e-300


def test_intuniform_hits_both_ends():
    values = _draw(IntUniform(2, 5), n=2_000)
    assert set(values) == {2, 3, 4, 5}


def test_loguniform_is_log_distributed():
    # Given loguniform(1e-4, 1e-2), whose geometric mean is 1e-3
    values = _draw(LogUniform(1e-4, 1e-2))
    # Then about half the samples lie below 1e-3 (a plain uniform would put ~9 % there)
    below = sum(v < 1e-3 for v in values) / len(values)
    assert abs(below - 0.5) < 0.02


def test_reversed_loguniform_has_equal_mass_per_decade_of_n_minus_x():
    # Given reversed-loguniform(0.9, 0.999): 1 - x spans [0.001, 0.1], two decades
    values = _draw(ReversedLogUniform(0.9, 0.999))
    # Then half the samples have 1 - x in [0.01, 0.1] (x <= 0.99)
    upper_decade = sum(1 - v >= 0.01 for v in values) / len(values)
    assert abs(upper_decade - 0.5) < 0.02


def test_reversed_loguniform_honours_n():
    values = _draw(ReversedLogUniform(0.0, 9.0, n=10.0))
    # n - x spans [1, 10]: half the mass below sqrt(10)
    below = sum(10.0 - v < math.sqrt(10.0) for v in values) / len(values)
    assert abs(below - 0.5) < 0.02


def test_choice_samples_every_choice():
    values = _draw(Choice(("a", "b", None)), n=600)
    assert set(values) == {"a", "b", None}


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


def test_discreteness():
    assert Choice((1, 2)).is_discrete and Value(1).is_discrete
    assert not Uniform(0, 1).is_discrete and not IntUniform(0, 1).is_discrete
