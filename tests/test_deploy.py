"""The compose file and Dockerfile: no Docker engine runs here, so they are read and checked."""

from __future__ import annotations

import re

import yaml

from conftest import REPO


def _compose() -> dict:
    return yaml.safe_load((REPO / "docker-compose.yml").read_text())


def test_compose_runs_redis_with_aof_noeviction_and_a_password():
    command = " ".join(_compose()["services"]["redis"]["command"])
    assert "--appendonly yes" in command
    assert "--maxmemory-policy noeviction" in command
    assert "--requirepass ${REDIS_PASSWORD" in command
    assert "redis-data:/data" in _compose()["services"]["redis"]["volumes"]


def test_compose_flower_loads_the_app_and_asks_for_a_login():
    flower = _compose()["services"]["flower"]
    assert "--app=smptune.celeryapp" in flower["command"]
    assert any(c.startswith("--basic-auth=") for c in flower["command"])
    assert "SMPTUNE_BROKER_URL" in flower["environment"]


def test_compose_workers_reserve_gpus_and_start_the_supervisor():
    workers = _compose()["services"]["workers"]
    assert workers["command"] == ["workers", "start"]
    devices = workers["deploy"]["resources"]["reservations"]["devices"]
    assert devices[0]["capabilities"] == ["gpu"] and devices[0]["driver"] == "nvidia"


def test_compose_producer_and_every_broker_url_carry_the_password():
    services = _compose()["services"]
    assert services["producer"]["entrypoint"] == ["producer"]
    for name in ("flower", "workers", "producer"):
        url = services[name]["environment"]["SMPTUNE_BROKER_URL"]
        assert re.match(r"redis://:\$\{REDIS_PASSWORD[^}]*\}@", url), (name, url)


def test_dockerfile_installs_the_package_and_runs_workers():
    dockerfile = (REPO / "Dockerfile").read_text()
    assert "pip install ." in dockerfile
    assert 'CMD ["workers", "start"]' in dockerfile
    assert "USER smptune" in dockerfile
