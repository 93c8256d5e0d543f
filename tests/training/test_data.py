"""The segmentation trainable's data: channels, sizes, classes, ignore values, the machine
cache, the fold methods, the test splits and the metric definitions (no training)."""

from __future__ import annotations

import json
import multiprocessing
import os
from pathlib import Path

import numpy as np
import pytest
import tifffile

from smptune.errors import ConfigError
from smptune.search.scoring import Scoring
from smptune.trainable import SweepSettings
from smptune.training import SegmentationTrainable, decode, describe_splits
from smptune.training.cache import CACHE_ENV
from smptune.training.data import IGNORE, clear_cache, load_data
from smptune.training.metrics import metric_names, metrics_from_confusion, metrics_from_counts
from smptune.training.splits import splits_for, strata
from smptune.training.synthetic import make_synthetic


@pytest.fixture(autouse=True)
def _cache_folder(tmp_path_factory, monkeypatch) -> Path:
    """Each test has an empty process cache and its own machine cache folder."""
    folder = tmp_path_factory.mktemp("cache")
    monkeypatch.setenv(CACHE_ENV, str(folder))
    clear_cache()
    yield folder
    clear_cache()


def sweep(data: dict, cv: dict | None = None, metric: object = "iou", seed: int = 5):
    return SweepSettings(
        seed=seed,
        metric=metric if isinstance(metric, str) else metric[0],
        mode="max",
        data=data,
        cv={"n_folds": 3, **(cv or {})},
        training={"max_epochs": 1},
        scoring=None if isinstance(metric, str) else Scoring.from_config(metric),
    )


def write_pairs(
    root: Path,
    masks: list[np.ndarray],
    images: list[np.ndarray] | None = None,
    metadata: dict[str, list[str]] | None = None,
) -> Path:
    """A data folder of NPY pairs ``s00``, ``s01``, ... (images random bytes unless given)."""
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    rng = np.random.default_rng(1)
    for i, mask in enumerate(masks):
        image = images[i] if images else rng.integers(0, 256, (*mask.shape, 3), dtype=np.uint8)
        np.save(root / "images" / f"s{i:02d}.npy", image)
        np.save(root / "masks" / f"s{i:02d}.npy", mask)
    if metadata:
        columns = ["name", *metadata]
        rows = [",".join(columns)]
        rows += [
            ",".join([f"s{i:02d}", *(metadata[c][i] for c in metadata)]) for i in range(len(masks))
        ]
        (root / "metadata.csv").write_text("\n".join(rows) + "\n")
    return root


# --- channels, sizes, classes, ignore values ------------------------------------------------


def test_multiband_uint16_tiff_of_odd_size_is_scaled_per_channel_and_padded(tmp_path):
    # Given 5-band uint16 TIFFs (channels first) of 50x70 with binary masks
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        bands = rng.integers(0, 4000, (5, 50, 70), dtype=np.uint16)
        bands[4] += 10_000  # a band on another scale
        tifffile.imwrite(tmp_path / "images" / f"t{i}.tif", bands)
        tifffile.imwrite(tmp_path / "masks" / f"t{i}.tif", (rng.random((50, 70)) > 0.5) * 7)
    # When the folder is loaded
    data = load_data({"root": str(tmp_path)})
    # Then it has 5 channels, each scaled to [0, 1] over the dataset, padded to 64x96
    assert data.images.shape == (3, 5, 64, 96) and data.images.dtype == np.float32
    assert (data.height, data.width) == (50, 70)
    inside = data.images[:, :, :50, :70]
    assert np.allclose(inside.min(axis=(0, 2, 3)), 0.0)
    assert np.allclose(inside.max(axis=(0, 2, 3)), 1.0)
    assert data.normalisation["method"].startswith("per-channel")
    # and masks are 0/1 inside, IGNORE in the padding
    assert set(np.unique(data.masks[:, :50, :70])) == {0, 1}
    assert (data.masks[:, 50:] == IGNORE).all() and (data.masks[:, :, 70:] == IGNORE).all()


def test_multiclass_masks_keep_labels_and_the_ignore_value_is_left_out(tmp_path):
    # Given masks with classes 0..2 and the ignore value 9
    masks = [np.array([[0, 1], [2, 9]] * 16, dtype=np.int32).repeat(16, axis=1) for _ in range(3)]
    root = write_pairs(tmp_path / "d", masks)
    # When loaded as 3 classes with ignore_index 9
    data = load_data({"root": str(root), "classes": 3, "ignore_index": 9})
    # Then the labels stay, and the ignore value becomes IGNORE
    assert data.classes == 3
    assert np.array_equal(data.masks[0, 0, :2], [0, 0]) and data.masks[0, 0, 16] == 1
    assert data.masks[0, 1, 0] == 2 and data.masks[0, 1, 16] == IGNORE


def test_binary_masks_with_an_ignore_value(tmp_path):
    # Given binary masks 0 / 255 foreground / 7 invalid
    mask = np.zeros((32, 32), np.uint8)
    mask[:8] = 255
    mask[-8:] = 7
    root = write_pairs(tmp_path / "d", [mask] * 3)
    data = load_data({"root": str(root), "ignore_index": 7})
    # Then 255 is foreground and 7 is IGNORE
    assert (data.masks[0, :8] == 1).all() and (data.masks[0, -8:] == IGNORE).all()
    assert (data.masks[0, 8:-8] == 0).all()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"classes": 3}, r"masks/s01\.npy holds the value 5, which is not a class 0\.\.2"),
        ({"classes": 3, "ignore_index": 4}, r"s01\.npy holds the value 5.*ignore_index \(4\)"),
    ],
)
def test_class_values_out_of_range_are_config_errors_naming_file_and_value(tmp_path, data, message):
    masks = [np.zeros((32, 32), np.uint8) for _ in range(3)]
    masks[1][3, 3] = 5
    root = write_pairs(tmp_path / "d", masks)
    with pytest.raises(ConfigError, match=message):
        load_data({"root": str(root), **data})


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"resize": "crop"}, r"data\.crop_size: resize: crop needs"),
        ({"resize": "crop", "crop_size": 48}, r"data\.crop_size: must be a multiple of 32"),
        ({"resize": "pad", "crop_size": 64}, r"data\.crop_size: only used with resize: crop"),
        ({"resize": "stretch"}, r"data\.resize: must be one of pad, crop"),
        ({"classes": 0}, r"data\.classes"),
        ({"classes": 3, "ignore_index": 1}, r"data\.ignore_index: 1 is one of the classes"),
        ({"test_names": ["a"], "test_groups": ["b"]}, r"give only one of"),
        ({"tst_fraction": 0.1}, r"data\.tst_fraction: unknown setting"),
    ],
)
def test_bad_data_settings_are_config_errors_naming_the_key(data, message):
    with pytest.raises(ConfigError, match=message):
        load_data({"synthetic": {"n_images": 6, "size": 32}, **data})


def test_crop_mode_pads_small_images_to_the_crop_size():
    data = load_data({"synthetic": {"n_images": 4, "size": 50}, "resize": "crop", "crop_size": 96})
    assert data.images.shape[2:] == (96, 96) and (data.height, data.width) == (50, 50)
    assert (data.masks[:, 50:] == IGNORE).all()


def test_synthetic_classes_channels_odd_size_and_groups():
    # When a 3-class, 4-channel, 50-pixel set with 3 groups is made
    images, masks = make_synthetic(n_images=8, size=50, channels=4, seed=2, classes=3)
    data = load_data(
        {"synthetic": {"n_images": 8, "size": 50, "channels": 4, "classes": 3, "groups": 3}}
    )
    # Then labels 0..2 all occur, images have 4 channels and pad to 64, groups are labelled
    assert set(np.unique(masks)) == {0, 1, 2}
    assert images.shape == (8, 4, 50, 50) and data.images.shape == (8, 4, 64, 64)
    assert data.classes == 3
    assert data.column("group", "cv.group_column") == ("g0", "g1", "g2") * 2 + ("g0", "g1")
    # and two classes (0, 1) draw exactly the binary set
    binary, binary_masks = make_synthetic(n_images=8, size=50, channels=4, seed=2)
    two, two_masks = make_synthetic(n_images=8, size=50, channels=4, seed=2, classes=2)
    assert set(np.unique(binary_masks)) == {0, 1}
    assert np.array_equal(binary_masks, two_masks) and np.array_equal(binary, two)
    with pytest.raises(ConfigError, match=r"data\.classes: 2 conflicts"):
        load_data({"synthetic": {"classes": 3}, "classes": 2})


# --- the machine cache -----------------------------------------------------------------------


def test_a_second_process_maps_the_cached_arrays_instead_of_decoding(tmp_path, monkeypatch):
    # Given a folder loaded once (decoded into the machine cache)
    root = write_pairs(tmp_path / "d", [np.eye(32, dtype=np.uint8)] * 4)
    first = load_data({"root": str(root)})
    images, masks = np.array(first.images), np.array(first.masks)
    # When a fresh process (an empty process cache) loads it again, unable to decode files
    clear_cache()
    monkeypatch.setattr(decode, "_read", lambda path: pytest.fail(f"decoded {path}"))
    again = load_data({"root": str(root)})
    # Then the arrays come memory-mapped from the cache, equal to the first ones
    assert isinstance(again.images, np.memmap)
    assert np.array_equal(again.images, images) and np.array_equal(again.masks, masks)


def test_a_changed_file_is_decoded_again(tmp_path, _cache_folder):
    root = write_pairs(tmp_path / "d", [np.zeros((32, 32), np.uint8)] * 4)
    assert load_data({"root": str(root)}).masks[0, 0, 0] == 0
    clear_cache()
    mask = np.ones((32, 32), np.uint8)
    np.save(root / "masks" / "s00.npy", mask)
    os.utime(root / "masks" / "s00.npy", ns=(1, 1))  # another mtime, whatever the clock
    assert load_data({"root": str(root)}).masks[0, 0, 0] == 1
    assert len([p for p in _cache_folder.iterdir() if not p.name.startswith(".")]) == 2


def _load_in_child(root: str, cache: str, out: str) -> None:
    os.environ[CACHE_ENV] = cache
    data = load_data({"root": root})
    np.save(out, np.asarray(data.masks).sum(dtype=np.int64))


def test_two_processes_building_one_entry_at_once_both_get_it_whole(tmp_path, _cache_folder):
    # Given a folder no process has decoded yet
    rng = np.random.default_rng(0)
    root = write_pairs(tmp_path / "d", [rng.integers(0, 2, (64, 64), np.uint8) for _ in range(40)])
    # When two processes load it at the same time
    ctx = multiprocessing.get_context("spawn")
    procs = [
        ctx.Process(target=_load_in_child, args=(str(root), str(_cache_folder), tmp_path / f"{i}"))
        for i in range(2)
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    # Then both read the same masks, one complete entry is left and no temporary folder
    sums = {int(np.load(tmp_path / f"{i}.npy")) for i in range(2)}
    expected = sum(int((np.load(f) != 0).sum()) for f in sorted((root / "masks").iterdir()))
    assert sums == {expected}
    entries = list(_cache_folder.iterdir())
    assert len(entries) == 1 and (entries[0] / "meta.json").is_file()


def test_an_unwritable_cache_folder_falls_back_to_memory(tmp_path, monkeypatch):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")
    monkeypatch.setenv(CACHE_ENV, str(blocker / "cache"))
    data = load_data({"synthetic": {"n_images": 4, "size": 32}})
    assert data.images.shape == (4, 3, 32, 32) and not isinstance(data.images, np.memmap)


# --- folds and test splits ------------------------------------------------------------------


def _plan(settings: SweepSettings):
    return splits_for(settings)


def test_shuffle_folds_are_random_subsets_of_the_validation_fraction():
    s = sweep(
        {"synthetic": {"n_images": 30, "size": 32}, "test_fraction": 0.2},
        {"fold_method": "shuffle", "validation_fraction": 0.25, "n_folds": 4},
    )
    _, _, plan = _plan(s)
    assert len(plan.test) == 6 and len(plan.train) == 24
    assert all(len(f) == 6 and set(f) <= set(plan.train) for f in plan.folds)
    assert len(set(plan.folds)) == 4  # independent draws
    assert all(set(plan.fold(k).train) == set(plan.train) - set(plan.folds[k]) for k in range(4))


def test_stratified_folds_spread_empty_and_non_empty_masks_evenly(tmp_path):
    # Given 8 masks with foreground and 16 empty ones
    masks = [np.zeros((32, 32), np.uint8) for _ in range(24)]
    for m in masks[:8]:
        m[:4] = 1
    root = write_pairs(tmp_path / "d", masks)
    s = sweep(
        {"root": str(root), "test_names": ["s00", "s10", "s11", "s12"]},
        {"fold_method": "stratified", "n_folds": 4},
    )
    _, data, plan = _plan(s)
    # Then every fold holds 5 samples, 7 non-empty ones spread 2/2/2/1, empty ones 3/3/3/4
    full = strata(data)
    per_fold = sorted(sum(full[i] for i in f) for f in plan.folds)
    assert per_fold == [1, 2, 2, 2]
    assert sorted(len(f) for f in plan.folds) == [5, 5, 5, 5]
    flat = [i for f in plan.folds for i in f]
    assert sorted(flat) == list(plan.train)


def test_stratified_multiclass_strata_are_the_dominant_non_background_class():
    s = sweep({"synthetic": {"n_images": 12, "size": 32, "classes": 3}})
    _, data, _ = _plan(s)
    for i, stratum in enumerate(strata(data)):
        counts = np.bincount(np.asarray(data.masks[i]).ravel(), minlength=256)[1:3]
        assert stratum == 1 + int(counts.argmax())


def test_group_folds_never_split_a_group_and_the_test_split_holds_whole_groups(tmp_path):
    # Given 24 samples in 6 regions of different sizes
    regions = [f"r{i % 6 if i < 18 else 0}" for i in range(24)]
    root = write_pairs(
        tmp_path / "d",
        [np.zeros((32, 32), np.uint8)] * 24,
        metadata={"region": regions, "other": ["x"] * 24},
    )
    s = sweep(
        {"root": str(root), "test_fraction": 0.2},
        {"fold_method": "group", "group_column": "region", "n_folds": 3},
    )
    _, data, plan = _plan(s)
    groups = data.column("region", "cv.group_column")
    test_groups = {groups[i] for i in plan.test}
    # Then no group is in both test and train, nor in both a fold's training and validation
    assert test_groups and not test_groups & {groups[i] for i in plan.train}
    for k in range(3):
        run = plan.fold(k)
        assert not {groups[i] for i in run.train} & {groups[i] for i in run.evaluate}
    assert sorted(i for f in plan.folds for i in f) == list(plan.train)
    # and splits.json names the samples
    described = describe_splits(s)
    assert described["fold_method"] == "group" and described["group_column"] == "region"
    assert described["test"] == [data.names[i] for i in plan.test]
    assert [f["validation"] for f in described["folds"]] == [
        [data.names[i] for i in f] for f in plan.folds
    ]
    json.dumps(described)


def test_synthetic_groups_split_by_group():
    s = sweep(
        {"synthetic": {"n_images": 20, "size": 32, "groups": 5}, "test_groups": ["g4"]},
        {"fold_method": "group", "n_folds": 2},
    )
    _, data, plan = _plan(s)
    assert [data.names[i] for i in plan.test] == [f"synthetic_{i:05d}" for i in (4, 9, 14, 19)]
    assert len(plan.folds) == 2 and all(len(f) == 8 for f in plan.folds)


def test_explicit_test_lists(tmp_path):
    root = write_pairs(tmp_path / "d", [np.zeros((32, 32), np.uint8)] * 8)
    (root / "test.txt").write_text("# held out\ns03.png\n\ns05\n")
    by_list = describe_splits(sweep({"root": str(root), "test_list": "test.txt"}, {"n_folds": 2}))
    by_names = describe_splits(
        sweep({"root": str(root), "test_names": ["s05", "s03"]}, {"n_folds": 2})
    )
    assert by_list["test"] == by_names["test"] == ["s03", "s05"]
    assert not set(by_list["train"]) & {"s03", "s05"} and len(by_list["train"]) == 6
    with pytest.raises(ConfigError, match=r"data\.test_names: no sample named 'nope'"):
        describe_splits(sweep({"root": str(root), "test_names": ["nope"]}))
    with pytest.raises(ConfigError, match=r"data\.test_groups: .*no metadata column 'group'"):
        describe_splits(sweep({"root": str(root), "test_groups": ["a"]}))


def test_splits_are_deterministic_from_the_seed():
    data = {"synthetic": {"n_images": 30, "size": 32}}
    for method in ("kfold", "shuffle", "stratified"):
        first = describe_splits(sweep(data, {"fold_method": method}, seed=1))
        clear_cache()
        again = describe_splits(sweep(data, {"fold_method": method}, seed=1))
        other = describe_splits(sweep(data, {"fold_method": method}, seed=2))
        assert first == again and first != other


@pytest.mark.parametrize(
    ("cv", "message"),
    [
        ({"fold_method": "loo"}, r"cv\.fold_method: must be one of kfold, shuffle"),
        ({"fold_methd": "kfold"}, r"cv\.fold_methd: unknown setting"),
        ({"fold_method": "group"}, r"cv\.group_column: .*no metadata column 'group'"),
        ({"validation_fraction": 1.0}, r"cv\.validation_fraction"),
    ],
)
def test_bad_cv_settings_are_config_errors(cv, message):
    with pytest.raises(ConfigError, match=message):
        SegmentationTrainable().validate({}, sweep({"synthetic": {"n_images": 12}}, cv))


def test_group_folds_need_as_many_groups_as_folds():
    s = sweep(
        {"synthetic": {"n_images": 12, "groups": 3}, "test_groups": ["g0"]},
        {"fold_method": "group", "n_folds": 3},
    )
    with pytest.raises(ConfigError, match=r"cv\.n_folds: 3 folds need at least 3 groups"):
        describe_splits(s)


# --- metrics --------------------------------------------------------------------------------


def test_every_scoring_metric_must_be_reported_for_the_config():
    binary = {"synthetic": {"n_images": 12, "size": 32}}
    multi = {"synthetic": {"n_images": 12, "size": 32, "classes": 3}}
    SegmentationTrainable().validate({}, sweep(multi, metric=["iou", "iou_class_2", "loss:lower"]))
    assert metric_names(3)[-6:] == (
        *("iou_class_0", "iou_class_1", "iou_class_2"),
        *("dice_class_0", "dice_class_1", "dice_class_2"),
    )
    SegmentationTrainable().validate({}, sweep(multi, metric="dice_class_1"))
    with pytest.raises(ConfigError, match=r"^metric: 'iou_class_2' is not a metric .*binary"):
        SegmentationTrainable().validate({}, sweep(binary, metric=["iou", "iou_class_2"]))


@pytest.mark.parametrize("classes", [1, 4])
def test_torchmetrics_agree_with_the_count_definitions(classes):
    import torch

    from smptune.training.evaluation import SegmentationMetrics

    # Given random logits and masks with ignored pixels, in two batches
    gen = torch.Generator().manual_seed(classes)
    channels = 1 if classes == 1 else classes
    logits = torch.randn(6, channels, 16, 16, generator=gen)
    masks = torch.randint(0, max(2, classes - 1), (6, 16, 16), generator=gen)  # a class unused
    masks[:, :3] = IGNORE
    metrics = SegmentationMetrics(classes)
    metrics.update(logits[:3], masks[:3])
    metrics.update(logits[3:], masks[3:])
    # Then torchmetrics gives what the counts give over the whole set
    valid = masks != IGNORE
    if classes == 1:
        pred, target = (logits[:, 0] > 0)[valid], (masks == 1)[valid]
        expected = metrics_from_counts(
            int((pred & target).sum()),
            int((pred & ~target).sum()),
            int((~pred & target).sum()),
            int((~pred & ~target).sum()),
        )
    else:
        confusion = np.zeros((classes, classes), dtype=np.int64)
        np.add.at(confusion, (masks[valid].numpy(), logits.argmax(1)[valid].numpy()), 1)
        expected = metrics_from_confusion(confusion.tolist())
    assert metrics.compute() == pytest.approx(expected, abs=1e-6)
