"""Peers: smptune beside Ray Tune, Optuna and a plain process pool on the same workloads, in
one run.

Workload A (scheduling): trials × folds of a fixed ``sleep`` each, on ``workers`` concurrent
workers, through smptune's real workers and Redis and the plain pool (both as
:mod:`benchmarks.scheduling` runs them), Ray Tune (``ray.init(num_cpus=workers)``, a function
trainable with one CPU that sleeps its folds in a row and reports) and Optuna (``workers``
processes, each running ``study.optimize`` for its share of the trials on a
``JournalStorage`` over ``JournalRedisBackend``, on an embedded Redis as smptune's). Each is
measured warm, against the ideal trials × folds × sleep / workers: its makespan, and its
per-trial overhead, (makespan − ideal) × workers / trials.

Workload B (multi-fidelity): the simulated learning-curve objective of
:mod:`benchmarks.multi_fidelity` (:class:`smptune.fakes.LearningCurveTrainable`, epochs of a
short sleep, the same noise) under ASHA with random sampling in each: smptune's ``asha``
pruner, Ray's ``ASHAScheduler`` and Optuna's ``SuccessiveHalvingPruner`` with its
``RandomSampler``, the rungs at the same epochs (smptune's ``min_resource: auto``, reduction
factor 3). A peer's trial trains its folds one after another and reports after every epoch
at step = epochs trained so far, the mean over its folds so far at their best epoch so far
(inside fold 0: fold 0's best so far, which is what smptune's rungs read). Per strategy,
against smptune's random search with full training on the same seed: device time (epochs
× the epoch's duration) until its pick is as good, in true score, as random search's final
pick, and its pick's true score once it has spent random search's device time.

Ray Tune is optional (``pip install smptune[peers]``); a missing peer is a row that says so.
The quick form never starts Ray.

    python -m benchmarks.peers [--quick]
"""

from __future__ import annotations

import importlib
import importlib.util
import math
import multiprocessing as mp
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
from optuna.storages.journal import JournalRedisBackend

from benchmarks.harness import clean_env, run_alone, start_workers, stop
from benchmarks.multi_fidelity import (
    TRIALS_FACTOR,
    Outcome,
    device_to_reach,
    run_sweep,
    score_at,
    trajectory,
)
from benchmarks.scheduling import pool_makespan, smptune_makespan
from benchmarks.table import Row
from smptune.fakes import LearningCurveTrainable
from smptune.queue.embedded_redis import EmbeddedRedis
from smptune.records import TrialRecord, TrialStatus
from smptune.trainable import FoldContext, SweepSettings

#: What a row of a missing optional peer says.
NOT_INSTALLED = "not installed: pip install smptune[peers]"
#: ASHA's reduction factor in every peer (smptune's default).
REDUCTION_FACTOR = 3
#: Ray Tune's wall-clock budget in workload B (``TuneConfig(time_budget_s=...)``), and the
#: seeds it runs: on 2 shared cores Ray started about one short trial every 3-4 s, so the full
#: form's 3 × 360 trials would take most of an hour.
RAY_BUDGET_S = 150.0
RAY_SEEDS = 1


@dataclass(frozen=True)
class SleepShape:
    """Workload A: ``trials`` × ``folds`` sleeps of ``fold_s`` on ``workers`` workers."""

    trials: int
    folds: int
    fold_s: float
    workers: int

    @property
    def ideal(self) -> float:
        return self.trials * self.folds * self.fold_s / self.workers


@dataclass(frozen=True)
class CurveShape:
    """Workload B: random search's ``trials`` (ASHA gets :data:`TRIALS_FACTOR` times as
    many) of ``folds`` runs of ``epochs`` epochs of ``epoch_s``, on ``workers`` workers, over
    ``repeats`` seeds; the noise of :mod:`benchmarks.multi_fidelity`."""

    trials: int
    folds: int
    epochs: int
    epoch_s: float
    repeats: int
    workers: int = 2
    noise: float = 0.01
    early_noise: float = 0.1
    fold_noise: float = 0.01
    run_noise: float = 0.02

    @property
    def asha_trials(self) -> int:
        return self.trials * TRIALS_FACTOR["asha"]

    @property
    def min_resource(self) -> int:
        """The first rung, smptune's ``min_resource: auto``."""
        return max(1, round(self.epochs / REDUCTION_FACTOR))

    def noise_params(self) -> dict[str, float]:
        return {
            "epoch_s": self.epoch_s,
            "noise": self.noise,
            "early_noise": self.early_noise,
            "fold_noise": self.fold_noise,
            "run_noise": self.run_noise,
        }


@dataclass(frozen=True)
class Shapes:
    sleep: SleepShape
    curves: CurveShape


def shapes(quick: bool) -> Shapes:
    if quick:
        return Shapes(SleepShape(8, 3, 0.1, 4), CurveShape(4, 2, 9, 0.005, repeats=1))
    return Shapes(SleepShape(48, 3, 0.5, 4), CurveShape(30, 3, 27, 0.01, repeats=3))


def missing(module: str) -> str | None:
    """:data:`NOT_INSTALLED` when ``module`` cannot be imported, else None."""
    try:
        found = importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:  # its parent package is missing
        found = False
    return None if found else NOT_INSTALLED


def _quiet_optuna() -> None:
    """No log line per trial, no warning that the Redis journal is experimental."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)


# --- workload A: sleeps ---------------------------------------------------------------------


def _optuna_sleeper(
    url: str, study: str, share: int, fold_s: float, folds: int, ready: Any, go: Any, done: Any
) -> None:
    """One Optuna worker process: load the study, wait for the start, run its share."""
    _quiet_optuna()
    storage = optuna.storages.JournalStorage(JournalRedisBackend(url))
    loaded = optuna.load_study(study_name=study, storage=storage)

    def objective(trial: optuna.Trial) -> float:
        trial.suggest_float("x", 0.0, 1.0)
        for _ in range(folds):
            time.sleep(fold_s)
        return 0.0

    ready.put(True)
    go.wait()
    loaded.optimize(objective, n_trials=share)
    done.put(True)


def optuna_sleep_makespan(shape: SleepShape) -> float:
    """Seconds from the start signal to the last Optuna process's last trial, processes up and
    connected to the journal in Redis."""
    _quiet_optuna()
    context = mp.get_context("spawn")
    ready, done, go = context.Queue(), context.Queue(), context.Event()
    shares = [len(range(w, shape.trials, shape.workers)) for w in range(shape.workers)]
    with EmbeddedRedis() as redis:
        storage = optuna.storages.JournalStorage(JournalRedisBackend(redis.url))
        optuna.create_study(
            study_name="sleep", storage=storage, sampler=optuna.samplers.RandomSampler()
        )
        args = (redis.url, "sleep")
        pool = [
            context.Process(
                target=_optuna_sleeper,
                args=(*args, share, shape.fold_s, shape.folds, ready, go, done),
            )
            for share in shares
        ]
        for process in pool:
            process.start()
        for _ in pool:
            ready.get(timeout=120)
        started = time.monotonic()
        go.set()
        for _ in pool:
            done.get(timeout=shape.ideal * shape.workers + 120)
        makespan = time.monotonic() - started
        for process in pool:
            process.join(30)
        trials = optuna.load_study(study_name="sleep", storage=storage).get_trials()
    assert sum(t.state == optuna.trial.TrialState.COMPLETE for t in trials) == shape.trials
    return makespan


def _ray() -> tuple[Any, Any]:
    """``ray`` and ``ray.tune``, imported on demand (an optional peer)."""
    return importlib.import_module("ray"), importlib.import_module("ray.tune")


def ray_sleep_makespan(shape: SleepShape, tmp: Path) -> float:
    """Seconds ``Tuner.fit()`` takes for the sleep trials, Ray started and warmed up by a fit of
    ``workers`` empty trials."""
    _, tune = _ray()

    def trainable(config: Mapping[str, Any]) -> None:
        for _ in range(int(config["folds"])):
            time.sleep(float(config["fold_s"]))
        tune.report({"score": float(config["x"])})

    def fit(trials: int, fold_s: float, name: str) -> float:
        tuner = tune.Tuner(
            tune.with_resources(trainable, {"cpu": 1}),
            param_space={"x": tune.uniform(0.0, 1.0), "folds": shape.folds, "fold_s": fold_s},
            tune_config=tune.TuneConfig(num_samples=trials),
            run_config=tune.RunConfig(name=name, storage_path=str(tmp), verbose=0),
        )
        started = time.monotonic()
        grid = tuner.fit()
        makespan = time.monotonic() - started
        assert grid.num_errors == 0 and len(grid) == trials, grid.errors
        return makespan

    fit(shape.workers, 0.0, "warm-up")
    return fit(shape.trials, shape.fold_s, "sleep")


def sleep_rows(shape: SleepShape, quick: bool) -> list[Row]:
    """Each peer's makespan against the ideal, and its per-trial overhead."""
    head = f"peers A {shape.trials}x{shape.folds}x{shape.fold_s:g} s, {shape.workers} workers:"
    makespans: dict[str, float | None] = {}
    notes: dict[str, str] = {}
    makespans["smptune"] = smptune_makespan(shape.trials, shape.folds, shape.fold_s, shape.workers)
    makespans["plain pool"] = pool_makespan(shape.trials, shape.folds, shape.fold_s, shape.workers)
    makespans["optuna journal-redis"] = optuna_sleep_makespan(shape)
    ray_missing = missing("ray.tune")
    if quick:
        makespans["ray tune"], notes["ray tune"] = None, "not run in the quick form"
    elif ray_missing:
        makespans["ray tune"], notes["ray tune"] = None, ray_missing
    else:
        with tempfile.TemporaryDirectory() as tmp, _ray_session(shape.workers):
            makespans["ray tune"] = ray_sleep_makespan(shape, Path(tmp))
    out = []
    for peer, makespan in makespans.items():
        note = notes.get(peer, "")
        out.append(Row(f"{head} {peer} makespan", makespan, shape.ideal, "s", "ideal", note=note))
        overhead = (
            None if makespan is None else (makespan - shape.ideal) * shape.workers / shape.trials
        )
        out.append(Row(f"{head} {peer} overhead per trial", overhead, note=note))
    return out


class _RaySession:
    """``ray.init(num_cpus=...)`` for a ``with`` block, quiet, ``ray.shutdown()`` after."""

    def __init__(self, cpus: int) -> None:
        self.cpus = cpus

    def __enter__(self) -> None:
        ray, _ = _ray()
        ray.init(
            num_cpus=self.cpus,
            include_dashboard=False,
            log_to_driver=False,
            configure_logging=False,
        )

    def __exit__(self, *exc: object) -> None:
        ray, _ = _ray()
        ray.shutdown()


def _ray_session(cpus: int) -> _RaySession:
    return _RaySession(cpus)


# --- workload B: learning curves under ASHA -------------------------------------------------


@dataclass(frozen=True)
class PeerTrial:
    """One peer trial as the trajectory needs it: when it ended, what it trained, its score
    (None: pruned)."""

    number: int
    params: Mapping[str, float]
    finished: float
    epochs_per_fold: tuple[int, ...]
    score: float | None

    def record(self) -> TrialRecord:
        """As smptune's :class:`TrialRecord`, for :func:`benchmarks.multi_fidelity.trajectory`."""
        status = TrialStatus.PRUNED if self.score is None else TrialStatus.COMPLETE
        folds = {k: {"epochs_run": e} for k, e in enumerate(self.epochs_per_fold)}
        return TrialRecord(
            self.number, status, dict(self.params), folds, finished=self.finished, score=self.score
        )


@dataclass
class _FoldReporter:
    """One fold's ``FoldContext.report`` and ``should_stop``: passes the step and value on to
    the peer and remembers whether it pruned."""

    report: Callable[[int, float], bool]
    offset: int
    bests: list[float]
    best: float = -math.inf
    stopped: bool = False

    def on_epoch(self, epoch: int, metrics: Mapping[str, float]) -> None:
        self.best = max(self.best, float(metrics["score"]))
        self.stopped = self.report(self.offset + epoch, statistics.mean([*self.bests, self.best]))

    def should_stop(self) -> bool:
        return self.stopped


def train_curves(
    shape: CurveShape,
    sweep_id: str,
    number: int,
    params: Mapping[str, float],
    report: Callable[[int, float], bool],
) -> tuple[tuple[int, ...], float | None]:
    """One trial of the learning-curve trainable, fold after fold: ``report(step, value)``
    after each epoch (step: epochs trained so far; value: the mean over its folds so far at
    their best epoch so far), which returns whether the peer prunes it. Epochs per fold, and
    the CV score (None when pruned)."""
    trainable = LearningCurveTrainable()
    settings = SweepSettings(0, "score", "max", training={"max_epochs": shape.epochs})
    full = {**params, **shape.noise_params()}
    bests: list[float] = []
    epochs: list[int] = []
    for fold in range(shape.folds):
        fold_report = _FoldReporter(report, fold * shape.epochs, bests)
        context = FoldContext(
            sweep_id,
            number,
            fold,
            shape.folds,
            settings,
            should_stop=fold_report.should_stop,
            report=fold_report.on_epoch,
        )
        result = trainable.train_fold(full, context)
        epochs.append(result.epochs_run)
        if fold_report.stopped:
            return tuple(epochs), None
        bests.append(result.metrics["score"])
    return tuple(epochs), statistics.mean(bests)


def _optuna_curves(url: str, study: str, share: int, shape: CurveShape, seed: int) -> None:
    """One Optuna worker process of workload B: its share of the study's trials."""
    _quiet_optuna()
    storage = optuna.storages.JournalStorage(JournalRedisBackend(url))
    loaded = optuna.load_study(
        study_name=study,
        storage=storage,
        sampler=optuna.samplers.RandomSampler(seed=seed),
        pruner=optuna.pruners.SuccessiveHalvingPruner(
            min_resource=shape.min_resource, reduction_factor=REDUCTION_FACTOR
        ),
    )

    def objective(trial: optuna.Trial) -> float:
        params = {k: trial.suggest_float(k, 0.0, 1.0) for k in ("x", "y", "z")}

        def report(step: int, value: float) -> bool:
            trial.report(value, step)
            return trial.should_prune()

        epochs, score = train_curves(shape, study, trial.number, params, report)
        trial.set_user_attr("epochs", list(epochs))
        trial.set_user_attr("finished", time.time())
        if score is None:
            raise optuna.TrialPruned()
        return score

    loaded.optimize(objective, n_trials=share)


def optuna_curves(url: str, shape: CurveShape, seed: int) -> list[PeerTrial]:
    """Optuna's random sampler and successive-halving pruner, ``workers`` processes."""
    _quiet_optuna()
    study = f"curves-{seed}"
    storage = optuna.storages.JournalStorage(JournalRedisBackend(url))
    optuna.create_study(study_name=study, storage=storage, direction="maximize")
    context = mp.get_context("spawn")
    n = shape.asha_trials
    pool = [
        context.Process(
            target=_optuna_curves,
            args=(url, study, len(range(w, n, shape.workers)), shape, 1000 * seed + w),
        )
        for w in range(shape.workers)
    ]
    for process in pool:
        process.start()
    for process in pool:
        process.join()
        assert process.exitcode == 0, process.exitcode
    out = []
    for t in optuna.load_study(study_name=study, storage=storage).get_trials():
        assert t.state in (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED), t
        score = t.value if t.state == optuna.trial.TrialState.COMPLETE else None
        epochs = tuple(t.user_attrs["epochs"])
        out.append(PeerTrial(t.number, t.params, t.user_attrs["finished"], epochs, score))
    return out


def ray_curves(shape: CurveShape, seed: int, tmp: Path) -> list[PeerTrial]:
    """Ray Tune's random search (``BasicVariantGenerator``) and ``ASHAScheduler``, for at
    most :data:`RAY_BUDGET_S` seconds: the trials that reported."""
    _, tune = _ray()
    from_search = importlib.import_module("ray.tune.search.basic_variant")
    schedulers = importlib.import_module("ray.tune.schedulers")
    total = shape.folds * shape.epochs
    sweep_id = f"ray-{seed}"

    def trainable(config: Mapping[str, Any]) -> None:
        number = int(tune.get_context().get_trial_id().rsplit("_", 1)[-1])
        params = {k: float(config[k]) for k in ("x", "y", "z")}
        trained: list[int] = []

        def report(step: int, value: float) -> bool:
            trained.append(step)
            tune.report({"score": value, "step": step, "wall": time.time()})
            return False  # ASHA stops the trial itself

        train_curves(shape, sweep_id, number, params, report)

    tuner = tune.Tuner(
        tune.with_resources(trainable, {"cpu": 1}),
        param_space={k: tune.uniform(0.0, 1.0) for k in ("x", "y", "z")},
        tune_config=tune.TuneConfig(
            metric="score",
            mode="max",
            num_samples=shape.asha_trials,
            time_budget_s=RAY_BUDGET_S,
            reuse_actors=True,
            search_alg=from_search.BasicVariantGenerator(random_state=seed),
            scheduler=schedulers.ASHAScheduler(
                max_t=total, grace_period=shape.min_resource, reduction_factor=REDUCTION_FACTOR
            ),
        ),
        run_config=tune.RunConfig(name=sweep_id, storage_path=str(tmp), verbose=0),
    )
    grid = tuner.fit()
    assert grid.num_errors == 0, grid.errors
    out = []
    for n, result in enumerate(grid):
        if "step" not in (result.metrics or {}):
            continue  # not started within the budget
        step = int(result.metrics["step"])
        epochs = tuple(
            min(shape.epochs, max(0, step - k * shape.epochs)) for k in range(shape.folds)
        )
        score = float(result.metrics["score"]) if step == total else None
        params = {k: float(result.config[k]) for k in ("x", "y", "z")}
        out.append(PeerTrial(n, params, float(result.metrics["wall"]), epochs, score))
    return out


def _outcome(path: list[tuple[float, float]], target: float, budget: float) -> Outcome:
    return Outcome(device_to_reach(path, target), score_at(path, budget), path[-1][0])


def curve_outcomes(
    shape: CurveShape, quick: bool
) -> tuple[dict[str, list[Outcome]], dict[str, str], dict[str, str]]:
    """Outcomes per strategy over the seeds, why a strategy did not run, and notes."""
    peers = ("smptune asha", "optuna successive halving", "ray tune asha")
    outcomes: dict[str, list[Outcome]] = {"smptune random (full training)": []}
    outcomes.update({name: [] for name in peers})
    skipped: dict[str, str] = {}
    notes: dict[str, str] = {}
    ray_missing = "not run in the quick form" if quick else missing("ray.tune")
    if ray_missing:
        skipped["ray tune asha"] = ray_missing
    sweep = {
        "trials": shape.trials,
        "folds": shape.folds,
        "epochs": shape.epochs,
        **shape.noise_params(),
    }
    env = clean_env()
    paths: dict[str, list[list[tuple[float, float]]]] = {name: [] for name in outcomes}
    with tempfile.TemporaryDirectory() as tmp_name, EmbeddedRedis() as redis:
        tmp = Path(tmp_name)
        supervisor = start_workers(redis.url, "--cpu", str(shape.workers), env=env)
        try:
            time.sleep(3)  # worker start-up is not part of any strategy's cost
            for seed in range(shape.repeats):
                for name, strategy in (
                    ("smptune random (full training)", "random (full training)"),
                    ("smptune asha", "asha"),
                ):
                    trials = run_sweep(redis.url, tmp, env, strategy, seed=seed, **sweep)
                    paths[name].append(trajectory(trials, shape.epochs, shape.epoch_s))
        finally:
            stop(supervisor)
        for seed in range(shape.repeats):
            trials = [t.record() for t in optuna_curves(redis.url, shape, seed)]
            paths["optuna successive halving"].append(
                trajectory(trials, shape.epochs, shape.epoch_s)
            )
        if not ray_missing:
            try:
                with _ray_session(shape.workers):
                    for seed in range(min(RAY_SEEDS, shape.repeats)):
                        ran = ray_curves(shape, seed, tmp)
                        trials = [t.record() for t in ran]
                        path = trajectory(trials, shape.epochs, shape.epoch_s)
                        if not path:
                            raise RuntimeError(f"no trial reported in {RAY_BUDGET_S:g} s")
                        paths["ray tune asha"].append(path)
                        notes["ray tune asha"] = (
                            f"seed 0 only, {RAY_BUDGET_S:g}-s budget: {len(ran)} of "
                            f"{shape.asha_trials} trials reported"
                        )
            except Exception as exc:  # report what happened rather than lose the other rows
                skipped["ray tune asha"] = f"failed: {type(exc).__name__}: {exc}"[:200]
    bases = paths["smptune random (full training)"]
    for name, runs in paths.items():
        for base, path in zip(bases, runs, strict=False):
            outcomes[name].append(_outcome(path, base[-1][1], base[-1][0]))
    return outcomes, skipped, notes


@dataclass(frozen=True)
class CurveSummary:
    """Means over the seeds of one strategy's outcomes."""

    device_to_match: float
    missed: int
    score_at_budget: float
    device_total: float
    seeds: int

    @classmethod
    def of(cls, runs: list[Outcome]) -> CurveSummary:
        """A seed where it never matched random's pick counts at its whole device time."""
        return cls(
            statistics.mean(
                o.device_total if math.isinf(o.device_to_match) else o.device_to_match for o in runs
            ),
            sum(1 for o in runs if math.isinf(o.device_to_match)),
            statistics.mean(o.score_at_budget for o in runs),
            statistics.mean(o.device_total for o in runs),
            len(runs),
        )


def curve_rows(shape: CurveShape, quick: bool) -> list[Row]:
    """Per strategy: device time to match random search's pick, and its pick's true score in
    random search's device time, next to random search's."""
    outcomes, skipped, notes = curve_outcomes(shape, quick)
    head = f"peers B {shape.folds}x{shape.epochs} epochs, {shape.repeats} seed(s):"
    base = CurveSummary.of(outcomes["smptune random (full training)"])
    out = []
    for name, runs in outcomes.items():
        if name in skipped:
            note = skipped[name]
            out += [Row(f"{head} {name}: device time to match random's pick", None, note=note)]
            out += [Row(f"{head} {name}: true score in random's device time", None, note=note)]
            continue
        s = CurveSummary.of(runs)
        missed = f"never matched on {s.missed} of {s.seeds} seed(s)" if s.missed else ""
        note = "; ".join(filter(None, [notes.get(name, ""), missed]))
        n = shape.trials if name == "smptune random (full training)" else shape.asha_trials
        figure = f"{head} {name}, {n} trials"
        out += [
            Row(
                f"{figure}: device time to match random's pick",
                s.device_to_match,
                base.device_total,
                reference_label="random's whole sweep",
                note=note,
            ),
            Row(
                f"{figure}: true score in random's device time",
                s.score_at_budget,
                base.score_at_budget,
                unit="",
                reference_label="random",
            ),
        ]
    return out


def rows(quick: bool) -> list[Row]:
    """Workload A's makespans and overheads, then workload B's multi-fidelity figures."""
    s = shapes(quick)
    return sleep_rows(s.sleep, quick) + curve_rows(s.curves, quick)


def main() -> None:
    run_alone(rows, __doc__, "smptune, the pool and Optuna only (no Ray), tiny shapes")


if __name__ == "__main__":
    main()
