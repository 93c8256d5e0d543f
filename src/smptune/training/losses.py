"""Segmentation losses on logits that leave out ignored pixels (mask value :data:`IGNORE`).

``dice``, ``jaccard``, ``lovasz`` and ``tversky`` are smp's; ``focal`` and ``ce``
(cross-entropy; for binary data binary cross-entropy on the foreground logit) are written
here because smp's multi-class focal loss is a sum of one-vs-rest sigmoid losses and its
soft cross-entropies need a target laid out per loss: these are softmax focal and
cross-entropy over the valid pixels, as the other losses see them. A ``loss`` may be a
weighted sum of these (``dice+0.5*focal``). Binary data has one output channel (the
foreground logit), multi-class data one per class (softmax).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from smptune.params import ParamsView
from smptune.training.dataspec import IGNORE

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


def _smp(name: str, classes: int, tversky: tuple[float, float]) -> Loss:
    """smp's loss ``name`` in binary or multi-class mode, ignoring :data:`IGNORE`."""
    from segmentation_models_pytorch import losses

    mode = "binary" if classes == 1 else "multiclass"
    loss: torch.nn.Module
    if name == "dice":
        loss = losses.DiceLoss(mode, from_logits=True, ignore_index=IGNORE)
    elif name == "jaccard":
        loss = losses.JaccardLoss(mode, from_logits=True, ignore_index=IGNORE)
    elif name == "lovasz":
        loss = losses.LovaszLoss(mode, from_logits=True, ignore_index=IGNORE)
    elif name == "tversky":
        alpha, beta = tversky
        loss = losses.TverskyLoss(
            mode, from_logits=True, ignore_index=IGNORE, alpha=alpha, beta=beta
        )
    else:
        raise ValueError(f"unknown loss {name!r}")
    return lambda logits, masks: loss(logits.float(), masks.long())


def loss_of(params: ParamsView, classes: int) -> Loss:
    """The loss resolved hyperparameters ``params`` name, with their focal and Tversky
    settings."""
    return make_loss(
        params["loss"],
        classes,
        params["focal_loss_alpha"],
        params["focal_loss_gamma"],
        (params["tversky_alpha"], params["tversky_beta"]),
    )


def make_loss(
    spec: str,
    classes: int,
    alpha: float | None,
    gamma: float,
    tversky: tuple[float, float] = (0.5, 0.5),
) -> Loss:
    """The loss ``spec`` names (one of :data:`~smptune.training.params.LOSSES`, or a weighted
    sum of them) for ``classes``; ``alpha``, ``gamma`` are the focal loss's, ``tversky`` its
    ``(alpha, beta)``."""
    from smptune.training.params import parse_loss

    focal_fn = binary_focal_loss if classes == 1 else multiclass_focal_loss

    def focal(logits: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
        return focal_fn(logits, masks, alpha, gamma)

    def one(name: str) -> Loss:
        if name == "focal":
            return focal
        if name == "ce":
            return cross_entropy
        return _smp(name, classes, tversky)

    terms = [(weight, one(name)) for weight, name in parse_loss(spec)]
    if len(terms) == 1 and terms[0][0] == 1.0:
        return terms[0][1]

    def weighted_sum(logits: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
        losses = [weight * fn(logits, masks) for weight, fn in terms]
        return torch.stack(losses).sum()

    return weighted_sum
