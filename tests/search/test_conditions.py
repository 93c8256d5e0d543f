"""Conditional entries: ``when``, case tables, which entries apply, and the checks of the
dependencies between entries."""

from __future__ import annotations

import pytest

from smptune.errors import ConfigError
from smptune.search.conditions import Cases, check_space, is_active, leaf
from smptune.search.dialects import parse_distribution
from smptune.search.distributions import Choice, IntUniform, Uniform, Value, with_defaults
from smptune.search.sampling import sample_configurations

from conditional_space import CONDITIONAL

# --- conditional entries -----------------------------------------------------------------


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
            {"a": Cases("a", {"x": Value(1)})},
            r"^hyperparameters\.a: depends on itself",
        ),
        (
            {"a": Choice(("x",)), "b": Cases("model_arch", {"x": Value(1)})},
            r"^hyperparameters\.b: depends on 'model_arch', which is not an entry",
        ),
        (
            {
                "a": Choice(("Unet", "FPN")),
                "b": Cases("a", {"Unet": Value(1), "Linknet": Value(2)}),
            },
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


def test_cases_are_resolved_before_optuna():
    with pytest.raises(ConfigError, match="leaf"):
        CONDITIONAL["model_encoder"].to_optuna()


def test_a_case_table_takes_parsed_cases_only():
    # Given a raw entry where a case's distribution belongs / Then Cases refuses it
    with pytest.raises(ConfigError, match=r"^hyperparameters\.lr\.cases\.x: \[1, 2\] is not a"):
        Cases("a", {"x": [1, 2]}, name="lr")
    # while the dialects parse each case before handing it over
    parsed = parse_distribution("lr", {"depends_on": "a", "cases": {"x": [1, 2]}})
    assert parsed == Cases("a", {"x": Choice((1, 2))})
