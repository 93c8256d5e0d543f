"""The data of a sweep: a folder of images and masks, or synthetic; decoded once per machine.

``settings.data`` holds exactly one of

- ``root``: a folder with ``images/`` and ``masks/``; files are matched by stem
  (``images/a.png`` ↔ ``masks/a.npy`` is fine) and may be PNG, TIFF (multi-band too) or NPY.
  Images are H×W, H×W×C or C×H×W (TIFF, NPY: the smaller of the first and last axis is the
  channel axis), any number of channels, any size (all images of one size). An optional
  ``metadata.csv`` beside them has a ``name`` column (file stems) and any other columns
  (e.g. the ``cv.group_column``).
- ``synthetic``: a mapping of options (see :mod:`smptune.training.synthetic`).

and optionally ``classes`` (1: binary, nonzero is foreground; N >= 2: labels 0..N-1),
``ignore_index`` (a mask value that marks invalid pixels, left out of loss and metrics),
``resize`` (``pad`` or ``crop``, with ``crop_size``), ``cache`` and the test split:
``test_fraction``, ``test_names``, ``test_list`` or ``test_groups`` (see
:mod:`smptune.training.splits`).

Images are kept as ``uint8`` (read as ``x / 255``) when the files are ``uint8``; other data is
scaled to float32 in [0, 1] per channel by its minimum and maximum over the whole dataset
(float data already within [0, 1] is kept). Heights and widths are padded at the bottom and
right by reflection to multiples of 32 (and at least ``crop_size``); padded mask pixels and
``ignore_index`` pixels get the value :data:`IGNORE`. The decoded arrays live in a memory-mapped
cache shared by the processes of a machine (:mod:`smptune.training.cache`).
"""

from __future__ import annotations

import csv
import json
import math
from collections import OrderedDict
from collections.abc import Mapping
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
RESIZES = ("pad", "crop")
DATA_KEYS = (
    "root",
    "synthetic",
    "classes",
    "ignore_index",
    "resize",
    "crop_size",
    "cache",
    "test_fraction",
    "test_names",
    "test_list",
    "test_groups",
)
SUFFIXES = (".png", ".tif", ".tiff", ".npy")
METADATA_FILE = "metadata.csv"
_CACHE_SIZE = 2


@dataclass(frozen=True)
class SegmentationData:
    """All samples of a dataset (arrays usually memory-mapped from the cache)."""

    images: np.ndarray  # (N, C, H, W) uint8 (x / 255) or float32 in [0, 1]; H, W padded
    masks: np.ndarray  # (N, H, W) uint8 labels; IGNORE for padded and ignored pixels
    names: tuple[str, ...]
    height: int  # before padding
    width: int
    source: str
    normalisation: dict[str, Any]  # how raw pixel values were mapped to [0, 1]
    classes: int = 1
    metadata: dict[str, tuple[str | None, ...]] = field(default_factory=dict)

    @property
    def n(self) -> int:
        return int(self.images.shape[0])

    @property
    def in_channels(self) -> int:
        return int(self.images.shape[1])

    @property
    def scale(self) -> float:
        """Factor from stored image values to [0, 1]."""
        return 1.0 / 255.0 if self.images.dtype == np.uint8 else 1.0

    def float_images(self, indices: Any) -> np.ndarray:
        """Images ``indices`` as float32 in [0, 1]."""
        return np.asarray(self.images[indices], dtype=np.float32) * np.float32(self.scale)

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
    resize, crop_size = _resize(data.get("resize", "pad"), data.get("crop_size"))
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
    """``(resize, crop_size)``: a crop size is given with ``resize: crop`` and only then."""
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
        "cache": spec.cache,
    }


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


def _read(path: Path) -> np.ndarray:
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
        raise ConfigError(f"data.root: cannot read {path}: {exc}") from exc


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
    return SegmentationData(
        images=arrays["images"],
        masks=arrays["masks"],
        names=names,
        height=int(info["height"]),
        width=int(info["width"]),
        source=str(root),
        normalisation=info["normalisation"],
        classes=spec.classes,
        metadata=_read_metadata(root, names),
    )


def _image(path: Path, root: Path) -> np.ndarray:
    raw = _read(path)
    where = path.relative_to(root)
    if raw.ndim not in (2, 3) or raw.size == 0:
        raise ConfigError(
            f"data.root: image {where} has shape {raw.shape}; expected H×W, H×W×C or C×H×W"
        )
    if raw.dtype.kind not in "biuf":
        raise ConfigError(f"data.root: image {where} has unsupported dtype {raw.dtype}")
    image = _channels_first(raw, path.suffix.lower())
    if raw.dtype.kind == "f" and not np.isfinite(image).all():
        raise ConfigError(f"data.root: image {where} holds NaN or infinite values")
    return image


def _decode(
    spec: DataSpec,
    root: Path,
    names: tuple[str, ...],
    image_files: dict[str, Path],
    mask_files: dict[str, Path],
    allocate: Allocate,
) -> dict[str, Any]:
    """Decode every pair into arrays from ``allocate``; the info for :class:`SegmentationData`."""
    first_path = image_files[names[0]]
    first = _image(first_path, root)
    channels, height, width = first.shape
    as_bytes = first.dtype == np.uint8
    shape = spec.padded(height, width)
    dtype = np.uint8 if as_bytes else np.float32
    images = allocate("images", (len(names), channels, *shape), dtype)
    masks = allocate("masks", (len(names), *shape), np.uint8)
    for i, name in enumerate(names):
        image_path, mask_path = image_files[name], mask_files[name]
        image = first if i == 0 else _image(image_path, root)
        where = image_path.relative_to(root)
        if image.shape != first.shape:
            raise ConfigError(
                f"data.root: image {where} is {_describe(image.shape)}, but "
                f"{first_path.relative_to(root)} is {_describe(first.shape)}; all images must "
                "have the same size and channels"
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
        images[i], masks[i] = _pad(image, labels, shape)
    normalisation = (
        {"method": "divide", "by": 255.0} if as_bytes else _normalise(images, first.dtype)
    )
    return {"height": height, "width": width, "normalisation": normalisation}


def _normalise(images: np.ndarray, dtype: np.dtype, chunk: int = 256) -> dict[str, Any]:
    """Scale float32 ``images`` in place to [0, 1] per channel (unless already in [0, 1])."""
    low = np.full(images.shape[1], np.inf, dtype=np.float32)
    high = np.full(images.shape[1], -np.inf, dtype=np.float32)
    for start in range(0, images.shape[0], chunk):
        block = images[start : start + chunk]
        low = np.minimum(low, block.min(axis=(0, 2, 3)))
        high = np.maximum(high, block.max(axis=(0, 2, 3)))
    if dtype == np.bool_ or (dtype.kind == "f" and low.min() >= 0.0 and high.max() <= 1.0):
        return {"method": "none"}
    span = np.where(high > low, high - low, 1.0).astype(np.float32)
    for start in range(0, images.shape[0], chunk):
        block = images[start : start + chunk]
        images[start : start + chunk] = (block - low[:, None, None]) / span[:, None, None]
    return {
        "method": "per-channel (x - low) / span",
        "low": low.tolist(),
        "span": span.tolist(),
    }
