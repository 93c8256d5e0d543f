"""Search-space distributions: every dialect, exact sampling, grids, conditions, Optuna
conversions and error messages."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import scipy.stats
import yaml

from smptune.errors import ConfigError
from smptune.search.space import (
    Cases,
    Choice,
    IntUniform,
    LogUniform,
    QLogUniform,
    QUniform,
    ReversedLogUniform,
    Uniform,
    Value,
    check_space,
    distribution_from_dict,
    grid_configurations,
    is_active,
    leaf,
    parse_distribution,
    sample_configurations,
    with_defaults,
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


# --- the other dialects ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        # Determined
        ({"type": "double", "minval": 0.2, "maxval": 0.5}, Uniform(0.2, 0.5)),
        ({"type": "double", "minval": 0, "maxval": 1, "count": 3}, Uniform(0.0, 1.0, count=3)),
        ({"type": "int", "minval": 1, "maxval": 8}, IntUniform(1, 8)),
        ({"type": "int", "minval": 1, "maxval": 8, "count": 3}, IntUniform(1, 8, count=3)),
        ({"type": "log", "minval": -4, "maxval": -2}, LogUniform(1e-4, 1e-2, base=10)),
        ({"type": "log", "minval": -3, "maxval": 1, "base": 2}, LogUniform(0.125, 2.0, base=2)),
        ({"type": "categorical", "vals": ["Unet", "FPN"]}, Choice(("Unet", "FPN"))),
        ({"type": "const", "val": {"a": 1}}, Value({"a": 1})),
        # Optuna-style YAML
        ({"type": "float", "low": 0.0, "high": 0.3}, Uniform(0.0, 0.3)),
        ({"type": "float", "low": 1e-5, "high": 1e-2, "log": True}, LogUniform(1e-5, 1e-2)),
        ({"type": "float", "low": 0, "high": 1, "step": 0.25}, QUniform(0.0, 1.0, 0.25)),
        ({"type": "int", "low": 1, "high": 3}, IntUniform(1, 3)),
        ({"type": "int", "low": 2, "high": 10, "step": 2}, IntUniform(2, 10, step=2)),
        ({"type": "int", "low": 1, "high": 64, "log": True}, IntUniform(1, 64, log=True)),
        ({"type": "categorical", "choices": [256, 512]}, Choice((256, 512))),
        ({"choices": ["attention"]}, Choice(("attention",))),
        # OpenVINO Training Extensions
        ({"param_type": "uniform", "range": [0, 1]}, Uniform(0.0, 1.0)),
        ({"param_type": "quniform", "range": [0.001, 0.01, 0.001]}, QUniform(0.001, 0.01, 0.001)),
        ({"param_type": "loguniform", "range": [1e-4, 1e-1]}, LogUniform(1e-4, 1e-1)),
        ({"param_type": "loguniform", "range": [1e-4, 1e-1, 2]}, LogUniform(1e-4, 0.1, base=2)),
        ({"param_type": "qloguniform", "range": [32, 128, 2]}, QLogUniform(32, 128, 2)),
        (
            {"param_type": "qloguniform", "range": [0.0007, 0.07, 0.0001, 10]},
            QLogUniform(0.0007, 0.07, 0.0001, base=10),
        ),
        ({"param_type": "choice", "range": [8, 16]}, Choice((8, 16))),
        ({"param_type": "quniform", "min": 0, "max": 4, "step": 2}, QUniform(0, 4, 2)),
        ({"param_type": "choice", "choice_list": ["a"]}, Choice(("a",))),
        # darts explicit names of the new kinds
        ({"distribution": "quniform", "low": 0, "high": 1, "q": 0.5}, QUniform(0.0, 1.0, 0.5)),
        ({"distribution": "qloguniform", "low": 1, "high": 8, "q": 1}, QLogUniform(1, 8, 1)),
        (
            {"distribution": "intuniform", "low": 1, "high": 9, "step": 4},
            IntUniform(1, 9, step=4),
        ),
        (
            {"distribution": "intuniform", "low": 1, "high": 9, "log": True},
            IntUniform(1, 9, log=True),
        ),
    ],
    ids=lambda v: json.dumps(v, default=repr) if isinstance(v, dict) else None,
)
def test_dialect_forms(raw, expected):
    # Given an entry written in another tool's dialect / When parsed / Then the distribution
    parsed = parse_distribution("x", raw)
    assert parsed == expected
    assert type(parsed) is type(expected)


def test_determined_log_bounds_are_exponents_of_base():
    # Given Determined's log: minval/maxval are exponents
    dist = parse_distribution("lr", {"type": "log", "minval": -5, "maxval": -1, "base": 10})
    # Then the value range is [10**-5, 10**-1] and base is only recorded
    assert (dist.low, dist.high, dist.base) == (1e-5, 0.1, 10.0)
    assert dist.to_dict() == {
        "distribution": "loguniform",
        "low": 1e-5,
        "high": 0.1,
        "base": 10.0,
    }


def test_quantized_integers_stay_integers():
    # Given OpenVINO's default batch size range [32, 128, step 2]
    dist = parse_distribution("batch_size", {"param_type": "qloguniform", "range": [32, 128, 2]})
    values = _draw(dist, n=500)
    # Then every value is an even int
    assert {type(v) for v in values} == {int}
    assert all(v % 2 == 0 and 32 <= v <= 128 for v in values)


def test_mixed_dialects_in_one_space():
    # Given one hyperparameters mapping in all four dialects / When read through a config
    from smptune.config import config_from_dict

    config = config_from_dict(
        {
            "hyperparameters": {
                "a": {"type": "log", "minval": -3, "maxval": -1},
                "b": {"type": "int", "low": 1, "high": 4, "step": 1},
                "c": {"param_type": "quniform", "range": [0, 1, 0.5]},
                "d": {"distribution": "choice", "choices": ["x", "y"]},
                "e": [1, 2],
            }
        }
    )
    # Then each entry is the matching distribution
    assert list(config.hyperparameters.values()) == [
        LogUniform(1e-3, 0.1, base=10),
        IntUniform(1, 4, step=1),
        QUniform(0.0, 1.0, 0.5),
        Choice(("x", "y")),
        Choice((1, 2)),
    ]


def test_hp_space_is_an_alias_of_hyperparameters():
    from smptune.config import config_from_dict

    entry = {"lr": {"param_type": "loguniform", "range": [1e-4, 1e-2]}}
    assert config_from_dict({"hp_space": entry}).hyperparameters == {"lr": LogUniform(1e-4, 1e-2)}
    with pytest.raises(ConfigError, match=r"^hp_space: give hyperparameters or hp_space"):
        config_from_dict({"hp_space": entry, "hyperparameters": entry})


@pytest.mark.parametrize(
    ("raw", "fragments"),
    [
        # mixing two dialects in one entry
        ({"type": "int", "minval": 1, "high": 5}, ["mixes two forms", "'minval' (Determined)"]),
        (
            {"distribution": "uniform", "type": "float", "low": 0, "high": 1},
            ["mixes two forms", "'distribution' (darts)", "'type'"],
        ),
        (
            {"param_type": "uniform", "range": [0, 1], "type": "double"},
            ["mixes two forms", "'param_type' (OpenVINO)"],
        ),
        (
            {"type": "float", "low": 0, "high": 1, "minval": 0},
            ["mixes two forms", "'minval' (Determined) and 'low' (Optuna)"],
        ),
        (
            {"param_type": "uniform", "range": [0, 1], "low": 0},
            ["unexpected key(s) 'low'", "key of the darts / Optuna form"],
        ),
        # Determined
        ({"type": "double", "minval": 0.5, "maxval": 0.1}, ["minval (0.5) must be < maxval (0.1)"]),
        ({"type": "double", "minval": 0.1}, ["Determined double needs 'maxval'"]),
        ({"type": "int", "minval": 1.5, "maxval": 4}, ["minval (1.5) must be an integer"]),
        ({"type": "log", "minval": -4, "maxval": -2, "base": 1}, ["base (1) must be > 1"]),
        ({"type": "log", "minval": 0, "maxval": 400}, ["too large"]),
        ({"type": "double", "minval": 0, "maxval": 1, "count": 1}, ["count (1)", ">= 2"]),
        ({"type": "categorical", "vals": []}, ["vals ([]) must be a non-empty list"]),
        ({"type": "bool", "vals": [1]}, ["unknown Determined type 'bool'"]),
        # Optuna
        ({"type": "float", "low": 1, "high": 0}, ["low (1) must be < high (0)"]),
        (
            {"type": "float", "low": 1e-3, "high": 1, "log": True, "step": 0.1},
            ["step (0.1) cannot be combined with log"],
        ),
        ({"type": "float", "low": 0, "high": 1, "log": "yes"}, ["log ('yes') must be true"]),
        ({"type": "float", "low": 0, "high": 1, "step": 2}, ["step (2) must be > 0 and <="]),
        (
            {"type": "int", "low": 1, "high": 9, "step": 2, "log": True},
            ["step (2) cannot be combined with log"],
        ),
        ({"type": "int", "low": 0, "high": 9, "log": True}, ["needs low >= 1, got 0"]),
        ({"type": "categorical"}, ["Optuna categorical needs 'choices'"]),
        ({"type": "string", "low": 0, "high": 1}, ["unknown Optuna type 'string'"]),
        # OpenVINO
        ({"param_type": "gauss", "range": [0, 1]}, ["unknown OpenVINO param_type 'gauss'"]),
        ({"param_type": "quniform", "range": [0, 1]}, ["range ([0, 1]) must be [min, max, step]"]),
        ({"param_type": "uniform", "range": 3}, ["range (3) must be a non-empty list"]),
        ({"param_type": "quniform", "range": [0, 1, 2]}, ["q (2) must be <= high - low"]),
        ({"param_type": "quniform", "range": [0, 1, 0]}, ["q (0) must be > 0"]),
        ({"param_type": "qloguniform", "range": [0, 8, 1]}, ["needs low > 0"]),
        ({"param_type": "loguniform", "range": [1, 8, 0.5]}, ["base (0.5) must be > 1"]),
        ({"range": [0, 1]}, ["needs 'param_type'"]),
        ({"param_type": "choice", "range": []}, ["range ([]) must be a non-empty list"]),
        # darts explicit forms of the new kinds
        ({"distribution": "quniform", "low": 0, "high": 1}, ["quniform needs 'q'"]),
        ({"distribution": "quniform", "low": 0, "high": 1, "q": 1e-13}, ["more than"]),
        ({"distribution": "intuniform", "low": 1, "high": 9, "step": 0}, ["step (0) must be"]),
        (
            {"distribution": "intuniform", "low": 1, "high": 9, "count": 3, "step": 2},
            ["count cannot be combined"],
        ),
        # conditions and case tables
        ({"distribution": "value", "value": 1, "when": "Unet"}, ["when ('Unet') must be a"]),
        ({"distribution": "value", "value": 1, "when": {"a": []}}, ["when.a must list"]),
        ({"depends_on": "model_arch"}, ["case table needs 'cases'"]),
        ({"depends_on": "model_arch", "cases": []}, ["cases must not be empty"]),
        ({"depends_on": "model_arch", "cases": "Unet"}, ["cases ('Unet') must map"]),
        ({"depends_on": 3, "cases": {"Unet": 1}}, ["depends_on (3) must be the name"]),
        (
            {"depends_on": "a", "cases": {"x": {"depends_on": "b", "cases": {"y": 1}}}},
            ["learning_rate.cases.x: a case cannot be a case table"],
        ),
        (
            {"depends_on": "a", "cases": {"x": {"type": "float", "low": 1, "high": 0}}},
            ["learning_rate.cases.x: low (1) must be < high (0)"],
        ),
        (
            {"depends_on": "a", "cases": [["x", 1], ["x", 2]]},
            ["cases: 'x' is listed twice"],
        ),
    ],
    ids=lambda v: json.dumps(v) if isinstance(v, dict) else None,
)
def test_bad_dialect_entries_raise_one_config_error_naming_the_key(raw, fragments):
    with pytest.raises(ConfigError) as info:
        parse_distribution("learning_rate", raw)
    message = str(info.value)
    assert message.startswith("hyperparameters.learning_rate")
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message


def test_an_empty_when_is_no_condition():
    raw = {"depends_on": "a", "cases": {"x": {"distribution": "value", "value": 1, "when": {}}}}
    assert parse_distribution("lr", raw) == Cases("a", {"x": Value(1)})
    assert parse_distribution("lr", {"type": "const", "val": 1, "when": None}) == Value(1)


def test_a_case_with_its_own_when_is_refused():
    raw = {
        "depends_on": "a",
        "cases": {"x": {"distribution": "value", "value": 1, "when": {"b": 1}}},
    }
    with pytest.raises(ConfigError, match=r"cases\.x: a case cannot have its own when"):
        parse_distribution("learning_rate", raw)


# --- round-trips of every kind -----------------------------------------------------------

EVERY_KIND = [
    Uniform(-1.0, 2.5),
    Uniform(0.0, 1.0, count=5),
    LogUniform(1e-5, 1e-1),
    LogUniform(1e-4, 1e-2, base=10, count=3),
    LogUniform(0.125, 2.0, base=2),
    ReversedLogUniform(0.5, 0.99, 1.0),
    ReversedLogUniform(0.0, 9.0, 10.0),
    IntUniform(-3, 7),
    IntUniform(2, 11, step=3),
    IntUniform(1, 100, log=True),
    IntUniform(1, 10, count=4),
    QUniform(0.1, 1.0, 0.1),
    QUniform(0, 12, 4),
    QLogUniform(0.0007, 0.07, 0.0001),
    QLogUniform(32, 128, 2, base=2),
    Choice(("Unet", None, 3, 0.5, True)),
    Choice(([1, 2], {"k": "v"})),
    Value({"nested": [1, "two"]}),
    Choice((None, "scse"), when={"model_arch": ["Unet", "UnetPlusPlus"], "augment": True}),
    Cases("model_arch", {"Unet": ["resnet18", "resnet34"], "FPN": Uniform(0.0, 1.0)}),
    Cases("batch_size", ((8, Value(1)), (16, IntUniform(1, 3))), when={"augment": [True]}),
]


@pytest.mark.parametrize("dist", EVERY_KIND, ids=lambda d: d.kind)
def test_every_kind_round_trips_through_json(dist):
    # Given a distribution / When written as JSON and read back / Then it is equal
    data = json.loads(json.dumps(dist.to_dict()))
    assert data["distribution"] == dist.kind
    assert distribution_from_dict("x", data) == dist
    assert parse_distribution("x", data) == dist
    assert ("when" in data) == bool(dist.when)


def test_when_and_cases_are_written_canonically():
    dist = parse_distribution(
        "model_encoder",
        {"depends_on": "model-arch", "cases": {"Unet": ["a"], 8: 1}, "when": {"augment": True}},
    )
    assert dist.to_dict() == {
        "distribution": "cases",
        "depends_on": "model_arch",
        "cases": [
            ["Unet", {"distribution": "choice", "choices": ["a"]}],
            [8, {"distribution": "value", "value": 1}],
        ],
        "when": {"augment": [True]},
    }


# --- exact distributions: KS and frequency tests -----------------------------------------

N_KS = 4000


def _ks_rejects(values, cdf) -> bool:
    """One-sample Kolmogorov-Smirnov at alpha = 0.05 against the analytic ``cdf``."""
    statistic = scipy.stats.kstest(values, lambda x: np.vectorize(cdf)(x)).statistic
    return statistic > 1.36 / math.sqrt(len(values))


def _log_cdf(low, high):
    return lambda x: min(max(math.log(x / low) / math.log(high / low), 0.0), 1.0)


def _uniform_sampler(low, high):
    return Uniform(low, high)


@pytest.mark.parametrize(
    ("dist", "cdf", "wrong"),
    [
        (Uniform(-1.0, 3.0), lambda x: (x + 1) / 4, LogUniform(0.5, 3.0)),
        (LogUniform(1e-5, 1e-1), _log_cdf(1e-5, 1e-1), Uniform(1e-5, 1e-1)),
        (
            parse_distribution("x", {"type": "log", "minval": -6, "maxval": -2, "base": 10}),
            _log_cdf(1e-6, 1e-2),
            Uniform(1e-6, 1e-2),
        ),
        (
            parse_distribution("x", {"param_type": "loguniform", "range": [0.25, 64, 2]}),
            _log_cdf(0.25, 64),
            Uniform(0.25, 64),
        ),
        (
            ReversedLogUniform(0.9, 0.999),
            lambda x: 1 - math.log((1 - x) / 0.001) / math.log(0.1 / 0.001),
            LogUniform(0.9, 0.999),
        ),
        (
            ReversedLogUniform(0.0, 9.0, n=10.0),
            lambda x: 1 - math.log(10 - x) / math.log(10),
            Uniform(0.0, 9.0),
        ),
    ],
    ids=["uniform", "loguniform", "log-base-10", "log-base-2", "reversed", "reversed-n"],
)
def test_continuous_samples_follow_the_analytic_cdf(dist, cdf, wrong):
    # Given n = 4000 samples at a fixed seed / Then the KS test accepts the analytic CDF
    assert not _ks_rejects(_draw(dist, n=N_KS), cdf)
    # and rejects the samples of a plausible wrong sampler (the test can fail)
    assert _ks_rejects(_draw(wrong, n=N_KS), cdf)


def _frequencies_fit(values, probabilities: dict) -> bool:
    """Chi-square goodness of fit at alpha = 0.01; every value must be a listed outcome."""
    assert set(values) <= set(probabilities), set(values) - set(probabilities)
    outcomes = list(probabilities)
    observed = [sum(v == o for v in values) for o in outcomes]
    expected = [probabilities[o] * len(values) for o in outcomes]
    return scipy.stats.chisquare(observed, expected).pvalue > 0.01


def _draw_counted(dist, n=20_000):
    values = _draw(dist, n=n)
    return values, {v: values.count(v) for v in set(values)}


def test_intuniform_is_uniform_on_both_ends_inclusive():
    values = _draw(IntUniform(2, 7), n=20_000)
    assert min(values) == 2 and max(values) == 7
    assert _frequencies_fit(values, {k: 1 / 6 for k in range(2, 8)})
    # an exclusive-high sampler never hits 7: the check fails on it
    rng = np.random.default_rng(1)
    exclusive = [int(rng.integers(2, 7)) for _ in range(20_000)]
    assert not _frequencies_fit(exclusive, {k: 1 / 6 for k in range(2, 8)})


def test_intuniform_with_step_is_uniform_on_its_lattice():
    values = _draw(IntUniform(2, 11, step=3), n=20_000)
    assert _frequencies_fit(values, {2: 0.25, 5: 0.25, 8: 0.25, 11: 0.25})


def _int_log_probabilities(low, high):
    total = math.log((high + 0.5) / (low - 0.5))
    return {k: math.log((k + 0.5) / (k - 0.5)) / total for k in range(low, high + 1)}


def test_int_log_matches_its_analytic_probabilities():
    # Given Optuna's int with log: true over [1, 32]
    dist = parse_distribution("x", {"type": "int", "low": 1, "high": 32, "log": True})
    probabilities = _int_log_probabilities(1, 32)
    values = _draw(dist)
    # Then both ends are hit and the frequencies fit log((k + .5) / (k - .5)) / log(32.5 / .5)
    assert min(values) == 1 and max(values) == 32
    assert _frequencies_fit(values, probabilities)
    # and a plain integer uniform does not fit
    assert not _frequencies_fit(_draw(IntUniform(1, 32)), probabilities)


def test_quniform_is_uniform_on_its_lattice_without_float_noise():
    # Given quniform over [0.1, 1.0] step 0.1 (ten lattice points)
    dist = QUniform(0.1, 1.0, 0.1)
    lattice = [round(0.1 * k, 1) for k in range(1, 11)]
    values = _draw(dist)
    # Then every sample is exactly a lattice point, as written in decimal (0.3, not 0.30..04)
    assert set(values) == set(lattice)
    assert dist.grid_values() == lattice
    assert _frequencies_fit(values, dict.fromkeys(lattice, 0.1))
    # hyperopt's round(uniform(low, high) / q) * q gives the ends half the weight: rejected
    rng = np.random.default_rng(1)
    hyperopt = [round(round(rng.uniform(0.1, 1.0) / 0.1) * 0.1, 1) for _ in range(20_000)]
    assert not _frequencies_fit(hyperopt, dict.fromkeys(lattice, 0.1))


def test_quniform_lattice_starts_at_low_and_stops_at_or_below_high():
    assert QUniform(1, 10, 4).grid_values() == [1, 5, 9]
    assert QUniform(0.05, 0.3, 0.1).grid_values() == [0.05, 0.15, 0.25]
    assert set(_draw(QUniform(1, 10, 4), n=300)) == {1, 5, 9}


def _qlog_probabilities(low, high, q, lattice):
    cdf = _log_cdf(low, high)
    out = {}
    for i, x in enumerate(lattice):
        lower = low if i == 0 else x - q / 2
        upper = high if i == len(lattice) - 1 else x + q / 2
        out[x] = cdf(upper) - cdf(lower)
    return out


def test_qloguniform_matches_the_log_mass_of_each_lattice_point():
    # Given qloguniform over [0.1, 3.2] step 0.1 (OpenVINO's range form)
    dist = parse_distribution("x", {"param_type": "qloguniform", "range": [0.1, 3.2, 0.1]})
    lattice = dist.grid_values()
    assert lattice == [round(0.1 * k, 1) for k in range(1, 33)]
    probabilities = _qlog_probabilities(0.1, 3.2, 0.1, lattice)
    assert math.isclose(sum(probabilities.values()), 1.0)
    values = _draw(dist)
    # Then every sample is on the lattice and the frequencies fit the analytic masses
    assert all(dist.contains(v) for v in values)
    assert _frequencies_fit(values, probabilities)
    # and quniform samples on the same lattice do not
    assert not _frequencies_fit(_draw(QUniform(0.1, 3.2, 0.1)), probabilities)


def test_quantized_openvino_learning_rate_has_no_float_noise():
    dist = parse_distribution("lr", {"param_type": "qloguniform", "range": [0.0007, 0.07, 0.0001]})
    values = _draw(dist, n=2_000)
    assert all(round(v, 4) == v and len(repr(v)) <= 6 for v in values)
    assert dist.grid_values()[:4] == [0.0007, 0.0008, 0.0009, 0.001]


# --- grids of quantized and counted entries ----------------------------------------------


@pytest.mark.parametrize(
    ("dist", "values"),
    [
        (QUniform(0, 8, 2), [0, 2, 4, 6, 8]),
        (QLogUniform(1, 4, 1), [1, 2, 3, 4]),
        (IntUniform(1, 9, step=4), [1, 5, 9]),
        (Uniform(0.2, 0.5, count=4), [0.2, 0.3, 0.4, 0.5]),
        (LogUniform(1e-4, 1e-1, count=4), [1e-4, 1e-3, 1e-2, 1e-1]),
        (IntUniform(1, 4, count=3), [1, 3, 4]),
        (IntUniform(1, 3, count=10), [1, 2, 3]),
    ],
    ids=["quniform", "qloguniform", "int-step", "double-count", "log-count", "int-count", "dedup"],
)
def test_discrete_ranges_enumerate_for_a_grid(dist, values):
    assert dist.is_discrete
    assert dist.grid_values() == values


def test_a_grid_refuses_an_entry_too_large_to_enumerate():
    with pytest.raises(ConfigError, match="grid values is more than"):
        QUniform(0, 10**6, 1, name="x").grid_values()


# --- conditional entries -----------------------------------------------------------------

CONDITIONAL = {
    "model_arch": Choice(("Unet", "FPN", "DeepLabV3")),
    "decoder_attention_type": Choice((None, "scse"), when={"model_arch": "Unet"}),
    "model_encoder": Cases(
        "model_arch", {"Unet": ["resnet18", "resnet34"], "FPN": Value("mobilenet_v2")}
    ),
    "encoder_depth": Choice(
        (4, 5), when={"model_arch": ["Unet", "FPN"], "model_encoder": "resnet34"}
    ),
}


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
        "lr": Cases("model_arch", {"Unet": [0.1], "FPN": Uniform(0.0, 1.0)}, name="lr"),
    }
    with pytest.raises(ConfigError, match=r"^hyperparameters\.lr\.cases\.FPN: grid search"):
        grid_configurations(space)


def test_is_active_and_leaf():
    encoder = CONDITIONAL["model_encoder"]
    attention = CONDITIONAL["decoder_attention_type"]
    assert is_active(attention, {"model_arch": "Unet"})
    assert not is_active(attention, {"model_arch": "FPN"})
    assert not is_active(attention, {})
    assert leaf(encoder, {"model_arch": "Unet"}) == Choice(("resnet18", "resnet34"))
    assert leaf(encoder, {"model_arch": "FPN"}) == Value("mobilenet_v2")
    assert leaf(attention, {}) is attention
    assert not is_active(encoder, {"model_arch": "DeepLabV3"})
    with pytest.raises(ConfigError, match="inactive"):
        leaf(encoder, {"model_arch": "DeepLabV3"})
    # several keys in when must all hold; a list means any of its values
    depth = CONDITIONAL["encoder_depth"]
    assert is_active(depth, {"model_arch": "FPN", "model_encoder": "resnet34"})
    assert not is_active(depth, {"model_arch": "DeepLabV3", "model_encoder": "resnet34"})
    assert not is_active(depth, {"model_arch": "Unet", "model_encoder": "resnet18"})


def test_conditions_compare_json_values():
    # True is not 1, 8 is 8.0, and a string key from TOML or JSON spells the parent's value
    space = check_space(
        {
            "augment": Choice((True, False)),
            "batch_size": Choice((8, 16)),
            "a": Value(1, when={"augment": True}),
            "b": Cases("batch_size", {"8": Value("small"), "16.0": Value("big")}),
            "c": Value(2, when={"batch_size": 8.0}),
        }
    )
    assert space["b"].cases[0][0] == 8 and space["b"].cases[1][0] == 16.0
    assert is_active(space["a"], {"augment": True})
    assert not is_active(space["a"], {"augment": 1})
    assert leaf(space["b"], {"batch_size": 16}) == Value("big")
    assert is_active(space["c"], {"batch_size": 8})
    with pytest.raises(ConfigError, match=r"when\.augment 1 is not a value 'augment' can take"):
        check_space({"augment": Choice((True, False)), "a": Value(1, when={"augment": 1})})


@pytest.mark.parametrize(
    ("space", "message"),
    [
        (
            {"b": Value(1, when={"a": "x"}), "a": Choice(("x", "y"))},
            r"^hyperparameters\.b: depends on 'a', which must come before it",
        ),
        (
            {"a": Value(1, when={"b": 1}), "b": Value(2, when={"a": 1})},
            r"^hyperparameters\.a: depends on 'b', which must come before it",
        ),
        (
            {"a": Cases("a", {"x": 1})},
            r"^hyperparameters\.a: depends on itself",
        ),
        (
            {"a": Choice(("x",)), "b": Cases("model_arch", {"x": 1})},
            r"^hyperparameters\.b: depends on 'model_arch', which is not an entry",
        ),
        (
            {"a": Choice(("Unet", "FPN")), "b": Cases("a", {"Unet": 1, "Linknet": 2})},
            r"^hyperparameters\.b: case 'Linknet' is not a value 'a' can take",
        ),
        (
            {"a": Choice(("Unet", "FPN")), "b": Value(1, when={"a": ["FPN", "PAN"]})},
            r"^hyperparameters\.b: when\.a 'PAN' is not a value 'a' can take",
        ),
        (
            {"lr": Uniform(0.0, 1.0), "b": Value(1, when={"lr": 0.5})},
            r"^hyperparameters\.b: depends on 'lr', a continuous uniform entry",
        ),
        (
            {"n": IntUniform(1, 4), "b": Value(1, when={"n": 7})},
            r"^hyperparameters\.b: when\.n 7 is not a value 'n' can take",
        ),
    ],
    ids=["later", "cycle", "self", "unknown", "bad-case", "bad-when", "continuous", "int-range"],
)
def test_bad_dependencies_name_the_key(space, message):
    with pytest.raises(ConfigError, match=message):
        check_space(space)
    with pytest.raises(ConfigError, match=message):
        sample_configurations(space, 1, seed=0)


def test_config_file_checks_dependencies():
    from smptune.config import config_from_dict

    with pytest.raises(ConfigError, match=r"hyperparameters\.encoder: case 'PAN' is not a value"):
        config_from_dict(
            {
                "hyperparameters": {
                    "model_arch": ["Unet", "FPN"],
                    "encoder": {"depends_on": "model_arch", "cases": {"PAN": ["a"]}},
                }
            }
        )


def test_with_defaults_leaves_inactive_entries_absent():
    defaults = {"model_arch": "Unet", "model_encoder": "r18", "lr": 0.1}
    space = {"model_arch": None, "model_encoder": None}
    assert with_defaults(space, defaults, {"model_arch": "FPN"}) == {
        "model_arch": "FPN",
        "lr": 0.1,
    }
    assert list(with_defaults(space, defaults, {"model_encoder": "x", "model_arch": "A"})) == [
        "model_arch",
        "model_encoder",
        "lr",
    ]


# --- Optuna conversions ------------------------------------------------------------------

OPTUNA_KINDS = [d for d in EVERY_KIND if not isinstance(d, Cases)] + [
    Choice((True, 1, 1.0)),
    IntUniform(0, 9, step=4),
    QUniform(0.05, 0.3, 0.1),
]


@pytest.mark.parametrize("dist", OPTUNA_KINDS, ids=lambda d: d.kind)
def test_optuna_round_trip(dist):
    optuna_dist = dist.to_optuna()
    rng = np.random.default_rng(5)
    for _ in range(300):
        value = dist.sample(rng)
        internal = dist.to_optuna_value(value)
        # Given a sampled value / Then Optuna holds its internal form and maps back exactly
        back = dist.from_optuna(internal)
        assert back == value and type(back) is type(value)
        assert optuna_dist._contains(optuna_dist.to_internal_repr(internal))


@pytest.mark.parametrize("dist", OPTUNA_KINDS, ids=lambda d: d.kind)
def test_values_optuna_suggests_are_values_the_entry_can_take(dist):
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(100):
        trial = study.ask({"x": dist.to_optuna()})
        value = dist.from_optuna(trial.params["x"])
        assert dist.contains(value), value
        assert json.loads(json.dumps(value)) == value


def test_unhashable_or_ambiguous_choices_are_indexed_for_optuna():
    assert Choice(([1, 2], {"k": 1})).to_optuna().choices == (0, 1)
    assert Choice((True, 1)).to_optuna().choices == (0, 1)
    assert Choice(("a", None, 2.5)).to_optuna().choices == ("a", None, 2.5)
    assert Choice(([1, 2], {"k": 1})).from_optuna(1) == {"k": 1}
    assert Choice((True, 1)).to_optuna_value(1) == 1
    assert Choice((True, 1)).to_optuna_value(True) == 0


def test_reversed_and_quantized_log_map_to_log_floats():
    reversed_dist = ReversedLogUniform(0.9, 0.999).to_optuna()
    assert reversed_dist.log and math.isclose(reversed_dist.low, 0.001)
    assert math.isclose(reversed_dist.high, 0.1)
    assert ReversedLogUniform(0.9, 0.999).from_optuna(0.01) == 0.99
    qlog = QLogUniform(0.0007, 0.07, 0.0001)
    assert qlog.to_optuna().log and qlog.to_optuna().step is None
    assert qlog.from_optuna(0.0123456) == 0.0123


def test_cases_are_resolved_before_optuna():
    with pytest.raises(ConfigError, match="leaf"):
        CONDITIONAL["model_encoder"].to_optuna()


# --- one file, every dialect, through the real CLI ---------------------------------------

MIXED_SWEEP = """\
trainable: smptune.testing:QuadraticTrainable
metric: score
n_trials: 20
seed: 4
cv: {n_folds: 2}
hyperparameters:
  x: {type: double, minval: -2, maxval: 3}                       # Determined
  y: {param_type: quniform, range: [-3, 1, 0.25]}                # OpenVINO
  fold_noise: {type: float, low: 0.001, high: 0.1, log: true}    # Optuna
  sleep: {distribution: choice, choices: [0, 0.001]}             # darts
  fail:                                                          # case table
    depends_on: sleep
    cases: {0: [false]}
  crash: {distribution: value, value: false, when: {sleep: 0.001}}
"""


def test_a_file_mixing_every_dialect_dry_runs_through_the_cli(tmp_path):
    from conftest import run_cli

    # Given a sweep file with entries in all four dialects and two conditional entries
    path = tmp_path / "mixed.yaml"
    path.write_text(MIXED_SWEEP)
    # When the producer dry-runs it
    result = run_cli("producer", "submit", path, "--dry-run")
    # Then it prints 20 configurations
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line["trial"] for line in lines] == list(range(20))
    lattice = {-3 + 0.25 * k for k in range(17)}
    for params in (line["params"] for line in lines):
        assert -2 <= params["x"] < 3
        assert params["y"] in lattice
        assert 0.001 <= params["fold_noise"] <= 0.1
        assert params["noise"] == 0.0  # not in the space: the trainable's default
        # the conditional entries: exactly the active one, never filled with its default
        if params["sleep"] == 0:
            assert params["fail"] is False and "crash" not in params
        else:
            assert params["sleep"] == 0.001
            assert params["crash"] is False and "fail" not in params
    assert {line["params"]["sleep"] for line in lines} == {0, 0.001}


def test_a_bad_entry_in_a_file_is_one_line_naming_the_key(tmp_path):
    from conftest import run_cli

    path = tmp_path / "bad.yaml"
    path.write_text(MIXED_SWEEP.replace("cases: {0: [false]}", "cases: {0.5: [false]}"))
    result = run_cli("producer", "submit", path, "--dry-run")
    assert result.returncode == 2
    assert result.stdout == ""
    assert "hyperparameters.fail: case 0.5 is not a value 'sleep' can take" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_every_example_in_the_search_space_docs_parses():
    import re
    import textwrap
    from pathlib import Path

    import yaml

    from smptune.config import _Loader

    text = (Path(__file__).resolve().parents[2] / "docs" / "config.md").read_text()
    section = text[text.index("## Search space") : text.index("## Search\n")]
    examples = [e for e in re.findall(r"`(\{[^`]*\})`", section) if e != "{low, high}"]
    assert len(examples) >= 25
    for example in examples:
        raw = yaml.load(example, Loader=_Loader)
        if "when" not in raw:  # conditional examples need their parent: checked below
            parse_distribution("x", raw)
    blocks = re.findall(r"```yaml\n(.*?)```", section, re.S)
    space = {}
    for block in blocks:
        space.update(yaml.load(textwrap.dedent(block), Loader=_Loader))
    from smptune.config import config_from_dict

    config = config_from_dict(
        {
            "hyperparameters": {
                "augment": [True, False],
                "model_arch": space.pop("model_arch"),
                **space,
            }
        }
    )
    assert {"model_encoder", "decoder_attention_type", "encoder_depth"} <= set(
        config.hyperparameters
    )


def test_a_conditional_config_round_trips_through_yaml_and_toml(tmp_path):
    from smptune.config import config_from_dict, config_to_yaml, load_config

    # Given a conditional space in YAML, and the same in TOML (string case keys, no null)
    (tmp_path / "s.yaml").write_text(
        "hyperparameters:\n"
        "  batch_size: [8, 16]\n"
        "  lr:\n"
        "    depends_on: batch_size\n"
        "    cases: {8: {type: log, minval: -4, maxval: -2}, 16: 0.01}\n"
        "  augment: {type: categorical, vals: [true], when: {batch_size: 16}}\n"
    )
    (tmp_path / "s.toml").write_text(
        "[hyperparameters]\n"
        "batch_size = [8, 16]\n"
        'augment = { type = "categorical", vals = [true], when = { batch_size = 16 } }\n'
        "[hyperparameters.lr]\n"
        'depends_on = "batch_size"\n'
        'cases = { "8" = { type = "log", minval = -4, maxval = -2 }, "16" = 0.01 }\n'
    )
    from_yaml, from_toml = load_config(tmp_path / "s.yaml"), load_config(tmp_path / "s.toml")
    # Then both read the same, and the resolved config reads back equal
    assert from_yaml.hyperparameters == from_toml.hyperparameters
    assert from_yaml.hyperparameters["lr"].cases[0][0] == 8
    again = config_from_dict(yaml.safe_load(config_to_yaml(from_yaml.to_dict())))
    assert again == from_yaml
    assert again.configurations() == from_yaml.configurations()
