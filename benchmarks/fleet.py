"""Fleet: what one Redis costs a fleet of workers as its sweep grows — the adaptive ask's
latency with many askers at once, and the Redis commands, bytes and time of each recorded
epoch under the per-epoch median pruner, at two sweep sizes.

Per size (1,000 and 10,000 recorded trials; quick: 200 and 1,000), against one embedded Redis:
a TPE sweep with ``pruner: {type: median, at: epoch}`` is submitted through ``producer
submit`` (no workers take its messages), then filled with complete trials through the store's
own writes, as a worker makes them (``trial_started``, ``set_params_once``, ``record_epoch``
per epoch, ``record_fold`` per run, ``finish_trial``), by a few processes at once. Measured:

- the ask: :data:`ASKERS` spawned processes (32; quick 8: each holds an interpreter with
  Optuna and, while it asks, the sweep's trials, about 150 MB at 10,000, so 32 fit this
  machine) each read the sweep into their view of the study (a worker's first ask does; timed
  for the single asker), then start fresh trials together and time ``choose_params``, the
  worker's adaptive ask (p50, p99); then one asker alone. On 2 cores the latencies are
  CPU-bound (the TPE fit), hence the single asker. An ask that raises is a failed trial;
- an epoch: a real :class:`~smptune.worker.trial_run.TrialRun` (lease held, its heartbeat kept out
  of the window) of :class:`EpochProbe`, a trainable that reports every epoch above every
  recorded curve (never pruned); around each run's epoch reports, ``INFO commandstats``
  calls (commands run inside Lua scripts included, INFO's own left out) and ``INFO stats``
  network bytes in + out (less what the INFO calls cost), per epoch, and the reports' time;
- the ratio of each per-epoch cost at the larger size to that at the smaller (target ≤ 1.2)
  and the trials failed (asks, and the probe not ending complete; must be 0).

    python -m benchmarks.fleet [--quick]
"""

from __future__ import annotations

import itertools
import multiprocessing
import os
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis

from benchmarks.harness import clean_env, run_alone, submit, write_sweep
from benchmarks.table import Row
from smptune.fakes import LearningCurveTrainable, best_epoch_result
from smptune.queue.embedded_redis import EmbeddedRedis
from smptune.queue.store import SweepStore
from smptune.trainable import FoldContext, FoldResult

ASKERS = 32
QUICK_ASKERS = 8
#: Asks per asker in the concurrent round, and the single asker's asks.
ASKS_EACH = 2
SINGLE_ASKS = 5
#: Epochs per run (``training.max_epochs``) of every trial, recorded and probed.
EPOCHS = 10
QUICK_EPOCHS = 3
N_FOLDS = 2
#: Processes that fill the store.
FILLERS = 2
MAX_RATIO = 1.2
PROBE = "benchmarks.fleet:EpochProbe"
WORKER = "fleet@bench"


@dataclass
class Form:
    """One form of the benchmark: the two sweep sizes, the askers, the epochs per run."""

    sizes: tuple[int, int]
    askers: int
    epochs: int


FULL = Form((1_000, 10_000), ASKERS, EPOCHS)
QUICK = Form((200, 1_000), QUICK_ASKERS, QUICK_EPOCHS)


@dataclass
class Asks:
    """One round of asks: each one's seconds, and the errors of those that raised."""

    seconds: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    #: Each asker's first read of the sweep into its view (before the round).
    view_built: list[float] = field(default_factory=list)

    def quantile(self, q: float) -> float | None:
        if not self.seconds:
            return None
        ordered = sorted(self.seconds)
        return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


@dataclass
class EpochCost:
    """Redis commands, network bytes and seconds over ``epochs`` epoch reports."""

    epochs: int = 0
    commands: float = 0.0
    net_bytes: float = 0.0
    seconds: float = 0.0
    status: str = ""

    def per_epoch(self) -> EpochCost:
        n = max(self.epochs, 1)
        return EpochCost(1, self.commands / n, self.net_bytes / n, self.seconds / n, self.status)


@dataclass
class Size:
    """What one sweep size measured."""

    trials: int
    concurrent: Asks
    single: Asks
    epoch: EpochCost

    @property
    def failed(self) -> int:
        probe_failed = self.epoch.status != "complete"
        return len(self.concurrent.errors) + len(self.single.errors) + probe_failed


# -- Redis's own counters -----------------------------------------------------------------
@dataclass
class Counters:
    """``INFO commandstats`` calls (INFO's own left out) and network bytes in + out."""

    commands: int
    net_bytes: int


def counters(client: redis.Redis) -> Counters:
    info = client.info("commandstats", "stats")
    calls = sum(
        v["calls"]
        for k, v in info.items()
        if k.startswith("cmdstat_") and k != "cmdstat_info" and isinstance(v, dict)
    )
    return Counters(calls, info["total_net_input_bytes"] + info["total_net_output_bytes"])


class EpochMeter:
    """Counts what the epoch reports between :meth:`start` and :meth:`stop` cost Redis."""

    def __init__(self, url: str) -> None:
        self.client = redis.Redis.from_url(url)
        one, two, three = (counters(self.client) for _ in range(3))
        #: bytes that a pair of INFO calls adds to the next reading
        self.overhead = min(two.net_bytes - one.net_bytes, three.net_bytes - two.net_bytes)
        self.cost = EpochCost()
        self._at: Counters | None = None

    def start(self) -> None:
        self._at = counters(self.client)

    def stop(self, epochs: int, seconds: float) -> None:
        assert self._at is not None
        now = counters(self.client)
        self.cost.epochs += epochs
        self.cost.commands += now.commands - self._at.commands
        self.cost.net_bytes += now.net_bytes - self._at.net_bytes - self.overhead
        self.cost.seconds += seconds


#: Set in the process that runs the probe trial.
_METER: EpochMeter | None = None


class EpochProbe(LearningCurveTrainable):
    """A learning-curve trainable whose runs report every epoch at 0.95, above every
    recorded curve (the median pruner never stops it), metered by :data:`_METER`."""

    def train_fold(self, params: Mapping[str, Any], context: FoldContext) -> FoldResult:
        start = time.perf_counter()
        epochs = int(context.settings.training.get("max_epochs", 10))
        history = [{"score": 0.95, "loss": 0.05} for _ in range(epochs)]
        if _METER is not None:
            _METER.start()
        reporting = 0.0
        for epoch, metrics in enumerate(history, 1):
            began = time.perf_counter()
            context.report(epoch, metrics)
            reporting += time.perf_counter() - began
        if _METER is not None:
            _METER.stop(epochs, reporting)
        return best_epoch_result(history, context, start)


# -- the sweep ----------------------------------------------------------------------------
def _store_and_config(url: str, sweep_id: str) -> tuple[SweepStore, Any]:
    store = SweepStore.from_url(url)
    return store, store.get_sweep(sweep_id).config


def fill(url: str, sweep_id: str, start: int, stop: int) -> None:
    """Trials ``start`` to ``stop`` recorded complete, each written as a worker writes it:
    parameters of the sweep's random sample, curves of the learning-curve trainable."""
    import random

    from smptune.messages import TrialRequest
    from smptune.search.distributions import with_defaults
    from smptune.search.sampling import sample_configurations
    from smptune.search.scoring import trial_score

    store, config = _store_and_config(url, sweep_id)
    samples = sample_configurations(config.hyperparameters, stop, config.seed)
    for n in range(start, stop):
        params = with_defaults(config.hyperparameters, EpochProbe.defaults, samples[n])
        request = TrialRequest(id=f"{sweep_id}-{n}", group=f"{sweep_id}-group", group_index=n)
        store.trial_started(sweep_id, n, WORKER, "", request, share="cpus 0-1 (2 threads)")
        store.set_params_once(sweep_id, n, params)
        done: dict[int, dict[str, Any]] = {}
        for fold in range(config.cv_settings.n_folds):
            offset = random.Random(f"{n}/{fold}").gauss(0.0, 0.02)
            curve = [
                LearningCurveTrainable.true_score(params, e) + offset
                for e in range(1, config.max_epochs + 1)
            ]
            for epoch, value in enumerate(curve, 1):
                store.record_epoch(sweep_id, n, fold, epoch, value, WORKER)
            best = max(range(len(curve)), key=curve.__getitem__)
            result = FoldResult(
                {"score": curve[best], "loss": 1 - curve[best]}, best + 1, len(curve), 0.01
            ).to_dict()
            result.update(fold=fold, repeat=0)
            store.record_fold(sweep_id, n, fold, result)
            done[fold] = result
        mean, std, unstable = trial_score(done, config.scoring)
        record = {"status": "complete", "score": mean, "score_std": std, "unstable": unstable}
        store.finish_trial(sweep_id, n, {**record, "duration_s": 0.02})


def ask_round(url: str, sweep_id: str, numbers: list[int], go: Any, out: Any) -> None:
    """Start each of ``numbers`` and ask the sweep's sampler for it, once ``go`` is set;
    put the round's :class:`Asks` on ``out``."""
    from smptune.messages import TrialRequest
    from smptune.queue.study_feed import study_view
    from smptune.trainable import load_trainable
    from smptune.worker.asking import choose_params

    store, config = _store_and_config(url, sweep_id)
    defaults = load_trainable(config.trainable).defaults
    asks = Asks()
    began = time.perf_counter()  # a worker's first ask builds its view of the study
    study_view(store, sweep_id, config, config.cv_settings.n_randoms)
    asks.view_built.append(time.perf_counter() - began)
    go.wait()
    for n in numbers:
        store.trial_started(sweep_id, n, WORKER, "", TrialRequest(id=f"{sweep_id}-{n}"))
        began = time.perf_counter()
        try:
            choose_params(store, config, sweep_id, n, defaults)
        except Exception as exc:  # a failed trial
            asks.errors.append(f"{type(exc).__name__}: {exc}")
        else:
            asks.seconds.append(time.perf_counter() - began)
    out.put(asks)


def probe_epochs(url: str, sweep_id: str, trial: int, out: Any) -> None:
    """Run ``trial`` as a worker does (lease, TrialRun) with :class:`EpochProbe` metered;
    put its :class:`EpochCost` on ``out``."""
    global _METER
    from smptune.messages import TrialRequest
    from smptune.queue.lease import LEASE_TTL_ENV
    from smptune.trainable import ALLOWED_TRAINABLES_ENV
    from smptune.worker.trial_run import TrialRun

    os.environ[ALLOWED_TRAINABLES_ENV] = PROBE
    os.environ[LEASE_TTL_ENV] = "600"  # no heartbeat inside the window
    store, config = _store_and_config(url, sweep_id)
    best = {"x": 0.7, "y": 0.35, "z": 0.5}
    store.set_params_once(sweep_id, trial, {**EpochProbe.defaults, **best})
    _METER = EpochMeter(url)
    lease = store.lease(sweep_id, trial, host="bench")
    assert lease.try_acquire()
    try:
        outcome = TrialRun(store, config, lease, sweep_id, trial, WORKER).run(TrialRequest())
    finally:
        lease.release()
    _METER.cost.status = str(outcome["status"])
    out.put(_METER.cost)


def _spawned(ctx: Any, target: Any, *args: Any) -> Any:
    process = ctx.Process(target=target, args=args)
    process.start()
    return process


def _ask(ctx: Any, url: str, sweep_id: str, rounds: list[list[int]]) -> Asks:
    """One asker process per list of ``rounds``, asking at once; their asks together."""
    go, out = ctx.Event(), ctx.Queue()
    processes = [_spawned(ctx, ask_round, url, sweep_id, nums, go, out) for nums in rounds]
    go.set()
    asks = Asks()
    for _ in processes:
        got = out.get(timeout=3600)
        asks.seconds += got.seconds
        asks.errors += got.errors
        asks.view_built += got.view_built
    for p in processes:
        p.join()
    return asks


def measure(trials: int, form: Form) -> Size:
    """Submit a sweep, record ``trials`` trials, then time asks and meter epochs."""
    ctx = multiprocessing.get_context("spawn")
    concurrent = form.askers * ASKS_EACH
    n_trials = trials + concurrent + SINGLE_ASKS + 1
    env = clean_env()
    with tempfile.TemporaryDirectory() as tmp_name, EmbeddedRedis() as server:
        tmp = Path(tmp_name)
        config = write_sweep(
            tmp / "fleet.yaml",
            name="fleet",
            trainable=PROBE,
            n_trials=n_trials,
            sampler="tpe",
            pruner={"type": "median", "at": "epoch"},
            cv={"n_folds": N_FOLDS},
            training={"max_epochs": form.epochs},
            hyperparameters={k: {"low": 0.0, "high": 1.0} for k in ("x", "y", "z")},
        )
        url = server.url
        sweep_id = submit(config, url, env, "--artifacts", str(tmp))
        bounds = [trials * i // FILLERS for i in range(FILLERS + 1)]
        fillers = [_spawned(ctx, fill, url, sweep_id, a, b) for a, b in itertools.pairwise(bounds)]
        for p in fillers:
            p.join()
            assert p.exitcode == 0, "a filler failed"
        assert SweepStore.from_url(url).finished_count(sweep_id) == trials
        first = trials
        rounds = [
            [first + a + form.askers * i for i in range(ASKS_EACH)] for a in range(form.askers)
        ]
        many = _ask(ctx, url, sweep_id, rounds)
        first += concurrent
        single = _ask(ctx, url, sweep_id, [list(range(first, first + SINGLE_ASKS))])
        out = ctx.Queue()
        probe = _spawned(ctx, probe_epochs, url, sweep_id, first + SINGLE_ASKS, out)
        cost = out.get(timeout=3600)
        probe.join()
    return Size(trials, many, single, cost)


def rows(quick: bool) -> list[Row]:
    """Ask latency per size (many askers, one), per-epoch cost per size and its ratio, and
    the trials failed."""
    form = QUICK if quick else FULL
    small, large = (measure(n, form) for n in form.sizes)
    out: list[Row] = []
    for size in (small, large):
        head = f"fleet {size.trials:,} trials:"
        one = size.single.quantile(0.5)
        for label, q in (("p50", 0.5), ("p99", 0.99)):
            out.append(
                Row(
                    f"{head} ask {label}, {form.askers} askers",
                    size.concurrent.quantile(q),
                    one,
                    reference_label="1 asker's p50",
                    note=f"{len(size.concurrent.seconds)} asks" if label == "p50" else "",
                )
            )
        out.append(Row(f"{head} ask p50, 1 asker", one))
        built = size.single.view_built
        out.append(
            Row(
                f"{head} a worker's first read of the study",
                built[0] if built else None,
                note="once per worker process; its asks then read what changed",
            )
        )
    base = small.epoch.per_epoch()
    for size in (small, large):
        cost = size.epoch.per_epoch()
        head = f"fleet {size.trials:,} trials: per epoch,"
        compared = size is large
        for name, unit, value, reference in (
            ("Redis commands", "cmd", cost.commands, base.commands),
            ("Redis bytes in + out", "B", cost.net_bytes, base.net_bytes),
            ("wall time", "s", cost.seconds, base.seconds),
        ):
            out.append(
                Row(
                    f"{head} {name}",
                    value,
                    reference if compared else None,
                    unit,
                    f"at {small.trials:,} trials" if compared else "",
                    MAX_RATIO if compared else None,
                )
            )
    failed = small.failed + large.failed
    errors = [*small.concurrent.errors, *large.concurrent.errors]
    note = f"first: {errors[0][:120]}" if errors else "must be 0"
    out.append(Row("fleet trials failed (asks, epoch probes)", failed, unit="", note=note))
    return out


def main() -> None:
    run_alone(rows, __doc__, "200 and 1,000 trials, 8 askers, 3 epochs a run")


if __name__ == "__main__":
    # run as ``benchmarks.fleet``, the module the spawned processes and the probe load
    from benchmarks import fleet

    fleet.main()
