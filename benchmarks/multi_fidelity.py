"""Multi-fidelity search per device-second: random search with full training against ASHA,
Hyperband, TPE + ASHA and the median pruner deciding per epoch, side by side; and the latency
of one rung decision in a sweep of 10,000 trials.

The learning-curve trainable (no torch) stands for training: each configuration's validation
score climbs epoch by epoch to a level at a rate that both depend on it, with noise, a harder
or easier fold now and then, and curves that cross; an epoch is a short sleep, and each
configuration has a known true score after a full run. The curves are noisy as real ones are:
early epochs jump about (noise of 0.1 at epoch 1, halving every two epochs), and each run
suits its fold differently (0.02 per trial and fold), so a pruner that trusts one early epoch
or one fold is caught out. Every strategy runs through real
workers and a real Redis. Random search trains ``trials`` configurations fully; the others
get several times as many (:data:`TRIALS_FACTOR`), to spend their savings on. Per strategy,
averaged over seeds:

- the device time (epochs trained, partial runs included, × the epoch's duration) until the
  configuration the sweep would pick (its best complete trial so far) is as good, in true
  score, as the one random search picks in the end;
- the true score of its pick once it has spent random search's whole device time.

    python -m benchmarks.multi_fidelity [--quick] [--trials 30] [--repeats 3] [--workers 2]
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.harness import clean_env, start_workers, stop, submit, write_sweep
from benchmarks.table import Row
from smptune.fakes import LearningCurveTrainable
from smptune.queue.embedded_redis import EmbeddedRedis
from smptune.queue.store import SweepStore
from smptune.records import TrialRecord, TrialStatus

ASHA = {"type": "asha"}  # its defaults, as a user meets it
STRATEGIES: dict[str, dict[str, Any]] = {
    "random (full training)": {"sampler": "random"},
    "asha": {"sampler": "random", "pruner": ASHA},
    "hyperband": {"sampler": "random", "pruner": {**ASHA, "type": "hyperband"}},
    "tpe + asha": {"sampler": {"type": "tpe", "n_startup_trials": 8}, "pruner": ASHA},
    "median per epoch": {
        "sampler": "random",
        "pruner": {"type": "median", "at": "epoch", "n_startup_trials": 5, "n_warmup_steps": 2},
    },
}
#: Trials each strategy gets, as a multiple of random search's: enough for it to spend about
#: random search's device time (a pruned trial costs a few epochs).
TRIALS_FACTOR = {
    "random (full training)": 1,
    "asha": 12,
    "hyperband": 6,
    "tpe + asha": 8,
    "median per epoch": 3,
}


@dataclass
class Outcome:
    """One sweep: device time to match random search's pick, and the pick's true score at
    random search's device time."""

    device_to_match: float
    score_at_budget: float
    device_total: float


def true_score(params: dict[str, Any], epochs: int) -> float:
    return LearningCurveTrainable.true_score(params, epochs)


def epochs_trained(t: TrialRecord) -> int:
    """Epochs a trial trained: its complete runs' and its partial run's."""
    done = sum(int(run.get("epochs_run", 0)) for run in t.folds.values())
    return done + (t.partial.epochs if t.partial else 0)


def trajectory(trials: list[TrialRecord], epochs: int, epoch_s: float) -> list[tuple[float, float]]:
    """``(device seconds spent, true score of the pick)`` after each trial ends, in the order
    they ended; the pick is the complete trial with the best measured score so far. Device
    time is epochs trained × ``epoch_s``: what the device spends training, without the
    workers' per-epoch bookkeeping and decisions (measured apart, see
    :func:`decision_latency`), which with 10-ms epochs would dwarf it."""
    out = []
    spent, best = 0.0, None
    for t in sorted((t for t in trials if t.finished), key=lambda t: t.finished or 0.0):
        spent += epochs_trained(t) * epoch_s
        complete = t.status is TrialStatus.COMPLETE and t.score is not None
        if complete and (best is None or (t.score or 0.0) > (best.score or -math.inf)):
            best = t
        out.append((spent, true_score(dict(best.params), epochs) if best else 0.0))
    return out


def device_to_reach(path: list[tuple[float, float]], target: float) -> float:
    """Device seconds until the pick's true score reaches ``target`` (inf: never)."""
    return next((spent for spent, score in path if score >= target - 1e-12), math.inf)


def score_at(path: list[tuple[float, float]], budget: float) -> float:
    """The pick's true score once ``budget`` device seconds are spent (or at the end)."""
    reached = [score for spent, score in path if spent <= budget + 1e-9]
    return reached[-1] if reached else 0.0


def run_sweep(redis_url: str, tmp: Path, env: dict[str, str], name: str, **shape: Any) -> Any:
    config = write_sweep(
        tmp / "curves.yaml",
        name="curves",
        trainable="smptune.fakes:LearningCurveTrainable",
        n_trials=shape["trials"] * TRIALS_FACTOR[name],
        seed=shape["seed"],
        cv={"n_folds": shape["folds"]},
        training={"max_epochs": shape["epochs"]},
        hyperparameters={
            "x": {"low": 0.0, "high": 1.0},
            "y": {"low": 0.0, "high": 1.0},
            "z": {"low": 0.0, "high": 1.0},
            "epoch_s": shape["epoch_s"],
            "noise": shape["noise"],
            "early_noise": shape["early_noise"],
            "fold_noise": shape["fold_noise"],
            "run_noise": shape["run_noise"],
        },
        **STRATEGIES[name],
    )
    sweep_id = submit(config, redis_url, env, "--wait", "--artifacts", str(tmp))
    return SweepStore.from_url(redis_url).trials(sweep_id)


def measure(
    quick: bool, trials: int | None = None, repeats: int | None = None, workers: int = 2
) -> dict[str, list[Outcome]]:
    """Every strategy on the same seeds; outcomes per strategy."""
    shape = {
        "trials": trials or (12 if quick else 30),
        "folds": 2 if quick else 3,
        "epochs": 9 if quick else 27,
        "epoch_s": 0.005 if quick else 0.01,
        "noise": 0.01,
        # early epochs jump about and each run suits its fold differently, as on real data
        "early_noise": 0.1,
        "fold_noise": 0.01,
        "run_noise": 0.02,
    }
    repeats = repeats or (1 if quick else 3)
    env = clean_env()
    outcomes: dict[str, list[Outcome]] = {name: [] for name in STRATEGIES}
    with tempfile.TemporaryDirectory() as tmp, EmbeddedRedis() as redis:
        supervisor = start_workers(redis.url, "--cpu", str(workers), env=env)
        try:
            time.sleep(3)  # worker start-up is not part of any strategy's cost
            for seed in range(repeats):
                paths = {
                    name: trajectory(
                        run_sweep(redis.url, Path(tmp), env, name, seed=seed, **shape),
                        shape["epochs"],
                        shape["epoch_s"],
                    )
                    for name in STRATEGIES
                }
                base = paths["random (full training)"]
                target, budget = base[-1][1], base[-1][0]
                for name, path in paths.items():
                    outcomes[name].append(
                        Outcome(
                            device_to_reach(path, target),
                            score_at(path, budget),
                            path[-1][0],
                        )
                    )
        finally:
            stop(supervisor)
    return outcomes


def summary(outcomes: dict[str, list[Outcome]]) -> list[dict[str, Any]]:
    """Means per strategy (a strategy that never matched random's pick on some seed counts
    that seed at its whole device time, and says so)."""
    rows = []
    for name, runs in outcomes.items():
        for seed, o in enumerate(runs):
            print(
                f"  {name} seed {seed}: matched after {o.device_to_match:.2f} of "
                f"{o.device_total:.2f} device s; score {o.score_at_budget:.4f}",
                file=sys.stderr,
            )
        missed = sum(1 for o in runs if math.isinf(o.device_to_match))
        rows.append(
            {
                "strategy": name,
                "device_to_match": statistics.mean(
                    o.device_total if math.isinf(o.device_to_match) else o.device_to_match
                    for o in runs
                ),
                "missed": missed,
                "score_at_budget": statistics.mean(o.score_at_budget for o in runs),
                "device_total": statistics.mean(o.device_total for o in runs),
                "seeds": len(runs),
            }
        )
    return rows


def decision_latency(n_trials: int = 10_000, decisions: int = 500) -> dict[str, float]:
    """Median seconds of one rung decision (inside fold 0, after a fold) with ``n_trials``
    trials at the rung, of one per-epoch median-pruner decision on the steps' sorted sets of
    ``n_trials`` complete trials, and for reference of Optuna's median pruner on a study
    rebuilt from the store's trials (what a stateless worker would do)."""
    from smptune.config import config_from_dict
    from smptune.search.adaptive import _study, optuna_prunes, should_prune_epoch
    from smptune.search.halving import Halving
    from smptune.search.specs import PrunerSpec

    halving = Halving.from_spec(PrunerSpec.parse({"type": "asha"}), 27, 3)
    inside, after = 0, len(halving.rungs()) - 1  # fold 0's first rung; the one after fold 1
    with EmbeddedRedis() as redis:
        store = SweepStore.from_url(redis.url)
        rungs = store.rungs("bench", halving, "max")
        for n in range(n_trials):  # every trial reaches both rungs
            rungs.decide(n, 0, inside, 0.3 + 0.5 * ((n * 7919) % n_trials) / n_trials)
            rungs.decide(n, 0, after, 0.31 + 0.5 * ((n * 104729) % n_trials) / n_trials)
        first, later = [], []
        for i in range(decisions):
            started = time.perf_counter()
            rungs.decide(n_trials + i, 0, inside, 0.55)
            first.append(time.perf_counter() - started)
            started = time.perf_counter()
            rungs.decide(n_trials + i, 0, after, 0.56)
            later.append(time.perf_counter() - started)
        config = config_from_dict(
            {
                "trainable": "smptune.fakes:LearningCurveTrainable",
                "metric": "score",
                "n_trials": n_trials,
                "training": {"max_epochs": 27},
                "pruner": {"type": "median", "at": "epoch"},
                "hyperparameters": {"x": {"low": 0.0, "high": 1.0}},
            }
        )
        _fill_store(store, config.to_dict(), n_trials)
        rebuilt, median = [], []
        for _ in range(3):  # Optuna's median pruner on a study of the store's trials
            started = time.perf_counter()
            study = _study(store.trials("ref"), config, 1, by_epoch=True)
            optuna_prunes(config.pruner_spec.build(), study, config, {"x": 0.5}, {0: 0.2, 1: 0.4})
            rebuilt.append(time.perf_counter() - started)
        complete = store.complete_trials("ref", "max")
        for _ in range(decisions):  # the same rule on the steps' sorted sets
            started = time.perf_counter()
            should_prune_epoch(complete, config, {"x": 0.5}, {}, {0: (0.2, 0.4)}, 1)
            median.append(time.perf_counter() - started)
    return {
        "first": statistics.median(first),
        "later": statistics.median(later),
        "median": statistics.median(median),
        "rebuilt": statistics.median(rebuilt),
    }


def _fill_store(store: SweepStore, config: dict[str, Any], n_trials: int) -> None:
    """``n_trials`` complete trials of one 3-epoch run each, written in pipelined batches."""
    import json

    store.create_sweep("ref", config, [], 5, "/tmp", n_trials=n_trials)
    base = "smptune:sweep:ref"
    for start in range(0, n_trials, 1000):
        pipe = store.r.pipeline(transaction=False)
        for n in range(start, min(n_trials, start + 1000)):
            x = (n * 7919 % n_trials) / n_trials
            run = {"metrics": {"score": x, "loss": 1 - x}, "best_epoch": 3, "epochs_run": 3}
            pipe.hset(f"{base}:params", str(n), json.dumps({"x": x}))
            pipe.hset(f"{base}:folds:{n}", "0", json.dumps(run))
            pipe.hset(f"{base}:curve:{n}", mapping={f"0:{e}": x * e / 3 for e in (1, 2, 3)})
            pipe.hset(f"{base}:trial:{n}", mapping={"status": "complete", "score": x})
            pipe.zadd(f"{base}:scores", {str(n): x})
            for e in (1, 2, 3):  # the steps a complete trial's record adds (medians.py)
                pipe.zadd(f"{base}:step:{e - 1}", {str(n): x * e / 3})
        pipe.execute()


def rows(quick: bool) -> list[Row]:
    """Per strategy: device time to match random search's pick, and the pick's true score in
    random search's device time, each next to random search's own; the rung decision latency
    at 10,000 trials next to a per-epoch median decision's."""
    out = summary(measure(quick))
    base = out[0]
    result = []
    for r in out:
        note = f"never matched on {r['missed']} of {r['seeds']} seeds" if r["missed"] else ""
        result += [
            Row(
                f"multi-fidelity {r['strategy']}: device time to match random's pick",
                r["device_to_match"],
                base["device_total"],
                reference_label="random's whole sweep",
                max_ratio=1 / 3 if r["strategy"] == "asha" else None,
                note=note,
            ),
            Row(
                f"multi-fidelity {r['strategy']}: true score in random's device time",
                r["score_at_budget"],
                base["score_at_budget"],
                unit="",
                reference_label="random",
            ),
        ]
    latency = decision_latency(2_000 if quick else 10_000, 100 if quick else 500)
    n = "2,000" if quick else "10,000"
    result += [
        Row(
            f"rung decision at {n} trials, inside fold 0",
            latency["first"],
            latency["rebuilt"],
            reference_label="median per epoch, study rebuilt",
            max_ratio=0.01,
        ),
        Row(
            f"rung decision at {n} trials, after a fold",
            latency["later"],
            latency["rebuilt"],
            reference_label="median per epoch, study rebuilt",
            max_ratio=0.01,
        ),
        Row(
            f"median decision per epoch at {n} trials",
            latency["median"],
            latency["rebuilt"],
            reference_label="Optuna's median pruner, study rebuilt",
            max_ratio=0.01,
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
    out = summary(measure(args.quick, args.trials, args.repeats, args.workers))
    base = out[0]
    print(
        f"{'strategy':24} {'device s to match':>17} {'vs random':>9} {'score at budget':>15} "
        f"{'device s':>9} {'missed':>6}"
    )
    for r in out:
        print(
            f"{r['strategy']:24} {r['device_to_match']:17.2f} "
            f"{r['device_to_match'] / base['device_total']:8.3f}x {r['score_at_budget']:15.4f} "
            f"{r['device_total']:9.2f} {r['missed']:6d}"
        )


if __name__ == "__main__":
    main()
