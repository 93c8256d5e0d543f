"""Augmentation of a training batch on its device, each sample drawn on its own.

``flips`` (random flips and transposes: the 8 flips/rotations by multiples of 90°) is written
here as three ``torch.where`` calls (kornia has no transpose, and this is exact and free);
``scale``, ``rotate``, ``intensity`` (brightness and contrast) and ``noise`` are kornia's,
masks following the geometric ones by nearest neighbour, with pixels moved in from outside
the image ignored by the loss. Randomness comes from torch's generator (seeded per run).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from smptune.training.dataspec import IGNORE


def _where(flags: torch.Tensor, changed: torch.Tensor, original: torch.Tensor) -> torch.Tensor:
    return torch.where(flags.view(-1, *([1] * (original.dim() - 1))), changed, original)


def augment_batch(images: torch.Tensor, masks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Each sample gets its own random horizontal flip, vertical flip and (square images)
    transpose; together these are the 8 flips/rotations by multiples of 90°.

    ``images`` is (N, C, H, W), ``masks`` (N, H, W); both get the same transform.
    """
    draws = torch.rand(3, images.shape[0], device=images.device) < 0.5
    images = _where(draws[0], images.flip(-1), images)
    masks = _where(draws[0], masks.flip(-1), masks)
    images = _where(draws[1], images.flip(-2), images)
    masks = _where(draws[1], masks.flip(-2), masks)
    if images.shape[-1] == images.shape[-2]:
        images = _where(draws[2], images.transpose(-1, -2), images)
        masks = _where(draws[2], masks.transpose(-1, -2), masks)
    return images, masks


class Augment:
    """The augmentation sets ``names`` (see :data:`~smptune.training.params.AUGMENTATIONS`),
    applied to ``(images, masks)`` batches: images (N, C, H, W) in [0, 1], masks (N, H, W)."""

    def __init__(self, names: Sequence[str]) -> None:
        self.flips = "flips" in names
        self.pipeline = None
        if not {"scale", "rotate", "intensity", "noise"} & set(names):
            return
        import kornia.augmentation as K

        ops: list[K.base._AugmentationBase] = []
        if "scale" in names or "rotate" in names:
            ops.append(
                K.RandomAffine(
                    degrees=15.0 if "rotate" in names else 0.0,
                    scale=(0.8, 1.25) if "scale" in names else None,
                    p=0.75,
                )
            )
        if "intensity" in names:
            ops += [K.RandomBrightness((0.8, 1.2), p=0.5), K.RandomContrast((0.8, 1.25), p=0.5)]
        if "noise" in names:
            ops.append(K.RandomGaussianNoise(std=0.03, p=0.5))
        self.pipeline = K.AugmentationSequential(*ops, data_keys=["input", "mask"])

    def __call__(
        self, images: torch.Tensor, masks: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if self.flips:
            images, masks = augment_batch(images, masks)
        if self.pipeline is None:
            return images, masks
        # labels shifted by one, so that the zeros a warp pads with mark pixels to ignore
        shifted = (masks.float() + 1.0).unsqueeze(1)
        images, shifted = self.pipeline(images, shifted)
        labels = shifted[:, 0].round().long()
        return images, torch.where(labels == 0, IGNORE, labels - 1).to(masks.dtype)
