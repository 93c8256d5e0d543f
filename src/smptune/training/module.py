"""The LightningModule: the loss, AdamW + ExponentialLR, augmentation on the device,
torchmetrics validation metrics (whole images, in sliding windows for patch-trained runs)
and the run score of every epoch."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import lightning.pytorch as pl
import torch

from smptune.errors import TrialError
from smptune.params import Params
from smptune.search.scoring import Scoring
from smptune.training.augment import Augment
from smptune.training.evaluation import SegmentationMetrics
from smptune.training.inference import Windows, sliding_window
from smptune.training.losses import loss_of
from smptune.training.params import parse_augment

if TYPE_CHECKING:
    from lightning.pytorch.utilities.types import OptimizerLRSchedulerConfig


class Normalise(torch.nn.Module):
    """``(images - mean) / std`` per channel, or nothing without statistics."""

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, normalisation: dict[str, list[float]] | None) -> None:
        super().__init__()
        self.enabled = normalisation is not None
        mean = normalisation["mean"] if normalisation else [0.0]
        std = normalisation["std"] if normalisation else [1.0]
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1), persistent=False)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if not self.enabled:
            return images
        return (images - self.mean) / self.std


class SegmentationModule(pl.LightningModule):
    """Trains ``model`` (an smp model) with resolved ``params``.

    Batches arrive as stored (``uint8`` images are multiplied by ``scale``); with ``windows``
    training batches are patches (cut by the loader, see :mod:`.patches`) and validation
    batches whole images at their true size, one at a time, predicted in Gaussian-blended
    sliding windows (:mod:`.inference`), so the metrics are whole-image ones. Every validation
    epoch appends its metrics to :attr:`history` and logs them (``val_<name>``) with the run
    score (``val_score``); with ``keep_best`` the weights of the best epoch so far are kept
    in :attr:`best_state`. In a DDP run every process's epoch figures are the whole run's
    (the metric counts and the losses summed over the processes). ``normalisation`` (a
    pretrained encoder's ``mean`` and ``std``, see
    :func:`~smptune.training.model.encoder_normalisation`) is applied to every batch on the
    device.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        params: Params,
        *,
        classes: int = 1,
        scoring: Scoring | None = None,
        scale: float = 1.0,
        windows: Windows | None = None,
        keep_best: bool = False,
        channels_last: bool = False,
        normalisation: dict[str, list[float]] | None = None,
    ) -> None:
        super().__init__()
        self.model = model
        self.hp = dict(params)
        self.classes = classes
        self.scoring = scoring or Scoring.from_config("iou", "max")
        self.scale = scale
        self.windows = windows
        self.keep_best = keep_best
        self.channels_last = channels_last
        self.normalise = Normalise(normalisation)
        self.augment = Augment(parse_augment(params["augment"]))
        self.loss_fn = loss_of(params, classes)
        self.val_metrics = SegmentationMetrics(classes)
        self.history: list[dict[str, float]] = []
        self.train_losses: list[float] = []
        self.best_state: dict[str, torch.Tensor] | None = None
        self._loss_sum = torch.zeros(())
        self._loss_batches = 0
        self._val_loss = torch.zeros(())
        self._val_samples = 0

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Logits of images in [0, 1], normalised first as the encoder expects."""
        logits: torch.Tensor = self.model(self.normalise(images))
        return logits

    def configure_optimizers(self) -> OptimizerLRSchedulerConfig:
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

    def transfer_batch_to_device(
        self, batch: Any, device: torch.device, dataloader_idx: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        images, masks = batch
        # pinned host memory (the loaders pin on a GPU) lets these copies overlap compute
        non_blocking = device.type == "cuda"
        return (
            images.to(device, non_blocking=non_blocking),
            masks.to(device, non_blocking=non_blocking),
        )

    def on_after_batch_transfer(
        self, batch: Any, dataloader_idx: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        images, masks = batch
        images = images.float() * self.scale if images.dtype == torch.uint8 else images.float()
        if self.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        return images, masks

    def on_train_epoch_start(self) -> None:
        self._loss_sum = torch.zeros((), device=self.device)
        self._loss_batches = 0

    def training_step(
        self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int
    ) -> torch.Tensor:
        images, masks = batch
        images, masks = self.augment(images, masks)
        loss = self.loss_fn(self(images), masks)
        self._loss_sum += loss.detach()
        self._loss_batches += 1
        return loss

    def _summed(self, total: torch.Tensor, count: int) -> tuple[float, int]:
        """``total`` and ``count`` summed over the processes of a DDP run (as they are on one
        device), so every process holds the whole run's figures."""
        if self.trainer.world_size == 1:
            return float(total.item()), count
        count_t = torch.tensor(float(count), device=total.device)
        both = torch.stack([total.detach().float(), count_t])
        summed = self.trainer.strategy.reduce(both, reduce_op="sum")
        return float(summed[0].item()), int(summed[1].item())

    def on_train_epoch_end(self) -> None:
        loss_sum, batches = self._summed(self._loss_sum, self._loss_batches)
        mean = loss_sum / max(1, batches)
        if not math.isfinite(mean):
            raise TrialError(f"NaN loss at epoch {self.current_epoch + 1}")
        self.train_losses.append(mean)
        self.log("train_loss", mean)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """What a resumed run needs beyond Lightning's own state: the epochs' metrics, the
        best weights so far, and the random state augmentation draws from."""
        checkpoint["smptune"] = {
            "history": list(self.history),
            "train_losses": list(self.train_losses),
            "best_state": self.best_state,
            "rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else [],  # type: ignore[no-untyped-call]  # torch leaves it unannotated
        }

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        state = checkpoint.get("smptune", {})
        self.history[:] = state.get("history", [])
        self.train_losses[:] = state.get("train_losses", [])
        self.best_state = state.get("best_state")
        if "rng" in state:
            torch.set_rng_state(state["rng"])
        if state.get("cuda_rng") and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda_rng"])

    def on_validation_epoch_start(self) -> None:
        self.val_metrics.reset()
        self._val_loss = torch.zeros((), device=self.device)
        self._val_samples = 0

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        images, masks = batch
        if self.windows is None:
            logits = self(images)
        else:
            windows = self.windows
            logits = torch.stack(
                [
                    sliding_window(self.model, image, windows, normalise=self.normalise)
                    for image in images
                ]
            )
        self._val_loss += self.loss_fn(logits, masks).detach() * images.shape[0]
        self._val_samples += images.shape[0]
        self.val_metrics.update(logits, masks)

    def on_validation_epoch_end(self) -> None:
        metrics = self.val_metrics.compute()  # torchmetrics gathers a DDP run's counts
        loss_sum, samples = self._summed(self._val_loss, self._val_samples)
        metrics["loss"] = loss_sum / max(1, samples)
        self.history.append(metrics)
        score = self.scoring.run_score(metrics)
        self.log_dict({f"val_{name}": value for name, value in metrics.items()})
        self.log("val_score", score)
        if self.keep_best and self.scoring.best_index(self.history) == len(self.history) - 1:
            self.best_state = {
                k: v.detach().to("cpu", copy=True) for k, v in self.model.state_dict().items()
            }
