"""The LightningModule: focal loss, AdamW + ExponentialLR, batch augmentation, metrics."""

from __future__ import annotations

import math
from typing import Any

import lightning.pytorch as pl
import torch

from smptune.errors import TrialError
from smptune.training.augment import augment_batch
from smptune.training.data import IGNORE
from smptune.training.losses import binary_focal_loss
from smptune.training.metrics import metrics_from_counts


def confusion_counts(logits: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """[tp, fp, fn, tn] over the valid pixels; foreground where sigmoid(logit) > 0.5."""
    pred = logits[:, 0] > 0
    target = masks == 1
    valid = masks != IGNORE
    return torch.stack(
        [
            (pred & target).sum(),
            (pred & ~target & valid).sum(),
            (~pred & target).sum(),
            (~pred & ~target & valid).sum(),
        ]
    )


class SegmentationModule(pl.LightningModule):
    """Trains ``model`` (an smp model with one output channel) with resolved ``params``."""

    def __init__(self, model: torch.nn.Module, params: dict[str, Any]) -> None:
        super().__init__()
        self.model = model
        self.hp = dict(params)
        self.history: list[dict[str, float]] = []
        self.train_losses: list[float] = []
        self._loss_sum = torch.zeros(())
        self._loss_batches = 0
        self._counts = torch.zeros(4, dtype=torch.long)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.model(images)

    def configure_optimizers(self) -> dict[str, Any]:
        optimizer = torch.optim.AdamW(
            self.model.parameters(),
            lr=self.hp["learning_rate"],
            weight_decay=self.hp["weight_decay"],
        )
        scheduler = torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=self.hp["gamma"])
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "epoch", "frequency": 1},
        }

    def on_train_epoch_start(self) -> None:
        self._loss_sum = torch.zeros((), device=self.device)
        self._loss_batches = 0

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int):
        images, masks = batch
        if self.hp["augment"]:
            images, masks = augment_batch(images, masks)
        loss = binary_focal_loss(
            self.model(images),
            masks,
            self.hp["focal_loss_alpha"],
            self.hp["focal_loss_gamma"],
        )
        self._loss_sum += loss.detach()
        self._loss_batches += 1
        return loss

    def on_train_epoch_end(self) -> None:
        mean = float(self._loss_sum.item()) / max(1, self._loss_batches)
        if not math.isfinite(mean):
            raise TrialError(f"NaN loss at epoch {self.current_epoch + 1}")
        self.train_losses.append(mean)
        self.log("train_loss", mean)

    def on_validation_epoch_start(self) -> None:
        self._counts = torch.zeros(4, dtype=torch.long, device=self.device)

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        images, masks = batch
        self._counts += confusion_counts(self.model(images), masks)

    def on_validation_epoch_end(self) -> None:
        tp, fp, fn, tn = (int(c) for c in self._counts.tolist())
        metrics = metrics_from_counts(tp, fp, fn, tn)
        self.history.append(metrics)
        self.log_dict({f"val_{name}": value for name, value in metrics.items()})
