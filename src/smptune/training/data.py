"""A sweep's data loaded: from this process's memory, the machine's cache, or decoded.

The data is a folder of images and masks, or synthetic; it is decoded once per machine
(:mod:`.decode`; its settings checked by :mod:`.dataspec`, held as :mod:`.samples`).

``settings.data`` holds exactly one of

- ``root``: a folder with ``images/`` and ``masks/``; files are matched by stem
  (``images/a.png`` ↔ ``masks/a.npy`` is fine) and may be PNG, TIFF (multi-band too) or NPY.
  Images are H×W, H×W×C or C×H×W (TIFF, NPY: the smaller of the first and last axis is the
  channel axis), any number of channels (all images the same), any height and width (at
  least one pixel a side). An optional ``metadata.csv`` beside them has a ``name`` column
  (file stems) and any other columns (e.g. the ``cv.group_column``).
- ``synthetic``: a mapping of options (see :mod:`smptune.training.synthetic`).

and optionally ``classes`` (1: binary, nonzero is foreground; N >= 2: labels 0..N-1),
``ignore_index`` (a mask value that marks invalid pixels, left out of loss and metrics),
``resize`` (``pad`` or ``crop``, with ``crop_size``, ``foreground_share`` and ``overlap``; a
``crop_size`` alone means ``crop``), ``cache`` and the test split: ``test_fraction``,
``test_names``, ``test_list`` or ``test_groups`` (see :mod:`smptune.training.splits`).

``resize: pad`` trains and evaluates whole images, batched: all images must have one size
(images of different sizes are refused, with a suggested ``crop_size``: how large a patch
fits a GPU is the user's call, and a silent default would decide it). ``resize: crop``
trains on random ``crop_size`` patches, ``foreground_share`` (default 0.33, as nnU-Net's
oversampling; 0: none) of them centred on a foreground pixel; validation and test run on
whole images at their true size with Gaussian-blended sliding windows of ``crop_size``
overlapping by ``overlap`` (default 0.5; see :mod:`smptune.training.inference`).

Images are kept as ``uint8`` (read as ``x / 255``) when the files are ``uint8``; other data is
scaled to float32 in [0, 1] per channel by its minimum and maximum over the whole dataset
(float data already within [0, 1] is kept). Heights and widths are padded at the bottom and
right by reflection to multiples of 32 (and at least ``crop_size``: a smaller image is padded
up to it); padded mask pixels and ``ignore_index`` pixels get the value :data:`IGNORE`. The
decoded arrays live in a memory-mapped cache shared by the processes of a machine
(:mod:`smptune.training.cache`).

Storage: images of one size are one stacked (N, C, H, W) array, masks (N, H, W). Images of
different sizes are one flat buffer each (:class:`Ragged`: every sample's padded pixels one
after the other, with their shapes and true sizes beside), not a common (N, C, Hmax, Wmax)
array: that costs N times the largest image (a thousand 64² tiles and one 4000² scene:
48 GB instead of 60 MB), the flat buffer only the samples' own padded sizes, and each sample
stays one contiguous memory-mapped view, so a training patch reads only its own rows.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

import numpy as np

from smptune.errors import ConfigError
from smptune.training.cache import Allocate, cache_key, cached, folder_listing
from smptune.training.dataspec import IGNORE, DataSpec, array_options, data_spec, padded_side
from smptune.training.decode import (
    SUFFIXES,
    decode,
    pad,
    read_files,
    read_image,
    read_metadata,
    scaled,
    scaled_labels,
)
from smptune.training.samples import Ragged, SegmentationData
from smptune.training.synthetic import GROUP_COLUMN, make_synthetic, synthetic_groups

__all__ = [
    "IGNORE",
    "SUFFIXES",
    "DataSpec",
    "Ragged",
    "SegmentationData",
    "clear_cache",
    "data_spec",
    "load_data",
    "padded_side",
    "read_image",
    "scaled",
    "scaled_labels",
]
_CACHE_SIZE = 2
_CACHE: OrderedDict[str, SegmentationData] = OrderedDict()


def load_data(data: Mapping[str, Any] | DataSpec | None) -> SegmentationData:
    """The dataset that ``settings.data`` names: from this process's memory, else from the
    machine's cache, else decoded (and cached)."""
    spec = data if isinstance(data, DataSpec) else data_spec(data)
    key = spec.arrays_key()
    if key in _CACHE:
        _CACHE.move_to_end(key)
        return _CACHE[key]
    loaded = _read_folder(spec) if spec.root is not None else _synthetic(spec)
    _CACHE[key] = loaded
    while len(_CACHE) > _CACHE_SIZE:
        _CACHE.popitem(last=False)
    return loaded


def clear_cache() -> None:
    """Forget this process's datasets (the machine's cache stays)."""
    _CACHE.clear()


def _synthetic(spec: DataSpec) -> SegmentationData:
    assert spec.synthetic is not None
    options = spec.synthetic

    def build(allocate: Allocate) -> dict[str, Any]:
        images, masks = make_synthetic(**options)
        n, channels, size, _ = images.shape
        shape = spec.padded(size, size)
        out_images = allocate("images", (n, channels, *shape), np.float32)
        out_masks = allocate("masks", (n, *shape), np.uint8)
        for i in range(n):
            out_images[i], out_masks[i] = pad(images[i], masks[i], shape)
        return {"height": size, "width": size}

    key = cache_key({"synthetic": options, **array_options(spec)})
    arrays, info = cached(key, build, enabled=spec.cache)
    n = int(arrays["images"].shape[0])
    groups = synthetic_groups(n, options["groups"])
    return SegmentationData(
        images=arrays["images"],
        masks=arrays["masks"],
        names=tuple(f"synthetic_{i:05d}" for i in range(n)),
        height=int(info["height"]),
        width=int(info["width"]),
        source=f"synthetic {options}",
        normalisation={"method": "none"},
        classes=spec.classes,
        metadata={GROUP_COLUMN: groups} if groups else {},
    )


def _read_folder(spec: DataSpec) -> SegmentationData:
    """Read ``root/images`` and ``root/masks``; raise :class:`ConfigError` naming bad files."""
    root = spec.root
    assert root is not None
    if not root.is_dir():
        raise ConfigError(f"data.root: {root} is not a folder")
    image_dir, mask_dir = root / "images", root / "masks"
    for folder in (image_dir, mask_dir):
        if not folder.is_dir():
            raise ConfigError(f"data.root: {root} has no {folder.name}/ folder")
    image_files = read_files(image_dir, root)
    if not image_files:
        raise ConfigError(
            f"data.root: {image_dir} holds no images (PNG, TIFF or NPY files: "
            f"{', '.join(SUFFIXES)})"
        )
    mask_files = read_files(mask_dir, root)
    missing = [name for name in image_files if name not in mask_files]
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise ConfigError(
            f"data.root: image {image_files[missing[0]].relative_to(root)} has no mask in "
            f"{mask_dir}{more}; masks are matched by file name without suffix"
        )
    names = tuple(image_files)

    def build(allocate: Allocate) -> dict[str, Any]:
        return decode(spec, root, names, image_files, mask_files, allocate)

    content = {"root": str(root), "files": folder_listing(image_dir, mask_dir)}
    arrays, info = cached(cache_key({**content, **array_options(spec)}), build, enabled=spec.cache)
    images: np.ndarray | Ragged = arrays["images"]
    masks: np.ndarray | Ragged = arrays["masks"]
    sizes = None
    if info.get("layout") == "ragged":
        padded = np.asarray(arrays["padded"], dtype=np.int64)
        channels = np.full((len(padded), 1), int(info["channels"]), dtype=np.int64)
        images = Ragged(arrays["images"], np.hstack([channels, padded]))
        masks = Ragged(arrays["masks"], padded)
        sizes = np.asarray(arrays["sizes"], dtype=np.int64)
    return SegmentationData(
        images=images,
        masks=masks,
        names=names,
        height=int(info["height"]),
        width=int(info["width"]),
        source=str(root),
        normalisation=info["normalisation"],
        classes=spec.classes,
        metadata=read_metadata(root, names),
        sizes=sizes,
    )
