"""Runs one fold or the final retrain with a Lightning Trainer on one device."""

from __future__ import annotations

import contextlib
import gc
import logging
import random
import time
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch
from torch.utils.data import BatchSampler, DataLoader, Dataset, RandomSampler, SequentialSampler

from smptune.errors import ConfigError, SmptuneError, TrialError
from smptune.trainable import FoldContext, FoldResult
from smptune.training.data import SegmentationData, load_data
from smptune.training.folds import fold_split, retrain_split
from smptune.training.metrics import best_epoch
from smptune.training.model import build_model
from smptune.training.module import SegmentationModule
from smptune.training.params import resolve_params
from smptune.training.settings import RunSettings, run_settings

_QUIET_LOGGERS = ("lightning.pytorch", "lightning.fabric", "pytorch_lightning", "lightning_fabric")


class _Batches(Dataset):
    """Whole batches by tensor indexing: ``dataset[[i, j, ...]]`` -> (images, masks)."""

    def __init__(self, data: SegmentationData, indices: Sequence[int]) -> None:
        self.images = torch.from_numpy(data.images)
        self.masks = torch.from_numpy(data.masks)
        self.indices = torch.as_tensor(list(indices), dtype=torch.long)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, positions: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        chosen = self.indices[torch.as_tensor(positions, dtype=torch.long)]
        return self.images[chosen], self.masks[chosen]


def _loader(
    data: SegmentationData,
    indices: Sequence[int],
    batch_size: int,
    *,
    shuffle: bool,
    seed: int,
    num_workers: int,
) -> DataLoader:
    dataset = _Batches(data, indices)
    if shuffle:
        sampler = RandomSampler(dataset, generator=torch.Generator().manual_seed(seed))
    else:
        sampler = SequentialSampler(dataset)
    # A last batch of one sample breaks BatchNorm in some architectures: drop it.
    drop_last = shuffle and len(dataset) > batch_size and len(dataset) % batch_size == 1
    return DataLoader(
        dataset,
        sampler=BatchSampler(sampler, batch_size, drop_last=drop_last),
        batch_size=None,
        num_workers=num_workers,
        pin_memory=torch.cuda.is_available(),
        persistent_workers=num_workers > 0,
    )


def seed_all(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Silence Lightning's info logs and its advice warnings while training."""
    loggers = [logging.getLogger(name) for name in _QUIET_LOGGERS]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", module=r"(lightning|pytorch_lightning)(\.|$)")
            warnings.filterwarnings("ignore", category=DeprecationWarning)
            yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


class _StopWhenAsked(pl.Callback):
    def __init__(self, should_stop: Any) -> None:
        self.should_stop = should_stop

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.should_stop():
            raise TrialError(f"stopped before epoch {trainer.current_epoch + 1}: cancelled")


def _trainer(
    rs: RunSettings,
    context: FoldContext,
    max_epochs: int,
    callbacks: list[pl.Callback],
    log_name: str,
) -> pl.Trainer:
    logger: Any = False
    if context.output_dir is not None:
        from lightning.pytorch.loggers import CSVLogger

        logger = CSVLogger(save_dir=str(context.output_dir), name="logs", version=log_name)
    try:
        with quiet():
            return _make_trainer(rs, context, max_epochs, callbacks, logger)
    except Exception as exc:
        raise TrialError(f"cannot set up the Lightning trainer: {exc}") from exc


def _make_trainer(
    rs: RunSettings,
    context: FoldContext,
    max_epochs: int,
    callbacks: list[pl.Callback],
    logger: Any,
) -> pl.Trainer:
    return pl.Trainer(
        accelerator="gpu" if torch.cuda.is_available() else "cpu",
        devices=1,
        max_epochs=max_epochs,
        precision=rs.precision,
        logger=logger,
        callbacks=[*callbacks, _StopWhenAsked(context.should_stop)],
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        log_every_n_steps=1,
        use_distributed_sampler=False,
        default_root_dir=str(context.output_dir) if context.output_dir else None,
    )


def _run(action: Any) -> Any:
    """Run ``action()`` (a fit or a validate) turning failures into :class:`TrialError`."""
    try:
        with quiet():
            return action()
    except SmptuneError:
        raise
    except torch.cuda.OutOfMemoryError as exc:
        raise TrialError(f"CUDA out of memory: {exc}") from exc
    except Exception as exc:
        raise TrialError(f"training failed: {type(exc).__name__}: {exc}") from exc


def _release() -> None:
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def _prepare(
    p: dict[str, Any], rs: RunSettings, data: SegmentationData, split: Any, seed: int
) -> tuple[SegmentationModule, DataLoader, DataLoader]:
    """Seed everything, build the model, and the loaders of ``split.train``/``.evaluate``."""
    seed_all(seed)
    module = SegmentationModule(build_model(p, data.in_channels), p)
    train = _loader(
        data, split.train, p["batch_size"], shuffle=True, seed=seed, num_workers=rs.num_workers
    )
    evaluate = _loader(
        data, split.evaluate, p["batch_size"], shuffle=False, seed=seed, num_workers=rs.num_workers
    )
    return module, train, evaluate


def train_fold(params: dict[str, Any], context: FoldContext) -> FoldResult:
    """Train on every fold but ``context.fold``, validate on it each epoch."""
    _release()  # whatever a failed run before this one left behind
    try:
        return _train_fold(params, context)
    finally:
        _release()


def _train_fold(params: dict[str, Any], context: FoldContext) -> FoldResult:
    started = time.monotonic()
    p = resolve_params(params)
    rs = run_settings(context.settings)
    data = load_data(rs.data)
    split = fold_split(data.n, rs.seed, rs.data.test_fraction, context.n_folds, context.fold)
    module, train, val = _prepare(p, rs, data, split, rs.seed + context.fold)
    callbacks: list[pl.Callback] = []
    if rs.patience > 0:
        from lightning.pytorch.callbacks import EarlyStopping

        callbacks.append(
            EarlyStopping(monitor=f"val_{rs.metric}", mode=rs.mode, patience=rs.patience)
        )
    trainer = _trainer(rs, context, rs.max_epochs, callbacks, f"fold_{context.fold}")
    _run(lambda: trainer.fit(module, train_dataloaders=train, val_dataloaders=val))
    history = module.history
    best = best_epoch(history, rs.metric, rs.mode)
    return FoldResult(
        metrics=dict(history[best]),
        best_epoch=best + 1,
        epochs_run=len(history),
        duration_s=time.monotonic() - started,
    )


def retrain_and_test(params: dict[str, Any], epochs: int, context: FoldContext) -> dict[str, float]:
    """Train on the whole train split for ``epochs`` epochs; metrics on the test split."""
    _release()
    try:
        return _retrain_and_test(params, epochs, context)
    finally:
        _release()


def _retrain_and_test(
    params: dict[str, Any], epochs: int, context: FoldContext
) -> dict[str, float]:
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise ConfigError(f"retrain_and_test: epochs must be an integer >= 1, got {epochs!r}")
    p = resolve_params(params)
    rs = run_settings(context.settings)
    data = load_data(rs.data)
    split = retrain_split(data.n, rs.seed, rs.data.test_fraction)
    # the task layer passes fold -1 for the retrain
    module, train, test = _prepare(p, rs, data, split, rs.seed + max(context.fold, 0))
    trainer = _trainer(rs, context, epochs, [], "retrain")
    _run(lambda: trainer.fit(module, train_dataloaders=train))
    _run(lambda: trainer.validate(module, dataloaders=test, verbose=False))
    metrics = dict(module.history[-1])
    if context.output_dir is not None:
        save_model(module.model, Path(context.output_dir) / "model", p, data, metrics)
    return metrics


def save_model(
    model: torch.nn.Module,
    path: Any,
    params: dict[str, Any],
    data: SegmentationData,
    metrics: dict[str, float],
) -> None:
    """``model.save_pretrained(path)`` (load with ``smp.from_pretrained(path)``) plus
    ``smptune.json``: how to prepare an image for it and read its output."""
    import json

    path = Path(path)
    model = model.cpu().eval()
    config = getattr(model, "config", None)
    if isinstance(config, dict):
        # The trained weights are in the file; loading must not download the pretrained ones.
        config["encoder_weights"] = None
    model.save_pretrained(str(path), metrics=metrics, dataset=data.source)
    info = {
        "in_channels": data.in_channels,
        "classes": 1,
        "output": "logits of the foreground class; foreground where sigmoid(logit) > 0.5",
        "input": "float32 (N, C, H, W), H and W multiples of 32 (pad by reflection)",
        "normalisation": data.normalisation,
        "hyperparameters": params,
        "test_metrics": metrics,
    }
    (path / "smptune.json").write_text(json.dumps(info, indent=2) + "\n")
