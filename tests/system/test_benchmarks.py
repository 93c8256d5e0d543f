"""``python -m benchmarks``: the table of ratios, on a cheap subset of the quick form.

No timing is asserted (machines are noisy); the figures must be measured numbers.
"""

from __future__ import annotations

import re
import subprocess
import sys

from conftest import REPO, cli_env

NUMBER = r"[\d.,]+(?:e[-+]?\d+)?"


def run_benchmarks(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "benchmarks", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO,
        env=cli_env(),
    )


def test_quick_recovery_and_gpu_print_a_table_of_measured_ratios():
    # When the quick form of two cheap benchmarks runs
    result = run_benchmarks("--quick", "--only", "recovery,gpu")

    # Then it succeeds and prints the table's header
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout
    assert re.search(r"^figure\s+measured\s+reference\s+ratio\s+target\s+result$", out, re.M), out
    # And the recovery row has a measured time, the TTL as reference, a numeric ratio and a verdict
    row = next(line for line in out.splitlines() if line.startswith("recovery") and "TTL" in line)
    match = re.search(
        rf"({NUMBER}) s\s+({NUMBER}) s \(TTL\)\s+({NUMBER})\s+<= 2\s+(pass|miss)$", row
    )
    assert match, row
    measured, ttl, ratio = (float(match.group(i).replace(",", "")) for i in (1, 2, 3))
    assert measured > 0 and ttl == 3.0
    assert abs(ratio - measured / ttl) < 0.01
    # And the GPU row is either measured or says there is no GPU, without failing
    gpu = [line for line in out.splitlines() if line.startswith("gpu")]
    assert gpu and ("no GPU on this machine" in gpu[0] or re.search(NUMBER, gpu[0]))


def test_an_unknown_benchmark_name_is_a_usage_error():
    result = run_benchmarks("--only", "nonesuch", timeout=60)
    assert result.returncode == 2
    assert "unknown benchmark 'nonesuch'" in result.stderr


def test_quick_search_benchmark_compares_strategies_at_equal_trials():
    # When the quick form of the search benchmark runs (real workers, real Redis)
    result = run_benchmarks("--quick", "--only", "search")

    # Then each strategy has its best true score and its device time next to random search's
    assert result.returncode == 0, result.stderr[-3000:]
    rows = {
        line.split(":")[0] + ":" + line.split(":")[1].split("  ")[0]: line
        for line in result.stdout.splitlines()
        if line.startswith("search ") and "(random)" in line
    }
    for strategy in ("random", "tpe", "tpe + median pruning"):
        for figure in ("best true score", "device time"):
            row = rows[f"search {strategy}: {figure}"]
            assert re.search(rf"{NUMBER}(?: s)?\s+{NUMBER}(?: s)? \(random\)\s+{NUMBER}", row), row
    # and a true score is a score of the known objective, in (0, 1]
    score = re.search(rf"score\s+({NUMBER})\s", rows["search tpe: best true score"])
    assert score and 0 < float(score.group(1)) <= 1
    assert "trials pruned" in result.stdout


def test_quick_multi_fidelity_benchmark_compares_strategies_on_learning_curves():
    # When the quick form of the multi-fidelity benchmark runs (real workers, real Redis)
    result = run_benchmarks("--quick", "--only", "multi_fidelity")

    # Then each strategy has its device time to match random search's pick and its pick's
    # true score in random search's device time, next to random search's
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.splitlines()
    for strategy in ("random (full training)", "asha", "hyperband", "tpe + asha"):
        match = next(
            line for line in lines if line.startswith(f"multi-fidelity {strategy}: device time")
        )
        assert re.search(rf"{NUMBER} s\s+{NUMBER} s \(random's whole sweep\)", match), match
        score = next(
            line for line in lines if line.startswith(f"multi-fidelity {strategy}: true score")
        )
        value = re.search(rf"random's device time\s+({NUMBER})\s", score)
        assert value and 0 < float(value.group(1)) <= 0.9, score
    # and ASHA's row carries the target, and the rung decision its latency
    asha = next(line for line in lines if line.startswith("multi-fidelity asha: device"))
    assert re.search(r"<= 0\.333\d*\s+(pass|miss)$", asha), asha
    rung = next(line for line in lines if line.startswith("rung decision at 2,000 trials, inside"))
    assert re.search(rf"{NUMBER} s\s+{NUMBER} s \(median per epoch, study rebuilt\)", rung)
