"""``settings.data`` checked into a :class:`DataSpec`, key by key, without reading a file.

What each key means: :mod:`smptune.training.data`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from smptune.errors import ConfigError
from smptune.trainable import data_root_base
from smptune.training.synthetic import synthetic_options

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


def padded_side(side: int) -> int:
    """``side`` rounded up to a multiple of 32, as the data is stored."""
    return math.ceil(side / PAD_MULTIPLE) * PAD_MULTIPLE


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
        return json.dumps({"source": source, **array_options(self)}, sort_keys=True)

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


def array_options(spec: DataSpec) -> dict[str, Any]:
    """What the cached arrays depend on besides the source."""
    return {
        "classes": spec.classes,
        "ignore_index": spec.ignore_index,
        "crop_size": spec.crop_size,
        "image_size": spec.image_size,
        "cache": spec.cache,
    }
