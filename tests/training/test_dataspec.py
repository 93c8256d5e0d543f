"""``settings.data`` checked without reading a file: what a crop size or an image size
implies, where a relative root and test list are read, which settings re-decode the data
and how large samples are stored (the error messages: tests/training/test_data.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from smptune.errors import ConfigError
from smptune.trainable import DATA_ROOT_ENV
from smptune.training.dataspec import data_spec, padded_side

SYNTHETIC = {"synthetic": {"n_images": 6, "size": 32}}


def test_a_crop_size_alone_means_crop_and_an_image_size_alone_is_a_square():
    crop = data_spec({**SYNTHETIC, "crop_size": 64})
    assert (crop.resize, crop.crop_size) == ("crop", 64)
    assert (crop.foreground_share, crop.overlap) == (0.33, 0.5)
    scale = data_spec({**SYNTHETIC, "resize": "scale", "image_size": 96})
    assert scale.image_size == (96, 96) and scale.crop_size is None
    with pytest.raises(ConfigError, match=r"data\.overlap: only used with resize: crop"):
        data_spec({**SYNTHETIC, "overlap": 0.25})


def test_a_relative_root_and_test_list_are_read_below_the_data_root(tmp_path, monkeypatch):
    monkeypatch.setenv(DATA_ROOT_ENV, str(tmp_path / "datasets"))
    spec = data_spec({"root": "cells", "test_list": "test.txt"})
    assert spec.root == (tmp_path / "datasets" / "cells").resolve()
    assert spec.test_list == spec.root / "test.txt"
    # an absolute root stays where it is
    assert data_spec({"root": str(tmp_path / "x")}).root == (tmp_path / "x").resolve()
    # without a data root, a relative root is the current folder's
    monkeypatch.delenv(DATA_ROOT_ENV)
    assert data_spec({"root": "cells"}).root == Path("cells").resolve()


def test_only_the_settings_that_shape_the_arrays_decode_the_data_again():
    base = data_spec(SYNTHETIC)
    # another test split or crop sampling reuses the decoded arrays
    for same_arrays in ({"test_fraction": 0.3}, {"test_names": ["synthetic_00001"]}):
        other = data_spec({**SYNTHETIC, **same_arrays})
        assert other.arrays_key() == base.arrays_key()
        assert other.cache_key() != base.cache_key()
    # other classes, ignored value or stored size do not
    for new_arrays in ({"classes": 3}, {"ignore_index": 7}, {"crop_size": 64}):
        assert data_spec({**SYNTHETIC, **new_arrays}).arrays_key() != base.arrays_key()


def test_samples_are_stored_in_multiples_of_32_and_at_least_the_crop_size():
    assert [padded_side(s) for s in (1, 32, 33, 100)] == [32, 32, 64, 128]
    assert data_spec(SYNTHETIC).padded(33, 100) == (64, 128)
    assert data_spec({**SYNTHETIC, "crop_size": 96}).padded(33, 100) == (96, 128)
