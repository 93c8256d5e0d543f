"""The built-in segmentation trainable: splits, data, checks, and short real trainings."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from smptune.errors import ConfigError, TrialError
from smptune.trainable import FoldContext, FoldResult, SweepSettings, Trainable
from smptune.training import SegmentationTrainable, baseline_metrics
from smptune.training.cache import CACHE_ENV
from smptune.training.data import IGNORE, clear_cache, load_data
from smptune.training.folds import fold_split, kfold, n_test_samples, train_test_split
from smptune.training.metrics import METRICS, metrics_from_counts
from smptune.training.synthetic import make_synthetic

TINY = {"synthetic": {"n_images": 12, "size": 32, "seed": 3}, "test_fraction": 0.25}


def settings(data: dict | None = None, n_folds: int = 2, **training) -> SweepSettings:
    return SweepSettings(
        seed=7,
        metric="iou",
        mode="max",
        data=TINY if data is None else data,
        cv={"n_folds": n_folds},
        training={"max_epochs": 2, "early_stopping_patience": 0, **training},
    )


def context(s: SweepSettings, fold: int = 0, output_dir: Path | None = None) -> FoldContext:
    return FoldContext("sweep", 0, fold, int(s.cv["n_folds"]), s, output_dir=output_dir)


@pytest.fixture(autouse=True)
def _fresh_data_cache(tmp_path_factory, monkeypatch):
    """Each test starts with an empty process cache and its own machine cache folder."""
    monkeypatch.setenv(CACHE_ENV, str(tmp_path_factory.mktemp("cache")))
    clear_cache()
    yield
    clear_cache()


def write_folder(root: Path, n: int = 5, size: tuple[int, int] = (40, 48)) -> Path:
    """Given a data folder with n PNG image/mask pairs and one NPY (channels-first) pair."""
    rng = np.random.default_rng(0)
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    h, w = size
    for i in range(n):
        Image.fromarray((rng.random((h, w, 3)) * 255).astype(np.uint8)).save(
            root / "images" / f"tile{i}.png"
        )
        Image.fromarray(((rng.random((h, w)) > 0.7) * 255).astype(np.uint8)).save(
            root / "masks" / f"tile{i}.png"
        )
    np.save(root / "images" / "extra.npy", (rng.random((3, h, w)) * 255).astype(np.uint8))
    np.save(root / "masks" / "extra.npy", rng.random((h, w)) > 0.5)
    return root


# --- folds -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("n", "n_folds", "test_fraction"), [(10, 3, 0.2), (37, 5, 0.3), (5, 2, 0.1)]
)
def test_folds_are_disjoint_cover_the_train_split_and_never_hold_test_samples(
    n, n_folds, test_fraction
):
    # Given a split of n samples
    split = train_test_split(n, seed=11, test_fraction=test_fraction)
    # When the train split is cut into folds
    folds = kfold(split.train, n_folds, seed=11)
    # Then the test split has round(f * n) (>= 1) samples, the folds are disjoint,
    # together they are the train split, and no fold holds a test index
    assert len(split.evaluate) == n_test_samples(n, test_fraction) >= 1
    flat = [i for fold in folds for i in fold]
    assert len(flat) == len(set(flat))
    assert sorted(flat) == list(split.train)
    assert not set(flat) & set(split.evaluate)
    assert sorted(flat + list(split.evaluate)) == list(range(n))
    assert max(map(len, folds)) - min(map(len, folds)) <= 1
    # and each fold run trains on the other folds and validates on its own
    for k in range(n_folds):
        run = fold_split(n, 11, test_fraction, n_folds, k)
        assert run.evaluate == folds[k]
        assert set(run.train) == set(split.train) - set(folds[k])


def test_folds_are_deterministic_and_depend_on_the_seed():
    # Given the same arguments twice, and a different seed
    first = fold_split(50, 3, 0.2, 4, 1)
    again = fold_split(50, 3, 0.2, 4, 1)
    other = fold_split(50, 4, 0.2, 4, 1)
    # Then the same seed gives the same split, another seed another one
    assert first == again
    assert first != other


def test_more_folds_than_train_samples_is_a_config_error_naming_cv_n_folds():
    # Given 6 samples, 2 of them held out for testing: 4 train samples
    # When 5 folds are asked for
    # Then the error names cv.n_folds
    with pytest.raises(ConfigError, match=r"cv\.n_folds"):
        fold_split(6, 0, 0.3, 5, 0)


# --- data ----------------------------------------------------------------------------------


def test_synthetic_data_is_deterministic_normalised_and_has_foreground():
    # When the synthetic set is made twice with one seed and once with another
    images, masks = make_synthetic(n_images=6, size=32, channels=2, seed=5)
    images2, masks2 = make_synthetic(n_images=6, size=32, channels=2, seed=5)
    images3, _ = make_synthetic(n_images=6, size=32, channels=2, seed=6)
    # Then the same seed gives the same arrays, of the asked shape, in [0, 1], with shapes
    assert np.array_equal(images, images2) and np.array_equal(masks, masks2)
    assert not np.array_equal(images, images3)
    assert images.shape == (6, 2, 32, 32) and images.dtype == np.float32
    assert masks.shape == (6, 32, 32) and set(np.unique(masks)) <= {0, 1}
    assert images.min() >= 0.0 and images.max() <= 1.0
    assert 0.02 < masks.mean() < 0.5


def test_folder_of_png_and_npy_loads_padded_to_multiples_of_32(tmp_path):
    # Given 5 PNG pairs and 1 NPY pair of 40x48 RGB images
    root = write_folder(tmp_path / "data")
    # When the folder is loaded
    data = load_data({"root": str(root)})
    # Then every pair is there, channels first, kept as bytes (read as x / 255), padded to 64x64
    assert data.names == ("extra", "tile0", "tile1", "tile2", "tile3", "tile4")
    assert data.images.shape == (6, 3, 64, 64) and data.images.dtype == np.uint8
    scaled = data.float_images(slice(None))
    assert scaled.dtype == np.float32 and scaled.min() >= 0.0 and scaled.max() <= 1.0
    first = np.asarray(Image.open(root / "images" / "tile0.png"))
    assert np.allclose(scaled[1, :, :40, :48], np.moveaxis(first, -1, 0) / 255.0)
    assert (data.height, data.width) == (40, 48)
    # and mask pixels are 0/1 inside, IGNORE in the padding
    assert set(np.unique(data.masks[:, :40, :48])) == {0, 1}
    assert (data.masks[:, 40:, :] == IGNORE).all() and (data.masks[:, :, 48:] == IGNORE).all()
    expected = np.asarray(Image.open(root / "masks" / "tile2.png")) != 0
    assert np.array_equal(data.masks[3, :40, :48], expected)


def test_folder_data_is_read_once_per_process(tmp_path):
    # Given a loaded folder
    root = write_folder(tmp_path / "data")
    first = load_data({"root": str(root)})
    # When a file changes and the same data settings are loaded again
    (root / "images" / "tile0.png").unlink()
    # Then the cached dataset comes back without reading the folder
    assert load_data({"root": str(root), "test_fraction": 0.5}) is first


def test_image_without_mask_is_a_config_error_naming_the_file(tmp_path):
    # Given a folder where one image has no mask
    root = write_folder(tmp_path / "data")
    (root / "masks" / "tile3.png").unlink()
    # Then loading names that image
    with pytest.raises(ConfigError, match=r"images/tile3\.png has no mask"):
        load_data({"root": str(root)})


def test_mask_of_another_size_is_a_config_error_naming_the_file(tmp_path):
    # Given a folder where one mask is smaller than its image
    root = write_folder(tmp_path / "data")
    np.save(root / "masks" / "extra.npy", np.zeros((20, 48), dtype=bool))
    # Then loading names that mask and both sizes
    with pytest.raises(ConfigError, match=r"mask masks/extra\.npy is 20×48.*40×48"):
        load_data({"root": str(root)})


def test_image_of_another_size_is_a_config_error_naming_the_file(tmp_path):
    # Given a folder where one image is larger than the others
    root = write_folder(tmp_path / "data")
    Image.fromarray(np.zeros((64, 64, 3), np.uint8)).save(root / "images" / "tile4.png")
    # Then loading names it
    with pytest.raises(ConfigError, match=r"image images/tile4\.png is 64×64"):
        load_data({"root": str(root)})


def test_empty_or_incomplete_folders_are_config_errors_naming_the_folder(tmp_path):
    # Given a folder with empty images/ and masks/
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    with pytest.raises(ConfigError, match=r"data\.root: .*images holds no images"):
        load_data({"root": str(tmp_path)})
    # Given a folder without masks/
    (tmp_path / "nomasks" / "images").mkdir(parents=True)
    with pytest.raises(ConfigError, match=r"has no masks/ folder"):
        load_data({"root": str(tmp_path / "nomasks")})
    # Given a path that does not exist
    with pytest.raises(ConfigError, match=r"data\.root: .*missing is not a folder"):
        load_data({"root": str(tmp_path / "missing")})


# --- validate ------------------------------------------------------------------------------


def test_segmentation_trainable_meets_the_protocol_and_accepts_its_defaults():
    trainable = SegmentationTrainable()
    assert isinstance(trainable, Trainable)
    assert trainable.metrics == METRICS
    assert METRICS == ("iou", "dice", "f1", "precision", "recall", "accuracy", "loss")
    trainable.validate({}, settings())
    trainable.validate(dict(trainable.defaults), settings())


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"model_arch": "Foo"}, r"hyperparameters\.model_arch: unknown architecture 'Foo'.*Unet"),
        ({"model_encoder": "resnet19"}, r"hyperparameters\.model_encoder: unknown encoder"),
        ({"model_encoder": "tu-no_such_net"}, r"hyperparameters\.model_encoder: timm has no"),
        (
            {"model_encoder": "resnet18", "model_encoder_weights": "nope"},
            r"hyperparameters\.model_encoder_weights: .*no weights 'nope'",
        ),
        ({"learning_rate": 0}, r"hyperparameters\.learning_rate: must be > 0"),
        ({"gamma": 1.5}, r"hyperparameters\.gamma"),
        ({"batch_size": 0}, r"hyperparameters\.batch_size"),
        ({"focal_loss_alpha": 2}, r"hyperparameters\.focal_loss_alpha"),
        ({"augment": "yes"}, r"hyperparameters\.augment"),
        ({"dropout": 0.1}, r"hyperparameters\.dropout: unknown hyperparameter"),
    ],
)
def test_bad_hyperparameters_are_config_errors_naming_the_key(params, message):
    with pytest.raises(ConfigError, match=message):
        SegmentationTrainable().validate(params, settings())


@pytest.mark.parametrize(
    ("sweep", "message"),
    [
        (SweepSettings(seed=0, metric="jaccard", mode="max", data=TINY), r"^metric: "),
        (settings({"synthetic": {"n_image": 5}}), r"data\.synthetic\.n_image: unknown option"),
        (settings({"synthetic": {"size": -3}}), r"data\.synthetic\.size"),
        (settings({"synthetic": {}, "root": "/x"}), r"either root or synthetic"),
        (settings({"synthetic": {}, "test_fraction": 1.0}), r"data\.test_fraction"),
        (settings(n_folds=20), r"cv\.n_folds: 20 folds"),
        (settings(precision="8-bit"), r"training\.precision"),
    ],
)
def test_bad_settings_are_config_errors_naming_the_key(sweep, message):
    with pytest.raises(ConfigError, match=message):
        SegmentationTrainable().validate({}, sweep)


def test_baseline_of_all_background_scores_zero_iou():
    # When all pixels are predicted background
    baseline = baseline_metrics(settings())
    # Then iou, f1, precision and recall are 0; accuracy is the background share
    masks = load_data(TINY).masks
    split = train_test_split(len(masks), 7, 0.25)
    share = float((masks[list(split.train)] == 0).mean())
    assert baseline == pytest.approx(
        {"iou": 0.0, "dice": 0.0, "f1": 0.0, "precision": 0.0, "recall": 0.0, "accuracy": share}
    )
    assert metrics_from_counts(tp=3, fp=1, fn=2, tn=4)["iou"] == pytest.approx(0.5)


# --- training (real, tiny) ---------------------------------------------------------------


def test_augmentation_moves_image_and_mask_together():
    import torch

    from smptune.training.augment import augment_batch

    # Given images whose first channel equals their mask
    torch.manual_seed(0)
    masks = (torch.rand(16, 32, 32) > 0.5).to(torch.uint8)
    images = torch.stack([masks.float(), torch.rand(16, 32, 32)], dim=1)
    # When the batch is augmented
    aug_images, aug_masks = augment_batch(images, masks)
    # Then some samples changed, and every image still matches its mask
    assert not torch.equal(aug_masks, masks)
    assert torch.equal(aug_images[:, 0], aug_masks.float())


def _squares(n: int = 16, size: int = 32, seed: int = 0):
    """Masks of one large square each, and images whose first channel is the mask."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    masks = torch.zeros(n, size, size, dtype=torch.uint8)
    for i, (y, x) in enumerate(torch.randint(2, size // 2, (n, 2), generator=generator)):
        masks[i, y : y + size // 3, x : x + size // 3] = 1
    images = torch.stack([masks.float(), torch.rand(n, size, size, generator=generator)], 1)
    return images, masks


@pytest.mark.parametrize("augment", ["scale", "rotate", "flips+scale+rotate", "all"])
def test_geometric_augmentation_moves_masks_with_images_and_ignores_what_it_pads(augment):
    import torch

    from smptune.training.augment import Augment
    from smptune.training.data import IGNORE
    from smptune.training.params import parse_augment

    # Given images whose first channel is their mask
    images, masks = _squares()
    # When a batch is augmented twice from the same seed
    torch.manual_seed(5)
    out_images, out_masks = Augment(parse_augment(augment))(images, masks)
    torch.manual_seed(5)
    again_images, again_masks = Augment(parse_augment(augment))(images, masks)
    # Then samples were moved, each mask with its image (but for interpolated edges)
    assert not torch.equal(out_masks, masks)
    valid = out_masks != IGNORE
    agree = ((out_images[:, 0] > 0.5) == (out_masks == 1))[valid].float().mean()
    assert float(agree) > 0.97
    # and pixels moved in from outside an image are ignored, not called background
    assert bool((out_masks == IGNORE).any())
    assert set(out_masks.unique().tolist()) <= {0, 1, IGNORE}
    # and the same seed draws the same augmentation
    assert torch.equal(out_masks, again_masks) and torch.equal(out_images, again_images)


@pytest.mark.parametrize("augment", ["intensity", "noise"])
def test_intensity_and_noise_change_images_and_leave_masks_alone(augment):
    import torch

    from smptune.training.augment import Augment
    from smptune.training.params import parse_augment

    images, masks = _squares()
    torch.manual_seed(1)
    out_images, out_masks = Augment(parse_augment(augment))(images, masks)
    assert torch.equal(out_masks, masks)
    changed = (out_images - images).abs().flatten(1).amax(1) > 1e-4
    assert 0 < int(changed.sum()) < len(images)  # each sample drawn on its own (p = 0.5)


def test_augment_true_keeps_its_meaning_and_names_combine():
    from smptune.training.params import parse_augment, resolve_params

    assert parse_augment(True) == ("flips",) and parse_augment(False) == ()
    assert parse_augment("noise + flips") == ("flips", "noise")
    assert parse_augment("all") == ("flips", "scale", "rotate", "intensity", "noise")
    assert resolve_params({"augment": "Noise+flips"})["augment"] == "flips+noise"
    assert resolve_params({"augment": True})["augment"] is True
    with pytest.raises(ConfigError, match=r"hyperparameters\.augment: .*got 'flip'"):
        parse_augment("flip")


def test_focal_loss_leaves_out_padded_pixels():
    import torch

    from smptune.training.losses import binary_focal_loss

    # Given a mask whose right half is padding
    masks = torch.zeros(2, 8, 8, dtype=torch.uint8)
    masks[:, :, 4:] = IGNORE
    logits = torch.zeros(2, 1, 8, 8)
    changed = logits.clone()
    changed[:, :, :, 4:] = 50.0
    # Then logits in the padding do not change the loss
    assert binary_focal_loss(logits, masks, 0.25, 2.0) == pytest.approx(
        float(binary_focal_loss(changed, masks, 0.25, 2.0))
    )


def test_train_fold_returns_metrics_of_the_best_epoch_and_is_reproducible():
    # Given tiny synthetic data and 2 epochs
    s = settings(max_epochs=2)
    trainable = SegmentationTrainable()
    # When fold 1 is trained twice
    result = trainable.train_fold({"batch_size": 4}, context(s, fold=1))
    again = trainable.train_fold({"batch_size": 4}, context(s, fold=1))
    # Then it is a FoldResult with every metric in [0, 1] and a best epoch among those run
    assert isinstance(result, FoldResult)
    assert set(result.metrics) == set(METRICS)
    assert all(0.0 <= v <= 1.0 for k, v in result.metrics.items() if k != "loss")
    assert 0.0 < result.metrics["loss"] < 10.0
    assert 1 <= result.best_epoch <= result.epochs_run == 2
    assert result.duration_s > 0
    # and the same seed and fold give the same metrics
    assert again.metrics == pytest.approx(result.metrics)


def test_nan_loss_is_a_trial_error_naming_the_epoch():
    # Given a learning rate that blows the weights up
    s = settings(max_epochs=4)
    # Then training stops with a TrialError
    with pytest.raises(TrialError, match=r"NaN loss at epoch \d"):
        SegmentationTrainable().train_fold({"learning_rate": 1e30}, context(s))


def test_retrain_and_test_saves_a_model_smp_loads(tmp_path):
    import segmentation_models_pytorch as smp
    import torch

    # Given tiny synthetic data with 2 channels
    data = {"synthetic": {"n_images": 10, "size": 32, "channels": 2}, "test_fraction": 0.3}
    s = settings(data)
    # When the configuration is retrained for 1 epoch with an output folder
    metrics = SegmentationTrainable().retrain_and_test(
        {"batch_size": 4}, 1, context(s, fold=-1, output_dir=tmp_path)
    )
    # Then it returns the test metrics, and smp loads a model that predicts a mask per image
    assert set(metrics) == set(METRICS)
    assert all(0.0 <= v <= 1.0 for k, v in metrics.items() if k != "loss")
    assert (tmp_path / "logs" / "retrain" / "metrics.csv").is_file()
    model = smp.from_pretrained(tmp_path / "model").eval()
    with torch.no_grad():
        out = model(torch.rand(3, 2, 32, 32))
    assert out.shape == (3, 1, 32, 32)


def test_importing_the_package_imports_no_torch():
    code = (
        "import smptune.training, sys; "
        "assert smptune.training.SegmentationTrainable.defaults['model_arch'] == 'Unet'; "
        "heavy = [m for m in ('torch', 'lightning', 'segmentation_models_pytorch') "
        "if m in sys.modules]; "
        "assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


@pytest.mark.parametrize(
    "bad",
    [np.full((32, 32), 0.5), np.full((32, 32), np.nan), np.full((32, 32), "a")],
    ids=["fraction", "nan", "text"],
)
def test_a_mask_that_is_not_integer_labels_is_refused_naming_the_file(tmp_path, bad):
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    np.save(tmp_path / "images" / "a.npy", np.zeros((32, 32, 3), dtype=np.uint8))
    np.save(tmp_path / "masks" / "a.npy", bad)
    with pytest.raises(ConfigError, match=r"masks/a.npy.*not whole numbers"):
        load_data({"root": str(tmp_path)})
