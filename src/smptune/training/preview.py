"""``predictions.png``: rows of image | true mask | predicted mask, with Pillow only."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from smptune.training.dataspec import IGNORE

# background black, then distinct colours; ignored pixels grey
_PALETTE = np.array(
    [
        (0, 0, 0),
        (255, 255, 255),
        (230, 25, 75),
        (60, 180, 75),
        (255, 225, 25),
        (0, 130, 200),
        (245, 130, 48),
        (145, 30, 180),
        (70, 240, 240),
        (240, 50, 230),
        (210, 245, 60),
        (250, 190, 212),
        (0, 128, 128),
        (170, 110, 40),
        (128, 0, 0),
        (0, 0, 128),
    ],
    dtype=np.uint8,
)
_IGNORED = np.array((128, 128, 128), dtype=np.uint8)


def colourise(labels: np.ndarray) -> np.ndarray:
    """(H, W) labels as (H, W, 3) uint8 colours (grey where :data:`IGNORE`)."""
    colours = _PALETTE[np.asarray(labels, dtype=np.int64) % len(_PALETTE)]
    colours[labels == IGNORE] = _IGNORED
    return colours


def _rgb(image: np.ndarray) -> np.ndarray:
    """(C, H, W) float in [0, 1] as (H, W, 3) uint8: the first three channels (grey if fewer)."""
    planes = image[:3] if image.shape[0] >= 3 else np.repeat(image[:1], 3, axis=0)
    rgb: np.ndarray = (np.clip(np.moveaxis(planes, 0, -1), 0.0, 1.0) * 255).round().astype(np.uint8)
    return rgb


#: Each tile is shown at least this many pixels wide (nearest-neighbour, so masks stay
#: crisp); the column titles sit above the first row.
MIN_TILE_PX = 192
TITLES = ("image", "true mask", "prediction")


def write_predictions(
    path: str | Path, images: np.ndarray, masks: np.ndarray, predictions: np.ndarray, gap: int = 4
) -> Path:
    """One row per sample: ``images`` (N, C, H, W) in [0, 1], ``masks`` and ``predictions``
    (N, H, W) labels; columns titled, small images scaled up; returns the written path."""
    from PIL import Image, ImageDraw

    n, _, height, width = images.shape
    scale = max(1, -(-MIN_TILE_PX // width))
    h, w = height * scale, width * scale
    title_h = 22
    canvas = np.full((title_h + n * h + (n - 1) * gap, 3 * w + 2 * gap, 3), 255, dtype=np.uint8)
    for i in range(n):
        top = title_h + i * (h + gap)
        tiles = (_rgb(images[i]), colourise(masks[i]), colourise(predictions[i]))
        for j, tile in enumerate(tiles):
            left = j * (w + gap)
            big = tile.repeat(scale, axis=0).repeat(scale, axis=1)
            canvas[top : top + h, left : left + w] = big
    picture = Image.fromarray(canvas)
    draw = ImageDraw.Draw(picture)
    for j, title in enumerate(TITLES):
        draw.text((j * (w + gap) + 4, 4), title, fill=(29, 35, 48))
    path = Path(path)
    picture.save(path)
    return path
