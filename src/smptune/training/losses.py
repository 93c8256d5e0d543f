"""Binary focal loss on logits, leaving out padded (ignored) pixels."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from smptune.training.data import IGNORE


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
    valid = (masks != IGNORE).float()
    return (loss * valid).sum() / valid.sum().clamp_min(1.0)
