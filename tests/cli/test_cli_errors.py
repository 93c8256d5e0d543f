"""Bad input any producer command can meet (brokers unreachable, malformed or refusing,
unknown sweeps, bad usage): one line naming the problem, the documented exit code, nothing
enqueued. A config ``submit`` cannot use: test_submit.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from smptune.queue.embedded_redis import EmbeddedRedis

from conftest import nothing_enqueued, one_line_error, run_cli, write_config

UNREACHABLE = "redis://127.0.0.1:1/0"


def test_unreachable_broker_exits_3_without_the_password(tmp_path: Path):
    config = write_config(tmp_path / "ok.yaml")
    result = run_cli(
        "producer", "submit", config, "--broker", "redis://admin:s3cret-pw@127.0.0.1:1/0"
    )
    one_line_error(result, 3, "unreachable", "127.0.0.1:1")
    assert "s3cret-pw" not in result.stderr + result.stdout


def test_unreachable_broker_from_the_environment_exits_3(tmp_path: Path):
    result = run_cli("producer", "list", SMPTUNE_BROKER_URL="redis://127.0.0.1:1/0")
    one_line_error(result, 3, "unreachable")


def test_status_of_an_unknown_sweep_exits_2(redis_server):
    result = run_cli("producer", "status", "no-such-sweep", "--broker", redis_server.url)
    one_line_error(result, 2, "no-such-sweep")


def test_status_without_a_broker_exits_2():
    result = run_cli("producer", "status", "some-sweep")
    one_line_error(result, 2, "no broker", "SMPTUNE_BROKER_URL")


def test_verbose_shows_the_traceback(tmp_path: Path):
    result = run_cli("producer", "-v", "submit", tmp_path / "nope.yaml")
    assert result.returncode == 2
    assert "Traceback" in result.stderr


def test_bad_usage_exits_2():
    assert run_cli("producer", "submit").returncode == 2
    assert run_cli("producer", "frobnicate").returncode == 2
    assert run_cli("workers", "start", "--cpu", "1", "--devices", "0").returncode == 2


@pytest.mark.parametrize("command", ["results", "cancel"])
def test_unknown_sweep_exits_2(redis_server, command: str):
    result = run_cli("producer", command, "no-such-sweep", "--broker", redis_server.url)
    one_line_error(result, 2, "no-such-sweep")
    nothing_enqueued(redis_server.url)


@pytest.mark.parametrize("command", [("results", "s"), ("cancel", "s"), ("list",)], ids=" ".join)
def test_commands_without_a_broker_exit_2(command: tuple[str, ...]):
    result = run_cli("producer", *command)
    one_line_error(result, 2, "no broker", "SMPTUNE_BROKER_URL")


MALFORMED_BROKERS = {
    "not a url": (("status", "s", "--broker", "notaurl"), {}, ["--broker", "'notaurl'"]),
    "http scheme from the environment": (
        ("list",),
        {"SMPTUNE_BROKER_URL": "http://127.0.0.1:1/0"},
        ["SMPTUNE_BROKER_URL", "http://", "not a Redis URL"],
    ),
    "port that is no number": (
        ("results", "s", "--broker", "redis://:s3cret-pw@127.0.0.1:notaport/0"),
        {},
        ["--broker", "notaport"],
    ),
    "port out of range": (
        ("cancel", "s", "--broker", "redis://127.0.0.1:99999/0"),
        {},
        ["--broker", "out of range"],
    ),
    "database that is no number": (
        ("list", "--broker", "redis://:s3cret-pw@127.0.0.1:1/abc"),
        {},
        ["--broker", "the database 'abc' is not a number"],
    ),
    "query option redis-py cannot read": (
        ("delete", "s", "--broker", "redis://127.0.0.1:1/0?socket_timeout=soon"),
        {},
        ["--broker", "socket_timeout"],
    ),
    "unix socket without a path": (
        ("gc", "--older-than", "1d", "--broker", "unix://"),
        {},
        ["names no socket"],
    ),
    "unknown certificate check": (
        ("status", "s", "--broker", "rediss://127.0.0.1:1/0?ssl_cert_reqs=maybe"),
        {},
        ["--broker", "ssl_cert_reqs='maybe'"],
    ),
}


@pytest.mark.parametrize(
    "args, env, needles", MALFORMED_BROKERS.values(), ids=MALFORMED_BROKERS.keys()
)
def test_malformed_broker_url_exits_2_naming_it(args, env, needles):
    result = run_cli("producer", *args, **env)
    one_line_error(result, 2, *needles)
    assert "s3cret-pw" not in result.stderr + result.stdout


def test_malformed_broker_url_on_submit_exits_2(tmp_path: Path):
    config = write_config(tmp_path / "ok.yaml")
    result = run_cli("producer", "submit", config, "--broker", "amqp://guest:s3cret-pw@mq:5672//")
    one_line_error(result, 2, "--broker", "amqp://guest:***@mq:5672//")
    assert "s3cret-pw" not in result.stderr + result.stdout


@pytest.mark.parametrize(
    "command", [("status", "s"), ("results", "s"), ("cancel", "s"), ("list",)], ids=" ".join
)
def test_unreachable_broker_with_a_password_exits_3_without_it(command: tuple[str, ...]):
    url = "redis://:s3cret-pw@127.0.0.1:1/0"
    result = run_cli("producer", *command, "--broker", url)
    one_line_error(result, 3, "unreachable", "127.0.0.1:1", ":***@")
    assert "s3cret-pw" not in result.stderr + result.stdout


def test_broker_that_refuses_the_password_exits_3_without_it(tmp_path: Path):
    with EmbeddedRedis(tmp_path / "redis", extra_args=("--requirepass", "right-pw")) as redis:
        url = f"redis://:s3cret-pw@127.0.0.1:{redis.port}/0"
        result = run_cli("producer", "submit", write_config(tmp_path / "ok.yaml"), "--broker", url)
        one_line_error(result, 3, "refused the credentials", f"127.0.0.1:{redis.port}")
        assert "s3cret-pw" not in result.stderr + result.stdout
        nothing_enqueued(f"redis://:right-pw@127.0.0.1:{redis.port}/0")
