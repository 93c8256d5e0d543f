"""The compose file, Dockerfile and deployment docs: no Docker engine runs here, so the
compose file is read, its variables interpolated the way Compose does, and the commands it
would run are run through the real CLIs."""

from __future__ import annotations

import re
from collections.abc import Mapping

import pytest
import yaml

from smptune.cli.submit import DEFAULT_ARTIFACTS
from smptune.cli.workers import build_parser as workers_parser
from smptune.retries import VISIBILITY_TIMEOUT_S

from conftest import REPO, run_cli

COMPOSE_TEXT = (REPO / "docker-compose.yml").read_text()
DOCS = (REPO / "docs" / "deploy.md").read_text()
SMPTUNE_SERVICES = ("flower", "workers", "producer")
_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])((?:[^{}]|\$\{[^{}]*\})*))?\}")


def interpolate(value: str, env: Mapping[str, str]) -> str:
    """Compose's ``${VAR}``, ``${VAR:-default}``, ``${VAR:?error}`` (defaults may nest)."""

    def one(match: re.Match[str]) -> str:
        name, op, arg = match.group(1), match.group(2), match.group(3) or ""
        current = env.get(name)
        if op in (":-", "-"):
            unset = not current if op == ":-" else current is None
            return interpolate(arg, env) if unset else str(current)
        if op in (":?", "?") and (not current if op == ":?" else current is None):
            raise KeyError(f"{name}: {arg}")
        return current or ""

    return _VARIABLE.sub(one, value)


def compose(env: Mapping[str, str]) -> dict:
    """The compose file as Compose sees it with this ``.env``."""

    def walk(node: object) -> object:
        if isinstance(node, str):
            return interpolate(node, env)
        if isinstance(node, list):
            return [walk(n) for n in node]
        if isinstance(node, dict):
            return {k: walk(v) for k, v in node.items()}
        return node

    return walk(yaml.safe_load(COMPOSE_TEXT))  # type: ignore[return-value]


ENV = {"REDIS_PASSWORD": "pw123", "FLOWER_PASSWORD": "fl456"}


def test_compose_interpolation_matches_composes_rules():
    assert interpolate("${A:-x${B:-y}}", {}) == "xy"
    assert interpolate("${A:-x${B:-y}}", {"B": "b"}) == "xb"
    assert interpolate("${A:-x}", {"A": "a"}) == "a"
    with pytest.raises(KeyError, match="set A"):
        interpolate("${A:?set A}", {})


def test_compose_needs_the_redis_password():
    with pytest.raises(KeyError, match="REDIS_PASSWORD"):
        compose({"FLOWER_PASSWORD": "x"})


def test_redis_keeps_every_write_never_evicts_and_asks_for_the_password():
    redis = compose(ENV)["services"]["redis"]
    command = " ".join(redis["command"])
    assert "--appendonly yes" in command
    assert "--maxmemory-policy noeviction" in command
    assert "--requirepass pw123" in command
    assert "redis-data:/data" in redis["volumes"]
    # the healthcheck's redis-cli authenticates too
    assert redis["healthcheck"]["test"] == ["CMD", "redis-cli", "ping"]
    assert redis["environment"]["REDISCLI_AUTH"] == "pw123"


def test_every_smptune_process_gets_the_same_broker_and_visibility_timeout():
    services = compose({**ENV, "REDIS_HOST": "redis.internal"})["services"]
    for name in SMPTUNE_SERVICES:
        env = services[name]["environment"]
        assert env["SMPTUNE_BROKER_URL"] == "redis://:pw123@redis.internal:6379/0", name
        assert int(env["SMPTUNE_VISIBILITY_TIMEOUT"]) == VISIBILITY_TIMEOUT_S, name
    # a whole URL (TLS, an ACL user) replaces the built one everywhere
    url = "rediss://smptune:pw@r.internal:6380/0?ssl_ca_certs=/certs/ca.crt"
    services = compose({**ENV, "SMPTUNE_BROKER_URL": url})["services"]
    assert {services[n]["environment"]["SMPTUNE_BROKER_URL"] for n in SMPTUNE_SERVICES} == {url}


def test_flower_runs_the_producers_flower_behind_a_login_on_localhost():
    flower = compose(ENV)["services"]["flower"]
    assert flower["command"][:2] == ["producer", "flower"]
    assert flower["environment"]["FLOWER_BASIC_AUTH"] == "admin:fl456"
    assert flower["ports"] == ["127.0.0.1:5555:5555"]
    exposed = compose({**ENV, "FLOWER_BIND": "0.0.0.0"})["services"]["flower"]
    assert exposed["ports"] == ["0.0.0.0:5555:5555"]
    assert flower["depends_on"]["redis"]["condition"] == "service_healthy"


def test_compose_flower_refuses_to_start_without_a_password(tmp_path):
    # Given the Flower service's command and environment with no FLOWER_PASSWORD in .env
    flower = compose({"REDIS_PASSWORD": "pw123"})["services"]["flower"]
    env = {k: v for k, v in flower["environment"].items() if k.startswith("FLOWER_")}
    assert env == {"FLOWER_BASIC_AUTH": "admin:"}

    # When it starts
    result = run_cli(*flower["command"], "--broker", "redis://127.0.0.1:1/0", **env)

    # Then it exits at once with a usage error naming the login
    assert result.returncode == 2
    assert "FLOWER_BASIC_AUTH" in result.stderr and len(result.stderr.splitlines()) == 1


def test_workers_reserve_the_gpus_and_mount_data_results_and_cache():
    workers = compose({**ENV, "SMPTUNE_DATA_ROOT": "/mnt/datasets"})["services"]["workers"]
    assert workers["command"] == ["workers", "start", "--slots-per-device", "1"]
    assert workers_parser().parse_args(workers["command"][1:]).slots_per_device == 1
    shared = compose({**ENV, "SMPTUNE_SLOTS_PER_DEVICE": "4"})["services"]["workers"]
    assert workers_parser().parse_args(shared["command"][1:]).slots_per_device == 4
    devices = workers["deploy"]["resources"]["reservations"]["devices"]
    assert devices == [{"driver": "nvidia", "count": "all", "capabilities": ["gpu"]}]
    assert "/mnt/datasets:/data:ro" in workers["volumes"]
    assert workers["environment"]["SMPTUNE_DATA_ROOT"] == "/data"
    assert f"./smptune-results:/app/{DEFAULT_ARTIFACTS}" in workers["volumes"]
    assert "data-cache:/cache" in workers["volumes"]
    assert workers["environment"]["SMPTUNE_CACHE_DIR"] == "/cache"
    # a GPU host starts only its workers: Redis runs elsewhere
    assert "depends_on" not in workers
    # docker stop waits longer than the supervisor lets running trials finish
    shutdown = workers_parser().parse_args(["start"]).shutdown_timeout
    assert int(workers["stop_grace_period"].rstrip("s")) > shutdown
    named = compose({**ENV, "SMPTUNE_WORKER_HOST": "gpu-a"})["services"]["workers"]
    assert named["hostname"] == "gpu-a"


def test_the_producer_sees_the_same_results_folder_and_data_as_the_workers():
    services = compose(ENV)["services"]
    producer, workers = services["producer"], services["workers"]
    assert producer["entrypoint"] == ["producer"]
    assert producer["profiles"] == ["producer"]
    assert "depends_on" not in producer  # `run --rm producer` on a laptop starts no Redis
    # submit records /app/smptune-results (its working folder's default); workers write there
    shared = {v for v in producer["volumes"] if ":/data" in v or DEFAULT_ARTIFACTS in v}
    assert shared and shared <= set(workers["volumes"])
    assert producer["environment"]["SMPTUNE_DATA_ROOT"] == "/data"


def _compose_variables() -> set[str]:
    """Every variable the compose file reads from .env, and every one it sets in a service."""
    interpolated = set(re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)", COMPOSE_TEXT))
    set_in_services = {
        key
        for service in yaml.safe_load(COMPOSE_TEXT)["services"].values()
        for key in (service.get("environment") or {})
    }
    return interpolated | set_in_services


def test_the_deploy_docs_and_env_example_name_every_variable_compose_uses():
    variables = _compose_variables()
    assert {"REDIS_PASSWORD", "SMPTUNE_DATA_ROOT", "FLOWER_BASIC_AUTH"} <= variables
    missing = sorted(v for v in variables if v not in DOCS)
    assert not missing, f"docs/deploy.md does not mention {missing}"
    example = (REPO / ".env.example").read_text()
    interpolated = set(re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)", COMPOSE_TEXT))
    assert not sorted(v for v in interpolated if v not in example)


def test_the_deploy_docs_cover_the_fleet_security_and_watching():
    for needed in (
        "rediss://",
        "ACL SETUSER",
        "requirepass",
        "producer status",
        "producer flower",
        "--artifacts",
        "producer results",
        "workers start",
        "firewall",
        "JSON",
    ):
        assert needed in DOCS, needed


def test_dockerfile_installs_the_package_and_runs_workers_unprivileged():
    dockerfile = (REPO / "Dockerfile").read_text()
    assert "pip install ." in dockerfile
    assert 'CMD ["workers", "start"]' in dockerfile
    assert "USER smptune" in dockerfile
    assert "WORKDIR /app" in dockerfile  # so the default --artifacts is /app/smptune-results
    assert re.search(r"chown smptune [^\n]*/cache", dockerfile)
