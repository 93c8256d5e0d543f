"""The keys of a refined evaluation's figures beside the plain ones."""

from __future__ import annotations

from smptune.metric_keys import refined_key, split_refined


def test_refined_figures_split_from_the_plain_ones_by_variant():
    metrics = {
        "iou": 0.5,
        "iou_class_1": 0.4,
        refined_key("iou", "flips"): 0.6,
        refined_key("iou_class_1", "flips"): 0.45,
        "dice/flips_largest_component": 0.7,
    }
    plain, refined = split_refined(metrics)
    assert plain == {"iou": 0.5, "iou_class_1": 0.4}
    assert refined == {
        "flips": {"iou": 0.6, "iou_class_1": 0.45},
        "flips_largest_component": {"dice": 0.7},
    }
