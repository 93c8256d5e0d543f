"""Bad input: one line naming the problem, the documented exit code, nothing enqueued."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import run_cli, write_config


def _one_line_error(result, code: int, *needles: str) -> None:
    assert result.returncode == code, (result.returncode, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("producer: error: ")
    assert "Traceback" not in result.stderr
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])


CASES = {
    "unknown hyperparameter": (
        {"hyperparameters": {"z": [1, 2]}},
        ["hyperparameters.z", "unknown hyperparameter"],
    ),
    "low above high": (
        {"hyperparameters": {"x": {"low": 3.0, "high": 1.0}}},
        ["hyperparameters.x", "low"],
    ),
    "unknown distribution": (
        {"hyperparameters": {"x": {"distribution": "gaussian", "low": 0, "high": 1}}},
        ["hyperparameters.x", "gaussian"],
    ),
    "wrong value type": ({"hyperparameters": {"x": "fast"}}, ["hyperparameters.x", "number"]),
    "n_folds too small": ({"cv": {"n_folds": 1}}, ["cv.n_folds"]),
    "n_trials not a number": ({"n_trials": "many"}, ["n_trials"]),
    "unknown top-level key": ({"n_trails": 3}, ["n_trails"]),
    "metric the trainable does not report": ({"metric": "iou"}, ["metric", "iou"]),
    "trainable that cannot be imported": ({"trainable": "nowhere.at_all:Thing"}, ["trainable"]),
    "callable that is not a trainable": ({"trainable": "os:system"}, ["trainable", "os:system"]),
    "bad mode": ({"mode": "maximise"}, ["mode"]),
    "trial timeout past the visibility timeout": (
        {"trial_timeout": "30d"},
        ["trial_timeout", "visibility timeout"],
    ),
}


@pytest.mark.parametrize("overrides, needles", CASES.values(), ids=CASES.keys())
def test_bad_config_exits_2_naming_the_key(tmp_path: Path, overrides, needles):
    config = write_config(tmp_path / "bad.yaml", **overrides)
    # a broker that does not exist: validation must fail before anything connects
    result = run_cli("producer", "submit", config, "--broker", "redis://127.0.0.1:1/0")
    _one_line_error(result, 2, *needles)


def test_missing_config_file_exits_2_naming_it(tmp_path: Path):
    result = run_cli("producer", "submit", tmp_path / "nope.yaml")
    _one_line_error(result, 2, "nope.yaml")


def test_yaml_syntax_error_exits_2_naming_file_and_line(tmp_path: Path):
    bad = tmp_path / "broken.yaml"
    bad.write_text("name: x\nhyperparameters:\n  x: [1, 2\n  y: 3\n")
    result = run_cli("producer", "submit", bad)
    _one_line_error(result, 2, "broken.yaml:4", "invalid YAML")


def test_unreachable_broker_exits_3_without_the_password(tmp_path: Path):
    config = write_config(tmp_path / "ok.yaml")
    result = run_cli(
        "producer", "submit", config, "--broker", "redis://admin:s3cret-pw@127.0.0.1:1/0"
    )
    _one_line_error(result, 3, "unreachable", "127.0.0.1:1")
    assert "s3cret-pw" not in result.stderr + result.stdout


def test_unreachable_broker_from_the_environment_exits_3(tmp_path: Path):
    result = run_cli("producer", "list", SMPTUNE_BROKER_URL="redis://127.0.0.1:1/0")
    _one_line_error(result, 3, "unreachable")


def test_status_of_an_unknown_sweep_exits_2(redis_server):
    result = run_cli("producer", "status", "no-such-sweep", "--broker", redis_server.url)
    _one_line_error(result, 2, "no-such-sweep")


def test_status_without_a_broker_exits_2():
    result = run_cli("producer", "status", "some-sweep")
    _one_line_error(result, 2, "no broker", "SMPTUNE_BROKER_URL")


def test_verbose_shows_the_traceback(tmp_path: Path):
    result = run_cli("producer", "-v", "submit", tmp_path / "nope.yaml")
    assert result.returncode == 2
    assert "Traceback" in result.stderr


def test_bad_usage_exits_2():
    assert run_cli("producer", "submit").returncode == 2
    assert run_cli("producer", "frobnicate").returncode == 2
    assert run_cli("workers", "start", "--cpu", "1", "--devices", "0").returncode == 2


def test_local_workers_must_be_positive(tmp_path: Path):
    result = run_cli(
        "producer", "submit", write_config(tmp_path / "s.yaml"), "--local-workers", "0"
    )
    _one_line_error(result, 2, "--local-workers")
