"""The sweep config: files, defaults, normalisation, round-trip and error messages."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from smptune.config import (
    DEFAULT_TRIAL_TIMEOUT_S,
    SweepConfig,
    config_from_dict,
    config_to_yaml,
    load_config,
    parse_duration,
)
from smptune.errors import ConfigError
from smptune.search.distributions import (
    Choice,
    IntUniform,
    LogUniform,
    ReversedLogUniform,
    Uniform,
    Value,
)
from smptune.trainable import SEGMENTATION_TRAINABLE, SweepSettings

YAML_SWEEP = """\
name: lr-sweep
n-trials: 4
seed: 7
data:
  root: data/tiles
  test-fraction: 0.25
cv:
  n-folds: 3
training:
  max-epochs: 2
hyperparameters:
  learning-rate: {distribution: loguniform, low: 1e-4, high: 1e-2}
  gamma: {distribution: reversed-loguniform, low: 0.9, high: 0.999}
  batch_size: {low: 4, high: 16}
  model_arch: [Unet, FPN]
  model_encoder_weights: null
  augment: true
"""

# Same sweep in TOML (TOML has no null: model_encoder_weights uses the explicit form below).
TOML_SWEEP = """\
name = "lr-sweep"
n-trials = 4
seed = 7
[data]
root = "data/tiles"
test-fraction = 0.25
[cv]
n-folds = 3
[training]
max-epochs = 2
[hyperparameters]
learning-rate = { distribution = "loguniform", low = 1e-4, high = 1e-2 }
gamma = { distribution = "reversed-loguniform", low = 0.9, high = 0.999 }
batch_size = { low = 4, high = 16 }
model_arch = ["Unet", "FPN"]
augment = true
"""


def _minimal(**extra):
    return {"hyperparameters": {"learning_rate": 0.001}, **extra}


# --- files -------------------------------------------------------------------------------


def test_yaml_and_toml_files_give_equal_configs(tmp_path):
    # Given the same sweep written as YAML and as TOML
    (tmp_path / "sweep.yaml").write_text(YAML_SWEEP.replace("  model_encoder_weights: null\n", ""))
    (tmp_path / "sweep.toml").write_text(TOML_SWEEP)
    # When both are loaded
    from_yaml = load_config(tmp_path / "sweep.yaml")
    from_toml = load_config(tmp_path / "sweep.toml")
    # Then they are equal, with hyphenated keys read as underscores
    assert from_yaml == from_toml
    assert from_yaml.hyperparameters["learning_rate"] == LogUniform(1e-4, 1e-2)
    assert from_yaml.cv["n_folds"] == 3
    assert from_yaml.data["test_fraction"] == 0.25
    assert from_yaml.training["max_epochs"] == 2


def test_yaml_file_reads_every_entry(tmp_path):
    path = tmp_path / "sweep.yml"
    path.write_text(YAML_SWEEP)
    config = load_config(path)
    assert config.name == "lr-sweep"
    assert config.n_trials == 4 and config.seed == 7
    assert config.hyperparameters == {
        "learning_rate": LogUniform(1e-4, 1e-2),
        "gamma": ReversedLogUniform(0.9, 0.999),
        "batch_size": IntUniform(4, 16),
        "model_arch": Choice(("Unet", "FPN")),
        "model_encoder_weights": Value(None),
        "augment": Value(True),
    }


def test_yaml_reads_exponent_without_dot_as_float(tmp_path):
    # Given `1e-4` (PyYAML's YAML 1.1 would read a string) / Then the fixed value is a float
    path = tmp_path / "sweep.yaml"
    path.write_text("hyperparameters:\n  learning_rate: 1e-4\n  model_encoder: '1e3'\n")
    config = load_config(path)
    assert config.hyperparameters["learning_rate"] == Value(1e-4)
    assert isinstance(config.hyperparameters["learning_rate"].value, float)
    assert config.hyperparameters["model_encoder"] == Value("1e3")  # quoted stays a string


def test_relative_data_root_resolves_against_the_config_folder(tmp_path):
    (tmp_path / "configs").mkdir()
    path = tmp_path / "configs" / "sweep.yaml"
    path.write_text("data: {root: ../tiles}\nhyperparameters: {augment: true}\n")
    config = load_config(path)
    assert config.data["root"] == str((tmp_path / "tiles").resolve())


def test_name_defaults_to_the_file_stem(tmp_path):
    path = tmp_path / "my-sweep.yaml"
    path.write_text("hyperparameters: {augment: true}\n")
    assert load_config(path).name == "my-sweep"
    assert config_from_dict(_minimal()).name == "sweep"


@pytest.mark.parametrize(
    ("filename", "text", "fragments"),
    [
        ("sweep.yaml", "hyperparameters:\n  lr: [1, 2\n", ["sweep.yaml:", "invalid YAML"]),
        ("sweep.toml", "[hyperparameters]\nlr = \n", ["sweep.toml:2", "invalid TOML"]),
        ("sweep.yaml", "- a\n- b\n", ["top level must be a mapping", "list"]),
        ("sweep.yaml", "", ["empty"]),
        (
            "sweep.yaml",
            "hyperparameters:\n  lr: 1\n  lr: 2\n",
            ["sweep.yaml:3", "duplicate key 'lr'"],
        ),
        ("sweep.json", "{}", ["unknown config format '.json'"]),
    ],
    ids=["yaml-syntax", "toml-syntax", "not-mapping", "empty", "duplicate", "suffix"],
)
def test_bad_files_name_the_file(tmp_path, filename, text, fragments):
    path = tmp_path / filename
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert filename in message
    for fragment in fragments:
        assert fragment in message


def test_yaml_syntax_error_names_the_line(tmp_path):
    path = tmp_path / "sweep.yaml"
    path.write_text("seed: 1\nhyperparameters:\n  lr: {low: 1, high: 2\nname: x\n")
    with pytest.raises(ConfigError, match=r"sweep\.yaml:\d+: invalid YAML"):
        load_config(path)


def test_missing_file_names_the_path(tmp_path):
    path = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError, match=r"nope\.yaml: no such config file"):
        load_config(path)


# --- defaults and normalisation ----------------------------------------------------------


def test_an_explicit_test_split_takes_no_test_fraction():
    config = config_from_dict(_minimal(data={"synthetic": {}, "test_groups": ["a"]}))
    assert config.data == {"synthetic": {}, "test_groups": ["a"]}


def test_defaults():
    config = config_from_dict(_minimal())
    assert config.trainable == SEGMENTATION_TRAINABLE
    assert (config.n_trials, config.sampler, config.seed) == (10, "random", 0)
    assert (config.metric, config.mode, config.queue) == ("iou", "max", "smptune")
    assert config.trial_timeout == DEFAULT_TRIAL_TIMEOUT_S == 6 * 3600
    assert config.data == {"synthetic": {}, "test_fraction": 0.2}
    assert config.cv == {"n_folds": 5, "n_randoms": 1}
    assert (config.pruner, config.time_budget, config.is_adaptive) == ("none", None, False)
    assert config.training == {
        "max_epochs": 10,
        "early_stopping_patience": 3,
        "precision": "auto",
        "checkpoint_every": 1,
        "keep_checkpoints": False,
    }
    assert config.retrain_and_test is True


def test_hyphens_become_underscores_everywhere():
    config = config_from_dict(
        {
            "n-trials": 2,
            "trial-timeout": "1h",
            "retrain-and-test": False,
            "cv": {"n-folds": 4, "fold-method": "kfold"},
            "data": {"synthetic": {"n-images": 8}},
            "hyperparameters": {"learning-rate": 0.01, "focal-loss-alpha": [None, 0.25]},
        }
    )
    assert config.n_trials == 2 and config.trial_timeout == 3600
    assert config.retrain_and_test is False
    assert config.cv == {"n_folds": 4, "fold_method": "kfold", "n_randoms": 1}
    assert config.data["synthetic"] == {"n_images": 8}
    assert list(config.hyperparameters) == ["learning_rate", "focal_loss_alpha"]


def test_hyphen_and_underscore_spelling_of_one_key_collide():
    with pytest.raises(ConfigError, match=r"hyperparameters: 'learning-rate' and 'learning_rate'"):
        config_from_dict({"hyperparameters": {"learning-rate": 0.1, "learning_rate": 0.2}})


def test_other_section_keys_are_kept():
    config = config_from_dict(
        _minimal(
            data={"root": "/abs/tiles", "bands": ["red", "nir"]},
            training={"gradient_clip": 1.0, "precision": "bf16"},
        )
    )
    assert config.data == {"root": "/abs/tiles", "bands": ["red", "nir"], "test_fraction": 0.2}
    assert config.training["gradient_clip"] == 1.0
    assert config.training["precision"] == "bf16-mixed"


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        (90, 90.0),
        (2.5, 2.5),
        ("45s", 45.0),
        ("90m", 5400.0),
        ("2h", 7200.0),
        ("1h30m", 5400.0),
        ("1d", 86400.0),
        ("600", 600.0),
    ],
)
def test_trial_timeout_reads_durations(value, seconds):
    assert parse_duration("trial_timeout", value) == seconds
    assert config_from_dict(_minimal(trial_timeout=value)).trial_timeout == seconds


def test_grid_by_n_trials_or_sampler():
    space = {"model_arch": ["Unet", "FPN"], "batch_size": [4, 8], "augment": True}
    by_n_trials = config_from_dict({"n_trials": "grid", "hyperparameters": space})
    by_sampler = config_from_dict({"sampler": "grid", "hyperparameters": space})
    assert by_n_trials == by_sampler
    assert by_n_trials.sampler == "grid" and by_n_trials.n_trials == "grid"
    assert len(by_n_trials.configurations()) == 4


def test_random_configurations_follow_n_trials_and_seed():
    config = config_from_dict(
        {"n_trials": 5, "seed": 3, "hyperparameters": {"lr": {"low": 0.0, "high": 1.0}}}
    )
    configurations = config.configurations()
    assert len(configurations) == 5
    assert configurations == config.configurations()
    other_seed = config_from_dict({**config.to_dict(), "seed": 4})
    assert other_seed.configurations() != configurations


def test_settings_for_the_trainable():
    config = config_from_dict(_minimal(seed=5, metric="f1", mode="max", cv={"n_folds": 3}))
    settings = config.settings()
    assert settings == SweepSettings(
        seed=5,
        metric="f1",
        mode="max",
        data=config.data,
        cv={"n_folds": 3, "n_randoms": 1},
        training=config.training,
        fold_models=True,  # retrain_and_test with its fold ensemble, the defaults
    )
    settings.cv["n_folds"] = 99
    assert config.cv["n_folds"] == 3  # a copy
    assert config_from_dict(_minimal(ensemble=False)).settings().fold_models is False
    assert config_from_dict(_minimal(retrain_and_test=False)).settings().fold_models is False


# --- round-trip --------------------------------------------------------------------------


def _full_config(tmp_path: Path) -> SweepConfig:
    path = tmp_path / "sweep.yaml"
    path.write_text(YAML_SWEEP + "  focal_loss_gamma: {low: 1.0, high: 3}\n")
    return load_config(path)


def test_to_dict_round_trips(tmp_path):
    config = _full_config(tmp_path)
    data = config.to_dict()
    assert data["hyperparameters"]["focal_loss_gamma"] == {
        "distribution": "uniform",
        "low": 1.0,
        "high": 3.0,
    }
    assert config_from_dict(data) == config
    assert config_from_dict(data).hyperparameters["focal_loss_gamma"] == Uniform(1.0, 3.0)


def test_to_dict_round_trips_through_yaml(tmp_path):
    config = _full_config(tmp_path)
    text = config_to_yaml(config.to_dict())
    assert config_from_dict(yaml.safe_load(text)) == config
    path = tmp_path / "config.yaml"
    path.write_text(text)
    assert load_config(path) == config


def test_round_trip_preserves_grid():
    config = config_from_dict({"sampler": "grid", "hyperparameters": {"a": [1, 2]}})
    assert config_from_dict(yaml.safe_load(config_to_yaml(config.to_dict()))) == config


def test_config_to_yaml_keeps_key_order():
    text = config_to_yaml({"zeta": 1, "alpha": (1, 2)})
    assert text.index("zeta") < text.index("alpha")
    assert yaml.safe_load(text) == {"zeta": 1, "alpha": [1, 2]}


# --- errors ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "key", "fragment"),
    [
        (_minimal(cv={"n_folds": 1}), "cv.n_folds", "must be an integer >= 2, got 1"),
        (_minimal(n_trials=0), "n_trials", "got 0"),
        (_minimal(retrain_epochs="last"), "retrain_epochs", "mean, median, max, got 'last'"),
        (_minimal(ensemble="yes"), "ensemble", "must be true or false, got 'yes'"),
        (
            _minimal(training={"checkpoint_every": -1}),
            "training.checkpoint_every",
            "must be an integer >= 0, got -1",
        ),
        (
            _minimal(training={"keep_checkpoints": "yes"}),
            "training.keep_checkpoints",
            "must be true or false, got 'yes'",
        ),
        (_minimal(n_trials="all"), "n_trials", "'all'"),
        (_minimal(n_trials=True), "n_trials", "True"),
        (_minimal(sampler="grid", n_trials=5), "sampler", "conflicts with n_trials: 5"),
        (_minimal(sampler="random", n_trials="grid"), "sampler", "conflicts"),
        (_minimal(sampler="bayes"), "sampler", "'bayes'"),
        (_minimal(sampler="tpe", n_trials="grid"), "sampler", "conflicts"),
        (_minimal(sampler={"type": "tpe", "n_startup": 3}), "sampler.n_startup", "unknown"),
        (_minimal(sampler={"n_startup_trials": 3}), "sampler", "needs 'type'"),
        (_minimal(pruner="successive_halving"), "pruner", "'successive_halving'"),
        (_minimal(pruner={"type": "wilcoxon", "p_threshold": 2}), "pruner.p_threshold", "(0, 1)"),
        (_minimal(time_budget="soon"), "time_budget", "'soon'"),
        (_minimal(cv={"n_randoms": 0}), "cv.n_randoms", ">= 1"),
        (_minimal(metric=["iou", "iou"]), "metric", "twice"),
        (_minimal(metric=["iou", "loss:less"]), "metric[1]", "':lower'"),
        (_minimal(metric=["iou", "loss:lower"], mode="min"), "mode", ":lower"),
        (_minimal(metric="iou:higher", mode="min"), "mode", "conflicts"),
        (_minimal(metric=["iou", "f1"], combine="median"), "combine", "harmonic"),
        (_minimal(seed=-1), "seed", "got -1"),
        (_minimal(mode="maximize"), "mode", "'maximize'"),
        (_minimal(metric=""), "metric", "non-empty"),
        (_minimal(trainable="smptune.training"), "trainable", "package.module:object"),
        (_minimal(trial_timeout="soon"), "trial_timeout", "'soon'"),
        (_minimal(trial_timeout=0), "trial_timeout", "got 0"),
        (_minimal(data={"test_fraction": 1.0}), "data.test_fraction", "(0, 1), got 1.0"),
        (_minimal(data=["a"]), "data", "must be a mapping"),
        (_minimal(training={"max_epochs": 0}), "training.max_epochs", "got 0"),
        (
            _minimal(training={"early_stopping_patience": -1}),
            "training.early_stopping_patience",
            "got -1",
        ),
        (_minimal(training={"precision": "fp8"}), "training.precision", "'fp8'"),
        (_minimal(retrain_and_test="yes"), "retrain_and_test", "'yes'"),
        (_minimal(batchsize=8), "batchsize", "unknown key (known: name, trainable"),
        ({"n_trials": 3}, "hyperparameters", "missing"),
        ({"hyperparameters": {}}, "hyperparameters", "at least one entry"),
        ({"hyperparameters": [1, 2]}, "hyperparameters", "must be a mapping"),
        (
            {"hyperparameters": {"lr": {"low": 0.1, "high": 0.01}}},
            "hyperparameters.lr",
            "low (0.1) must be < high (0.01)",
        ),
    ],
)
def test_config_errors_name_the_key(data, key, fragment):
    with pytest.raises(ConfigError) as info:
        config_from_dict(data)
    message = str(info.value)
    assert message.startswith(f"{key}: ")
    assert fragment in message


def test_several_unknown_keys_are_listed():
    with pytest.raises(ConfigError, match=r"'foo', 'bar'.*known: name"):
        config_from_dict(_minimal(foo=1, bar=2))


def test_top_level_must_be_a_mapping():
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        config_from_dict([1, 2])  # type: ignore[arg-type]


def test_a_time_budget_in_trial_durations_and_a_sweep_without_n_trials():
    # a multiple of the first complete trial's duration, kept as written
    config = config_from_dict(_minimal(time_budget="4X", n_trials=5))
    assert config.time_budget_factor == 4.0 and config.time_budget_s is None
    assert config.to_dict()["time_budget"] == "4x" and not config.is_open_ended
    # without n_trials: open-ended with a budget, ten trials without one
    open_ended = config_from_dict(_minimal(time_budget="2h"))
    assert open_ended.is_open_ended and open_ended.time_budget_s == 7200.0
    assert config_from_dict(open_ended.to_dict()) == open_ended
    assert config_from_dict(_minimal()).n_trials == 10
    for bad in ("0.5x", "x", "fourx"):
        with pytest.raises(ConfigError, match=r"time_budget: .* multiple of one trial"):
            config_from_dict(_minimal(time_budget=bad))


def test_enqueued_configurations_are_completed_from_the_space_and_checked(tmp_path):
    space = {"x": {"low": 0.0, "high": 1.0}, "y": [1, 2, 3]}
    config = config_from_dict(
        {"hyperparameters": space, "n_trials": 4, "enqueue": [{"x": 0.5, "y": 2}, {"x": 0.25}]}
    )
    # the first trials train them; a left-out entry is drawn from the seed; then sampled ones
    planned = config.configurations()
    assert planned[0] == {"x": 0.5, "y": 2} and planned[1]["x"] == 0.25
    assert planned[1]["y"] in (1, 2, 3) and len(planned) == 4
    assert config_from_dict(config.to_dict()) == config
    # a best_config.yaml (every value fixed), relative to the config's folder
    (tmp_path / "best_config.yaml").write_text(
        "hyperparameters:\n  x: {distribution: value, value: 0.75}\n  y: 3\n  lr: 0.1\n"
    )
    (tmp_path / "sweep.yaml").write_text(
        "n_trials: 2\nenqueue: best_config.yaml\nhyperparameters:\n"
        "  x: {low: 0.0, high: 1.0}\n  y: [1, 2, 3]\n"
    )
    assert load_config(tmp_path / "sweep.yaml").enqueue == [{"lr": 0.1, "x": 0.75, "y": 3}]


@pytest.mark.parametrize(
    ("enqueue", "extra", "fragment"),
    [
        ([{"x": 2.0}], {}, "enqueue[0].x: 2.0 is outside the search space"),
        ([{"y": 4}], {}, "enqueue[0].y: 4 is outside the search space"),
        ([{"x": 0.1}] * 3, {"n_trials": 2}, "enqueue: 3 configurations, but n_trials is 2"),
        ([{"x": 0.1}], {"n_trials": "grid", "sampler": "grid"}, "a grid trains every"),
        ("missing.yaml", {}, "enqueue: no such file"),
        ({"x": 0.1}, {}, "must be a list of configurations"),
    ],
)
def test_bad_enqueued_configurations_name_the_key(enqueue, extra, fragment):
    raw = {
        "hyperparameters": {"x": {"low": 0.0, "high": 1.0}, "y": [1, 2, 3]},
        "enqueue": enqueue,
        **extra,
    }
    if extra.get("n_trials") == "grid":
        raw["hyperparameters"] = {"x": [0.1, 0.2]}
    with pytest.raises(ConfigError) as info:
        config_from_dict(raw)
    assert fragment in str(info.value)


# --- class names -------------------------------------------------------------------------


def test_class_names_name_every_class_and_round_trip():
    data = {"synthetic": {"classes": 3}}
    config = config_from_dict(_minimal(data=data, class_names=["bg", " cells ", "debris"]))
    assert config.class_names == ["bg", "cells", "debris"]
    assert config_from_dict(config.to_dict()) == config
    binary = config_from_dict(_minimal(class_names=["background", "building"]))
    assert binary.class_names == ["background", "building"]
    assert "class_names" not in config_from_dict(_minimal()).to_dict()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"class_names": ["a", "b", "c"]}, r"^class_names: 3 names, but binary data needs 2 "),
        (
            {"data": {"root": "/x", "classes": 4}, "class_names": ["a", "b"]},
            r"^class_names: 2 names, but 4 classes need 4$",
        ),
        ({"class_names": ["a", "a"]}, r"^class_names: 'a' names two classes$"),
        ({"class_names": "a,b"}, r"^class_names: must be a list of non-empty names"),
        ({"class_names": ["a", ""]}, r"^class_names: must be a list of non-empty names"),
    ],
)
def test_bad_class_names_are_config_errors(extra, message):
    with pytest.raises(ConfigError, match=message):
        config_from_dict(_minimal(**extra))


def test_on_oom_and_the_host_memory_limit_are_checked():
    base = {"trainable": "smptune.fakes:MemoryBoundTrainable", "hyperparameters": {"x": [1, 2]}}
    # out of memory ends a trial infeasible unless the config says halve_batch
    assert config_from_dict(base).on_oom == "infeasible"
    halving = config_from_dict({**base, "on_oom": "halve_batch"})
    assert halving.on_oom == "halve_batch"
    assert config_from_dict(halving.to_dict()) == halving
    with pytest.raises(ConfigError, match="on_oom: must be one of infeasible, halve_batch"):
        config_from_dict({**base, "on_oom": "retry"})
    # an adaptive sampler learns the region instead: halving is for random and grid search
    with pytest.raises(ConfigError, match="on_oom: halve_batch is for random and grid search"):
        config_from_dict({**base, "sampler": "tpe", "on_oom": "halve_batch"})
    # the host's limit is a number of GB above 0, and absent by default
    limited = config_from_dict({**base, "training": {"max_host_memory_gb": 12}})
    assert limited.training["max_host_memory_gb"] == 12.0
    assert "max_host_memory_gb" not in config_from_dict(base).training
    for bad in (0, -1, "lots", True):
        with pytest.raises(ConfigError, match=r"training\.max_host_memory_gb: must be a number"):
            config_from_dict({**base, "training": {"max_host_memory_gb": bad}})


def test_requires_reads_back_equal_for_any_sampler():
    space = {"x": [1.0, 2.0], "y": {"low": 0.0, "high": 1.0}}
    rules = [{"when": {"x": 2.0}, "gpu_memory_gb": 40}]
    config = config_from_dict({"hyperparameters": space, "requires": rules})
    assert config.to_dict()["requires"] == [{"when": {"x": [2.0]}, "gpu_memory_gb": 40.0}]
    assert config_from_dict(config.to_dict()).requirements == config.requirements
    assert "requires" not in config_from_dict({"hyperparameters": space}).to_dict()
    # an adaptive sampler asks as each trial starts: its worker sends on what it cannot run
    tpe = {"hyperparameters": space, "sampler": "tpe", "n_trials": 4}
    assert config_from_dict({**tpe, "requires": rules}).requirements.conditional
    with pytest.raises(ConfigError, match=r"^requires\[0\]\.when\.z: not a hyperparameter"):
        config_from_dict({"hyperparameters": space, "requires": [{"when": {"z": 1}, "tags": "a"}]})
