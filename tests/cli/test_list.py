"""``producer list`` and ``producer cancel`` speak JSON: the sweeps with their counts and
Redis memory; what a cancel did."""

from __future__ import annotations

import json
from pathlib import Path

from smptune.queue.store import SweepStore

from conftest import run_cli, write_config


def test_list_and_cancel_speak_json(tmp_path: Path, redis_server, store: SweepStore):
    # Given two sweeps queued on a broker with no workers
    url = redis_server.url
    ids = []
    for name in ("first", "second"):
        config = write_config(tmp_path / f"{name}.yaml", name=name, n_trials=3)
        submitted = run_cli("producer", "submit", config, "--broker", url)
        assert submitted.returncode == 0, submitted.stderr
        ids.append(submitted.stdout.split()[0])

    # When one is cancelled with --json
    cancelled = run_cli("producer", "cancel", ids[0], "--broker", url, "--json")

    # Then the answer is one JSON object saying what happened
    assert cancelled.returncode == 0, cancelled.stderr
    answer = json.loads(cancelled.stdout)
    assert answer == {"sweep": ids[0], "status": "queued", "cancel_requested": True}
    assert store.get_sweep(ids[0]).cancel_requested

    # And list --json has both, newest first, with their counts and Redis memory
    listed = run_cli("producer", "list", "--broker", url, "--json")
    assert listed.returncode == 0, listed.stderr
    rows = json.loads(listed.stdout)
    assert [r["id"] for r in rows] == ids[::-1]
    assert [r["name"] for r in rows] == ["second", "first"]
    assert all(r["n_trials"] == 3 and r["trials_complete"] == 0 for r in rows)
    assert all(r["redis_bytes"] > 0 and r["created"] > 0 for r in rows)
