"""Removing sweeps from Redis: ``producer delete``, ``producer gc`` and the memory that
``producer list`` shows — through the real CLI, a real Redis and a real worker."""

from __future__ import annotations

import time

from smptune.config import load_config
from smptune.queue.store import SweepStore

from conftest import run_cli, submit_and_wait, write_config


def _keys(store: SweepStore, sweep_id: str) -> list[str]:
    patterns = (f"smptune:sweep:{sweep_id}", f"smptune:sweep:{sweep_id}:*")
    keys = [k for p in patterns for k in store.r.scan_iter(match=p)]
    return keys + list(store.r.scan_iter(match=f"celery-task-meta-{sweep_id}-*"))


def test_ended_sweeps_are_deleted_and_collected_but_never_a_live_one(
    tmp_path, redis_server, store: SweepStore, start_workers
):
    # Given two finished sweeps and one still queued
    start_workers("--cpu", "1")
    config = write_config(tmp_path / "quad.yaml", n_trials=2)
    done = []
    for _ in range(2):
        sweep_id, result = submit_and_wait(config, redis_server.url, tmp_path / "artifacts")
        assert result.returncode == 0, result.stderr + result.stdout
        done.append(sweep_id)
    queued = {**load_config(config).to_dict(), "name": "queued"}
    store.create_sweep("queued-sweep", queued, [], 2, str(tmp_path), n_trials=1)
    assert _keys(store, done[0]) and _keys(store, done[1])
    broker = ("--broker", redis_server.url)

    # When the sweeps are listed, each shows the Redis memory it uses
    listed = run_cli("producer", "list", *broker)
    assert listed.returncode == 0, listed.stderr
    assert "redis" in listed.stdout and "KiB" in listed.stdout
    assert "3 sweeps use" in listed.stdout

    # When the queued one is deleted: refused, nothing removed
    refused = run_cli("producer", "delete", "queued-sweep", *broker)
    assert refused.returncode == 2
    assert "sweep queued-sweep is queued: cancel it first" in refused.stderr
    assert store.get_sweep("queued-sweep").status == "queued"

    # When a finished one is deleted: its keys are gone, its results folder stays
    deleted = run_cli("producer", "delete", done[0], *broker)
    assert deleted.returncode == 0, deleted.stderr
    assert f"deleted sweep {done[0]}:" in deleted.stdout
    assert _keys(store, done[0]) == []
    assert (tmp_path / "artifacts" / done[0] / "results.json").is_file()
    gone = run_cli("producer", "status", done[0], *broker)
    assert gone.returncode == 2 and f"no sweep {done[0]!r}" in gone.stderr

    # When sweeps that ended more than a second ago are collected
    time.sleep(1.2)
    preview = run_cli("producer", "gc", "--older-than", "1s", "--dry-run", *broker)
    assert preview.returncode == 0, preview.stderr
    assert f"would delete {done[1]}" in preview.stdout and "queued-sweep" not in preview.stdout
    assert _keys(store, done[1])
    collected = run_cli("producer", "gc", "--older-than", "1s", *broker)
    assert collected.returncode == 0, collected.stderr
    assert "deleted 1 sweeps that ended more than 1s ago" in collected.stdout

    # Then only the live sweep is left
    assert _keys(store, done[1]) == []
    assert [s.id for s in store.list_sweeps()] == ["queued-sweep"]
    bad = run_cli("producer", "gc", "--older-than", "soon", *broker)
    assert bad.returncode == 2 and "--older-than:" in bad.stderr
