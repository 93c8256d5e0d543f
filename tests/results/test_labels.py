"""Metric names as people read them: per-class metrics under the config's class names."""

from __future__ import annotations

from smptune.results.labels import (
    class_name,
    metric_label,
    metrics_text,
    split_class_metric,
    variant_label,
)


def test_per_class_metrics_are_split_into_metric_and_class():
    assert split_class_metric("dice_class_2") == ("dice", 2)
    assert split_class_metric("iou_class_10") == ("iou", 10)
    assert split_class_metric("iou") is None
    assert split_class_metric("iou_class_") is None
    assert split_class_metric("iou_class_x") is None


def test_a_per_class_metric_reads_under_its_class_name_and_others_as_they_are():
    names = ["background", "tumour", "stroma"]
    assert metric_label("dice_class_1", names) == "dice · tumour"
    assert metric_label("dice_class_1", None) == "dice_class_1"
    assert metric_label("dice_class_5", names) == "dice_class_5"  # no such name
    assert metric_label("loss", names) == "loss"
    assert class_name(2, names) == "stroma" and class_name(3, names) == "class 3"


def test_a_log_line_names_the_classes():
    text = metrics_text({"iou": 0.5, "iou_class_1": 0.25}, ["bg", "road"])
    assert text == "iou=0.5000, iou · road=0.2500"


def test_a_log_line_shows_a_refined_evaluation_by_its_iou_and_dice_after_the_plain_figures():
    metrics = {"iou": 0.5, "dice": 0.6, "iou/flips": 0.55, "dice/flips": 0.65, "f1/flips": 0.65}
    assert metrics_text(metrics, None) == (
        "iou=0.5000, dice=0.6000; with flips: iou=0.5500, dice=0.6500"
    )
    assert variant_label("flips_largest_component") == "flips + largest component"
