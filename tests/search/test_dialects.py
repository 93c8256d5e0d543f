"""The config dialects: every form of every dialect, what an entry reads as, and the
error each bad entry gives."""

from __future__ import annotations

import json

import pytest
import yaml

from smptune.errors import ConfigError
from smptune.search.conditions import Cases
from smptune.search.dialects import distribution_from_dict, parse_distribution
from smptune.search.distributions import (
    Choice,
    IntUniform,
    LogUniform,
    QLogUniform,
    QUniform,
    ReversedLogUniform,
    Uniform,
    Value,
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


# --- one file, every dialect, through the real CLI ---------------------------------------

MIXED_SWEEP = """\
trainable: smptune.fakes:QuadraticTrainable
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

    from smptune.config_files import _Loader

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
