"""Search quality per device-second: random vs TPE vs TPE + median pruning, side by side.

A synthetic objective with a known optimum (the quadratic trainable: score 1 at x = 1,
y = -2) and a fold noise model (Gaussian noise per run, drawn from the run's seed; a fixed
sleep per fold stands for device time) runs through real workers and a real Redis, the same
number of trials for each strategy. Printed per strategy: the best configuration's true
(noise-free) score, its regret (1 − score), the device time used (sum of the runs' durations)
and both as ratios to random search, averaged over ``--repeats`` seeds.

    python -m benchmarks.search [--quick] [--trials 30] [--repeats 3] [--workers 2]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.harness import clean_env, start_workers, stop, submit, write_sweep
from benchmarks.table import Row
from smptune.queue.embedded_redis import EmbeddedRedis
from smptune.queue.store import SweepStore

STRATEGIES: dict[str, dict[str, Any]] = {
    "random": {"sampler": "random"},
    "tpe": {"sampler": {"type": "tpe", "n_startup_trials": 6}},
    "tpe + median pruning": {
        "sampler": {"type": "tpe", "n_startup_trials": 6},
        "pruner": {"type": "median", "n_startup_trials": 6},
    },
}


@dataclass
class Outcome:
    """One sweep's result."""

    true_score: float
    device_s: float
    pruned: int


def true_score(params: dict[str, Any]) -> float:
    """The noise-free objective of a configuration."""
    return 1.0 / (1.0 + (params["x"] - 1.0) ** 2 + (params["y"] + 2.0) ** 2)


def run_sweep(
    redis_url: str, tmp: Path, env: dict[str, str], strategy: dict[str, Any], **shape: Any
) -> Outcome:
    config = write_sweep(
        tmp / "search.yaml",
        n_trials=shape["trials"],
        seed=shape["seed"],
        cv={"n_folds": shape["folds"]},
        hyperparameters={
            "x": {"low": -4.0, "high": 6.0},
            "y": {"low": -7.0, "high": 3.0},
            "sleep": shape["fold_s"],
            "noise": shape["noise"],
        },
        **strategy,
    )
    sweep_id = submit(config, redis_url, env, "--wait", "--artifacts", str(tmp))
    store = SweepStore.from_url(redis_url)
    sweep = store.get_sweep(sweep_id, full=True)
    device_s = sum(t.device_s for t in store.trials(sweep_id))
    best = sweep.results["best"]
    return Outcome(true_score(best["params"]), device_s, sweep.count("pruned"))


def measure(
    quick: bool, trials: int | None = None, repeats: int | None = None, workers: int = 2
) -> dict[str, list[Outcome]]:
    """Run every strategy ``repeats`` times at equal trial counts; outcomes per strategy."""
    shape = {
        "trials": trials or (16 if quick else 40),
        "folds": 3 if quick else 5,
        "fold_s": 0.02 if quick else 0.1,
        "noise": 0.03,
    }
    repeats = repeats or 3  # one seed is a coin toss at 16 trials (docs/performance.md)
    env = clean_env()
    outcomes: dict[str, list[Outcome]] = {name: [] for name in STRATEGIES}
    with tempfile.TemporaryDirectory() as tmp, EmbeddedRedis() as redis:
        supervisor = start_workers(redis.url, "--cpu", str(workers), env=env)
        try:
            time.sleep(3)  # worker start-up is not part of any strategy's cost
            for seed in range(repeats):
                for name, strategy in STRATEGIES.items():
                    outcomes[name].append(
                        run_sweep(redis.url, Path(tmp), env, strategy, seed=seed, **shape)
                    )
        finally:
            stop(supervisor)
    return outcomes


def table(outcomes: dict[str, list[Outcome]]) -> list[dict[str, Any]]:
    """Mean figures per strategy and their ratios to random search."""
    rows = []
    for name, runs in outcomes.items():
        rows.append(
            {
                "strategy": name,
                "best_true_score": statistics.mean(o.true_score for o in runs),
                "regret": statistics.mean(1.0 - o.true_score for o in runs),
                "device_s": statistics.mean(o.device_s for o in runs),
                "pruned": statistics.mean(o.pruned for o in runs),
            }
        )
    base = rows[0]
    for row in rows:
        row["regret_vs_random"] = row["regret"] / base["regret"] if base["regret"] else 1.0
        row["device_vs_random"] = row["device_s"] / base["device_s"]
    return rows


def rows(quick: bool) -> list[Row]:
    """The table rows: per strategy, the best configuration's true score and the device time,
    each next to random search's in the same run."""
    out = table(measure(quick))
    base = out[0]
    result = []
    for r in out:
        note = f"regret {r['regret']:.4f} vs random's {base['regret']:.4f}"
        if r["pruned"]:
            note += f"; {r['pruned']:.1f} trials pruned"
        result += [
            Row(
                f"search {r['strategy']}: best true score",
                r["best_true_score"],
                base["best_true_score"],
                unit="",
                reference_label="random",
                note=note,
            ),
            Row(
                f"search {r['strategy']}: device time",
                r["device_s"],
                base["device_s"],
                reference_label="random",
            ),
        ]
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="the short form CI runs")
    parser.add_argument("--trials", type=int)
    parser.add_argument("--repeats", type=int)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    rows = table(measure(args.quick, args.trials, args.repeats, args.workers))
    print(
        f"{'strategy':22} {'best true score':>15} {'regret':>8} {'vs random':>9} "
        f"{'device s':>9} {'vs random':>9} {'pruned':>7}"
    )
    for r in rows:
        print(
            f"{r['strategy']:22} {r['best_true_score']:15.4f} {r['regret']:8.4f} "
            f"{r['regret_vs_random']:8.2f}x {r['device_s']:9.2f} {r['device_vs_random']:8.2f}x "
            f"{r['pruned']:7.1f}"
        )


if __name__ == "__main__":
    main()
