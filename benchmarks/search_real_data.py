"""``python -m benchmarks.search_real_data``: successive halving on real learning curves.

The curves are real: :class:`smptune.fakes.RecordedCurvesTrainable` replays what the
built-in trainable recorded on StarDist's hand-labelled nuclei (``benchmarks/
record_curves.py``: 24 configurations of learning rate × architecture × loss, 3 folds of 15
epochs, the validation IoU after every epoch, each configuration's test IoU after training
on the whole train split), with their noisy early epochs and folds that differ. Every
strategy runs through real workers and a real Redis, an epoch a short sleep; device time is
counted in the seconds each configuration's epochs took when they were recorded.

Per strategy, over ``--seeds`` sweep seeds:

- complete trials (pruning must leave some: the best of each bracket finishes);
- device time until the sweep's pick (its best complete trial so far) is within 0.02, in
  CV score after full training, of random search's final pick (random search trains its
  configurations fully);
- the final pick's CV score after full training and its test IoU.

It also prints, for choosing how a rung reads a run, how well fold 0's score at each epoch
ranks the configurations by their full CV score (Spearman's ρ over the 24), read as the
epoch's own score and as the run's best score so far.

    python -m benchmarks.search_real_data [--seeds 3] [--trials 8]

In ``python -m benchmarks`` (``search_real_data``) it runs 3 seeds (quick: 1).
"""

from __future__ import annotations

import argparse
import math
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.harness import clean_env, start_workers, stop, submit, write_sweep
from benchmarks.table import Row
from smptune.fakes import RecordedCurvesTrainable, recorded_curves
from smptune.queue.embedded_redis import EmbeddedRedis
from smptune.queue.store import SweepStore
from smptune.records import TrialRecord, TrialStatus

REPLAY = "smptune.fakes:RecordedCurvesTrainable"
SPACE = {
    "learning_rate": {"distribution": "loguniform", "low": 1.0e-4, "high": 3.0e-2},
    "model_arch": ["Unet", "FPN"],
    "loss": ["dice", "focal"],
}
#: name -> (sampler, pruner, trials as a multiple of random search's)
STRATEGIES: dict[str, tuple[Any, Any, int]] = {
    "random (full training)": ("random", "none", 1),
    "asha": ("random", "asha", 4),
    "hyperband": ("random", "hyperband", 3),
    "tpe + asha": ({"type": "tpe", "n_startup_trials": 6}, "asha", 3),
    "asha, min_resource 1, no bootstrap": (
        "random",
        {"type": "asha", "min_resource": 1, "bootstrap_count": 0},
        4,
    ),
}
#: How close to random search's pick (CV after full training) counts as reaching it.
WITHIN = 0.02


@dataclass
class Outcome:
    """One sweep of one strategy."""

    complete: int
    trials: int
    device_s: float
    device_to_reach: float
    pick_cv: float
    pick_test: float


def epoch_seconds(params: dict[str, Any]) -> float:
    return float(RecordedCurvesTrainable.record(params)["epoch_s"])


def device_seconds(t: TrialRecord) -> float:
    """What a trial's epochs cost when they were recorded (partial run included)."""
    epochs = sum(int(run.get("epochs_run", 0)) for run in t.folds.values())
    epochs += t.partial.epochs if t.partial else 0
    return epochs * epoch_seconds(dict(t.params))


def trajectory(trials: list[TrialRecord]) -> list[tuple[float, dict[str, Any] | None]]:
    """``(device seconds spent, the pick's params)`` after each trial ends, in the order
    they ended; the pick is the complete trial with the best measured score so far."""
    out: list[tuple[float, dict[str, Any] | None]] = []
    spent, best = 0.0, None
    for t in sorted((t for t in trials if t.finished), key=lambda t: t.finished or 0.0):
        spent += device_seconds(t)
        complete = t.status is TrialStatus.COMPLETE and t.score is not None
        if complete and (best is None or (t.score or 0.0) > (best.score or -math.inf)):
            best = t
        out.append((spent, dict(best.params) if best else None))
    return out


def run_sweep(redis_url: str, tmp: Path, env: dict[str, str], name: str, **shape: Any) -> Any:
    sampler, pruner, factor = STRATEGIES[name]
    config = write_sweep(
        tmp / "real.yaml",
        name="real-curves",
        trainable=REPLAY,
        metric="iou",
        n_trials=shape["trials"] * factor,
        seed=shape["seed"],
        sampler=sampler,
        pruner=pruner,
        cv={"n_folds": 3},
        training={"max_epochs": 15, "early_stopping_patience": shape["patience"]},
        hyperparameters={**SPACE, "epoch_s": shape["epoch_s"]},
    )
    sweep_id = submit(config, redis_url, env, "--wait", "--artifacts", str(tmp))
    trials = SweepStore.from_url(redis_url).trials(sweep_id)
    failed = [t for t in trials if t.status is TrialStatus.FAILED]
    if failed:
        raise RuntimeError(f"{name}: {len(failed)} trials failed, the first: {failed[0].error}")
    return trials


def measure(seeds: int, trials: int, workers: int, patience: int) -> dict[str, list[Outcome]]:
    shape = {"trials": trials, "epoch_s": 0.005, "patience": patience}
    env = clean_env()
    outcomes: dict[str, list[Outcome]] = {name: [] for name in STRATEGIES}
    with tempfile.TemporaryDirectory() as tmp, EmbeddedRedis() as redis:
        supervisor = start_workers(redis.url, "--cpu", str(workers), env=env)
        try:
            time.sleep(3)  # worker start-up is not part of any strategy's cost
            for seed in range(seeds):
                swept = {
                    name: run_sweep(redis.url, Path(tmp), env, name, seed=seed, **shape)
                    for name in STRATEGIES
                }
                paths = {name: trajectory(t) for name, t in swept.items()}
                base = paths["random (full training)"][-1][1]
                target = RecordedCurvesTrainable.cv_score(base) if base else math.inf
                for name, path in paths.items():
                    reach = next(
                        (
                            spent
                            for spent, pick in path
                            if pick and RecordedCurvesTrainable.cv_score(pick) >= target - WITHIN
                        ),
                        math.inf,
                    )
                    pick = path[-1][1] if path else None
                    done = swept[name]
                    outcomes[name].append(
                        Outcome(
                            complete=sum(t.status is TrialStatus.COMPLETE for t in done),
                            trials=len(done),
                            device_s=path[-1][0] if path else 0.0,
                            device_to_reach=reach,
                            pick_cv=RecordedCurvesTrainable.cv_score(pick) if pick else math.nan,
                            pick_test=float(RecordedCurvesTrainable.record(pick)["test"]["iou"])
                            if pick
                            else math.nan,
                        )
                    )
        finally:
            stop(supervisor)
    return outcomes


def spearman(xs: list[float], ys: list[float]) -> float:
    def ranks(values: list[float]) -> list[float]:
        order = sorted(range(len(values)), key=values.__getitem__)
        out = [0.0] * len(values)
        for rank, i in enumerate(order):
            out[i] = float(rank)
        return out

    rx, ry = ranks(xs), ranks(ys)
    mx, my = statistics.fmean(rx), statistics.fmean(ry)
    cov = sum((a - mx) * (b - my) for a, b in zip(rx, ry, strict=True))
    var = math.sqrt(sum((a - mx) ** 2 for a in rx) * sum((b - my) ** 2 for b in ry))
    return cov / var if var else math.nan


def rank_agreement() -> list[tuple[int, float, float]]:
    """``(epoch, ρ of fold 0's epoch score, ρ of fold 0's best so far)`` against the full CV
    score, over the recorded configurations."""
    configs = recorded_curves()["configs"]
    final = [sum(max(f) for f in c["folds"]) / len(c["folds"]) for c in configs]
    out = []
    for epoch in range(1, int(recorded_curves()["max_epochs"]) + 1):
        raw = [c["folds"][0][epoch - 1] for c in configs]
        best = [max(c["folds"][0][:epoch]) for c in configs]
        out.append((epoch, spearman(raw, final), spearman(best, final)))
    return out


def rows(quick: bool) -> list[Row]:
    """Per strategy: device time until its pick is within 0.02 of random search's, next to
    random search's whole device time (ASHA and TPE + ASHA: target ≤ 1/3), and its complete
    trials (never 0)."""
    outcomes = measure(1 if quick else 3, 8, 2, 0)
    base = statistics.fmean(o.device_s for o in outcomes["random (full training)"])
    out = []
    for name, runs in outcomes.items():
        missed = sum(1 for o in runs if math.isinf(o.device_to_reach))
        reach = statistics.fmean(
            o.device_s if math.isinf(o.device_to_reach) else o.device_to_reach for o in runs
        )
        out.append(
            Row(
                f"real curves {name}: device time to within 0.02 of random's pick",
                reach,
                base,
                reference_label="random's whole sweep",
                max_ratio=1 / 3 if name in ("asha", "tpe + asha") else None,
                note=f"never reached on {missed} of {len(runs)} seeds" if missed else "",
            )
        )
        out.append(
            Row(
                f"real curves {name}: fewest complete trials of a seed",
                min(o.complete for o in runs),
                None,
                unit="",
            )
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--trials", type=int, default=8, help="random search's trials")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--patience", type=int, default=0, help="training.early_stopping_patience (0: off)"
    )
    args = parser.parse_args()
    print("fold 0's epoch against the full CV score (Spearman's rho over the configurations)")
    print("| epoch | epoch's own score | best so far |\n| --- | --- | --- |")
    for epoch, raw, best in rank_agreement():
        print(f"| {epoch} | {raw:.2f} | {best:.2f} |")
    outcomes = measure(args.seeds, args.trials, args.workers, args.patience)
    base = statistics.fmean(o.device_s for o in outcomes["random (full training)"])
    print(f"\n{args.seeds} seeds; random search: {args.trials} trials, {base:.0f} device s")
    print(
        "| strategy | trials | complete | device s to within 0.02 of random's pick | "
        "vs random's device s | pick's CV | pick's test IoU | never reached |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for name, runs in outcomes.items():
        missed = sum(1 for o in runs if math.isinf(o.device_to_reach))
        reach = statistics.fmean(
            o.device_s if math.isinf(o.device_to_reach) else o.device_to_reach for o in runs
        )
        per_seed = "/".join(str(o.complete) for o in runs)
        print(
            f"| {name} | {statistics.fmean(o.trials for o in runs):.0f} | {per_seed} | "
            f"{reach:.0f} | {reach / base:.2f} | {statistics.fmean(o.pick_cv for o in runs):.3f} "
            f"| {statistics.fmean(o.pick_test for o in runs):.3f} | {missed} of {len(runs)} |"
        )


if __name__ == "__main__":
    main()
