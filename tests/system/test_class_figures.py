"""Per-class figures through the CLI: a 3-class sweep ranked by Dice, with class names, ends
with a per-class table (CV, retrained model, fold ensemble) in results.json, the report and
the producer's output, under the names the config gives."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import yaml

from smptune.queue.store import SweepStore

from conftest import submit_and_wait

NAMES = ["background", "cells", "debris"]


def _config(path: Path) -> Path:
    path.write_text(
        yaml.safe_dump(
            {
                "name": "per-class",
                "n_trials": 2,
                "metric": "dice",
                "class_names": NAMES,
                "data": {
                    "synthetic": {"n_images": 16, "size": 32, "seed": 4, "classes": 3},
                    "test_fraction": 0.25,
                },
                "cv": {"n_folds": 2},
                "training": {"max_epochs": 2, "early_stopping_patience": 0},
                "hyperparameters": {
                    "batch_size": 4,
                    "learning_rate": {"distribution": "loguniform", "low": 1e-3, "high": 1e-2},
                },
            }
        )
    )
    return path


def test_a_multiclass_sweep_reports_dice_and_iou_per_named_class(
    tmp_path, redis_server, store: SweepStore, start_workers
):
    # Given a 3-class sweep ranked by macro Dice, with a name for each class
    start_workers("--cpu", "2")
    config = _config(tmp_path / "per-class.yaml")

    # When it runs to its final model
    sweep_id, result = submit_and_wait(config, redis_server.url, tmp_path / "out", timeout=600)
    assert result.returncode == 0, result.stderr + result.stdout
    out = tmp_path / "out" / sweep_id

    # Then every run reports Dice and IoU per class, and the sweep's score is the macro Dice
    results = json.loads((out / "results.json").read_text())
    best = next(t for t in results["ranking"] if t["trial"] == results["best"]["trial"])
    for run in best["folds"].values():
        metrics = run["metrics"]
        per_class = [metrics[f"dice_class_{k}"] for k in range(3)]
        assert {f"iou_class_{k}" for k in range(3)} <= set(metrics)
        assert metrics["dice"] == metrics["f1"]
        assert min(per_class) <= metrics["dice"] <= max(per_class)
    # and results.json holds the names and a row per class: CV mean ± std over the best
    # trial's runs, the retrained model and the fold ensemble on the test split
    assert results["class_names"] == NAMES
    rows = results["per_class"]
    assert [(r["class"], r["name"]) for r in rows] == list(enumerate(NAMES))
    for row in rows:
        k = row["class"]
        runs = [run["metrics"][f"dice_class_{k}"] for run in best["folds"].values()]
        assert math.isclose(row["cv"]["dice"]["mean"], sum(runs) / len(runs))
        assert row["retrained_model"]["dice"] == results["test_metrics"][f"dice_class_{k}"]
        fold_ensemble = results["fold_ensemble"]["test_metrics"]
        assert row["fold_ensemble"]["iou"] == fold_ensemble[f"iou_class_{k}"]
    # and machine-read places keep the indices
    assert "dice_class_1" in results["test_metrics"]
    # and the report has the per-class table under the class names
    page = (out / "report.html").read_text()
    table = re.search(r'<section id="per-class">.*?</section>', page, re.S)
    assert table is not None
    for name in NAMES:
        assert f"<td>{name}</td>" in table.group(0)
    cv_cells = re.findall(r'<td class="num">[\d.]+ ± [\d.]+</td>', table.group(0))
    assert len(cv_cells) == 2 * len(NAMES)  # CV iou and dice, mean ± std, for each class
    # (the test table leaves the per-class rows to it)
    test_table = re.search(r'<section id="test">.*?</section>', page, re.S)
    assert test_table is not None and "dice_class" not in test_table.group(0)
    assert "<td>dice</td>" in test_table.group(0)
    # and the producer's own output names the classes
    assert "dice · debris=" in result.stdout
