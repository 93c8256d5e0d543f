"""The step table and the crash points in the code are one list: a new step without its
point, or a point outside the table, fails here."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

import smptune
from smptune.lifecycle import CRASH_AT_ENV, CRASH_MARKER_ENV, POINTS, STEPS, crash_point

SRC = Path(smptune.__file__).parent


def _crash_point_calls() -> Counter[str]:
    calls: Counter[str] = Counter()
    for path in SRC.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id == "crash_point"
            ):
                assert isinstance(node.args[0], ast.Constant), f"{path}: a computed point"
                calls[node.args[0].value] += 1
    return calls


def test_every_step_has_exactly_one_crash_point_in_the_code_and_no_point_is_outside_the_table():
    calls = _crash_point_calls()
    assert sorted(calls) == sorted(POINTS)
    assert all(n == 1 for n in calls.values()), calls
    assert len(set(POINTS)) == len(STEPS)


def test_a_point_not_in_the_table_is_refused():
    with pytest.raises(AssertionError, match=r"not in smptune\.lifecycle\.STEPS"):
        crash_point("finalize.typo")


def test_a_process_crashes_at_its_point_once_then_goes_on(tmp_path):
    marker = tmp_path / "crashed"
    code = "from smptune.lifecycle import crash_point; crash_point('trial.started'); print('on')"
    env = {**os.environ, CRASH_AT_ENV: "trial.started", CRASH_MARKER_ENV: str(marker)}
    first = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    second = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert (first.returncode, first.stdout) == (137, "")
    assert marker.exists()
    assert (second.returncode, second.stdout.strip()) == (0, "on")
