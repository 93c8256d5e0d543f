"""A sweep over a folder of images of different sizes, through the CLI in local mode: it
trains on fixed-size patches, scores whole images in sliding windows and ends with a final
model, a fold ensemble and their test metrics."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import yaml
from PIL import Image

from conftest import run_cli

SIZES = [(40, 56), (64, 90), (72, 48), (90, 90), (45, 70), (56, 64)]


def _write_folder(root: Path, n: int = 18) -> None:
    """RGB PNGs of mixed sizes: a bright rectangle (the foreground) on dark noise."""
    rng = np.random.default_rng(4)
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for i in range(n):
        h, w = SIZES[i % len(SIZES)]
        mask = np.zeros((h, w), np.uint8)
        y, x = rng.integers(0, h // 2), rng.integers(0, w // 2)
        mask[y : y + h // 3, x : x + w // 3] = 255
        image = rng.integers(0, 80, (h, w, 3)).astype(np.uint8)
        image[mask > 0] += 140
        Image.fromarray(image).save(root / "images" / f"s{i:02d}.png")
        Image.fromarray(mask).save(root / "masks" / f"s{i:02d}.png")


def test_a_sweep_over_mixed_size_images_reaches_a_final_model_and_test_metrics(tmp_path):
    # Given a folder of 18 RGB images of six sizes from 40 to 90 px, patches of 32
    _write_folder(tmp_path / "data")
    config = tmp_path / "mixed.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "name": "mixed-sizes",
                "n_trials": 1,
                "data": {
                    "root": str(tmp_path / "data"),
                    "crop_size": 32,
                    "foreground_share": 0.5,
                    "overlap": 0.25,
                    "test_fraction": 0.25,
                },
                "cv": {"n_folds": 2},
                "training": {
                    "max_epochs": 2,
                    "early_stopping_patience": 0,
                    "tta": "flips",
                    "postprocess": "largest_component",
                },
                "hyperparameters": {
                    "model_encoder": "tu-regnetx_002",
                    "model_encoder_weights": None,
                    "batch_size": 4,
                    "learning_rate": 0.01,
                },
            }
        )
    )

    # When it runs through the CLI in local mode
    result = run_cli(
        "producer", "submit", config, "--artifacts", tmp_path / "out", "--local-workers", "1"
    )

    # Then it ends with test metrics of the retrained model and the fold ensemble
    assert result.returncode == 0, result.stderr + result.stdout
    out = tmp_path / "out" / result.stdout.splitlines()[0]
    test = json.loads((out / "final" / "test_metrics.json").read_text())
    for key in ("retrained_model", "fold_ensemble"):
        assert 0.0 <= test[key]["iou"] <= 1.0 and np.isfinite(test[key]["loss"]), test
    # and, beside the plain figures, those with flips and the largest component kept
    assert set(test["refined"]) == {"flips", "largest_component", "flips_largest_component"}
    for variant in test["refined"].values():
        for key in ("retrained_model", "fold_ensemble"):
            assert 0.0 <= variant[key]["iou"] <= 1.0 and "loss" not in variant[key], variant
    report = (out / "report.html").read_text()
    assert "Test-time augmentation and post-processing" in report
    assert "flips + largest component" in report
    assert "; with flips: iou=" in result.stdout
    # and the final model says it predicts whole images of any size in windows of 32
    info = json.loads((out / "final" / "model" / "smptune.json").read_text())
    assert (info["window"], info["overlap"], info["image_size"]) == (32, 0.25, None)
    assert (out / "final" / "predictions.png").is_file()
