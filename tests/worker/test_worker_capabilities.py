"""A worker's capabilities: what its supervisor tells it, and which capability queues it
consumes (only those of its queues whose needs it meets)."""

from __future__ import annotations

from smptune.requirements import Capabilities, Needs
from smptune.worker import capabilities
from smptune.worker.capabilities import capabilities_env, capabilities_from_env, to_consume
from smptune.worker.supervisor import WorkerOptions, worker_specs


def test_the_supervisor_tells_each_worker_its_device_memory_tags_and_queues(monkeypatch):
    # Given GPU memory as nvidia-smi reports it (80 GB) and two slots per GPU
    monkeypatch.setattr(capabilities, "detected_gpu_memory_gb", lambda index: 80.0)
    env = capabilities_env("gpu", "0", 2, None, ["b", "a", "b"], "smptune")

    # Then each slot has half the memory, the device cuda and the tags once each
    assert capabilities_from_env(env) == Capabilities("cuda", 40.0, frozenset({"a", "b"}))
    # and what is given wins; a CPU worker has no GPU memory unless it is given
    assert capabilities_from_env(capabilities_env("gpu", "0", 1, 24.0, [], "q")).gpu_memory_gb == 24
    assert capabilities_from_env(capabilities_env("cpu", "", 1, None, [], "q")) == Capabilities()


def test_workers_start_options_reach_the_workers_environment():
    options = WorkerOptions(cpu=2, tags=("big",), gpu_memory_gb=48.0, queues="smptune,other")
    for spec in worker_specs(options, "redis://localhost:6379/0"):
        assert capabilities_from_env(spec.env) == Capabilities("cpu", 48.0, frozenset({"big"}))
        assert spec.env[capabilities.QUEUES_ENV] == "smptune,other"


def test_a_worker_consumes_only_the_capability_queues_it_meets_of_its_own_queues():
    known = {
        "smptune.needs.mem40": ("smptune", Needs(40.0)),
        "smptune.needs.mem80": ("smptune", Needs(80.0)),
        "smptune.needs.tag_big": ("smptune", Needs(tags=frozenset({"big"}))),
        "other.needs.mem40": ("other", Needs(40.0)),
    }
    big = Capabilities("cuda", 48.0, frozenset({"big"}))
    assert to_consume(big, ["smptune"], known, []) == [
        "smptune.needs.mem40",
        "smptune.needs.tag_big",
    ]
    assert to_consume(big, ["smptune"], known, ["smptune.needs.mem40"]) == ["smptune.needs.tag_big"]
    assert to_consume(Capabilities(), ["smptune", "other"], known, []) == []
