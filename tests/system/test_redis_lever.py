"""Redis as an attacker's lever: what a Redis writer puts in a sweep record must not get code
run on a producer, and Redis itself keeps every write it acknowledged — through the real
CLI and a real Redis."""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import yaml

from smptune.config import load_config
from smptune.fakes import QuadraticTrainable
from smptune.queue.embedded_redis import EmbeddedRedis
from smptune.queue.store import SweepStore

from conftest import REPO, TESTS_DIR, run_cli, write_config

#: A trainable whose import leaves a file: the proof that its module's code ran.
PLANTED = """
import os
from pathlib import Path

from smptune.fakes import QuadraticTrainable as Planted

Path(os.environ["PLANTED_MARKER"]).write_text("imported")
"""


def test_extend_refuses_a_stored_trainable_outside_the_allow_list_and_imports_nothing(
    tmp_path, redis_server, store: SweepStore
):
    # Given an ended sweep whose stored config a Redis writer pointed at their own module
    modules = tmp_path / "modules"
    modules.mkdir()
    (modules / "planted.py").write_text(PLANTED)
    marker = tmp_path / "imported"
    config = load_config(write_config(tmp_path / "s.yaml", n_trials=2)).to_dict()
    config["trainable"] = "planted:Planted"
    params = [{**QuadraticTrainable.defaults, "x": float(i)} for i in range(2)]
    store.create_sweep("planted-sweep", config, params, 3, str(tmp_path))
    store.set_sweep_fields("planted-sweep", status="done", finished=time.time())
    env = {
        "PYTHONPATH": os.pathsep.join([str(TESTS_DIR), str(modules)]),
        "PLANTED_MARKER": str(marker),
    }
    broker = ("--broker", redis_server.url)

    # When the sweep is extended on a producer that was not told to allow it
    refused = run_cli("producer", "extend", "planted-sweep", "--trials", "1", *broker, **env)

    # Then it is refused with one clear line and a non-zero exit, the module never imported,
    # and the sweep untouched
    assert refused.returncode == 2, refused.stdout + refused.stderr
    lines = refused.stderr.strip().splitlines()
    assert len(lines) == 1, refused.stderr
    assert "'planted:Planted' is not allowed" in lines[0] and "--allow-trainable" in lines[0]
    assert not marker.exists()
    sweep = store.get_sweep("planted-sweep")
    assert (sweep.status, sweep.n_trials, sweep.generation) == ("done", 2, 0)

    # And a producer told to allow it extends the sweep
    allowed = run_cli(
        "producer",
        "extend",
        "planted-sweep",
        "--trials",
        "1",
        "--allow-trainable",
        "planted:Planted",
        *broker,
        **env,
    )
    assert allowed.returncode == 0, allowed.stderr
    assert "1 trials queued" in allowed.stdout and marker.exists()
    assert store.get_sweep("planted-sweep").n_trials == 3


def _fleet_redis_command(readme: str) -> str:
    """The README's command for a fleet's Redis."""
    [command] = re.findall(r"`(redis-server [^`]+)`", readme.split("## A fleet", 1)[1])
    return command


def test_every_documented_redis_fsyncs_each_write_and_the_docs_say_so(tmp_path):
    # The README's fleet Redis, the compose file's and the embedded one all log and fsync
    # every write (--appendonly yes alone means everysec: up to a second lost at a crash)
    readme = (REPO / "README.md").read_text()
    assert "--appendonly yes --appendfsync always" in _fleet_redis_command(readme)
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    redis_args = " ".join(compose["services"]["redis"]["command"])
    assert "--appendonly yes --appendfsync always" in redis_args
    embedded = " ".join(EmbeddedRedis(data_dir=Path(tmp_path)).command())
    assert "--appendonly yes --appendfsync always" in embedded
    # and docs/reliability.md names all three and what everysec would lose
    reliability = " ".join((REPO / "docs" / "reliability.md").read_text().split())
    assert "the README's fleet command" in reliability
    assert "`--appendonly yes` alone" in reliability and "everysec" in reliability
