"""``producer submit``: a config it cannot use or a data folder it cannot read is one line
naming the problem, exit 2, and nothing recorded or queued."""

from __future__ import annotations

import datetime
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from smptune.queue.embedded_redis import EmbeddedRedis

from conftest import nothing_enqueued, one_line_error, run_cli, write_config

UNREACHABLE = "redis://127.0.0.1:1/0"


CASES = {
    "unknown hyperparameter": (
        {"hyperparameters": {"z": [1, 2]}},
        ["hyperparameters.z", "unknown hyperparameter"],
    ),
    "low above high": (
        {"hyperparameters": {"x": {"low": 3.0, "high": 1.0}}},
        ["hyperparameters.x", "low"],
    ),
    "unknown distribution": (
        {"hyperparameters": {"x": {"distribution": "gaussian", "low": 0, "high": 1}}},
        ["hyperparameters.x", "gaussian"],
    ),
    "wrong value type": ({"hyperparameters": {"x": "fast"}}, ["hyperparameters.x", "number"]),
    "n_folds too small": ({"cv": {"n_folds": 1}}, ["cv.n_folds"]),
    "n_trials not a number": ({"n_trials": "many"}, ["n_trials"]),
    "unknown top-level key": ({"n_trails": 3}, ["n_trails"]),
    "metric the trainable does not report": ({"metric": "iou"}, ["metric", "iou"]),
    "trainable that cannot be imported": ({"trainable": "nowhere.at_all:Thing"}, ["trainable"]),
    "callable that is not a trainable": ({"trainable": "os:system"}, ["trainable", "os:system"]),
    "bad mode": ({"mode": "maximise"}, ["mode"]),
    "trial timeout past the visibility timeout": (
        {"trial_timeout": "30d"},
        ["trial_timeout", "visibility timeout"],
    ),
    "trial timeout that is no duration": ({"trial_timeout": "soon"}, ["trial_timeout", "soon"]),
    "string bound": (
        {"hyperparameters": {"x": {"low": "zero", "high": 3.0}}},
        ["hyperparameters.x", "low ('zero') must be a number"],
    ),
    "bool as a bound": (
        {"hyperparameters": {"x": {"low": True, "high": 3.0}}},
        ["hyperparameters.x", "low (True) must be a number"],
    ),
    "nan bound": (
        {"hyperparameters": {"x": {"low": float("nan"), "high": 3.0}}},
        ["hyperparameters.x", "finite"],
    ),
    "bool as n_folds": ({"cv": {"n_folds": True}}, ["cv.n_folds", "True"]),
    "list where the cv mapping belongs": ({"cv": [3]}, ["cv", "must be a mapping"]),
    "list where the hyperparameters mapping belongs": (
        {"hyperparameters": ["x", "y"]},
        ["hyperparameters", "must be a mapping"],
    ),
    "low equal to high": (
        {"hyperparameters": {"x": {"low": 1.0, "high": 1.0}}},
        ["hyperparameters.x", "low (1.0) must be < high (1.0)"],
    ),
    "loguniform with low 0": (
        {"hyperparameters": {"x": {"distribution": "loguniform", "low": 0, "high": 1}}},
        ["hyperparameters.x", "loguniform needs low > 0"],
    ),
    "loguniform with a negative low": (
        {"hyperparameters": {"x": {"distribution": "loguniform", "low": -1.0, "high": 1.0}}},
        ["hyperparameters.x", "loguniform needs low > 0"],
    ),
    "reversed-loguniform with high at n": (
        {"hyperparameters": {"x": {"distribution": "reversed-loguniform", "low": 0.5, "high": 1}}},
        ["hyperparameters.x", "high < n"],
    ),
    "reversed-loguniform with high above an explicit n": (
        {
            "hyperparameters": {
                "x": {"distribution": "reversed_loguniform", "low": 1, "high": 3, "n": 2}
            }
        },
        ["hyperparameters.x", "high < n"],
    ),
    "intuniform with float bounds": (
        {"hyperparameters": {"x": {"distribution": "intuniform", "low": 0.5, "high": 3}}},
        ["hyperparameters.x", "low (0.5) must be an integer"],
    ),
    "choice with no choices": (
        {"hyperparameters": {"x": {"distribution": "choice", "choices": []}}},
        ["hyperparameters.x", "choices must not be empty"],
    ),
    "explicit distribution without low": (
        {"hyperparameters": {"x": {"distribution": "uniform", "high": 1.0}}},
        ["hyperparameters.x", "uniform needs 'low'"],
    ),
    "unexpected key in a distribution": (
        {"hyperparameters": {"x": {"distribution": "uniform", "low": 0, "high": 1, "step": 0.1}}},
        ["hyperparameters.x", "'step'"],
    ),
    "value that is not JSON data": (
        {"hyperparameters": {"x": {"distribution": "value", "value": datetime.date(2024, 1, 2)}}},
        ["hyperparameters.x", "not JSON data"],
    ),
    "grid with a continuous entry": (
        {"n_trials": "grid", "hyperparameters": {"x": [1.0, 2.0], "y": {"low": 0.0, "high": 1.0}}},
        ["hyperparameters.y", "grid search needs a discrete entry"],
    ),
    "sampler grid with a number of trials": ({"sampler": "grid"}, ["sampler", "n_trials"]),
    "sampler random with a grid": (
        {"sampler": "random", "n_trials": "grid", "hyperparameters": {"x": [1.0, 2.0]}},
        ["sampler", "n_trials"],
    ),
    "negative seed": ({"seed": -1}, ["seed", "-1"]),
    "test_fraction above 1": ({"data": {"test_fraction": 1.5}}, ["data.test_fraction", "1.5"]),
    "test_fraction 0": ({"data": {"test_fraction": 0}}, ["data.test_fraction", "(0, 1)"]),
    "test_fraction beside test_names": (
        {"data": {"synthetic": {}, "test_fraction": 0.3, "test_names": ["synthetic_00001"]}},
        ["data.test_fraction", "data.test_names"],
    ),
    "n_folds not an integer": ({"cv": {"n_folds": 2.5}}, ["cv.n_folds", "2.5"]),
    "n_folds as a string": ({"cv": {"n_folds": "3"}}, ["cv.n_folds", "'3'"]),
    "a key given with hyphen and underscore": ({"n-trials": 4}, ["n-trials", "n_trials"]),
    "an enqueued name the trainable does not know": (
        {"enqueue": [{"x": 0.5, "learning_rate": 0.1}]},
        ["enqueue[0].learning_rate", "unknown hyperparameter"],
    ),
    "an enqueued value outside the space": (
        {"enqueue": [{"x": 9.0}]},
        ["enqueue[0].x: 9.0 is outside the search space"],
    ),
}


@pytest.mark.parametrize("overrides, needles", CASES.values(), ids=CASES.keys())
def test_bad_config_exits_2_naming_the_key(tmp_path: Path, overrides, needles):
    config = write_config(tmp_path / "bad.yaml", **overrides)
    # a broker that does not exist: validation must fail before anything connects
    result = run_cli("producer", "submit", config, "--broker", UNREACHABLE)
    one_line_error(result, 2, *needles)


def test_missing_config_file_exits_2_naming_it(tmp_path: Path):
    result = run_cli("producer", "submit", tmp_path / "nope.yaml")
    one_line_error(result, 2, "nope.yaml")


def test_yaml_syntax_error_exits_2_naming_file_and_line(tmp_path: Path):
    bad = tmp_path / "broken.yaml"
    bad.write_text("name: x\nhyperparameters:\n  x: [1, 2\n  y: 3\n")
    result = run_cli("producer", "submit", bad)
    one_line_error(result, 2, "broken.yaml:4", "invalid YAML")


@pytest.mark.parametrize("n", ["0", "-1"])
def test_local_workers_must_be_positive(tmp_path: Path, n: str):
    result = run_cli("producer", "submit", write_config(tmp_path / "s.yaml"), "--local-workers", n)
    one_line_error(result, 2, "--local-workers", n)


# --- config files that cannot be read as a config -----------------------------------------

FILE_CASES = {
    "config path is a directory": ("sweep.yaml", None, ["sweep.yaml", "cannot read"]),
    "empty file": ("empty.yaml", b"", ["empty.yaml", "the config file is empty"]),
    "binary file": ("binary.yaml", b"\xff\xfe\x00\x81\x92name: x\n", ["binary.yaml", "utf-8"]),
    "top level is a list": (
        "list.yaml",
        b"- name: a\n- seed: 1\n",
        ["list.yaml", "the top level must be a mapping, got list"],
    ),
    "toml syntax error": (
        "broken.toml",
        b'name = "x"\n[hyperparameters\nx = 1.0\n',
        ["broken.toml:2", "invalid TOML"],
    ),
    "toml without hyperparameters": (
        "nothing.toml",
        b'name = "x"\nseed = 1\n',
        ["hyperparameters", "missing"],
    ),
    "yaml duplicate key": (
        "dup.yaml",
        b"name: a\nseed: 1\nseed: 2\nhyperparameters: {x: 1.0}\n",
        ["dup.yaml:3", "duplicate key 'seed'"],
    ),
    "unsupported suffix": ("sweep.json", b'{"name": "x"}', ["sweep.json", "'.json'"]),
}


@pytest.mark.parametrize("filename, content, needles", FILE_CASES.values(), ids=FILE_CASES.keys())
def test_unreadable_config_file_exits_2_naming_it(
    tmp_path: Path, redis_server, filename: str, content: bytes | None, needles
):
    path = tmp_path / filename
    if content is None:
        path.mkdir()
    else:
        path.write_bytes(content)
    result = run_cli("producer", "submit", path, "--broker", redis_server.url)
    one_line_error(result, 2, *needles)
    nothing_enqueued(redis_server.url)


# --- the segmentation trainable: values it cannot use, data it cannot read ----------------

SEGMENTATION = {
    "name": "seg",
    "trainable": "smptune.training:SegmentationTrainable",
    "n_trials": 1,
    "metric": "iou",
    "data": {"synthetic": {"n_images": 8, "size": 32}},
    "cv": {"n_folds": 2},
    "training": {"max_epochs": 1},
    "hyperparameters": {"model_arch": "Unet", "model_encoder": "resnet18", "batch_size": 2},
}


def _segmentation(**overrides: object) -> dict[str, object]:
    return {**SEGMENTATION, **overrides}


def _hyperparameters(**entries: object) -> dict[str, object]:
    return {**SEGMENTATION["hyperparameters"], **entries}


SEGMENTATION_CASES = {
    "more folds than the data allows": (
        _segmentation(data={"synthetic": {"n_images": 6}}, cv={"n_folds": 10}),
        ["cv.n_folds", "10 folds need at least 10 training samples"],
    ),
    # these two import torch and smp in the producer (seconds each)
    "unknown model_arch": (
        _segmentation(hyperparameters=_hyperparameters(model_arch="Unet3000")),
        ["hyperparameters.model_arch", "Unet3000"],
    ),
    "unknown model_encoder": (
        _segmentation(hyperparameters=_hyperparameters(model_encoder="resnet1800")),
        ["hyperparameters.model_encoder", "resnet1800"],
    ),
    "learning_rate 0": (
        _segmentation(hyperparameters=_hyperparameters(learning_rate=0)),
        ["hyperparameters.learning_rate", "> 0"],
    ),
    "batch_size 0": (
        _segmentation(hyperparameters=_hyperparameters(batch_size=0)),
        ["hyperparameters.batch_size", "got 0"],
    ),
    "metric the trainable does not report": (
        _segmentation(metric="score"),
        ["metric", "'score'", "iou"],
    ),
    "unknown precision": (
        _segmentation(training={"precision": "8-bit"}),
        ["training.precision", "'8-bit'"],
    ),
    "num_workers neither auto nor a count": (
        _segmentation(training={"num_workers": "many"}),
        ["training.num_workers", "auto or an integer >= 0", "'many'"],
    ),
    "unknown synthetic option": (
        _segmentation(data={"synthetic": {"n_img": 6}}),
        ["data.synthetic.n_img"],
    ),
}


@pytest.mark.parametrize(
    "config, needles", SEGMENTATION_CASES.values(), ids=SEGMENTATION_CASES.keys()
)
def test_bad_segmentation_config_exits_2_naming_the_key(
    tmp_path: Path, redis_server, config, needles
):
    path = write_config(tmp_path / "seg.yaml", **config)
    result = run_cli("producer", "submit", path, "--broker", redis_server.url)
    one_line_error(result, 2, *needles)
    nothing_enqueued(redis_server.url)


def _save_png(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


def _dataset(root: Path, n: int = 3, size: int = 32, masks: bool = True) -> Path:
    """``n`` RGB PNG images with binary PNG masks, as a data.root folder."""
    rng = np.random.default_rng(0)
    (root / "images").mkdir(parents=True)
    for i in range(n):
        _save_png(root / "images" / f"img{i}.png", rng.integers(0, 256, (size, size, 3), np.uint8))
        if masks:
            mask = (rng.random((size, size)) > 0.5).astype(np.uint8) * 255
            _save_png(root / "masks" / f"img{i}.png", mask)
    if masks:
        (root / "masks").mkdir(exist_ok=True)
    return root


@pytest.fixture(scope="module")
def data_folders(tmp_path_factory) -> Path:
    """One folder per broken dataset, built once for the module."""
    base = tmp_path_factory.mktemp("data")
    (base / "empty" / "images").mkdir(parents=True)
    (base / "empty" / "masks").mkdir()
    _dataset(base / "no-masks", masks=False)
    (_dataset(base / "image-without-mask") / "masks" / "img1.png").unlink()
    root = _dataset(base / "mask-of-another-size")
    _save_png(root / "masks" / "img1.png", np.zeros((16, 16), np.uint8))
    root = _dataset(base / "mask-not-2d")
    (root / "masks" / "img1.png").unlink()
    np.save(root / "masks" / "img1.npy", np.zeros(5, np.uint8))
    root = _dataset(base / "unreadable-mask")
    (root / "masks" / "img1.png").write_bytes(b"not a png at all")
    root = _dataset(base / "images-of-two-sizes")
    _save_png(root / "images" / "img1.png", np.zeros((48, 48, 3), np.uint8))
    _save_png(root / "masks" / "img1.png", np.zeros((48, 48), np.uint8))
    root = _dataset(base / "nan-image")
    (root / "images" / "img1.png").unlink()
    np.save(root / "images" / "img1.npy", np.full((3, 32, 32), np.nan, np.float32))
    root = _dataset(base / "two-images-one-name")
    np.save(root / "images" / "img0.npy", np.zeros((32, 32), np.uint8))
    return base


DATA_CASES = {
    "folder missing": ("not-there", ["data.root", "not-there", "is not a folder"]),
    "empty data folder": ("empty", ["data.root", "holds no images"]),
    "no masks folder": ("no-masks", ["data.root", "no masks/ folder"]),
    "image without a mask": ("image-without-mask", ["data.root", "images/img1.png", "no mask"]),
    "mask of another size": ("mask-of-another-size", ["data.root", "masks/img1.png", "16×16"]),
    "mask that is not 2-d": ("mask-not-2d", ["data.root", "masks/img1.npy", "(5,)"]),
    "mask that is not an image": (
        "unreadable-mask",
        ["data.root", "masks/img1.png", "cannot read"],
    ),
    "images of two sizes": ("images-of-two-sizes", ["data.root", "images/img1.png", "48×48"]),
    "image with NaN": ("nan-image", ["data.root", "images/img1.npy", "NaN"]),
    "two images with one name": (
        "two-images-one-name",
        ["data.root", "images/img0.npy", "images/img0.png"],
    ),
}


@pytest.mark.parametrize("folder, needles", DATA_CASES.values(), ids=DATA_CASES.keys())
def test_bad_data_folder_exits_2_naming_the_file(
    tmp_path: Path, redis_server, data_folders: Path, folder: str, needles
):
    config = _segmentation(data={"root": str(data_folders / folder)})
    path = write_config(tmp_path / "seg.yaml", **config)
    result = run_cli("producer", "submit", path, "--broker", redis_server.url)
    one_line_error(result, 2, *needles)
    nothing_enqueued(redis_server.url)


def test_relative_data_root_is_read_from_the_config_folder(data_folders: Path):
    # data.root relative to the config file, not to the working directory
    path = write_config(data_folders / "relative.yaml", **_segmentation(data={"root": "no-masks"}))
    result = run_cli("producer", "submit", path, "--broker", UNREACHABLE)
    one_line_error(result, 2, "data.root", str(data_folders / "no-masks"), "no masks/ folder")


def test_a_sweep_too_large_to_plan_is_refused_with_its_size_and_nothing_recorded(
    tmp_path: Path, redis_server: EmbeddedRedis
):
    # Given a grid of five lists of a hundred values (10^10 configurations)
    names = ("x", "y", "sleep", "fold_noise", "noise")
    grid = write_config(
        tmp_path / "huge.yaml",
        n_trials="grid",
        hyperparameters={name: list(range(100)) for name in names},
    )
    # When it is submitted, it is refused with its size before anything is recorded
    result = run_cli("producer", "submit", grid, "--broker", redis_server.url, timeout=60)
    one_line_error(result, 2, "n_trials: grid", "10,000,000,000 configurations")
    # and so is a random sweep of two million trials
    many = write_config(tmp_path / "many.yaml", n_trials=2_000_000)
    result = run_cli("producer", "submit", many, "--broker", redis_server.url, timeout=60)
    one_line_error(result, 2, "n_trials: 2,000,000 is more than the 1,000,000")
    nothing_enqueued(redis_server.url)
