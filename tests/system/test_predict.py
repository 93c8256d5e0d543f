"""`producer predict` on new images of any size: a sweep over a folder of mixed-size images
runs through the CLI to its final model, and predict turns the test split's images into
masks whose IoU against their true masks is the final model's test figure; bad input gets
one line naming the file, exit 2, and the masks already written stay."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from conftest import run_cli

SIZES = [(48, 64), (64, 80), (72, 56), (96, 96), (40, 88)]


def _write_folder(root: Path, n: int = 30, seed: int = 0) -> None:
    """RGB images of mixed sizes: a bright ellipse (the foreground) on dark noise."""
    rng = np.random.default_rng(seed)
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for i in range(n):
        h, w = SIZES[i % len(SIZES)]
        yy, xx = np.mgrid[:h, :w]
        cy, cx = rng.uniform(0.3, 0.7) * h, rng.uniform(0.3, 0.7) * w
        ry, rx = rng.uniform(0.15, 0.3) * h, rng.uniform(0.15, 0.3) * w
        mask = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1.0
        image = rng.normal(60, 25, (h, w, 3))
        image[mask] += 110
        Image.fromarray(np.clip(image, 0, 255).astype(np.uint8)).save(root / "images" / f"s{i}.png")
        Image.fromarray((mask * 255).astype(np.uint8)).save(root / "masks" / f"s{i}.png")


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """The results folder of a 1-trial sweep over a mixed-size folder, run in local mode."""
    base = tmp_path_factory.mktemp("predict")
    _write_folder(base / "data")
    config = base / "mixed.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "name": "mixed",
                "n_trials": 1,
                "data": {"root": str(base / "data"), "crop_size": 32, "test_fraction": 0.3},
                "cv": {"n_folds": 2},
                "training": {"max_epochs": 6, "early_stopping_patience": 0, "tta": "flips"},
                "hyperparameters": {"batch_size": 4, "learning_rate": 0.01},
            }
        )
    )
    result = run_cli(
        "producer",
        "submit",
        config,
        "--artifacts",
        base / "out",
        "--local-workers",
        "1",
        timeout=900,
    )
    assert result.returncode == 0, result.stderr + result.stdout
    return base / "out" / result.stdout.splitlines()[0]


def _iou(masks: Path, truth: Path, names: list[str]) -> float:
    """IoU of the foreground over all pixels of the named masks together."""
    tp = fp = fn = 0
    for name in names:
        predicted = np.asarray(Image.open(masks / f"{name}.png")) > 0
        true = np.asarray(Image.open(truth / f"{name}.png")) > 0
        assert predicted.shape == true.shape, name
        tp += int((predicted & true).sum())
        fp += int((predicted & ~true).sum())
        fn += int((~predicted & true).sum())
    return tp / (tp + fp + fn)


def test_predict_turns_the_test_images_into_masks_that_score_the_test_figure(
    trained: Path, tmp_path: Path
):
    # Given the final model of a sweep over mixed-size images and its test split's images
    test_names = json.loads((trained / "splits.json").read_text())["test"]
    data = Path(yaml.safe_load((trained / "config.yaml").read_text())["data"]["root"])
    new = tmp_path / "new"
    new.mkdir()
    for name in test_names:
        (new / f"{name}.png").write_bytes((data / "images" / f"{name}.png").read_bytes())
    assert len({Image.open(p).size for p in new.iterdir()}) > 1  # mixed sizes

    # When predict runs the default model (the fold ensemble), the retrained model, and the
    # ensemble with test-time flips on that folder
    test = json.loads((trained / "final" / "test_metrics.json").read_text())
    flips = test["refined"]["flips"]
    for flag, expected, kind, out in (
        ([], test["fold_ensemble"], "fold ensemble", tmp_path / "masks"),
        (["--model", "retrained"], test["retrained_model"], "retrained model", tmp_path / "r"),
        (["--tta", "flips"], flips["fold_ensemble"], "fold ensemble", tmp_path / "flips"),
    ):
        result = run_cli("producer", "predict", trained, new, "--out", out, *flag)
        assert result.returncode == 0, result.stderr + result.stdout
        assert f"{len(test_names)} masks written to {out} ({kind})" in result.stdout

        # Then there is one mask per image, of its size, and their IoU against the true
        # masks is the test figure of that model (within 0.01)
        assert sorted(p.stem for p in out.iterdir()) == sorted(test_names)
        iou = _iou(out, data / "masks", test_names)
        assert iou == pytest.approx(expected["iou"], abs=0.01), (flag, iou, expected)
        # better than all foreground (about 0.16) or none (0), so the check compares something
        assert iou > 0.2


def test_bad_input_gets_one_line_exit_2_and_the_masks_written_stay(trained: Path, tmp_path):
    # Given two good images, then one with 1 channel (the model takes 3), then a good one
    data = Path(yaml.safe_load((trained / "config.yaml").read_text())["data"]["root"])
    new = tmp_path / "new"
    new.mkdir()
    for name in ("a", "b", "d"):
        (new / f"{name}.png").write_bytes((data / "images" / "s1.png").read_bytes())
    Image.fromarray(np.zeros((40, 50), dtype=np.uint8)).save(new / "c.png")

    # When predict runs on the folder
    out = tmp_path / "masks"
    result = run_cli("producer", "predict", trained, new, "--out", out)

    # Then it stops at the bad file with one line naming it, exit 2, and the masks of the
    # files before it stay
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "c.png has 1 channels, the model takes 3" in lines[0], lines
    assert "2 masks written before it stay" in lines[0]
    assert sorted(p.name for p in out.iterdir()) == ["a.png", "b.png"]

    # and an unreadable file, an empty folder, a missing path and a folder with no final
    # model are each one line and exit 2
    (new / "c.png").write_bytes(b"not a png")
    empty = tmp_path / "empty"
    empty.mkdir()
    for args, message in (
        ((trained, new / "c.png"), "cannot read"),
        ((trained, empty), "holds no images"),
        ((trained, tmp_path / "nothing"), "does not exist"),
        ((tmp_path, new / "a.png"), "has no final model"),
    ):
        result = run_cli("producer", "predict", *args, "--out", tmp_path / "more")
        assert result.returncode == 2, (args, result.stderr)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and message in lines[0], lines
