"""Random flips and 90° rotations of a whole batch, on its device (no per-sample Python)."""

from __future__ import annotations

import torch


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


def random_crop(
    images: torch.Tensor, masks: torch.Tensor, size: int, height: int, width: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """A random ``size``×``size`` window of each sample, inside its ``height``×``width`` image
    where it fits (the stored arrays are padded to at least ``size``)."""
    n = images.shape[0]
    ys = torch.randint(0, max(0, height - size) + 1, (n,)).tolist()
    xs = torch.randint(0, max(0, width - size) + 1, (n,)).tolist()
    corners = list(enumerate(zip(ys, xs, strict=True)))
    crops = [images[i, :, y : y + size, x : x + size] for i, (y, x) in corners]
    labels = [masks[i, y : y + size, x : x + size] for i, (y, x) in corners]
    return torch.stack(crops), torch.stack(labels)
