"""A deterministic toy segmentation dataset: discs and rectangles on textured noise.

Every image has its own smooth, multi-scale background texture with pixel noise; 1 to 4
shapes (filled discs or axis-parallel rectangles, about 15 % of the pixels in all) are
brighter and carry a finer texture of their own. A small Unet learns to find them in a few
epochs, while predicting all background scores an IoU of 0.

Options (``data.synthetic``): ``n_images``, ``size`` (any, e.g. 50: padded or cropped like
real data), ``channels``, ``seed``, ``classes`` (1: binary; N >= 2: each shape gets a class in
1..N-1, brighter for a higher class; 0 is background) and ``groups`` (0: none; G: sample ``i``
is in group ``g<i % G>`` of the metadata column ``group``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from smptune.errors import ConfigError

SYNTHETIC_DEFAULTS: dict[str, int] = {
    "n_images": 64,
    "size": 64,
    "channels": 3,
    "seed": 0,
    "classes": 1,
    "groups": 0,
}
GROUP_COLUMN = "group"
_LIMITS: dict[str, tuple[int, int]] = {
    "n_images": (4, 1_000_000),
    "size": (16, 4096),
    "channels": (1, 64),
    "seed": (0, 2**32 - 1),
    "classes": (1, 32),
    "groups": (0, 1_000_000),
}


def synthetic_options(options: Mapping[str, Any] | bool | None) -> dict[str, int]:
    """Resolve ``data.synthetic`` (a mapping, possibly empty; ``None`` or ``true`` = defaults)."""
    if options is None or options is True:
        options = {}
    if not isinstance(options, Mapping):
        raise ConfigError(
            "data.synthetic: expected a mapping of options "
            f"({', '.join(SYNTHETIC_DEFAULTS)}), got {options!r}"
        )
    unknown = sorted(set(options) - set(SYNTHETIC_DEFAULTS))
    if unknown:
        raise ConfigError(
            f"data.synthetic.{unknown[0]}: unknown option; known: {', '.join(SYNTHETIC_DEFAULTS)}"
        )
    resolved = dict(SYNTHETIC_DEFAULTS)
    for key, value in options.items():
        low, high = _LIMITS[key]
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise ConfigError(
                f"data.synthetic.{key}: must be an integer in [{low}, {high}], got {value!r}"
            )
        resolved[key] = value
    if resolved["groups"] > resolved["n_images"]:
        raise ConfigError(
            f"data.synthetic.groups: {resolved['groups']} groups need at least as many images, "
            f"got n_images: {resolved['n_images']}"
        )
    return resolved


def synthetic_groups(n_images: int, groups: int) -> tuple[str, ...]:
    """The ``group`` column of a synthetic set (empty when ``groups`` is 0)."""
    return tuple(f"g{i % groups}" for i in range(n_images)) if groups else ()


def _smooth_noise(rng: np.random.Generator, size: int, cells: int) -> np.ndarray:
    """Bilinearly upsampled ``cells x cells`` uniform noise in [0, 1], shape (size, size)."""
    coarse = rng.random((cells + 1, cells + 1))
    axis = np.linspace(0.0, cells, size)
    i0 = np.minimum(axis.astype(int), cells - 1)
    t = axis - i0
    rows = coarse[i0] * (1 - t)[:, None] + coarse[i0 + 1] * t[:, None]
    out: np.ndarray = rows[:, i0] * (1 - t)[None, :] + rows[:, i0 + 1] * t[None, :]
    return out


def _shape_labels(rng: np.random.Generator, size: int, classes: int) -> np.ndarray:
    """1 to 4 shapes; each is labelled 1, or a random class in 1..classes-1 (later on top)."""
    yy, xx = np.mgrid[0:size, 0:size]
    labels = np.zeros((size, size), dtype=np.uint8)
    for _ in range(int(rng.integers(1, 5))):
        cy, cx = rng.uniform(0.1, 0.9, size=2) * size
        if rng.random() < 0.5:
            radius = rng.uniform(0.08, 0.18) * size
            region = (yy - cy) ** 2 + (xx - cx) ** 2 <= radius**2
        else:
            hy, hx = rng.uniform(0.06, 0.16, size=2) * size
            region = (np.abs(yy - cy) <= hy) & (np.abs(xx - cx) <= hx)
        labels[region] = int(rng.integers(1, classes)) if classes > 2 else 1
    return labels


def make_synthetic(
    n_images: int = 64,
    size: int = 64,
    channels: int = 3,
    seed: int = 0,
    classes: int = 1,
    groups: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Images (N, C, S, S) float32 in [0, 1] and masks (N, S, S) uint8 with labels
    0..max(1, classes - 1). ``groups`` only labels samples (:func:`synthetic_groups`)."""
    del groups
    rng = np.random.default_rng(seed)
    images = np.empty((n_images, channels, size, size), dtype=np.float32)
    masks = np.empty((n_images, size, size), dtype=np.uint8)
    for i in range(n_images):
        labels = _shape_labels(rng, size, classes)
        mask = labels > 0
        fine = _smooth_noise(rng, size, max(2, size // 4))
        for c in range(channels):
            background = (
                0.1
                + 0.3 * _smooth_noise(rng, size, 3)
                + 0.1 * _smooth_noise(rng, size, max(2, size // 8))
            )
            level: Any = rng.uniform(0.65, 0.85)
            if classes > 2:
                level = level - 0.35 + 0.5 * labels / (classes - 1)
            foreground = level + 0.15 * (fine - 0.5)
            image = np.where(mask, foreground, background)
            image += rng.normal(0.0, 0.06, size=(size, size))
            images[i, c] = np.clip(image, 0.0, 1.0)
        masks[i] = labels
    return images, masks
