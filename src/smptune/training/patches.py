"""Training patches cut from whole images of any size: random, a share centred on foreground.

Each training sample gives one ``size``×``size`` patch an epoch, so batches stay fixed-size
whatever the images' sizes. With probability ``foreground_share`` a patch is centred on a
foreground pixel (a class drawn evenly among the sample's foreground classes, then one of its
pixels, as nnU-Net oversamples); otherwise its corner is uniform. A patch always lies inside
the image's true size where the image is at least ``size`` a side, so it holds no padding;
only an image smaller than a patch is padded (by reflection, its mask with ignored pixels) up
to it. Positions are drawn from ``(seed, epoch, sample)``, not from a running generator, so a
run resumed at an epoch draws what the uninterrupted run would have (numpy only; the loader
workers call this).

Hand-written rather than MONAI's ``RandCropByPosNegLabel``: that one works on one image in
memory, while these patches are read straight from the memory-mapped cache, only their rows.
"""

from __future__ import annotations

import numpy as np

from smptune.training.dataspec import IGNORE
from smptune.training.samples import SegmentationData

#: Foreground pixels kept per class and sample to centre patches on (a random subset).
MAX_LOCATIONS = 10_000


class PatchSampler:
    """Patches of ``data``'s samples (see the module docstring)."""

    def __init__(
        self, data: SegmentationData, size: int, foreground_share: float, seed: int
    ) -> None:
        self.data = data
        self.size = size
        self.foreground_share = foreground_share
        self.seed = seed % 2**63
        self._locations: dict[int, list[np.ndarray]] = {}

    def foreground(self, i: int) -> list[np.ndarray]:
        """Sample ``i``'s foreground pixels, one (k, 2) array of (y, x) per class present
        (at most :data:`MAX_LOCATIONS` each); memoised per process."""
        known = self._locations.get(i)
        if known is not None:
            return known
        mask = self.data.true_mask(i)
        flat = np.flatnonzero((mask != 0) & (mask != IGNORE))
        values = mask.ravel()[flat]
        rng = np.random.default_rng([self.seed, i])
        found = []
        for label in np.unique(values):
            where = flat[values == label]
            if len(where) > MAX_LOCATIONS:
                where = rng.choice(where, MAX_LOCATIONS, replace=False)
            found.append(np.stack(np.unravel_index(where, mask.shape), axis=1))
        self._locations[i] = found
        return found

    def corner(self, i: int, epoch: int) -> tuple[int, int]:
        """The top-left corner of sample ``i``'s patch in ``epoch``."""
        rng = np.random.default_rng([self.seed, epoch, i])
        height, width = self.data.size(i)
        high_y, high_x = max(0, height - self.size), max(0, width - self.size)
        if self.foreground_share > 0 and rng.random() < self.foreground_share:
            classes = self.foreground(i)
            if classes:
                pixels = classes[int(rng.integers(len(classes)))]
                y, x = pixels[int(rng.integers(len(pixels)))]
                half = self.size // 2
                return int(np.clip(y - half, 0, high_y)), int(np.clip(x - half, 0, high_x))
        return int(rng.integers(high_y + 1)), int(rng.integers(high_x + 1))

    def patch(self, i: int, epoch: int) -> tuple[np.ndarray, np.ndarray]:
        """Sample ``i``'s patch in ``epoch``: image (C, size, size) as stored, mask
        (size, size)."""
        y, x = self.corner(i, epoch)
        s = self.size
        image = self.data.images[i][:, y : y + s, x : x + s]
        mask = self.data.masks[i][y : y + s, x : x + s]
        return np.ascontiguousarray(image), np.ascontiguousarray(mask)
