"""Fixed cost per trial of the segmentation trainable: what a trial spends outside its steps.

One CPU worker runs two identical one-epoch trials of the segmentation trainable on tiny
synthetic data (16 images of 32 px, cached on disk by the producer's check before the worker
sees it): the first in the worker's fresh pool child (imports of torch, Lightning and smp,
data, model build), the second in the same child, warm. The trainable is wrapped
(:class:`TimedSegmentationTrainable`) to record when each fold's first training step starts
and its last step (training or validation) ends; the rest comes from the sweep store:

- start → first step: the trial hash's ``started`` (set by ``cv_trial`` once it holds the
  lease) to fold 0's first step;
- last step → recorded: the last fold's last step to the trial hash's ``finished`` (set by
  the script that records the trial);
- imports: the time the wrapper spends importing the training engine, on its first fold.

Then a worker started with ``--preload --max-tasks-per-child 1`` runs the same two trials,
each in a new pool child forked after the worker imported torch, Lightning and smp.

    python -m benchmarks.trial_cost
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from benchmarks.harness import clean_env, finalized, kill, start_workers, submit, warm_up
from benchmarks.table import Row
from smptune.queue.embedded_redis import EmbeddedRedis
from smptune.queue.store import SweepStore
from smptune.trainable import FoldContext, FoldResult
from smptune.training.trainable import SegmentationTrainable

TRAINABLE = "benchmarks.trial_cost:TimedSegmentationTrainable"
#: A tiny fold: 16 synthetic images of 32 px, one epoch of a small Unet.
TINY = {
    "data": {"synthetic": {"n_images": 16, "size": 32}, "test_fraction": 0.25},
    "training": {"max_epochs": 1},
    "hyperparameters": {
        "model_encoder": "tu-regnetx_002",
        "model_encoder_weights": None,
        "batch_size": 4,
    },
}

_marks: dict[str, float] = {}
_import_s: list[float] = []


@dataclass
class TimedFoldResult(FoldResult):
    """A fold result with wall-clock times of its first and last step (``time.time()``)."""

    first_step_at: float = 0.0
    last_step_at: float = 0.0
    import_s: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            **super().to_dict(),
            "first_step_at": self.first_step_at,
            "last_step_at": self.last_step_at,
            "import_s": self.import_s,
        }


def _instrument() -> float:
    """Import the engine (timed) and hook the module's batch callbacks, once per process."""
    if _import_s:
        return 0.0
    started = time.perf_counter()
    import smptune.training.engine  # noqa: F401  (torch, Lightning, smp)
    from smptune.training.module import SegmentationModule

    _import_s.append(time.perf_counter() - started)

    def first(*_: Any) -> None:
        _marks.setdefault("first", time.time())

    def last(*_: Any) -> None:
        _marks["last"] = time.time()

    SegmentationModule.on_train_batch_start = first  # type: ignore[method-assign]
    SegmentationModule.on_train_batch_end = last  # type: ignore[method-assign]
    SegmentationModule.on_validation_batch_end = last  # type: ignore[method-assign]
    return _import_s[0]


class TimedSegmentationTrainable(SegmentationTrainable):
    """The segmentation trainable, recording when each fold's steps start and end."""

    def train_fold(self, params: Mapping[str, Any], context: FoldContext) -> FoldResult:
        import_s = _instrument()
        _marks.clear()
        result = super().train_fold(params, context)
        return TimedFoldResult(
            **vars(result),
            first_step_at=_marks["first"],
            last_step_at=_marks["last"],
            import_s=import_s,
        )


def measure(*worker_args: str) -> dict[str, float]:
    """Two tiny trials on one CPU worker started with ``worker_args``."""
    with tempfile.TemporaryDirectory() as tmp_name, EmbeddedRedis() as redis:
        tmp = Path(tmp_name)
        env = clean_env(SMPTUNE_CACHE_DIR=str(tmp / "cache"))
        store = SweepStore.from_url(redis.url)
        supervisor = start_workers(
            redis.url, "--cpu", "1", "--allow-trainable", TRAINABLE, *worker_args, env=env
        )
        try:
            warm_up(store, redis.url, env, tmp, 1)  # the worker is up; torch not imported
            config = tmp / "trial-cost.yaml"
            config.write_text(
                yaml.safe_dump(
                    {
                        "name": "trial-cost",
                        "trainable": TRAINABLE,
                        "n_trials": 2,
                        "metric": "iou",
                        "cv": {"n_folds": 2},
                        "retrain_and_test": False,
                        **TINY,
                    }
                )
            )
            sweep_id = submit(config, redis.url, env, "--artifacts", str(tmp))
            finalized(store, sweep_id, 600)
            cold, warm = store.trials(sweep_id)
        finally:
            kill(supervisor)
    for t in (cold, warm):
        assert t.status == "complete", t

    def fold_steps(t: dict[str, Any]) -> float:
        return sum(f["last_step_at"] - f["first_step_at"] for f in t.folds.values())

    def tail(t: dict[str, Any]) -> float:
        return t.finished - t.folds[max(t.folds)]["last_step_at"]

    return {
        "cold_start_s": cold.folds[0]["first_step_at"] - cold.started,
        "warm_start_s": warm.folds[0]["first_step_at"] - warm.started,
        "import_s": cold.folds[0]["import_s"],
        "tail_s": (tail(cold) + tail(warm)) / 2,
        "steps_s": fold_steps(warm) / len(warm.folds),
    }


def rows(quick: bool) -> list[Row]:
    """The same in both forms: two tiny trials on one worker, then two on a worker that
    preloads the training stack and gives each trial a fresh pool child."""
    m = measure()
    fresh = measure("--preload", "--max-tasks-per-child", "1")
    head = "trial cost (16 imgs x 32 px, 1 epoch):"
    return [
        Row(
            f"{head} start -> first step, fresh child of a --preload worker",
            (fresh["cold_start_s"] + fresh["warm_start_s"]) / 2,
            m["warm_start_s"],
            reference_label="warm child",
            note="each trial in a new pool child forked after the imports",
        ),
        Row(
            f"{head} start -> first step, fresh process",
            m["cold_start_s"],
            m["warm_start_s"],
            reference_label="warm child",
            note=f"of which importing torch, Lightning, smp {m['import_s']:.2f} s",
        ),
        Row(
            f"{head} start -> first step, warm child",
            m["warm_start_s"],
            m["steps_s"],
            reference_label="a fold's steps",
        ),
        Row(
            f"{head} last step -> trial recorded",
            m["tail_s"],
            m["steps_s"],
            reference_label="a fold's steps",
        ),
    ]


def main() -> None:
    argparse.ArgumentParser(description=__doc__.split("\n\n")[0]).parse_args()
    from benchmarks.harness import print_table

    print_table(rows(quick=True))


if __name__ == "__main__":
    main()
