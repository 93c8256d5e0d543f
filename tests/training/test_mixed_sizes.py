"""Datasets whose images differ in size: ragged storage, the data check, training patches
(a share centred on foreground) and whole-image evaluation in sliding windows."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from smptune.errors import ConfigError
from smptune.trainable import SweepSettings
from smptune.training.data import IGNORE, Ragged, clear_cache, load_data
from smptune.training.inference import Windows, labels_of, reflect_pad, sliding_window
from smptune.training.model import build_model
from smptune.training.params import resolve_params
from smptune.training.patches import PatchSampler

SIZES = [(40, 50), (90, 64), (33, 77), (64, 64), (70, 45), (48, 90)]


pytestmark = pytest.mark.usefixtures("isolated_cache")


def write_mixed(root: Path, sizes=SIZES, channels: int = 3) -> Path:
    """PNG pairs of ``sizes``: noise with a bright square, the square the mask (255)."""
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    rng = np.random.default_rng(0)
    for i, (h, w) in enumerate(sizes):
        mask = np.zeros((h, w), np.uint8)
        y, x = rng.integers(0, h - 12), rng.integers(0, w - 12)
        mask[y : y + 12, x : x + 12] = 255
        image = rng.integers(0, 90, (h, w, channels), np.uint8)
        image[mask > 0] += 150
        Image.fromarray(image if channels > 1 else image[..., 0]).save(
            root / "images" / f"m{i}.png"
        )
        Image.fromarray(mask).save(root / "masks" / f"m{i}.png")
    return root


def crop_data(root: Path, size: int = 32, **more) -> dict:
    """Patches of ``size`` (a crop size alone means ``resize: crop``)."""
    return {"root": str(root), "crop_size": size, **more}


def small_unet(classes: int = 1, channels: int = 3) -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model(resolve_params({}), channels, classes).eval()


# --- storage and the data check ---------------------------------------------------------------


def test_mixed_size_pngs_are_stored_ragged_with_their_true_sizes(tmp_path):
    root = write_mixed(tmp_path / "data")
    data = load_data(crop_data(root))
    assert isinstance(data.images, Ragged) and isinstance(data.masks, Ragged)
    assert not data.uniform and data.n == len(SIZES) and data.in_channels == 3
    for i, (h, w) in enumerate(SIZES):
        assert data.size(i) == (h, w)
        stored = data.images[i]
        # padded to multiples of 32 (and at least the crop size), by reflection
        assert stored.shape == (3, -(-h // 32) * 32, -(-w // 32) * 32)
        raw = np.moveaxis(np.asarray(Image.open(root / "images" / f"m{i}.png")), -1, 0)
        np.testing.assert_array_equal(stored[:, :h, :w], raw)
        np.testing.assert_array_equal(
            stored[:, h:, :w],
            np.pad(raw, ((0, 0), (0, stored.shape[1] - h), (0, 0)), mode="reflect")[:, h:],
        )
        mask = data.masks[i]
        assert (mask[h:] == IGNORE).all() and (mask[:, w:] == IGNORE).all()
        assert set(np.unique(data.true_mask(i))) <= {0, 1}
    # and a second process maps the same ragged entry
    clear_cache()
    again = load_data(crop_data(root))
    np.testing.assert_array_equal(again.images[3], data.images[3])


def test_images_smaller_than_the_crop_size_are_padded_up_to_it(tmp_path):
    root = write_mixed(tmp_path / "data", sizes=[(20, 30), (40, 70)])
    data = load_data(crop_data(root, 64))
    assert data.images[0].shape == (3, 64, 64) and data.images[1].shape == (3, 64, 96)
    assert data.size(0) == (20, 30)


def test_mixed_sizes_without_a_crop_size_are_one_error_suggesting_one(tmp_path):
    root = write_mixed(tmp_path / "data")
    with pytest.raises(ConfigError) as caught:
        load_data({"root": str(root)})
    message = str(caught.value)
    assert message.startswith("data.root: image images/m1.png is 90×64, but images/m0.png is 40×50")
    assert "set data.crop_size (a multiple of 32, e.g. 32)" in message


def test_a_channel_mismatch_is_one_error_naming_the_file(tmp_path):
    root = write_mixed(tmp_path / "data")
    grey = np.zeros((50, 60), np.uint8)
    Image.fromarray(grey).save(root / "images" / "m3.png")
    Image.fromarray(grey).save(root / "masks" / "m3.png")
    with pytest.raises(
        ConfigError,
        match=r"^data\.root: image images/m3\.png has 1 channel, but images/m0\.png has 3; "
        r"all images must have the same channels$",
    ):
        load_data(crop_data(root))


@pytest.mark.parametrize(
    "data, message",
    [
        ({"foreground_share": 0.5}, r"data\.foreground_share: only used with resize: crop"),
        ({"resize": "pad", "crop_size": 32}, r"data\.crop_size: only used with resize: crop"),
        (
            {"resize": "crop", "crop_size": 32, "overlap": 1.0},
            r"data\.overlap: must be a number in \[0, 0\.95\]",
        ),
        (
            {"resize": "crop", "crop_size": 32, "foreground_share": -0.1},
            r"data\.foreground_share: must be",
        ),
    ],
)
def test_bad_patch_settings_name_the_key(data, message):
    with pytest.raises(ConfigError, match=message):
        load_data({"synthetic": {"n_images": 4, "size": 32}, **data})


# --- training patches -------------------------------------------------------------------------


def test_patches_are_fixed_size_inside_the_image_and_drawn_per_epoch(tmp_path):
    from smptune.training.loaders import data_loader

    data = load_data(crop_data(write_mixed(tmp_path / "data")))
    patches = PatchSampler(data, 32, foreground_share=0.33, seed=3)
    loader = data_loader(
        data, range(data.n), 4, shuffle=True, seed=3, num_workers=0, patches=patches
    )
    batches = list(loader)
    assert [tuple(images.shape) for images, _ in batches] == [(4, 3, 32, 32), (2, 3, 32, 32)]
    assert all(tuple(masks.shape[1:]) == (32, 32) for _, masks in batches)
    # every image is at least 32 a side: no patch holds padding
    assert all((masks != IGNORE).all() for _, masks in batches)
    for i in range(data.n):
        y, x = patches.corner(i, epoch=0)
        h, w = data.size(i)
        assert 0 <= y <= h - 32 and 0 <= x <= w - 32
    # the same (seed, epoch) draws the same patches; another epoch others
    assert patches.corner(1, 0) == PatchSampler(data, 32, 0.33, seed=3).corner(1, 0)
    assert {patches.corner(1, e) for e in range(10)} != {patches.corner(1, 0)}


def test_a_share_of_patches_is_centred_on_foreground(tmp_path):
    # Given large images with one small foreground square each
    data = load_data(crop_data(write_mixed(tmp_path / "data", sizes=[(200, 180), (160, 220)])))

    def with_foreground(share: float) -> float:
        sampler = PatchSampler(data, 32, share, seed=1)
        hits = [sampler.patch(i, e)[1].any() for i in range(2) for e in range(100)]
        return float(np.mean(hits))

    # Then every patch holds foreground at share 1, few do at 0, and about half at 0.5
    assert with_foreground(1.0) == 1.0
    assert with_foreground(0.0) < 0.2
    assert 0.4 < with_foreground(0.5) < 0.75


# --- sliding windows --------------------------------------------------------------------------


def test_sliding_window_keeps_the_exact_size_and_matches_one_forward_pass():
    model = small_unet()
    image = torch.rand(3, 40, 50)
    # an image that fits one 64 window: a plain forward pass of the padded image
    output = sliding_window(model, image, Windows(64, overlap=0.5, batch=2))
    assert output.shape == (1, 40, 50)
    with torch.no_grad():
        plain = model(reflect_pad(image[None], 64, 64))[0, :, :40, :50]
    torch.testing.assert_close(output, plain, rtol=1e-4, atol=1e-4)
    # a larger image in several overlapping windows: still its own size
    large = sliding_window(model, torch.rand(3, 150, 97), Windows(64, overlap=0.25, batch=3))
    assert large.shape == (1, 150, 97) and torch.isfinite(large).all()
    # and a multi-class model's labels
    labels = labels_of(sliding_window(small_unet(3), image, Windows(32)), 3)
    assert labels.shape == (40, 50) and int(labels.max()) <= 2


def test_validation_metrics_are_whole_image_metrics_at_the_true_size(tmp_path):
    from smptune.search.scoring import Scoring
    from smptune.training.evaluation import SegmentationMetrics
    from smptune.training.inference import predict_labels
    from smptune.training.loaders import data_loader
    from smptune.training.module import SegmentationModule

    data = load_data(crop_data(write_mixed(tmp_path / "data")))
    windows = Windows(32, 0.5, 4)
    module = SegmentationModule(
        small_unet(),
        resolve_params({}),
        scoring=Scoring.from_config("iou"),
        scale=data.scale,
        windows=windows,
    )
    loader = data_loader(
        data,
        range(data.n),
        4,
        shuffle=False,
        seed=0,
        num_workers=0,
        patches=PatchSampler(data, 32, 0.0, 0),
    )
    module.eval()
    module.on_validation_epoch_start()
    with torch.no_grad():
        for k, batch in enumerate(loader):
            images, masks = module.on_after_batch_transfer(batch, 0)
            assert tuple(images.shape[2:]) == data.size(k)  # whole, true size, no padding
            module.validation_step((images, masks), k)
    got = module.val_metrics.compute()
    # Then they equal metrics of the true-size predictions against the true-size masks
    expected = SegmentationMetrics(1)
    correct = total = 0
    for i in range(data.n):
        labels = predict_labels(module.model, data.float_image(i), 1, windows)
        mask = torch.from_numpy(data.true_mask(i).astype(np.int64))
        expected.update(torch.where(labels[None, None] > 0, 1.0, -1.0), mask[None])
        correct += int((labels == mask).sum())
        total += mask.numel()
    assert got == pytest.approx(expected.compute())
    assert got["accuracy"] == pytest.approx(correct / total)


def test_a_fold_trains_on_patches_and_validates_whole_mixed_size_images(tmp_path):
    from smptune.trainable import FoldContext
    from smptune.training import SegmentationTrainable

    root = write_mixed(tmp_path / "data", sizes=SIZES * 2)
    settings = SweepSettings(
        seed=1,
        metric="iou",
        mode="max",
        data={**crop_data(root), "test_fraction": 0.25},
        cv={"n_folds": 2},
        training={"max_epochs": 1},
    )
    context = FoldContext("sweep", 0, 0, 2, settings)
    result = SegmentationTrainable().train_fold({"batch_size": 4}, context)
    assert 0.0 <= result.metrics["iou"] <= 1.0 and result.epochs_run == 1


def test_mixed_size_float_data_is_scaled_per_channel_over_all_images(tmp_path):
    # Given uint16 NPY images (C, H, W) of three sizes, one a single row
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    shapes = [(2, 40, 50), (2, 70, 33), (2, 1, 40)]
    for i, shape in enumerate(shapes):
        image = np.full(shape, 100 + 100 * i, np.uint16)
        image[1] *= 10
        np.save(tmp_path / "images" / f"f{i}.npy", image)
        np.save(tmp_path / "masks" / f"f{i}.npy", np.zeros(shape[1:], np.uint8))
    data = load_data(crop_data(tmp_path))
    # Then each channel's range over every image maps to [0, 1], padding included
    assert data.normalisation["low"] == [100.0, 1000.0]
    assert data.normalisation["span"] == [200.0, 2000.0]
    assert [data.size(i) for i in range(3)] == [s[1:] for s in shapes]
    np.testing.assert_allclose(data.images[2], 1.0)  # the one row, edge-padded to 32 × 64
    assert data.images[2].shape == (2, 32, 64) and float(data.images[0].max()) == 0.0
