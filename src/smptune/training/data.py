"""The data of a sweep, read once per process: a folder of images and masks, or synthetic.

``settings.data`` holds exactly one of

- ``root``: a folder with ``images/`` and ``masks/``; files are matched by stem
  (``images/a.png`` ↔ ``masks/a.npy`` is fine) and may be PNG, TIFF or NPY. Images are
  H×W, H×W×C (PNG, TIFF) or C×H×W / H×W×C (TIFF, NPY: the smaller of the first and last axis
  is the channel axis). Masks are H×W; nonzero is foreground.
- ``synthetic``: a mapping of options (see :mod:`smptune.training.synthetic`).

and optionally ``test_fraction`` (default 0.2), the part held out as the test split.

Images become float32 in [0, 1]: ``uint8`` data is divided by 255, other data is scaled per
channel by the minimum and maximum over the whole dataset (float data already within [0, 1] is
kept as it is). All images must have the same size; heights and widths that are not multiples
of 32 are padded at the bottom and right by reflection, and the padded mask pixels get the
value :data:`IGNORE`, which the loss and the metrics leave out.
"""

from __future__ import annotations

import json
import math
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from smptune.errors import ConfigError
from smptune.training.synthetic import make_synthetic, synthetic_options

IGNORE = 255
"""Mask value of padded pixels: neither foreground nor background, left out of loss and metrics."""
PAD_MULTIPLE = 32
DEFAULT_TEST_FRACTION = 0.2
DATA_KEYS = ("root", "synthetic", "test_fraction")
SUFFIXES = (".png", ".tif", ".tiff", ".npy")
_CACHE_SIZE = 2


@dataclass(frozen=True)
class SegmentationData:
    """All samples of a dataset, in memory."""

    images: np.ndarray  # (N, C, H, W) float32 in [0, 1], H and W multiples of 32
    masks: np.ndarray  # (N, H, W) uint8: 0 background, 1 foreground, IGNORE padding
    names: tuple[str, ...]
    height: int  # before padding
    width: int
    source: str
    normalisation: dict[str, Any]  # how raw pixel values were mapped to [0, 1]

    @property
    def n(self) -> int:
        return int(self.images.shape[0])

    @property
    def in_channels(self) -> int:
        return int(self.images.shape[1])


@dataclass(frozen=True)
class DataSpec:
    """``settings.data``, checked."""

    root: Path | None
    synthetic: dict[str, int] | None
    test_fraction: float

    def cache_key(self) -> str:
        source = {"root": str(self.root)} if self.root is not None else self.synthetic
        return json.dumps(source, sort_keys=True)


def data_spec(data: Mapping[str, Any] | None) -> DataSpec:
    """Check ``settings.data`` (without reading any file)."""
    data = dict(data or {})
    unknown = sorted(set(data) - set(DATA_KEYS))
    if unknown:
        raise ConfigError(f"data.{unknown[0]}: unknown setting; known: {', '.join(DATA_KEYS)}")
    test_fraction = data.get("test_fraction", DEFAULT_TEST_FRACTION)
    if (
        isinstance(test_fraction, bool)
        or not isinstance(test_fraction, (int, float))
        or not 0.0 < test_fraction < 1.0
    ):
        raise ConfigError(
            f"data.test_fraction: must be a number between 0 and 1 (exclusive), "
            f"got {test_fraction!r}"
        )
    has_root = data.get("root") is not None
    has_synthetic = "synthetic" in data and data["synthetic"] is not False
    if has_root and has_synthetic:
        raise ConfigError("data: give either root or synthetic, not both")
    if has_root:
        root = data["root"]
        if not isinstance(root, (str, Path)) or not str(root).strip():
            raise ConfigError(f"data.root: expected a folder path, got {root!r}")
        return DataSpec(Path(root).expanduser().resolve(), None, float(test_fraction))
    if has_synthetic:
        return DataSpec(None, synthetic_options(data["synthetic"]), float(test_fraction))
    raise ConfigError(
        "data: give root (a folder with images/ and masks/) or synthetic (a mapping, may be empty)"
    )


_CACHE: OrderedDict[str, SegmentationData] = OrderedDict()


def load_data(data: Mapping[str, Any] | DataSpec | None) -> SegmentationData:
    """Read (or take from this process's cache) the dataset that ``settings.data`` names."""
    spec = data if isinstance(data, DataSpec) else data_spec(data)
    key = spec.cache_key()
    if key in _CACHE:
        _CACHE.move_to_end(key)
        return _CACHE[key]
    if spec.root is not None:
        loaded = read_folder(spec.root)
    else:
        assert spec.synthetic is not None
        images, masks = make_synthetic(**spec.synthetic)
        names = tuple(f"synthetic_{i:05d}" for i in range(images.shape[0]))
        loaded = _finish(images, masks, names, f"synthetic {spec.synthetic}", {"method": "none"})
    _CACHE[key] = loaded
    while len(_CACHE) > _CACHE_SIZE:
        _CACHE.popitem(last=False)
    return loaded


def clear_cache() -> None:
    _CACHE.clear()


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
            try:
                import tifffile
            except ImportError:
                pass
            else:
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


def _mask_2d(array: np.ndarray, suffix: str) -> np.ndarray:
    if array.ndim == 3:
        array = _channels_first(array, suffix).any(axis=0)
    return array


def read_folder(root: Path) -> SegmentationData:
    """Read ``root/images`` and ``root/masks``; raise :class:`ConfigError` naming bad files."""
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
    images: list[np.ndarray] = []
    masks: list[np.ndarray] = []
    first: Path | None = None
    for name in names:
        image_path, mask_path = image_files[name], mask_files[name]
        raw = _read(image_path)
        if raw.ndim not in (2, 3) or raw.size == 0:
            raise ConfigError(
                f"data.root: image {image_path.relative_to(root)} has shape {raw.shape}; "
                "expected H×W, H×W×C or C×H×W"
            )
        if raw.dtype.kind not in "biuf":
            raise ConfigError(
                f"data.root: image {image_path.relative_to(root)} has unsupported dtype {raw.dtype}"
            )
        image = _channels_first(raw, image_path.suffix.lower())
        if raw.dtype.kind == "f" and not np.isfinite(image).all():
            raise ConfigError(
                f"data.root: image {image_path.relative_to(root)} holds NaN or infinite values"
            )
        if first is None:
            first = image_path
        elif image.shape != images[0].shape:
            raise ConfigError(
                f"data.root: image {image_path.relative_to(root)} is "
                f"{_describe(image.shape)}, but {first.relative_to(root)} is "
                f"{_describe(images[0].shape)}; all images must have the same size and channels"
            )
        mask = _read(mask_path)
        if mask.ndim not in (2, 3):
            raise ConfigError(
                f"data.root: mask {mask_path.relative_to(root)} has shape {mask.shape}; "
                "expected H×W"
            )
        mask = _mask_2d(mask, mask_path.suffix.lower())
        if mask.shape != image.shape[1:]:
            raise ConfigError(
                f"data.root: mask {mask_path.relative_to(root)} is {mask.shape[0]}×"
                f"{mask.shape[1]}, but its image {image_path.relative_to(root)} is "
                f"{image.shape[1]}×{image.shape[2]}"
            )
        images.append(image)
        if not _is_label_array(mask):
            raise ConfigError(
                f"data.root: mask {mask_path.relative_to(root)} holds {mask.dtype} values "
                "that are not whole numbers; masks must be integer labels (0 background, "
                "nonzero foreground)"
            )
        masks.append(mask != 0)
    stacked, normalisation = _normalise(np.stack(images))
    return _finish(stacked, np.stack(masks).astype(np.uint8), names, str(root), normalisation)


def _describe(shape: tuple[int, ...]) -> str:
    return f"{shape[1]}×{shape[2]} with {shape[0]} channel{'s' if shape[0] != 1 else ''}"


def _normalise(images: np.ndarray) -> tuple[np.ndarray, dict[str, Any]]:
    if images.dtype == np.bool_:
        return images.astype(np.float32), {"method": "none"}
    if images.dtype == np.uint8:
        return images.astype(np.float32) / 255.0, {"method": "divide", "by": 255.0}
    out = images.astype(np.float32)
    if images.dtype.kind == "f" and out.min() >= 0.0 and out.max() <= 1.0:
        return out, {"method": "none"}
    low = out.min(axis=(0, 2, 3), keepdims=True)
    span = out.max(axis=(0, 2, 3), keepdims=True) - low
    span = np.where(span > 0, span, 1.0)
    return (out - low) / span, {
        "method": "per-channel (x - low) / span",
        "low": low.ravel().tolist(),
        "span": span.ravel().tolist(),
    }


def _finish(
    images: np.ndarray,
    masks: np.ndarray,
    names: tuple[str, ...],
    source: str,
    normalisation: dict[str, Any],
) -> SegmentationData:
    height, width = images.shape[2:]
    pad_h = math.ceil(height / PAD_MULTIPLE) * PAD_MULTIPLE - height
    pad_w = math.ceil(width / PAD_MULTIPLE) * PAD_MULTIPLE - width
    if pad_h or pad_w:
        mode = "reflect" if min(height, width) > 1 else "edge"
        images = np.pad(images, ((0, 0), (0, 0), (0, pad_h), (0, pad_w)), mode=mode)
        masks = np.pad(masks, ((0, 0), (0, pad_h), (0, pad_w)), constant_values=IGNORE)
    return SegmentationData(
        images=np.ascontiguousarray(images, dtype=np.float32),
        masks=np.ascontiguousarray(masks, dtype=np.uint8),
        names=names,
        height=int(height),
        width=int(width),
        source=source,
        normalisation=normalisation,
    )
