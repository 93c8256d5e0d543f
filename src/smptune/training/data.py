"""The data of a sweep: a folder of images and masks, or synthetic; decoded once per machine.

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

import csv
import json
import math
from collections import OrderedDict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from smptune.errors import ConfigError
from smptune.trainable import data_root_base
from smptune.training.cache import Allocate, cache_key, cached, folder_listing
from smptune.training.synthetic import (
    GROUP_COLUMN,
    make_synthetic,
    synthetic_groups,
    synthetic_options,
)

IGNORE = 255
"""Stored mask value of padded and ignored pixels: left out of loss and metrics."""
PAD_MULTIPLE = 32
MAX_CLASSES = 255
DEFAULT_TEST_FRACTION = 0.2
RESIZES = ("pad", "crop", "scale")
DEFAULT_FOREGROUND_SHARE = 0.33
DEFAULT_OVERLAP = 0.5  # inference.DEFAULT_OVERLAP, without importing torch here
DATA_KEYS = (
    "root",
    "synthetic",
    "classes",
    "ignore_index",
    "resize",
    "crop_size",
    "image_size",
    "foreground_share",
    "overlap",
    "cache",
    "test_fraction",
    "test_names",
    "test_list",
    "test_groups",
)
SUFFIXES = (".png", ".tif", ".tiff", ".npy")
METADATA_FILE = "metadata.csv"
_CACHE_SIZE = 2


class Ragged:
    """Samples of different shapes in one flat (memory-mapped) array: sample ``i`` is the
    contiguous run ``flat[offsets[i]:offsets[i + 1]]`` viewed as ``shapes[i]``.

    Indexed by one sample (``ragged[i]``), iterated, ``len``; no fancy indexing (samples of
    different shapes do not stack).
    """

    def __init__(self, flat: np.ndarray, shapes: np.ndarray) -> None:
        self.flat = flat
        self.shapes = np.asarray(shapes, dtype=np.int64)
        sizes = np.prod(self.shapes, axis=1) if len(self.shapes) else np.zeros(0, np.int64)
        self.offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)

    @property
    def dtype(self) -> np.dtype:
        return self.flat.dtype

    def __len__(self) -> int:
        return len(self.shapes)

    def __getitem__(self, i: int) -> np.ndarray:
        i = int(i)
        if i < 0:
            i += len(self)
        start, stop = self.offsets[i], self.offsets[i + 1]
        return self.flat[start:stop].reshape(tuple(int(d) for d in self.shapes[i]))

    def __iter__(self) -> Iterator[np.ndarray]:
        return (self[i] for i in range(len(self)))


@dataclass(frozen=True)
class SegmentationData:
    """All samples of a dataset (arrays usually memory-mapped from the cache).

    ``images[i]`` is sample ``i`` as stored, (C, H, W) with H, W padded; ``sizes[i]`` its true
    (height, width), the top-left part of the stored one. Images of one size are stacked
    arrays (``images`` (N, C, H, W), ``masks`` (N, H, W)), else :class:`Ragged`.
    """

    images: np.ndarray | Ragged  # uint8 (x / 255) or float32 in [0, 1]
    masks: np.ndarray | Ragged  # uint8 labels; IGNORE for padded and ignored pixels
    names: tuple[str, ...]
    height: int  # before padding; the largest of mixed sizes
    width: int
    source: str
    normalisation: dict[str, Any]  # how raw pixel values were mapped to [0, 1]
    classes: int = 1
    metadata: dict[str, tuple[str | None, ...]] = field(default_factory=dict)
    sizes: np.ndarray | None = None  # (N, 2) true sizes when they differ

    @property
    def n(self) -> int:
        return len(self.images)

    @property
    def in_channels(self) -> int:
        return int(self.images[0].shape[0])

    @property
    def uniform(self) -> bool:
        """Whether every sample has one size (stacked arrays)."""
        return isinstance(self.images, np.ndarray)

    def size(self, i: int) -> tuple[int, int]:
        """Sample ``i``'s true (height, width)."""
        if self.sizes is None:
            return self.height, self.width
        return int(self.sizes[i, 0]), int(self.sizes[i, 1])

    def float_image(self, i: int, *, crop: bool = True) -> np.ndarray:
        """Sample ``i`` as float32 (C, H, W) in [0, 1], at its true size (``crop``) or as
        stored (padded)."""
        image = self.images[i]
        if crop:
            h, w = self.size(i)
            image = image[:, :h, :w]
        return np.asarray(image, dtype=np.float32) * np.float32(self.scale)

    def true_mask(self, i: int) -> np.ndarray:
        """Sample ``i``'s mask (H, W) at its true size."""
        h, w = self.size(i)
        return np.asarray(self.masks[i][:h, :w])

    @property
    def scale(self) -> float:
        """Factor from stored image values to [0, 1]."""
        return 1.0 / 255.0 if self.images.dtype == np.uint8 else 1.0

    def stacked(self) -> tuple[np.ndarray, np.ndarray]:
        """The stacked ``(images, masks)`` of samples of one size (TypeError otherwise)."""
        if not isinstance(self.images, np.ndarray) or not isinstance(self.masks, np.ndarray):
            raise TypeError(f"{self.source}: samples of different sizes do not stack")
        return self.images, self.masks

    def float_images(self, indices: Any) -> np.ndarray:
        """Images ``indices`` as float32 in [0, 1], as stored (samples of one size only)."""
        images = self.stacked()[0]
        return np.asarray(images[indices], dtype=np.float32) * np.float32(self.scale)

    def column(self, name: str, key: str) -> tuple[str, ...]:
        """Metadata column ``name`` for every sample; :class:`ConfigError` naming ``key``."""
        if name not in self.metadata:
            known = ", ".join(self.metadata) or "none"
            raise ConfigError(
                f"{key}: {self.source} has no metadata column {name!r} (a {METADATA_FILE} "
                f"beside images/ with a 'name' column; columns found: {known})"
            )
        values = self.metadata[name]
        missing = next((self.names[i] for i, v in enumerate(values) if v is None), None)
        if missing is not None:
            raise ConfigError(f"{key}: {METADATA_FILE} has no row for sample {missing!r}")
        return tuple(str(v) for v in values)


@dataclass(frozen=True)
class DataSpec:
    """``settings.data``, checked."""

    root: Path | None
    synthetic: dict[str, int] | None
    test_fraction: float = DEFAULT_TEST_FRACTION
    classes: int = 1
    ignore_index: int | None = None
    resize: str = "pad"
    crop_size: int | None = None
    image_size: tuple[int, int] | None = None  # resize: scale's (height, width)
    foreground_share: float = DEFAULT_FOREGROUND_SHARE
    overlap: float = DEFAULT_OVERLAP
    cache: bool = True
    test_names: tuple[str, ...] | None = None
    test_list: Path | None = None
    test_groups: tuple[str, ...] | None = None

    def cache_key(self) -> str:
        """Every setting (the data and its test split)."""
        return json.dumps(asdict(self), sort_keys=True, default=str)

    def arrays_key(self) -> str:
        """The settings the decoded arrays depend on."""
        source = {"root": str(self.root)} if self.root is not None else self.synthetic
        return json.dumps({"source": source, **_array_options(self)}, sort_keys=True)

    def padded(self, height: int, width: int) -> tuple[int, int]:
        """Stored size: multiples of 32, at least ``crop_size``."""
        low = self.crop_size or 0
        return (
            max(low, math.ceil(height / PAD_MULTIPLE) * PAD_MULTIPLE),
            max(low, math.ceil(width / PAD_MULTIPLE) * PAD_MULTIPLE),
        )


def _int_key(key: str, value: Any, low: int, high: int) -> int:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ConfigError(f"{key}: must be an integer in [{low}, {high}], got {value!r}")
    return value


def _names(key: str, value: Any) -> tuple[str, ...]:
    if isinstance(value, (str, int)) and not isinstance(value, bool):
        value = [value]
    if not isinstance(value, (list, tuple)) or not value:
        raise ConfigError(f"{key}: expected a non-empty list of names, got {value!r}")
    names = []
    for item in value:
        if isinstance(item, bool) or not isinstance(item, (str, int)) or not str(item).strip():
            raise ConfigError(f"{key}: expected names, got {item!r}")
        names.append(str(item).strip())
    return tuple(names)


def data_spec(data: Mapping[str, Any] | None) -> DataSpec:
    """Check ``settings.data`` (without reading any file), key by key in a fixed order."""
    data = dict(data or {})
    unknown = sorted(set(data) - set(DATA_KEYS))
    if unknown:
        raise ConfigError(f"data.{unknown[0]}: unknown setting; known: {', '.join(DATA_KEYS)}")
    test_fraction = _test_fraction(data.get("test_fraction", DEFAULT_TEST_FRACTION))
    root, synthetic = _source(data)
    classes = _classes(data, synthetic)
    ignore_index = _ignore_index(data.get("ignore_index"), classes)
    resize, crop_size = _resize(data.get("resize"), data.get("crop_size"))
    image_size = _image_size(resize, data.get("image_size"))
    foreground_share = _crop_fraction(data, "foreground_share", DEFAULT_FOREGROUND_SHARE, 1.0)
    overlap = _crop_fraction(data, "overlap", DEFAULT_OVERLAP, 0.95)
    cache = data.get("cache", True)
    if not isinstance(cache, bool):
        raise ConfigError(f"data.cache: expected true or false, got {cache!r}")
    explicit = [k for k in ("test_names", "test_list", "test_groups") if data.get(k) is not None]
    if len(explicit) > 1:
        raise ConfigError(f"data.{explicit[1]}: give only one of {', '.join(explicit)}")
    return DataSpec(
        root=root,
        synthetic=synthetic,
        test_fraction=test_fraction,
        classes=classes,
        ignore_index=ignore_index,
        resize=resize,
        crop_size=crop_size,
        image_size=image_size,
        foreground_share=foreground_share,
        overlap=overlap,
        cache=cache,
        test_names=_names("data.test_names", data["test_names"])
        if data.get("test_names") is not None
        else None,
        test_list=_test_list(data.get("test_list"), root),
        test_groups=_names("data.test_groups", data["test_groups"])
        if data.get("test_groups") is not None
        else None,
    )


def _test_fraction(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 < value < 1.0:
        raise ConfigError(
            f"data.test_fraction: must be a number between 0 and 1 (exclusive), got {value!r}"
        )
    return float(value)


def _source(data: Mapping[str, Any]) -> tuple[Path | None, dict[str, int] | None]:
    """``(root, None)`` for a folder of images and masks, ``(None, options)`` for synthetic
    data; exactly one must be given. A relative root is read below ``$SMPTUNE_DATA_ROOT``."""
    has_root = data.get("root") is not None
    has_synthetic = "synthetic" in data and data["synthetic"] is not False
    if has_root and has_synthetic:
        raise ConfigError("data: give either root or synthetic, not both")
    if not has_root and not has_synthetic:
        raise ConfigError(
            "data: give root (a folder with images/ and masks/) or synthetic (a mapping, "
            "may be empty)"
        )
    if not has_root:
        return None, synthetic_options(data["synthetic"])
    raw_root = data["root"]
    if not isinstance(raw_root, (str, Path)) or not str(raw_root).strip():
        raise ConfigError(f"data.root: expected a folder path, got {raw_root!r}")
    root = Path(raw_root).expanduser()
    base = data_root_base()
    if not root.is_absolute() and base is not None:
        root = base / root
    return root.resolve(), None


def _classes(data: Mapping[str, Any], synthetic: dict[str, int] | None) -> int:
    """``data.classes``, agreeing with (or given to) the synthetic data's ``classes``."""
    classes = _int_key("data.classes", data.get("classes", 1), 1, MAX_CLASSES)
    if synthetic is None:
        return classes
    if "classes" in data and data["synthetic"] and "classes" in data["synthetic"]:
        if synthetic["classes"] != classes:
            raise ConfigError(
                f"data.classes: {classes} conflicts with data.synthetic.classes: "
                f"{synthetic['classes']}"
            )
    elif "classes" in data:
        synthetic["classes"] = classes
    return synthetic["classes"]


def _ignore_index(value: Any, classes: int) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"data.ignore_index: must be an integer or null, got {value!r}")
    if classes > 1 and 0 <= value < classes:
        raise ConfigError(f"data.ignore_index: {value} is one of the classes 0..{classes - 1}")
    return value


def _resize(resize: Any, crop_size: Any) -> tuple[str, int | None]:
    """``(resize, crop_size)``: a crop size is given with ``resize: crop`` and only then; a
    crop size alone means ``resize: crop``."""
    if resize is None:
        resize = "pad" if crop_size is None else "crop"
    if resize not in RESIZES:
        raise ConfigError(f"data.resize: must be one of {', '.join(RESIZES)}, got {resize!r}")
    if resize != "crop":
        if crop_size is not None:
            raise ConfigError("data.crop_size: only used with resize: crop")
        return resize, None
    if crop_size is None:
        raise ConfigError("data.crop_size: resize: crop needs a crop_size (a multiple of 32)")
    crop_size = _int_key("data.crop_size", crop_size, PAD_MULTIPLE, 16384)
    if crop_size % PAD_MULTIPLE:
        raise ConfigError(f"data.crop_size: must be a multiple of 32, got {crop_size}")
    return resize, crop_size


def _image_size(resize: str, value: Any) -> tuple[int, int] | None:
    """``data.image_size``: ``resize: scale``'s (height, width), an integer for a square;
    only with ``resize: scale``, which needs it."""
    if resize != "scale":
        if value is not None:
            raise ConfigError("data.image_size: only used with resize: scale")
        return None
    if value is None:
        raise ConfigError("data.image_size: resize: scale needs an image_size ([height, width])")
    sides = [value, value] if isinstance(value, int) and not isinstance(value, bool) else value
    if not isinstance(sides, list | tuple) or len(sides) != 2:
        raise ConfigError(f"data.image_size: expected [height, width], got {value!r}")
    height, width = (_int_key("data.image_size", side, 1, 16384) for side in sides)
    return height, width


def _crop_fraction(data: Mapping[str, Any], key: str, default: float, high: float) -> float:
    """``data.<key>``: a number in [0, high], only with ``resize: crop``."""
    value = data.get(key)
    if value is None:
        return default
    if data.get("resize", "crop" if data.get("crop_size") is not None else "pad") != "crop":
        raise ConfigError(f"data.{key}: only used with resize: crop (or a crop_size)")
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= high:
        raise ConfigError(f"data.{key}: must be a number in [0, {high}], got {value!r}")
    return float(value)


def _test_list(value: Any, root: Path | None) -> Path | None:
    """``data.test_list``: a file of test sample names, relative to the data root."""
    if value is None:
        return None
    if not isinstance(value, (str, Path)) or not str(value).strip():
        raise ConfigError(f"data.test_list: expected a file path, got {value!r}")
    path = Path(value).expanduser()
    return root / path if not path.is_absolute() and root is not None else path


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


def _array_options(spec: DataSpec) -> dict[str, Any]:
    """What the cached arrays depend on besides the source."""
    return {
        "classes": spec.classes,
        "ignore_index": spec.ignore_index,
        "crop_size": spec.crop_size,
        "image_size": spec.image_size,
        "cache": spec.cache,
    }


def padded_side(side: int) -> int:
    """``side`` rounded up to a multiple of 32, as the data is stored."""
    return math.ceil(side / PAD_MULTIPLE) * PAD_MULTIPLE


def scaled(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``image`` (C, H, W) resized to ``size`` by linear interpolation (``resize: scale``),
    in its own dtype (``uint8`` rounded). :func:`scipy.ndimage.zoom` on the pixel grid,
    numpy only, so the producer's data check and prediction read it without torch."""
    from scipy import ndimage

    if image.shape[1:] == size:
        return image
    factors = (1.0, size[0] / image.shape[1], size[1] / image.shape[2])
    out = ndimage.zoom(image.astype(np.float32), factors, order=1, mode="nearest", grid_mode=True)
    if image.dtype == np.uint8:
        return np.clip(np.rint(out), 0, 255).astype(np.uint8)
    return out.astype(image.dtype, copy=False)


def scaled_labels(labels: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Class labels (H, W) resized to ``size`` by nearest neighbour (no new labels)."""
    if labels.shape == size:
        return labels
    rows = np.minimum((np.arange(size[0]) + 0.5) * labels.shape[0] / size[0], labels.shape[0] - 1)
    cols = np.minimum((np.arange(size[1]) + 0.5) * labels.shape[1] / size[1], labels.shape[1] - 1)
    return labels[rows.astype(np.int64)[:, None], cols.astype(np.int64)[None, :]]


def _pad(
    image: np.ndarray, mask: np.ndarray, shape: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray]:
    pad_h, pad_w = shape[0] - image.shape[1], shape[1] - image.shape[2]
    if pad_h or pad_w:
        mode: Literal["reflect", "edge"] = "reflect" if min(image.shape[1:]) > 1 else "edge"
        image = np.pad(image, ((0, 0), (0, pad_h), (0, pad_w)), mode=mode)
        mask = np.pad(mask, ((0, pad_h), (0, pad_w)), constant_values=IGNORE)
    return image, mask


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
            out_images[i], out_masks[i] = _pad(images[i], masks[i], shape)
        return {"height": size, "width": size}

    key = cache_key({"synthetic": options, **_array_options(spec)})
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


def _files(folder: Path, root: Path) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if not path.is_file() or path.suffix.lower() not in SUFFIXES:
            continue
        if path.stem in found:
            raise ConfigError(
                f"data.root: {found[path.stem].relative_to(root)} and {path.relative_to(root)} "
                "have the same name; keep one"
            )
        found[path.stem] = path
    return found


def _read(path: Path, where: str | None = None) -> np.ndarray:
    """A file's array; a :class:`ConfigError` starting with ``where`` when it cannot be read."""
    suffix = path.suffix.lower()
    try:
        if suffix == ".npy":
            return np.load(path, allow_pickle=False)
        if suffix in (".tif", ".tiff"):
            import tifffile

            return np.asarray(tifffile.imread(path))
        from PIL import Image

        with Image.open(path) as img:
            if img.mode == "P" and path.parent.name == "images":
                img = img.convert("RGBA" if "transparency" in img.info else "RGB")
            return np.array(img)
    except ConfigError:
        raise
    except Exception as exc:
        prefix = f"{where}: cannot read it" if where else f"data.root: cannot read {path}"
        raise ConfigError(f"{prefix}: {exc}") from exc


def _channels_first(array: np.ndarray, suffix: str) -> np.ndarray:
    """(C, H, W) view of an image array of 2 or 3 dimensions."""
    if array.ndim == 2:
        return array[None]
    if suffix == ".png" or array.shape[-1] <= array.shape[0]:
        return np.moveaxis(array, -1, 0)
    return array


def _is_label_array(mask: np.ndarray) -> bool:
    """Integer or boolean labels, or floats that are all finite whole numbers."""
    if mask.dtype.kind in "biu":
        return True
    if mask.dtype.kind != "f":
        return False
    return bool(np.isfinite(mask).all() and (mask == np.round(mask)).all())


def _labels(mask: np.ndarray, where: str, spec: DataSpec) -> np.ndarray:
    """A mask file's values as stored labels (uint8; :data:`IGNORE` for ignored pixels)."""
    if not _is_label_array(mask):
        raise ConfigError(
            f"data.root: mask {where} holds {mask.dtype} values that are not whole numbers; "
            "masks must be integer labels (0 background, nonzero foreground, or classes "
            "0..N-1 with data.classes: N)"
        )
    if mask.ndim == 3:
        planes = _channels_first(mask, Path(where).suffix.lower())
        if spec.classes > 1:
            if not (planes == planes[:1]).all():
                raise ConfigError(
                    f"data.root: mask {where} has {planes.shape[0]} channels that differ; "
                    "multi-class masks must hold one label per pixel"
                )
            mask = planes[0]
        else:
            ignored = (
                (planes == spec.ignore_index).all(axis=0) if spec.ignore_index is not None else None
            )
            mask = np.asarray(planes.any(axis=0), dtype=np.uint8)
            if ignored is not None:
                mask[ignored] = IGNORE
                return mask
    ignored = mask == spec.ignore_index if spec.ignore_index is not None else None
    if spec.classes == 1:
        labels = (mask != 0).astype(np.uint8)
    else:
        valid = ~ignored if ignored is not None else np.ones(mask.shape, dtype=bool)
        bad = valid & ((mask < 0) | (mask >= spec.classes))
        if bad.any():
            value = mask[bad].flat[0]
            value = int(value) if mask.dtype.kind != "b" else bool(value)
            also = (
                "" if spec.ignore_index is None else f" nor data.ignore_index ({spec.ignore_index})"
            )
            raise ConfigError(
                f"data.root: mask {where} holds the value {value}, which is not a class "
                f"0..{spec.classes - 1} (data.classes: {spec.classes}){also}"
            )
        labels = np.where(valid, mask, 0).astype(np.uint8)
    if ignored is not None:
        labels[ignored] = IGNORE
    return labels


def _describe(shape: tuple[int, ...]) -> str:
    return f"{shape[1]}×{shape[2]} with {shape[0]} channel{'s' if shape[0] != 1 else ''}"


def _read_metadata(root: Path, names: tuple[str, ...]) -> dict[str, tuple[str | None, ...]]:
    path = root / METADATA_FILE
    if not path.is_file():
        return {}
    try:
        with path.open(newline="") as handle:
            reader = csv.DictReader(handle)
            columns = [c.strip() for c in reader.fieldnames or []]
            rows = list(reader)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise ConfigError(f"data.root: cannot read {path}: {exc}") from exc
    if "name" not in columns:
        raise ConfigError(f"data.root: {path} has no 'name' column (file stems of the images)")
    by_name = {
        str(row.get("name") or "").strip(): {
            k.strip(): (v or "").strip() for k, v in row.items() if k
        }
        for row in rows
    }
    return {
        column: tuple(by_name[n][column] if n in by_name else None for n in names)
        for column in columns
        if column != "name"
    }


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
    image_files = _files(image_dir, root)
    if not image_files:
        raise ConfigError(
            f"data.root: {image_dir} holds no images (PNG, TIFF or NPY files: "
            f"{', '.join(SUFFIXES)})"
        )
    mask_files = _files(mask_dir, root)
    missing = [name for name in image_files if name not in mask_files]
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise ConfigError(
            f"data.root: image {image_files[missing[0]].relative_to(root)} has no mask in "
            f"{mask_dir}{more}; masks are matched by file name without suffix"
        )
    names = tuple(image_files)

    def build(allocate: Allocate) -> dict[str, Any]:
        return _decode(spec, root, names, image_files, mask_files, allocate)

    content = {"root": str(root), "files": folder_listing(image_dir, mask_dir)}
    arrays, info = cached(cache_key({**content, **_array_options(spec)}), build, enabled=spec.cache)
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
        metadata=_read_metadata(root, names),
        sizes=sizes,
    )


def _image(path: Path, root: Path) -> np.ndarray:
    return read_image(path, f"data.root: image {path.relative_to(root)}")


def read_image(path: Path, where: str | None = None) -> np.ndarray:
    """An image file (PNG, TIFF, NPY) as (C, H, W) values as decoded, read as the data is;
    a bad file is a :class:`ConfigError` starting with ``where`` (default: the path)."""
    where = where or str(path)
    raw = _read(path, where if not where.startswith("data.root: ") else None)
    if raw.ndim not in (2, 3) or raw.size == 0:
        raise ConfigError(
            f"{where} has shape {raw.shape}; expected H×W, H×W×C or C×H×W (at least 1 pixel a side)"
        )
    if raw.dtype.kind not in "biuf":
        raise ConfigError(f"{where} has unsupported dtype {raw.dtype}")
    image = _channels_first(raw, path.suffix.lower())
    if raw.dtype.kind == "f" and not np.isfinite(image).all():
        raise ConfigError(f"{where} holds NaN or infinite values")
    return image


def _chw(shape: tuple[int, ...], suffix: str) -> tuple[int, int, int]:
    """The (C, H, W) shape :func:`_channels_first` makes of an array of ``shape``."""
    if len(shape) == 2:
        return 1, shape[0], shape[1]
    if suffix == ".png" or shape[-1] <= shape[0]:
        return shape[2], shape[0], shape[1]
    return shape[0], shape[1], shape[2]


def _probe(path: Path, root: Path) -> tuple[int, int, int]:
    """An image file's (C, H, W) from its header (NPY, TIFF, PNG), else by decoding it (which
    also raises the errors of a bad file)."""
    suffix = path.suffix.lower()
    shape: tuple[int, ...] = ()
    try:
        if suffix == ".npy":
            shape = np.load(path, mmap_mode="r", allow_pickle=False).shape
        elif suffix in (".tif", ".tiff"):
            import tifffile

            with tifffile.TiffFile(path) as tif:
                shape = tuple(tif.series[0].shape)
        else:
            from PIL import Image

            with Image.open(path) as img:
                bands = len(img.getbands())
                if img.mode == "P":
                    bands = 4 if "transparency" in img.info else 3
                width, height = img.size
                shape = (height, width) if bands == 1 else (height, width, bands)
    except Exception:
        shape = ()
    if len(shape) not in (2, 3) or 0 in shape:
        return _chw(_image(path, root).shape, ".npy")  # already channels first
    return _chw(tuple(int(d) for d in shape), suffix)


def suggested_crop_size(sizes: Sequence[tuple[int, int]]) -> int:
    """A patch size for images of ``sizes``: the median shorter side, rounded down to a
    multiple of 32, within [32, 512]."""
    median = float(np.median([min(h, w) for h, w in sizes]))
    return int(min(512, max(PAD_MULTIPLE, median // PAD_MULTIPLE * PAD_MULTIPLE)))


def _shapes(
    spec: DataSpec, root: Path, names: tuple[str, ...], image_files: dict[str, Path]
) -> list[tuple[int, int, int]]:
    """Every image's (C, H, W); :class:`ConfigError` naming the first image whose channels
    differ from the first's, or (without ``crop_size``) whose size does."""
    shapes = [_probe(image_files[name], root) for name in names]
    first_where = image_files[names[0]].relative_to(root)
    channels, height, width = shapes[0]
    for name, shape in zip(names, shapes, strict=True):
        if shape[0] != channels:
            raise ConfigError(
                f"data.root: image {image_files[name].relative_to(root)} has {shape[0]} "
                f"channel{'s' if shape[0] != 1 else ''}, but {first_where} has {channels}; "
                "all images must have the same channels"
            )
    if spec.crop_size is None and spec.image_size is None:
        other = next((i for i, s in enumerate(shapes) if s[1:] != shapes[0][1:]), None)
        if other is not None:
            shape = shapes[other]
            suggestion = suggested_crop_size([s[1:] for s in shapes])
            raise ConfigError(
                f"data.root: image {image_files[names[other]].relative_to(root)} is "
                f"{shape[1]}×{shape[2]}, but {first_where} is {height}×{width}; images of "
                f"different sizes train on patches: set data.crop_size (a multiple of 32, e.g. "
                f"{suggestion}); validation and test then run on whole images in sliding "
                "windows of that size (or resize: scale with an image_size resizes them all)"
            )
    return shapes


def _decode(
    spec: DataSpec,
    root: Path,
    names: tuple[str, ...],
    image_files: dict[str, Path],
    mask_files: dict[str, Path],
    allocate: Allocate,
) -> dict[str, Any]:
    """Decode every pair into arrays from ``allocate``; the info for :class:`SegmentationData`."""
    shapes = _shapes(spec, root, names, image_files)
    first_path = image_files[names[0]]
    first = _image(first_path, root)
    channels = first.shape[0]
    as_bytes = first.dtype == np.uint8
    dtype = np.uint8 if as_bytes else np.float32
    sizes = np.array([spec.image_size or s[1:] for s in shapes], dtype=np.int64)
    padded = np.array([spec.padded(h, w) for h, w in sizes], dtype=np.int64)
    images: np.ndarray | Ragged
    masks: np.ndarray | Ragged
    uniform = bool((sizes == sizes[0]).all())
    if uniform:
        shape = (int(padded[0, 0]), int(padded[0, 1]))
        images = allocate("images", (len(names), channels, *shape), dtype)
        masks = allocate("masks", (len(names), *shape), np.uint8)
    else:
        pixels = int(padded.prod(axis=1).sum())
        allocate("padded", padded.shape, np.int64)[:] = padded
        allocate("sizes", sizes.shape, np.int64)[:] = sizes
        image_shapes = np.hstack([np.full((len(names), 1), channels), padded])
        images = Ragged(allocate("images", (channels * pixels,), dtype), image_shapes)
        masks = Ragged(allocate("masks", (pixels,), np.uint8), padded)
    for i, name in enumerate(names):
        image_path, mask_path = image_files[name], mask_files[name]
        image = first if i == 0 else _image(image_path, root)
        where = image_path.relative_to(root)
        if image.shape != shapes[i]:
            raise ConfigError(
                f"data.root: image {where} is {_describe(image.shape)}, but its header says "
                f"{_describe(shapes[i])}"
            )
        if as_bytes and image.dtype != np.uint8:
            raise ConfigError(
                f"data.root: image {where} holds {image.dtype} values, but "
                f"{first_path.relative_to(root)} holds uint8; all images must have one type"
            )
        mask = _read(mask_path)
        mask_where = mask_path.relative_to(root)
        if mask.ndim not in (2, 3):
            raise ConfigError(f"data.root: mask {mask_where} has shape {mask.shape}; expected H×W")
        labels = _labels(mask, str(mask_where), spec)
        if labels.shape != image.shape[1:]:
            raise ConfigError(
                f"data.root: mask {mask_where} is {labels.shape[0]}×{labels.shape[1]}, but its "
                f"image {where} is {image.shape[1]}×{image.shape[2]}"
            )
        if spec.image_size is not None:
            image, labels = scaled(image, spec.image_size), scaled_labels(labels, spec.image_size)
        target = (int(padded[i, 0]), int(padded[i, 1]))
        images[i][...], masks[i][...] = _pad(image, labels, target)
    normalisation = (
        {"method": "divide", "by": 255.0} if as_bytes else _normalise(images, first.dtype)
    )
    height, width = (int(v) for v in sizes.max(axis=0))
    info: dict[str, Any] = {"height": height, "width": width, "normalisation": normalisation}
    if not uniform:
        info.update(layout="ragged", channels=int(channels))
    return info


def _blocks(images: np.ndarray | Ragged, chunk: int) -> Iterator[np.ndarray]:
    """Writable (n, C, H, W) views covering ``images``: chunks of a stacked array, or one
    sample at a time of a ragged one."""
    if isinstance(images, Ragged):
        for sample in images:
            yield sample[None]
        return
    for start in range(0, images.shape[0], chunk):
        yield images[start : start + chunk]


def _normalise(images: np.ndarray | Ragged, dtype: np.dtype, chunk: int = 256) -> dict[str, Any]:
    """Scale float32 ``images`` in place to [0, 1] per channel (unless already in [0, 1]).

    Reflection padding repeats pixel values only, so the padded arrays have the images'
    minimum and maximum."""
    channels = images[0].shape[0]
    low = np.full(channels, np.inf, dtype=np.float32)
    high = np.full(channels, -np.inf, dtype=np.float32)
    for block in _blocks(images, chunk):
        low = np.minimum(low, block.min(axis=(0, 2, 3)))
        high = np.maximum(high, block.max(axis=(0, 2, 3)))
    if dtype == np.bool_ or (dtype.kind == "f" and low.min() >= 0.0 and high.max() <= 1.0):
        return {"method": "none"}
    span = np.where(high > low, high - low, 1.0).astype(np.float32)
    for block in _blocks(images, chunk):
        block[...] = (block - low[:, None, None]) / span[:, None, None]
    return {
        "method": "per-channel (x - low) / span",
        "low": low.tolist(),
        "span": span.tolist(),
    }
