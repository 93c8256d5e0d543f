"""``python -m benchmarks.record_curves``: record real learning curves for the replay trainable.

Trains every configuration of a small grid (learning rate × architecture × loss) on the
hand-labelled fluorescence nuclei that StarDist ships (the tiles of
:mod:`benchmarks.final_model_real_data`), through the built-in segmentation trainable: each
of 3 folds for 15 epochs without early stopping, reporting the validation IoU after every
epoch, then the whole train split for 15 epochs and the test split. Writes what it saw to
``src/smptune/data/nuclei_curves.json``, which
:class:`smptune.fakes.RecordedCurvesTrainable` replays: a pruner's test or benchmark then
meets real curves (noisy early epochs, folds that differ) at the cost of a sleep.

Needs ``pip install --no-deps stardist`` (its two data files only); about 12 minutes for the
24 configurations on a 2-core CPU, two at a time.
"""

from __future__ import annotations

import argparse
import itertools
import json
import multiprocessing
import os
import tempfile
import time
from pathlib import Path
from typing import Any

OUT = Path(__file__).resolve().parents[1] / "src" / "smptune" / "data" / "nuclei_curves.json"
LEARNING_RATES = (1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2)
ARCHS = ("Unet", "FPN")
LOSSES = ("dice", "focal")
EPOCHS = 15
FOLDS = 3


def sweep_config(root: Path) -> dict[str, Any]:
    return {
        "name": "record",
        "seed": 0,
        "metric": "iou",
        "n_trials": 1,
        "data": {"root": str(root), "test_fraction": 0.2},
        "cv": {"n_folds": FOLDS},
        "training": {"max_epochs": EPOCHS, "early_stopping_patience": 0},
        "hyperparameters": {"model_encoder": "tu-regnetx_002", "batch_size": 8},
    }


def record(job: tuple[Path, dict[str, Any]]) -> dict[str, Any]:
    """One configuration: its folds' validation IoU per epoch and its test metrics."""
    root, params = job
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import torch

    torch.set_num_threads(1)
    from smptune.config import config_from_dict
    from smptune.trainable import FoldContext
    from smptune.training.trainable import SegmentationTrainable

    config = config_from_dict(sweep_config(root))
    settings = config.settings()
    trainable = SegmentationTrainable()
    full = {**trainable.defaults, "model_encoder": "tu-regnetx_002", "batch_size": 8, **params}
    folds = []
    started = time.perf_counter()
    for fold in range(FOLDS):
        curve: list[float] = []
        folds.append(curve)
        context = FoldContext(
            "record", 0, fold, FOLDS, settings, report=lambda e, m, c=curve: c.append(m["iou"])
        )
        trainable.train_fold(full, context)
        curve[:] = [round(v, 5) for v in curve]
    with tempfile.TemporaryDirectory() as out:
        context = FoldContext("record", 0, -1, FOLDS, settings, output_dir=Path(out))
        test = trainable.retrain_and_test(full, EPOCHS, context)
    seconds = (time.perf_counter() - started) / (FOLDS * EPOCHS + EPOCHS)
    print(f"{params}: folds end {[f[-1] for f in folds]}, test {test['iou']:.3f}", flush=True)
    return {
        "params": params,
        "folds": folds,
        "test": {k: round(float(v), 5) for k, v in test.items()},
        "epoch_s": round(seconds, 3),
    }


def main() -> None:
    from benchmarks.final_model_real_data import write_tiles

    parser = argparse.ArgumentParser(prog="python -m benchmarks.record_curves")
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--processes", type=int, default=2)
    args = parser.parse_args()
    grid = [
        {"learning_rate": lr, "model_arch": arch, "loss": loss}
        for lr, arch, loss in itertools.product(LEARNING_RATES, ARCHS, LOSSES)
    ]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "data"
        write_tiles(root)
        with multiprocessing.get_context("spawn").Pool(args.processes) as pool:
            configs = list(pool.imap(record, [(root, p) for p in grid], chunksize=1))
            pool.close()
            pool.join()
    data = {
        "source": "StarDist's img2d.tif and mask2d.tif (2018 Data Science Bowl nuclei), "
        "64 tiles of 64 px, 20 % test",
        "metric": "iou",
        "mode": "max",
        "max_epochs": EPOCHS,
        "n_folds": FOLDS,
        "encoder": "tu-regnetx_002",
        "configs": configs,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(data, indent=1) + "\n")
    print(f"{len(configs)} configurations written to {args.out}")


if __name__ == "__main__":
    main()
