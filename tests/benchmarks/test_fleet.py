"""``benchmarks.fleet``: the quick form's rows are measured and no trial fails.

The benchmark runs in a child process from the repository root (as ``python -m benchmarks``
does), so ``benchmarks`` is the repository's package and its spawned askers import it too.
No timing is asserted; the per-epoch ratio targets are reported, not enforced.
"""

from __future__ import annotations

import json
import subprocess
import sys

from conftest import REPO, cli_env

ROWS = """
import dataclasses, json
from benchmarks.fleet import rows
print("ROWS " + json.dumps([dataclasses.asdict(r) for r in rows(True)]))
"""


def test_quick_fleet_rows_are_measured_and_no_trial_fails():
    # When the quick form runs (200 and 1,000 recorded trials, 8 askers, one Redis)
    result = subprocess.run(
        [sys.executable, "-c", ROWS],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=REPO,
        env=cli_env(),
    )

    # Then it succeeds with its rows
    assert result.returncode == 0, result.stderr[-3000:]
    line = next(x for x in result.stdout.splitlines() if x.startswith("ROWS "))
    rows = {r["figure"]: r for r in json.loads(line[len("ROWS ") :])}

    # And each size has its ask latencies, with 8 askers and alone
    for size in ("200", "1,000"):
        for figure in ("ask p50, 8 askers", "ask p99, 8 askers", "ask p50, 1 asker"):
            row = rows[f"fleet {size} trials: {figure}"]
            assert row["measured"] is not None and row["measured"] > 0, row
        # and its per-epoch Redis commands, bytes and time
        for figure in ("Redis commands", "Redis bytes in + out", "wall time"):
            row = rows[f"fleet {size} trials: per epoch, {figure}"]
            assert row["measured"] is not None and row["measured"] > 0, row
    # And the larger size's per-epoch cost is compared with the smaller's against 1.2
    ratio = rows["fleet 1,000 trials: per epoch, Redis commands"]
    assert ratio["reference"] > 0 and ratio["max_ratio"] == 1.2, ratio

    # And no trial failed
    assert rows["fleet trials failed (asks, epoch probes)"]["measured"] == 0, rows
