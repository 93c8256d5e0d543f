"""The per-class table of a sweep's results: CV over the best trial's runs, the retrained
model and the fold ensemble, side by side."""

from __future__ import annotations

import pytest

from smptune.results.per_class import per_class_rows
from smptune.results.summary import SweepResults


def _results(
    runs: list[dict[str, float]], ensemble: dict[str, float] | None = None
) -> SweepResults:
    folds = {str(k): {"metrics": m} for k, m in enumerate(runs)}
    return SweepResults.from_dict(
        {
            "best": {"trial": 3},
            "ranking": [{"trial": 1, "folds": {}}, {"trial": 3, "folds": folds}],
            "fold_ensemble": {"test_metrics": ensemble} if ensemble else None,
        }
    )


def test_each_class_gets_its_cv_spread_and_test_figures_under_its_name():
    # Given a best trial of two runs on 2-class data, and both final models' test figures
    runs = [
        {"iou_class_0": 0.8, "iou_class_1": 0.4, "dice_class_0": 0.9, "dice_class_1": 0.5},
        {"iou_class_0": 0.6, "iou_class_1": 0.2, "dice_class_0": 0.7, "dice_class_1": 0.3},
    ]
    test = {"iou_class_0": 0.75, "iou_class_1": 0.35, "dice_class_0": 0.85, "dice_class_1": 0.45}
    ensemble = {"iou_class_0": 0.77, "iou_class_1": 0.37}

    rows = per_class_rows(_results(runs, ensemble), test, ["sea", "land"])

    # Then a row per class, in index order, with the CV mean ± std over the runs
    assert [(r.index, r.name) for r in rows] == [(0, "sea"), (1, "land")]
    land = rows[1]
    assert land.cv["iou"] is not None and land.cv["dice"] is not None
    assert (land.cv["iou"].mean, land.cv["iou"].std) == pytest.approx((0.3, 0.1))
    assert land.cv["dice"].mean == pytest.approx(0.4)
    assert land.retrained == {"iou": 0.35, "dice": 0.45}
    # and a figure nobody measured is None, not 0
    assert land.ensemble == {"iou": 0.37, "dice": None}
    assert land.to_dict()["cv"]["iou"] == {"mean": pytest.approx(0.3), "std": pytest.approx(0.1)}


def test_binary_results_have_one_row_the_foreground_and_no_names_mean_indices():
    runs = [{"iou": 0.5, "dice": 0.6}, {"iou": 0.7, "dice": 0.8}]
    rows = per_class_rows(_results(runs), {"iou": 0.65, "dice": 0.7})
    assert [(r.index, r.name) for r in rows] == [(1, "foreground")]
    assert rows[0].cv["dice"] is not None and rows[0].cv["dice"].mean == pytest.approx(0.7)
    named = per_class_rows(_results(runs), None, ["sky", "cloud"])
    assert named[0].name == "cloud" and named[0].retrained == {"iou": None, "dice": None}
    multi = per_class_rows(_results([{"iou_class_0": 0.1, "iou_class_1": 0.2}]), None)
    assert [r.name for r in multi] == ["class 0", "class 1"]


def test_results_without_per_class_or_foreground_figures_have_no_table():
    assert per_class_rows(_results([{"score": 0.5}]), {"score": 0.4}) == []
    assert per_class_rows(SweepResults.from_dict({"best": None, "ranking": []}), None) == []
