"""A decoded dataset in memory: :class:`SegmentationData`, its samples stacked or
:class:`Ragged` (one flat buffer of samples of different sizes)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from smptune.errors import ConfigError

METADATA_FILE = "metadata.csv"


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
        out: np.ndarray = np.asarray(image, dtype=np.float32) * np.float32(self.scale)
        return out

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
        out: np.ndarray = np.asarray(images[indices], dtype=np.float32) * np.float32(self.scale)
        return out

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
