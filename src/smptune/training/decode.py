"""A data folder's files read into arrays: images and masks decoded, checked, scaled,
padded and normalised as :mod:`smptune.training.data` describes."""

from __future__ import annotations

import csv
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np

from smptune.errors import ConfigError
from smptune.training.cache import Allocate
from smptune.training.dataspec import IGNORE, PAD_MULTIPLE, DataSpec
from smptune.training.samples import METADATA_FILE, Ragged

SUFFIXES = (".png", ".tif", ".tiff", ".npy")


def scaled(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``image`` (C, H, W) resized to ``size`` by linear interpolation (``resize: scale``),
    in its own dtype (``uint8`` rounded). :func:`scipy.ndimage.zoom` on the pixel grid,
    numpy only, so the producer's data check and prediction read it without torch."""
    from scipy import ndimage

    if image.shape[1:] == size:
        return image
    factors = (1.0, size[0] / image.shape[1], size[1] / image.shape[2])
    out: np.ndarray = ndimage.zoom(
        image.astype(np.float32), factors, order=1, mode="nearest", grid_mode=True
    )
    if image.dtype == np.uint8:
        rounded: np.ndarray = np.clip(np.rint(out), 0, 255).astype(np.uint8)
        return rounded
    return out.astype(image.dtype, copy=False)


def scaled_labels(labels: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Class labels (H, W) resized to ``size`` by nearest neighbour (no new labels)."""
    if labels.shape == size:
        return labels
    rows = np.minimum((np.arange(size[0]) + 0.5) * labels.shape[0] / size[0], labels.shape[0] - 1)
    cols = np.minimum((np.arange(size[1]) + 0.5) * labels.shape[1] / size[1], labels.shape[1] - 1)
    scaled: np.ndarray = labels[rows.astype(np.int64)[:, None], cols.astype(np.int64)[None, :]]
    return scaled


def pad(
    image: np.ndarray, mask: np.ndarray, shape: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray]:
    pad_h, pad_w = shape[0] - image.shape[1], shape[1] - image.shape[2]
    if pad_h or pad_w:
        mode: Literal["reflect", "edge"] = "reflect" if min(image.shape[1:]) > 1 else "edge"
        image = np.pad(image, ((0, 0), (0, pad_h), (0, pad_w)), mode=mode)
        mask = np.pad(mask, ((0, pad_h), (0, pad_w)), constant_values=IGNORE)
    return image, mask


def read_files(folder: Path, root: Path) -> dict[str, Path]:
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
            array: np.ndarray = np.load(path, allow_pickle=False)
            return array
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
        labels: np.ndarray = (mask != 0).astype(np.uint8)
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


def read_metadata(root: Path, names: tuple[str, ...]) -> dict[str, tuple[str | None, ...]]:
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


def decode(
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
        images[i][...], masks[i][...] = pad(image, labels, target)
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
