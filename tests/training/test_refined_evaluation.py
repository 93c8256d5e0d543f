"""The final evaluation's test-time flips and largest-component post-processing, reported
beside the plain figures, on whole images (stored at once, or in sliding windows)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from smptune.metric_keys import split_refined
from smptune.training.data import load_data
from smptune.training.engine import _refined_metrics
from smptune.training.inference import Windows
from smptune.training.refine import variants

pytestmark = pytest.mark.usefixtures("isolated_cache")


def _write_decoys(root: Path, sizes: list[tuple[int, int]]) -> Path:
    """Images whose mask is one bright square, with a small bright decoy outside it."""
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for i, (h, w) in enumerate(sizes):
        image = np.full((h, w, 3), 40, np.uint8)
        mask = np.zeros((h, w), np.uint8)
        mask[4:20, 4:20] = 255
        image[4:20, 4:20] = 220
        image[h - 6 : h - 2, w - 6 : w - 2] = 220  # the decoy: 16 px the model finds too
        Image.fromarray(image).save(root / "images" / f"d{i}.png")
        Image.fromarray(mask).save(root / "masks" / f"d{i}.png")
    return root


def _brightness_model() -> torch.nn.Module:
    """Foreground where channel 0 is bright: a 1×1 convolution, flip-equivariant."""
    model = torch.nn.Conv2d(3, 1, kernel_size=1)
    with torch.no_grad():
        model.weight.zero_()
        model.weight[0, 0] = 20.0
        model.bias.fill_(-10.0)  # positive above 0.5
    return model.eval()


@pytest.mark.parametrize(
    ("sizes", "crop"),
    [([(40, 50)] * 3, None), ([(40, 50), (64, 37), (33, 70)], 32)],
    ids=["stored-images", "sliding-windows"],
)
def test_keeping_the_largest_component_removes_the_decoy_and_flips_change_nothing_here(
    tmp_path, sizes, crop
):
    # Given images with a true square and a decoy the model also marks
    root = _write_decoys(tmp_path / "data", sizes)
    data = load_data({"root": str(root), **({"crop_size": crop} if crop else {})})
    windows = Windows(crop, 0.5, 2) if crop else None

    # When the final evaluation runs with both options
    chosen = variants("flips", "largest_component")
    figures = _refined_metrics(_brightness_model(), None, data, range(3), windows, chosen)

    # Then each variant is reported under its own key
    plain, refined = split_refined(figures)
    assert plain == {}
    assert set(refined) == {"flips", "largest_component", "flips_largest_component"}
    # the decoy (16 px beside 256 true ones) costs the plain prediction IoU 256/272
    assert refined["flips"]["iou"] == pytest.approx(256 / 272, abs=1e-6)
    # keeping the largest component removes it: a perfect mask
    assert refined["largest_component"]["iou"] == pytest.approx(1.0)
    assert refined["flips_largest_component"]["dice"] == pytest.approx(1.0)


def test_no_options_evaluate_nothing_more():
    assert variants("none", "none") == ()
    assert _refined_metrics(_brightness_model(), None, None, [0], None, ()) == {}  # type: ignore[arg-type]
