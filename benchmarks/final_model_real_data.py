"""``python -m benchmarks.final_model_real_data``: the final model on real, human-labelled
data, at a short and a long schedule, without and with weight averaging.

The data: the fluorescence-nuclei image StarDist ships with its wheel
(``stardist/data/images/img2d.tif`` and its hand-drawn instance masks ``mask2d.tif``, a
512×512 crop of the 2018 Data Science Bowl), read from the installed package without
importing it (``pip install --no-deps stardist``: only the two files are used; nothing is
downloaded at run time). The image is normalised by its 1st and 99.8th percentiles to
``uint8`` and cut into 64 tiles of 64×64 px, the masks made binary (nucleus or not).

Each row is a quickstart-sized sweep (4 random configurations × 3 folds, seed 0) submitted
through :mod:`smptune.api` to one local cluster of two CPU workers, which runs them side by
side. It prints, per row: the best trial's CV score (each run at its best epoch), its CV
after the final model's epoch count, and the test IoU of the retrained model and of the
fold ensemble. Not in :data:`benchmarks.BENCHMARKS`: it needs the stardist wheel and about
20 minutes on a 2-core CPU.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

TILE = 64
#: (max_epochs, weight_averaging, retrain_epochs) of each row.
ROWS = [
    (epochs, averaging, retrain)
    for epochs in (3, 12)
    for retrain in ("mean", "max")
    for averaging in ("none", "ema", "swa")
]


def stardist_images() -> tuple[np.ndarray, np.ndarray]:
    """The 2D image and its masks from the installed stardist package."""
    import tifffile

    spec = importlib.util.find_spec("stardist")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit(
            "stardist is not installed: pip install --no-deps stardist (its data files only)"
        )
    folder = Path(next(iter(spec.submodule_search_locations))) / "data" / "images"
    return tifffile.imread(folder / "img2d.tif"), tifffile.imread(folder / "mask2d.tif")


def write_tiles(root: Path, labels_of: Callable[[np.ndarray], np.ndarray] | None = None) -> int:
    """The image as ``uint8`` tiles under ``root/images`` with their masks under
    ``root/masks``: ``labels_of(instance masks)``, binary (nucleus or not) by default; the
    number of tiles."""
    from PIL import Image

    image, masks = stardist_images()
    pixels = percentile_scaled(image)
    labels = labels_of(masks) if labels_of is not None else (masks > 0).astype(np.uint8)
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "masks").mkdir(exist_ok=True)
    n = 0
    for top in range(0, pixels.shape[0] - TILE + 1, TILE):
        for left in range(0, pixels.shape[1] - TILE + 1, TILE):
            name = f"tile_{top:03d}_{left:03d}.png"
            window = (slice(top, top + TILE), slice(left, left + TILE))
            Image.fromarray(pixels[window]).save(root / "images" / name)
            Image.fromarray(labels[window]).save(root / "masks" / name)
            n += 1
    return n


def percentile_scaled(image: np.ndarray) -> np.ndarray:
    """``image`` as ``uint8`` by its 1st and 99.8th percentiles."""
    low, high = np.percentile(image, (1, 99.8))
    scaled = np.clip((image.astype(np.float64) - low) / max(high - low, 1e-9), 0, 1)
    return (scaled * 255).round().astype(np.uint8)


def config(root: Path, epochs: int, averaging: str, retrain: str) -> dict[str, Any]:
    return {
        "name": f"nuclei-{epochs}ep-{averaging}-{retrain}",
        "n_trials": 4,
        "seed": 0,
        "metric": "iou",
        "retrain_epochs": retrain,
        "data": {"root": str(root), "test_fraction": 0.2},
        "cv": {"n_folds": 3},
        "training": {"max_epochs": epochs, "weight_averaging": averaging},
        "hyperparameters": {
            "model_arch": "Unet",
            "model_encoder": "tu-regnetx_002",
            "learning_rate": {"distribution": "loguniform", "low": 5.0e-4, "high": 5.0e-3},
            "batch_size": 8,
        },
    }


def main() -> None:
    from smptune import api

    parser = argparse.ArgumentParser(prog="python -m benchmarks.final_model_real_data")
    parser.add_argument("--out", type=Path, help="keep the results here (default: a temp dir)")
    parser.add_argument(
        "--rows", help="only these rows, by index (0-based, comma-separated); default: all"
    )
    args = parser.parse_args()
    rows = [ROWS[int(i)] for i in args.rows.split(",")] if args.rows else ROWS
    work = args.out or Path(tempfile.mkdtemp(prefix="smptune-nuclei-"))
    n = write_tiles(work / "data")
    print(f"{n} tiles of {TILE}x{TILE} px in {work / 'data'}", flush=True)
    with api.local(cpu_workers=2, log_dir=work / "logs") as broker:
        sweeps = [
            (epochs, averaging, retrain,
             api.submit(config(work / "data", epochs, averaging, retrain), broker,
                        artifacts=work / "results"))
            for epochs, averaging, retrain in rows
        ]  # fmt: skip
        print("| schedule | weights | retrain epochs | CV (best epochs) | CV (final epochs) | "
              "test IoU, retrained | test IoU, fold ensemble |", flush=True)  # fmt: skip
        print("| --- | --- | --- | --- | --- | --- | --- |", flush=True)
        for epochs, averaging, retrain, sweep in sweeps:
            sweep.wait(poll_s=2.0)
            results = sweep.results()
            best = results["best"] or {}
            at = (best.get("cv_at_epochs") or {}).get("score")
            ensemble = (results.get("fold_ensemble") or {}).get("test_metrics") or {}
            test = sweep.test_metrics or {}
            cells = [
                f"{epochs} epochs",
                averaging,
                retrain,
                f"{best.get('score', float('nan')):.3f}",
                "–" if at is None else f"{at:.3f} ({best.get('epochs')} ep)",
                f"{test.get('iou', float('nan')):.3f}",
                f"{ensemble.get('iou', float('nan')):.3f}",
            ]
            print("| " + " | ".join(cells) + " |", flush=True)
            (work / f"{sweep.id}.json").write_text(json.dumps(results, default=str))


if __name__ == "__main__":
    main()
