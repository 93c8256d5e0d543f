"""Segmentation losses on logits that leave out ignored pixels (mask value :data:`IGNORE`).

``focal``, ``dice``, ``focal+dice`` (their sum) and ``ce`` (cross-entropy; for binary data
binary cross-entropy on the foreground logit). Binary data has one output channel (the
foreground logit), multi-class data one per class (softmax).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from smptune.training.data import IGNORE

Loss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def _valid_mean(loss: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    valid = (masks != IGNORE).float()
    return (loss * valid).sum() / valid.sum().clamp_min(1.0)


def binary_focal_loss(
    logits: torch.Tensor, masks: torch.Tensor, alpha: float | None, gamma: float
) -> torch.Tensor:
    """Focal loss (Lin et al.) as smp's ``FocalLoss("binary")``, averaged over valid pixels.

    ``logits`` is (N, 1, H, W), ``masks`` (N, H, W) with 0, 1 or :data:`IGNORE`.
    ``alpha`` weighs foreground pixels by ``alpha`` and background by ``1 - alpha``; ``None``
    weighs all alike.
    """
    logits = logits[:, 0].float()
    target = (masks == 1).float()
    log_pt = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    loss = (1.0 - torch.exp(-log_pt)).pow(gamma) * log_pt
    if alpha is not None:
        loss = loss * (alpha * target + (1.0 - alpha) * (1.0 - target))
    return _valid_mean(loss, masks)


def multiclass_focal_loss(
    logits: torch.Tensor, masks: torch.Tensor, alpha: float | None, gamma: float
) -> torch.Tensor:
    """Softmax focal loss ``(1 - p_t)^gamma * CE``, averaged over valid pixels; ``alpha``
    weighs pixels of classes 1..N-1 by ``alpha`` and background (class 0) by ``1 - alpha``."""
    target = torch.where(masks == IGNORE, 0, masks).long()
    ce = F.cross_entropy(logits.float(), target, reduction="none")
    loss = (1.0 - torch.exp(-ce)).pow(gamma) * ce
    if alpha is not None:
        foreground = (target > 0).float()
        loss = loss * (alpha * foreground + (1.0 - alpha) * (1.0 - foreground))
    return _valid_mean(loss, masks)


def cross_entropy(logits: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """BCE (one channel) or softmax cross-entropy, averaged over valid pixels."""
    if logits.shape[1] == 1:
        target = (masks == 1).float()
        loss = F.binary_cross_entropy_with_logits(logits[:, 0].float(), target, reduction="none")
        return _valid_mean(loss, masks)
    return F.cross_entropy(logits.float(), masks.long(), ignore_index=IGNORE)


def _dice(classes: int) -> Loss:
    from segmentation_models_pytorch.losses import DiceLoss

    mode = "binary" if classes == 1 else "multiclass"
    dice = DiceLoss(mode, from_logits=True, ignore_index=IGNORE)
    return lambda logits, masks: dice(logits.float(), masks.long())


def make_loss(name: str, classes: int, alpha: float | None, gamma: float) -> Loss:
    """The loss ``name`` (see :data:`~smptune.training.params.LOSSES`) for ``classes``."""
    focal_fn = binary_focal_loss if classes == 1 else multiclass_focal_loss

    def focal(logits: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
        return focal_fn(logits, masks, alpha, gamma)

    if name == "focal":
        return focal
    if name == "ce":
        return cross_entropy
    dice = _dice(classes)
    if name == "dice":
        return dice
    if name == "focal+dice":
        return lambda logits, masks: focal(logits, masks) + dice(logits, masks)
    raise ValueError(f"unknown loss {name!r}")
