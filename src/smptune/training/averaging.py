"""Weight averaging for a run (``training.weight_averaging``): EMA or SWA on Lightning's
``WeightAveraging``.

Lightning's callback is kept and three of its timings are changed, which is why this is a
subclass rather than the callback as it ships:

- The average is swapped in for validation only once it holds at least one update: before an
  SWA window opens, Lightning's average is still the initial weights, and validating those
  would record nonsense epochs. An SWA snapshot is taken when the epoch's validation starts,
  since Lightning validates before its epoch-end hook.
- The raw weights come back at ``on_validation_end`` instead of ``on_validation_epoch_end``:
  callbacks run before the module's own epoch-end hook, where it scores the epoch and keeps
  the best epoch's weights, so with Lightning's timing those were the raw weights.
- The run ends with the average only when there is one (a run stopped before the window
  keeps its own weights).
"""

from __future__ import annotations

import math
from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.callbacks import WeightAveraging
from torch.optim.swa_utils import get_ema_avg_fn


def swa_window(epochs: int) -> int:
    """The number of final epochs SWA averages: the last third, at least two (when a run has
    two), so that a short schedule still averages."""
    return min(epochs, max(2, math.ceil(epochs / 3)))


class Averaging(WeightAveraging):
    """``kind`` ``ema``: an exponential moving average updated after every optimizer step,
    with a horizon of about one epoch (``decay`` = 1 - 1 / steps per epoch). ``swa``: the equal
    average of the weights at the end of each of the last :func:`swa_window` epochs of
    ``epochs``. BatchNorm statistics are averaged with the weights (``use_buffers``)."""

    def __init__(self, kind: str, *, steps_per_epoch: int, epochs: int) -> None:
        if kind not in ("ema", "swa"):
            raise ValueError(f"weight averaging: unknown kind {kind!r}")
        kwargs: dict[str, Any] = {}
        if kind == "ema":
            kwargs["avg_fn"] = get_ema_avg_fn(decay=1.0 - 1.0 / max(2, steps_per_epoch))  # type: ignore[no-untyped-call]  # torch leaves it unannotated
        super().__init__(use_buffers=True, **kwargs)
        self.kind = kind
        #: zero-based index of the first epoch SWA averages
        self.first_epoch = epochs - swa_window(epochs)
        self._swapped = False

    def should_update(self, step_idx: int | None = None, epoch_idx: int | None = None) -> bool:
        if self.kind == "ema":
            return step_idx is not None
        return epoch_idx is not None and epoch_idx >= self.first_epoch

    def _has_average(self) -> bool:
        model = self._average_model
        return model is not None and int(model.n_averaged.item()) > 0

    def on_validation_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # Lightning validates before ``on_train_epoch_end``: take this epoch's SWA snapshot
        # now, so that its validation sees it (the base class then skips the epoch)
        epoch = trainer.current_epoch
        fitting = trainer.state.fn == "fit" and not trainer.sanity_checking
        if fitting and epoch > self._latest_update_epoch and self.should_update(epoch_idx=epoch):
            assert self._average_model is not None
            self._average_model.update_parameters(pl_module)
            self._latest_update_epoch = epoch
        if self._has_average():
            self._swap_models(pl_module)
            self._swapped = True

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Nothing yet: the module scores the epoch (and keeps its weights) after this hook."""

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._swapped:
            self._swap_models(pl_module)
            self._swapped = False

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._has_average():
            self._copy_average_to_current(pl_module)


def averaging(kind: str, *, steps_per_epoch: int, epochs: int) -> list[pl.Callback]:
    """The callbacks for ``training.weight_averaging`` = ``kind`` (none: no callback)."""
    if kind == "none":
        return []
    return [Averaging(kind, steps_per_epoch=steps_per_epoch, epochs=epochs)]
