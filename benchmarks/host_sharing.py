"""Host sharing: the same CPU sweep with one worker and with two on this machine, each
worker pinned to its share of the cores (``--cpus-per-worker auto``, the default) against
every worker on every core with a thread per core each (``--cpus-per-worker all``, how
workers ran before shares existed).

The trainable trains a small convolutional net on CPU for a fixed number of steps per fold
(as the quickstart's small Unet does, torch's threads matter); the makespan runs from the
sweep's ``created`` to its ``finalize_started`` with the workers warm (every pool child has run
a fold, so torch is imported). Target: two workers take at most as long as one; the old
behaviour's ratio is printed beside it.

    python -m benchmarks.host_sharing [--quick]
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from benchmarks.harness import clean_env, finalized, kill, run_alone, start_workers, submit
from benchmarks.harness import write_sweep as _write_sweep
from benchmarks.table import Row
from smptune.fakes import QuadraticTrainable
from smptune.queue.embedded_redis import EmbeddedRedis
from smptune.queue.store import SweepStore
from smptune.trainable import FoldContext, FoldResult

TRAINABLE = "benchmarks.host_sharing:ConvTrainable"


class ConvTrainable(QuadraticTrainable):
    """The quadratic trainable's score, after ``steps`` training steps of a small conv net on
    a batch of 8 random 64 px images (CPU work that uses torch's threads)."""

    defaults: Mapping[str, Any] = {**QuadraticTrainable.defaults, "steps": 40}

    def train_fold(self, params: Mapping[str, Any], context: FoldContext) -> FoldResult:
        import torch

        start = time.perf_counter()
        torch.manual_seed(context.fold)
        net = torch.nn.Sequential(
            torch.nn.Conv2d(3, 16, 3, padding=1),
            torch.nn.ReLU(),
            torch.nn.Conv2d(16, 16, 3, padding=1),
            torch.nn.ReLU(),
            torch.nn.Conv2d(16, 1, 1),
        )
        optimizer = torch.optim.SGD(net.parameters(), lr=0.01)
        images, masks = torch.randn(8, 3, 64, 64), torch.rand(8, 1, 64, 64)
        for _ in range(int(self._complete(params)["steps"])):
            optimizer.zero_grad()
            loss = torch.nn.functional.binary_cross_entropy_with_logits(net(images), masks)
            loss.backward()
            optimizer.step()
        result = super().train_fold(params, context)
        result.duration_s = time.perf_counter() - start
        return result


def shape(quick: bool) -> dict[str, int]:
    if quick:
        return {"trials": 4, "folds": 2, "steps": 20}
    return {"trials": 8, "folds": 2, "steps": 60}


def makespan(workers: int, cpus_per_worker: str, s: Mapping[str, int]) -> float:
    """Seconds from the sweep's ``created`` to its ``finalize_started`` on ``workers`` CPU
    workers started with ``--cpus-per-worker cpus_per_worker``, every pool child warm."""
    env = clean_env()
    with tempfile.TemporaryDirectory() as tmp_name, EmbeddedRedis() as redis:
        tmp = Path(tmp_name)
        store = SweepStore.from_url(redis.url)
        supervisor = start_workers(
            redis.url,
            "--cpu",
            str(workers),
            "--cpus-per-worker",
            cpus_per_worker,
            "--allow-trainable",
            TRAINABLE,
            env=env,
        )
        try:
            warm = _sweep(tmp / "warm.yaml", "warm", 2 * workers, 2, 1)
            finalized(store, submit(warm, redis.url, env, "--artifacts", str(tmp)), 300)
            config = _sweep(tmp / "host.yaml", "host-sharing", s["trials"], s["folds"], s["steps"])
            sweep_id = submit(config, redis.url, env, "--artifacts", str(tmp))
            sweep, _ = finalized(store, sweep_id, 1800)
        finally:
            kill(supervisor)
    assert sweep.count("complete") == s["trials"] and sweep.finalize_started is not None, sweep
    return sweep.finalize_started - sweep.created


def _sweep(path: Path, name: str, trials: int, folds: int, steps: int) -> Path:
    return _write_sweep(
        path,
        name=name,
        trainable=TRAINABLE,
        n_trials=trials,
        cv={"n_folds": folds},
        hyperparameters={"x": {"low": 0.0, "high": 1.0}, "steps": steps},
    )


def rows(quick: bool) -> list[Row]:
    """Two workers against one, with shares and without, measured in one run."""
    s = shape(quick)
    one = makespan(1, "auto", s)
    shared = makespan(2, "auto", s)
    unshared = makespan(2, "all", s)
    head = f"host sharing {s['trials']}x{s['folds']} folds x {s['steps']} conv steps:"
    return [
        Row(f"{head} 1 worker makespan", one),
        Row(
            f"{head} 2 workers, a share of the cores each",
            shared,
            one,
            reference_label="1 worker",
            max_ratio=1.0,
            note=f"every worker on every core (before shares): {unshared / one:.2f} x 1 worker",
        ),
        Row(
            f"{head} 2 workers, every worker on every core",
            unshared,
            one,
            reference_label="1 worker",
        ),
    ]


def main() -> None:
    run_alone(rows, __doc__, "4 trials x 2 folds x 20 steps")


if __name__ == "__main__":
    main()
