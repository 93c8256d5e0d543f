"""``python -m benchmarks.real_data_sets``: CV, test, per-class figures, test-time flips and
post-processing of the final models on two real, human-labelled sets side by side.

Both sets ship inside StarDist's wheel (``pip install --no-deps stardist``; only its data
files are read, nothing is downloaded at run time):

- **nuclei-3class** (multi-class): ``img2d.tif`` with its hand-drawn instance masks
  ``mask2d.tif``, a 512×512 fluorescence crop of the 2018 Data Science Bowl, cut into 64
  tiles of 64×64 px; each pixel is background (0), the inside of a nucleus (1) or a
  nucleus's boundary (2: a nucleus pixel with a 4-neighbour of another label), the
  boundary-aware formulation that separates touching nuclei.
- **nuclei3d-slices** (mixed sizes): ``img3d.tif`` with ``mask3d.tif``, a 31×61×57 stack of
  another fluorescence volume, cut into its slices along each axis: XY slices of 61×57,
  XZ of 31×57, YZ of 31×61 (every second slice of each: 75 images of three sizes), binary
  (nucleus or not), trained on 32×32 patches and scored on whole slices in sliding windows.

Each set is one sweep (3 random learning rates × 3 folds, seed 0, ``training.tta: flips``,
``training.postprocess: largest_component``) through :mod:`smptune.api` on one local
cluster of two CPU workers, the two sweeps side by side. It prints, per set and final
model, the CV (best epochs; after the final model's epochs ± the runs' spread; the floor
of twice that spread below it), the test IoU and Dice plain, with flips, with the largest
component kept and with both, and then every class's CV, retrained and ensemble Dice.

    python -m benchmarks.real_data_sets [--epochs 12] [--out DIR]

Not in :data:`benchmarks.BENCHMARKS`: it needs the stardist wheel and about 10 minutes on a
2-core CPU.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.final_model_real_data import TILE, percentile_scaled, write_tiles

VARIANTS = ("flips", "largest_component", "flips_largest_component")


def boundary_classes(instances: np.ndarray) -> np.ndarray:
    """0 background, 1 inside a nucleus, 2 a nucleus pixel beside another label."""
    padded = np.pad(instances, 1, mode="edge")
    centre = padded[1:-1, 1:-1]
    differs = np.zeros(instances.shape, dtype=bool)
    for dy, dx in ((0, 1), (2, 1), (1, 0), (1, 2)):
        differs |= padded[dy : dy + instances.shape[0], dx : dx + instances.shape[1]] != centre
    out = (instances > 0).astype(np.uint8)
    out[(instances > 0) & differs] = 2
    return out


def write_three_class(root: Path) -> int:
    """nuclei-3class under ``root/images`` and ``root/masks``; the number of tiles."""
    return write_tiles(root, boundary_classes)


def write_slices(root: Path, step: int = 2) -> dict[tuple[int, int], int]:
    """nuclei3d-slices under ``root``: every ``step``-th slice along each axis; the count
    of each size."""
    import importlib.util

    import tifffile
    from PIL import Image

    spec = importlib.util.find_spec("stardist")
    assert spec is not None and spec.submodule_search_locations
    folder = Path(next(iter(spec.submodule_search_locations))) / "data" / "images"
    volume = percentile_scaled(tifffile.imread(folder / "img3d.tif"))
    nuclei = (tifffile.imread(folder / "mask3d.tif") > 0).astype(np.uint8) * 255
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "masks").mkdir(exist_ok=True)
    sizes: dict[tuple[int, int], int] = {}
    for axis, name in enumerate("zyx"):
        for k in range(0, volume.shape[axis], step):
            image = np.take(volume, k, axis=axis)
            mask = np.take(nuclei, k, axis=axis)
            stem = f"{name}{k:02d}.png"
            Image.fromarray(np.ascontiguousarray(image)).save(root / "images" / stem)
            Image.fromarray(np.ascontiguousarray(mask)).save(root / "masks" / stem)
            sizes[image.shape] = sizes.get(image.shape, 0) + 1
    return sizes


def config(name: str, data: dict[str, Any], epochs: int, **more: Any) -> dict[str, Any]:
    return {
        "name": name,
        "n_trials": 3,
        "seed": 0,
        "metric": "dice",
        "data": {"test_fraction": 0.2, **data},
        "cv": {"n_folds": 3},
        "training": {
            "max_epochs": epochs,
            "tta": "flips",
            "postprocess": "largest_component",
        },
        "hyperparameters": {
            "model_arch": "Unet",
            "model_encoder": "tu-regnetx_002",
            "learning_rate": {"distribution": "loguniform", "low": 1.0e-3, "high": 1.0e-2},
            "batch_size": 8,
        },
        **more,
    }


def _f(value: Any) -> str:
    return "–" if not isinstance(value, int | float) else f"{value:.3f}"


def rows(results: dict[str, Any], test: dict[str, Any]) -> list[list[str]]:
    """The final-model rows of one set: the retrained model and the fold ensemble."""
    best = results.get("best") or {}
    at = best.get("cv_at_epochs") or {}
    ensemble = (results.get("fold_ensemble") or {}).get("test_metrics") or {}
    floor = at["score"] - 2 * at["std"] if at.get("std") is not None else None
    out = []
    for model, figures in (("retrained", test), ("fold ensemble", ensemble)):
        cells = [
            results.get("name") or "",
            model,
            _f(best.get("score")),
            f"{_f(at.get('score'))} ± {_f(at.get('std'))} ({best.get('epochs')} ep)",
            _f(floor),
            f"{_f(figures.get('iou'))} / {_f(figures.get('dice'))}",
        ]
        for variant in VARIANTS:
            cells.append(
                f"{_f(figures.get(f'iou/{variant}'))} / {_f(figures.get(f'dice/{variant}'))}"
            )
        out.append(cells)
    return out


def class_rows(name: str, per_class: list[dict[str, Any]]) -> list[list[str]]:
    """Every class's Dice: CV (mean ± std over runs), retrained, ensemble."""
    out = []
    for row in per_class:
        cv = (row.get("cv") or {}).get("dice") or {}
        out.append(
            [
                name,
                str(row.get("name")),
                f"{_f(cv.get('mean'))} ± {_f(cv.get('std'))}",
                _f((row.get("retrained_model") or {}).get("dice")),
                _f((row.get("fold_ensemble") or {}).get("dice")),
            ]
        )
    return out


def _print(header: list[str], body: list[list[str]]) -> None:
    print("| " + " | ".join(header) + " |")
    print("|" + " --- |" * len(header))
    for cells in body:
        print("| " + " | ".join(cells) + " |", flush=True)


def main() -> None:
    from smptune import api

    parser = argparse.ArgumentParser(prog="python -m benchmarks.real_data_sets")
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--out", type=Path, help="keep the results here (default: a temp dir)")
    args = parser.parse_args()
    work = args.out or Path(tempfile.mkdtemp(prefix="smptune-real-sets-"))
    tiles = write_three_class(work / "three-class")
    sizes = write_slices(work / "slices")
    print(f"nuclei-3class: {tiles} tiles of {TILE}x{TILE}; nuclei3d-slices: {sizes}", flush=True)
    configs = [
        config(
            "nuclei-3class",
            {"root": str(work / "three-class"), "classes": 3},
            args.epochs,
            class_names=["background", "nucleus", "boundary"],
        ),
        config(
            "nuclei3d-slices",
            {"root": str(work / "slices"), "crop_size": 32, "foreground_share": 0.33},
            args.epochs,
        ),
    ]
    with api.local(cpu_workers=2, log_dir=work / "logs") as broker:
        sweeps = [api.submit(c, broker, artifacts=work / "results") for c in configs]
        finals: list[list[str]] = []
        classes: list[list[str]] = []
        for sweep, c in zip(sweeps, configs, strict=True):
            sweep.wait(poll_s=2.0)
            results = {**sweep.results(), "name": c["name"]}
            folder = work / "results" / sweep.id
            payload = json.loads((folder / "results.json").read_text())
            finals += rows(results, sweep.test_metrics or {})
            classes += class_rows(c["name"], payload.get("per_class") or [])
            (work / f"{sweep.id}.json").write_text(json.dumps(payload, default=str))
    print()
    _print(
        [
            "set",
            "model",
            "CV (best epochs)",
            "CV (final epochs) ± std",
            "floor (− 2 std)",
            "test IoU / Dice",
            "flips",
            "largest component",
            "both",
        ],
        finals,
    )
    print()
    _print(["set", "class", "CV Dice", "retrained Dice", "ensemble Dice"], classes)


if __name__ == "__main__":
    main()
