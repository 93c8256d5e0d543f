"""``resize: scale``: images of any size resized to one ``image_size`` (masks by nearest
neighbour), and a model trained on whole images predicting new images of other sizes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from smptune.errors import ConfigError
from smptune.trainable import SweepSettings
from smptune.training.data import data_spec, load_data, scaled, scaled_labels
from smptune.training.model import build_model
from smptune.training.params import resolve_params
from smptune.training.prediction import load_predictor, predict_files
from smptune.training.saved_model import save_model
from smptune.training.settings import run_settings
from training.test_mixed_sizes import SIZES, write_mixed

pytestmark = pytest.mark.usefixtures("isolated_cache")


def test_scale_resizes_every_image_and_mask_to_the_image_size(tmp_path):
    # Given images of six sizes from 33 to 90 px
    root = write_mixed(tmp_path / "data")

    # When they are read with resize: scale to 48 × 40
    data = load_data({"root": str(root), "resize": "scale", "image_size": [48, 40]})

    # Then every sample is 48 × 40 (stored padded to 64 × 64), masks keep their labels
    assert data.uniform and (data.height, data.width) == (48, 40)
    assert data.images.shape == (len(SIZES), 3, 64, 64)
    for i in range(len(SIZES)):
        mask = data.true_mask(i)
        assert mask.shape == (48, 40) and set(np.unique(mask)) <= {0, 1}
        assert mask.sum() > 0  # each 12-px square survives the scaling


def test_resizing_keeps_what_is_where():
    image = np.zeros((1, 30, 60), np.uint8)
    image[:, 10:20, 20:40] = 200
    out = scaled(image, (60, 120))
    assert out.shape == (1, 60, 120) and out.dtype == np.uint8
    assert out[0, 30, 60] == 200 and out[0, 5, 5] == 0
    labels = np.zeros((30, 60), np.uint8)
    labels[10:20, 20:40] = 2
    back = scaled_labels(scaled_labels(labels, (60, 120)), (30, 60))
    np.testing.assert_array_equal(back, labels)  # nearest neighbour both ways: exact


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (None, r"^data.image_size: resize: scale needs an image_size"),
        ([64], r"^data.image_size: expected \[height, width\]"),
        ([64, 0], r"^data.image_size: must be an integer in \[1, 16384\], got 0$"),
    ],
)
def test_a_bad_image_size_names_the_key(value, message):
    with pytest.raises(ConfigError, match=message):
        data_spec({"root": "x", "resize": "scale", "image_size": value})
    with pytest.raises(ConfigError, match=r"^data.image_size: only used with resize: scale$"):
        data_spec({"root": "x", "image_size": 64})


@pytest.mark.parametrize(
    "data_options",
    [{"resize": "scale", "image_size": 48}, {}],
    ids=["scaled", "whole-images"],
)
def test_a_model_trained_on_whole_images_predicts_masks_of_each_new_images_size(
    tmp_path, data_options
):
    # Given a model saved as the retrain saves it, from data of one size (40 × 50 without
    # scaling: stored padded to 64 × 64) or scaled to 48 × 48
    sizes = [(40, 50)] * 4 if not data_options else SIZES
    root = write_mixed(tmp_path / "data", sizes=sizes)
    settings = SweepSettings(
        seed=0, metric="iou", mode="max", data={"root": str(root), **data_options}
    )
    rs = run_settings(settings)
    data = load_data(rs.data)
    params = resolve_params({})
    model = build_model(params, data.in_channels, data.classes)
    save_model(model, tmp_path / "run" / "final" / "model", params, rs, data, {"iou": 0.5})

    # When the retrained model predicts new images of other sizes
    new = write_mixed(tmp_path / "new", sizes=[(37, 81), (96, 64)])
    predictor = load_predictor(tmp_path / "run")  # no ensemble: the retrained model
    assert predictor.kind == "retrained model" and predictor.windows.size == 64
    written = list(predict_files(predictor, sorted((new / "images").iterdir()), tmp_path / "m"))

    # Then each mask has its image's size
    assert [Image.open(p).size for p in written] == [(81, 37), (64, 96)]
    assert all(set(np.unique(np.asarray(Image.open(p)))) <= {0, 255} for p in written)


def test_predict_refuses_an_unknown_model_kind(tmp_path: Path):
    with pytest.raises(ConfigError, match=r"^predict: --model: must be one of ensemble"):
        load_predictor(tmp_path, model="best")
