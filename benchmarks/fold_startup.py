"""Fold start-up time: a fresh Python process until its first training step, with a cold
and with a warm data cache.

    .venv/bin/python -m benchmarks.fold_startup [--images 512] [--size 128] [--repeats 3]

Writes ``--images`` PNG pairs of ``--size`` pixels into a temporary folder, then starts
``--repeats`` processes with an empty cache folder (cold: the PNGs are decoded) and as many
with the cache the first one left (warm: the arrays are memory-mapped). Each process reports
the seconds from its start to the imports done, the data loaded and the first training step.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CHILD = r"""
import json, sys, time
started = float(sys.argv[2])
import lightning.pytorch as pl
import segmentation_models_pytorch, torch
from smptune.trainable import FoldContext, SweepSettings
from smptune.training import engine
from smptune.training.data import load_data
imported = time.time()
settings = SweepSettings(seed=0, metric="iou", mode="max", data={"root": sys.argv[1]},
                         cv={"n_folds": 5}, training={"max_epochs": 1})
load_data(settings.data)
loaded = time.time()

class FirstStep(pl.Callback):
    def on_train_batch_start(self, trainer, module, batch, batch_idx):
        print(json.dumps({"imports": imported - started, "data": loaded - started,
                          "first_step": time.time() - started}), flush=True)
        raise SystemExit(0)

original = engine._trainer
engine._trainer = lambda rs, ctx, epochs, callbacks, name, params, **kw: original(
    rs, ctx, epochs, [*callbacks, FirstStep()], name, params, **kw)
engine.train_fold({"batch_size": 8}, FoldContext("bench", 0, 0, 5, settings))
"""


def write_pngs(root: Path, n: int, size: int) -> None:
    import numpy as np
    from PIL import Image

    from smptune.training.synthetic import make_synthetic

    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for start in range(0, n, 64):
        count = min(64, n - start)
        images, masks = make_synthetic(n_images=max(4, count), size=size, seed=start)
        for i in range(count):
            rgb = (np.moveaxis(images[i], 0, -1) * 255).astype(np.uint8)
            Image.fromarray(rgb).save(root / "images" / f"{start + i:05d}.png")
            Image.fromarray(masks[i] * 255).save(root / "masks" / f"{start + i:05d}.png")


def one_process(root: Path, cache: Path) -> dict[str, float]:
    env = {**os.environ, "SMPTUNE_CACHE_DIR": str(cache)}
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(root), repr(time.time())],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=512)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root, cache = Path(tmp) / "data", Path(tmp) / "cache"
        write_pngs(root, args.images, args.size)
        rows: dict[str, list[dict[str, float]]] = {"cold": [], "warm": []}
        for _ in range(args.repeats):
            shutil.rmtree(cache, ignore_errors=True)
            rows["cold"].append(one_process(root, cache))
        for _ in range(args.repeats):
            rows["warm"].append(one_process(root, cache))
    print(f"{args.images} PNG pairs of {args.size} px; seconds from process start (median):")
    for kind, runs in rows.items():
        med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
        each = ", ".join(f"{r['first_step']:.2f}" for r in runs)
        print(
            f"  {kind}: imports {med['imports']:.2f}, data loaded {med['data']:.2f}, "
            f"first training step {med['first_step']:.2f} (runs: {each})"
        )


if __name__ == "__main__":
    main()
