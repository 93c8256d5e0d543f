"""Weight averaging's timings on a tiny Lightning model (smptune.training.averaging)."""

from __future__ import annotations

import lightning.pytorch as pl
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from smptune.training.averaging import Averaging, averaging, swa_window


class Tiny(pl.LightningModule):
    """Records the weights it was validated with, where SegmentationModule keeps its best."""

    def __init__(self) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(2, 1)
        self.validated: list[torch.Tensor] = []

    def training_step(self, batch, batch_idx):
        x, y = batch
        return torch.nn.functional.mse_loss(self.layer(x), y)

    def validation_step(self, batch, batch_idx):
        x, y = batch
        return torch.nn.functional.mse_loss(self.layer(x), y)

    def on_validation_epoch_end(self) -> None:
        self.validated.append(self.layer.weight.detach().clone())

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def fit(kind: str, epochs: int) -> tuple[Tiny, list[torch.Tensor]]:
    torch.manual_seed(0)
    x = torch.randn(32, 2)
    data = DataLoader(TensorDataset(x, x.sum(1, keepdim=True)), batch_size=8)
    model = Tiny()
    raw: list[torch.Tensor] = []

    class RawWeights(pl.Callback):
        def on_train_epoch_end(self, trainer, pl_module):
            raw.append(pl_module.layer.weight.detach().clone())

    trainer = pl.Trainer(
        max_epochs=epochs,
        callbacks=[RawWeights(), *averaging(kind, steps_per_epoch=len(data), epochs=epochs)],
        num_sanity_val_steps=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(model, data, data)
    return model, raw


def test_the_swa_window_is_the_last_third_and_at_least_two_epochs():
    assert [swa_window(n) for n in (1, 2, 3, 6, 8, 12)] == [1, 2, 2, 2, 3, 4]


def test_the_module_sees_the_average_at_its_epoch_end_and_the_run_ends_with_it():
    # Given a 3-epoch run with an EMA of the weights
    model, raw = fit("ema", 3)
    # Then the module's own epoch-end hook (where the best epoch is kept) saw the averaged
    # weights, not the raw ones, and the run ended with the last epoch's average
    assert all(not torch.allclose(v, r) for v, r in zip(model.validated, raw, strict=True))
    assert torch.allclose(model.layer.weight, model.validated[-1])


def test_swa_validates_raw_weights_before_its_window_and_their_mean_inside_it():
    # Given a 6-epoch run whose SWA window is epochs 5 and 6
    model, raw = fit("swa", 6)
    # Then epochs 1-4 validated the raw weights, epoch 5 its one snapshot, epoch 6 the mean
    for epoch in range(5):
        assert torch.allclose(model.validated[epoch], raw[epoch])
    assert torch.allclose(model.validated[5], (raw[4] + raw[5]) / 2, atol=1e-6)
    assert torch.allclose(model.layer.weight, (raw[4] + raw[5]) / 2, atol=1e-6)


def test_an_unknown_kind_is_refused():
    with pytest.raises(ValueError, match="unknown kind 'swag'"):
        Averaging("swag", steps_per_epoch=1, epochs=1)
    assert averaging("none", steps_per_epoch=1, epochs=1) == []
