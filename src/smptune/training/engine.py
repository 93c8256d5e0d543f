"""Runs one fold or the final retrain with a Lightning Trainer: on one device, or a fold as
one rank of a DDP run over several (``training.devices_per_trial``, see :mod:`.ddp_launch`)."""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import time
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch
from torch.utils.data import DataLoader

from smptune.errors import ConfigError, SmptuneError, TrialError
from smptune.metric_keys import refined_key
from smptune.params import Params
from smptune.trainable import FoldContext, FoldResult
from smptune.training.averaging import averaging
from smptune.training.folds import Split
from smptune.training.inference import FlipAverage, Windows, labels_of, sliding_window
from smptune.training.latency import cost_metrics
from smptune.training.loaders import Batch, data_loader
from smptune.training.loggers import log_outcome, run_loggers
from smptune.training.model import build_model, encoder_normalisation
from smptune.training.module import Normalise, SegmentationModule
from smptune.training.params import resolve_params
from smptune.training.patches import PatchSampler
from smptune.training.refine import postprocessed, variant_options, variants
from smptune.training.samples import SegmentationData
from smptune.training.saved_model import PREVIEW_SAMPLES, preview, save_model
from smptune.training.settings import Precision, RunSettings, TrainerPrecision
from smptune.training.splits import splits_for
from smptune.worker import host_share as sharing

log = logging.getLogger(__name__)
_QUIET_LOGGERS = ("lightning.pytorch", "lightning.fabric", "pytorch_lightning", "lightning_fabric")


def seed_all(seed: int) -> None:
    """Lightning's ``seed_everything`` (Python, NumPy, torch, CUDA, and each DataLoader
    worker from it); seeds past its 32-bit range wrap instead of becoming random."""
    pl.seed_everything(seed % 2**32, workers=True, verbose=False)


def resolve_precision(requested: Precision) -> TrainerPrecision:
    """``auto``: ``bf16-mixed`` on a GPU that supports bfloat16, else ``32-true``; a bf16
    precision on a GPU without bfloat16 falls back to ``32-true``."""
    cuda = torch.cuda.is_available()
    bf16 = cuda and torch.cuda.is_bf16_supported()
    if requested == "auto":
        return "bf16-mixed" if bf16 else "32-true"
    if requested.startswith("bf16") and cuda and not bf16:
        log.warning("training.precision %s: this GPU has no bfloat16; using 32-true", requested)
        return "32-true"
    return requested


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


class _EpochBoundary(pl.Callback):
    """Report each validated epoch to the run's context and end the run at that boundary when
    the context says so (pruned, cancelled, out of time); see :class:`FoldContext`.

    In a DDP run every rank reaches each boundary; rank 0's context decides (the others'
    report nothing and never ask to stop or save) and its answers are broadcast, so every
    rank saves and stops at the same epoch."""

    def __init__(self, context: FoldContext) -> None:
        self.context = context

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        history = getattr(pl_module, "history", [])
        strategy = trainer.strategy
        if history:  # validation ran at the end of this epoch, before this hook
            epoch = len(history)
            self.context.report(epoch, dict(history[-1]))
            checkpoint = self.context.checkpoint
            if checkpoint is not None and strategy.broadcast(checkpoint.due(epoch), 0):
                # whole or not at all: a worker killed mid-write leaves the last one intact
                partial = checkpoint.path.with_name(checkpoint.path.name + ".partial")
                trainer.save_checkpoint(str(partial))  # written by rank 0, every rank waits
                if trainer.is_global_zero:
                    os.replace(partial, checkpoint.path)
                    checkpoint.saved(epoch)
        if strategy.broadcast(self.context.should_stop(), 0):
            trainer.should_stop = True


def _trainer(
    rs: RunSettings,
    context: FoldContext,
    max_epochs: int,
    callbacks: list[pl.Callback],
    log_name: str,
    params: Params,
    *,
    rank: int = 0,
    world: int = 1,
) -> pl.Trainer:
    """The run's Trainer: on one device, or with ``world`` > 1 as rank ``rank`` of a DDP run
    whose processes :mod:`.ddp_launch` started (Lightning's environment reads them from
    ``LOCAL_RANK`` and ``MASTER_PORT``; gloo on CPU, NCCL on GPUs); a DDP run's loggers are
    rank 0's only."""
    loggers = run_loggers(rs.loggers, context, log_name, params) if rank == 0 else []
    strategy: Any = "auto"
    plugins: list[Any] = []
    if world > 1:
        from lightning.fabric.plugins.environments.lightning import LightningEnvironment
        from lightning.pytorch.strategies import DDPStrategy

        backend = "nccl" if torch.cuda.is_available() else "gloo"
        strategy = DDPStrategy(process_group_backend=backend)
        plugins.append(LightningEnvironment())  # not SLURM's or torchelastic's, if detected
    try:
        with quiet():
            return pl.Trainer(
                accelerator="gpu" if torch.cuda.is_available() else "cpu",
                devices=world,
                strategy=strategy,
                plugins=plugins or None,
                max_epochs=max_epochs,
                precision=resolve_precision(rs.precision),
                logger=loggers or False,
                callbacks=[*callbacks, _EpochBoundary(context)],
                enable_checkpointing=False,
                enable_progress_bar=False,
                enable_model_summary=False,
                num_sanity_val_steps=0,
                log_every_n_steps=1,
                use_distributed_sampler=False,
                default_root_dir=str(context.output_dir) if context.output_dir else None,
            )
    except Exception as exc:
        raise TrialError(f"cannot set up the Lightning trainer: {exc}") from exc


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
    """Hand a run's GPU memory back (tensors in reference cycles need a collection first);
    nothing to do without CUDA in use."""
    if torch.cuda.is_available() and torch.cuda.is_initialized():  # type: ignore[no-untyped-call]  # torch leaves it unannotated
        gc.collect()
        torch.cuda.empty_cache()


def _prepare(
    p: Params,
    rs: RunSettings,
    data: SegmentationData,
    split: Split,
    seed: int,
    *,
    keep_best: bool = False,
    rank: int = 0,
    world: int = 1,
) -> tuple[SegmentationModule, DataLoader[Batch], DataLoader[Batch]]:
    """Seed the run's randomness (model init, shuffling, crops, augmentation) with ``seed``,
    build the model, and the loaders of ``split.train``/``.evaluate`` (rank ``rank``'s share
    of them in a DDP run of ``world`` processes)."""
    sharing.apply_in_child()  # torch's threads to the worker's share of cores
    sharing.apply_memory_fraction()  # its share of the device, with several slots
    seed_all(seed)
    channels_last = torch.cuda.is_available()
    workers = sharing.dataloader_workers(rs.num_workers, on_gpu=torch.cuda.is_available())
    model = build_model(p, data.in_channels, data.classes)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    windows, patches = _windows(rs, p), None
    if windows is not None:
        patches = PatchSampler(data, windows.size, rs.data.foreground_share, seed)
    module = SegmentationModule(
        model,
        p,
        classes=data.classes,
        scoring=rs.scoring,
        scale=data.scale,
        windows=windows,
        keep_best=keep_best,
        channels_last=channels_last,
        normalisation=encoder_normalisation(p, data.in_channels),
    )
    batch = p["batch_size"]
    if len(split.evaluate) < world:
        raise ConfigError(
            f"training.devices_per_trial: {world} processes need at least {world} validation "
            f"samples per fold, this fold has {len(split.evaluate)}"
        )
    train, evaluate = (
        data_loader(
            data,
            indices,
            batch,
            shuffle=shuffle,
            seed=seed,
            num_workers=workers,
            patches=patches,
            rank=rank,
            world=world,
        )
        for indices, shuffle in ((split.train, True), (split.evaluate, False))
    )
    return module, train, evaluate


def _windows(rs: RunSettings, params: Params) -> Windows | None:
    """With ``resize: crop``: ``crop_size`` windows at ``data.overlap``, as many at a time
    as a training batch holds patches (that fits the device, and without gradients)."""
    if rs.data.resize != "crop":
        return None
    assert rs.data.crop_size is not None
    return Windows(rs.data.crop_size, rs.data.overlap, params["batch_size"])


def train_fold(params: Params, context: FoldContext) -> FoldResult:
    """Train on every fold but ``context.fold``, validate on it each epoch; with
    ``training.devices_per_trial`` N > 1, as N DDP processes this one starts and follows."""
    from smptune.training.settings import run_settings

    world = run_settings(context.settings).devices_per_trial
    if world > 1:
        from smptune.training.ddp_launch import train_fold_ddp

        return train_fold_ddp(params, context, world)
    return train_fold_rank(params, context)


def train_fold_rank(
    params: Params, context: FoldContext, rank: int = 0, world: int = 1
) -> FoldResult:
    """Train fold ``context.fold`` in this process: alone, or as rank ``rank`` of a DDP run
    of ``world`` processes (each its share of the batches; rank 0's result is the run's)."""
    _release()  # whatever a failed run before this one left behind
    try:
        return _train_fold(params, context, rank, world)
    finally:
        _release()


def run_name(context: FoldContext) -> str:
    """``fold_<k>_seed_<r>``: the run's folder under ``<output_dir>/logs``."""
    return f"fold_{context.fold}_seed_{context.repeat}"


def _train_fold(params: Params, context: FoldContext, rank: int, world: int) -> FoldResult:
    started = time.monotonic()
    p = resolve_params(params)
    rs, data, plan = splits_for(context.settings)
    keep_best = context.output_dir is not None and (
        rs.save_checkpoints == "best" or context.settings.fold_models
    )
    fold = plan.fold(context.fold)
    module, train, val = _prepare(
        p,
        rs,
        data,
        fold,
        context.run_seed,
        keep_best=keep_best and rank == 0,
        rank=rank,
        world=world,
    )
    callbacks: list[pl.Callback] = []
    if rs.patience > 0:
        from lightning.pytorch.callbacks import EarlyStopping

        # NaN (an unstable epoch) counts as no improvement instead of stopping the run
        callbacks.append(
            EarlyStopping(
                monitor="val_score",
                mode=rs.scoring.mode,
                patience=rs.patience,
                check_finite=False,
            )
        )
    callbacks += averaging(rs.weight_averaging, steps_per_epoch=len(train), epochs=rs.max_epochs)
    trainer = _trainer(
        rs, context, rs.max_epochs, callbacks, run_name(context), params, rank=rank, world=world
    )
    checkpoint = context.checkpoint
    resume = checkpoint is not None and checkpoint.resume_epoch > 0 and checkpoint.path.is_file()
    ckpt_path = str(checkpoint.path) if checkpoint is not None and resume else None
    _run(
        lambda: trainer.fit(
            module, train_dataloaders=train, val_dataloaders=val, ckpt_path=ckpt_path
        )
    )
    history = module.history
    best = rs.scoring.best_index(history)
    size = module.windows.size if module.windows is not None else None
    costs = cost_metrics(module, val, context.settings.objectives, size)  # latency, parameters
    log_outcome(trainer.loggers, context, params, history[best])
    saves = keep_best and rank == 0  # rank 0 holds a DDP run's weights as every rank does
    if saves and module.best_state is not None and context.output_dir is not None:
        module.model.load_state_dict(module.best_state)
        target = Path(context.output_dir) / "logs" / run_name(context) / "best_model"
        save_model(module.model, target, p, rs, data, dict(history[best]), kind="validation")
    return FoldResult(
        metrics={**history[best], **costs},
        best_epoch=best + 1,
        epochs_run=len(history),
        duration_s=time.monotonic() - started,
    )


def retrain_and_test(params: Params, epochs: int, context: FoldContext) -> dict[str, float]:
    """Train on the whole train split for ``epochs`` epochs; metrics on the test split."""
    _release()
    try:
        return _retrain_and_test(params, epochs, context)
    finally:
        _release()


def _retrain_and_test(params: Params, epochs: int, context: FoldContext) -> dict[str, float]:
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise ConfigError(f"retrain_and_test: epochs must be an integer >= 1, got {epochs!r}")
    p = resolve_params(params)
    rs, data, plan = splits_for(context.settings)
    split = plan.retrain()
    module, train, test = _prepare(p, rs, data, split, context.run_seed)
    averages = averaging(rs.weight_averaging, steps_per_epoch=len(train), epochs=epochs)
    trainer = _trainer(rs, context, epochs, averages, "retrain", params)
    _run(lambda: trainer.fit(module, train_dataloaders=train))
    _run(lambda: trainer.validate(module, dataloaders=test, verbose=False))
    metrics = dict(module.history[-1])
    refine = variants(rs.tta, rs.postprocess)
    model, windows = module.model, module.windows
    metrics.update(_refined_metrics(model, module.normalise, data, split.evaluate, windows, refine))
    log_outcome(trainer.loggers, context, params, {f"test_{k}": v for k, v in metrics.items()})
    if context.output_dir is not None:
        out = Path(context.output_dir)
        save_model(module.model, out / "model", p, rs, data, metrics, kind="test")
        preview(module, data, split.evaluate[:PREVIEW_SAMPLES], out / "predictions.png")
    return metrics


def ensemble_test(
    params: Params, members: Sequence[Path], context: FoldContext
) -> dict[str, float]:
    """Test-split metrics of the fold models in ``members`` together (their probabilities
    averaged), with the loss of the averaged prediction; see :mod:`.ensemble`."""
    from smptune.training.ensemble import EnsembleLogits, FoldEnsemble, load_members
    from smptune.training.evaluation import SegmentationMetrics
    from smptune.training.losses import loss_of

    p = resolve_params(params)
    rs, data, plan = splits_for(context.settings)
    test = list(plan.retrain().evaluate)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    ensemble = FoldEnsemble(
        load_members(members), data.classes, encoder_normalisation(p, data.in_channels)
    ).to(device)
    metrics = SegmentationMetrics(data.classes).to(device)
    loss_fn = loss_of(p, data.classes)
    loss_sum, seen = 0.0, 0
    windows = _windows(rs, p)
    refined = _refined_metrics(
        EnsembleLogits(ensemble), None, data, test, windows, variants(rs.tta, rs.postprocess)
    )
    if windows is not None:
        # the windows blend the ensemble's logits, as they blend one model's (and as
        # prediction on new images does)
        for i in test:
            image = torch.from_numpy(data.float_image(i)).to(device)
            logits = sliding_window(EnsembleLogits(ensemble), image, windows)[None]
            mask = torch.from_numpy(data.true_mask(i)[None].copy()).to(device)
            metrics.update(logits, mask)
            loss_sum += float(loss_fn(logits, mask))
            seen += 1
        return {**metrics.compute(), "loss": loss_sum / max(1, seen), **refined}
    for start in range(0, len(test), p["batch_size"]):
        chosen = np.asarray(test[start : start + p["batch_size"]], dtype=np.int64)
        images = torch.from_numpy(data.float_images(chosen)).to(device)
        masks = torch.from_numpy(np.ascontiguousarray(data.stacked()[1][chosen])).to(device)
        logits = FoldEnsemble.logits(ensemble(images), data.classes)
        metrics.update(logits, masks)
        loss_sum += float(loss_fn(logits, masks)) * len(chosen)
        seen += len(chosen)
    return {**metrics.compute(), "loss": loss_sum / max(1, seen), **refined}


@torch.no_grad()
def _refined_metrics(
    model: torch.nn.Module,
    normalise: Normalise | None,
    data: SegmentationData,
    indices: Sequence[int],
    windows: Windows | None,
    chosen: Sequence[str],
) -> dict[str, float]:
    """The test figures of each evaluation variant in ``chosen`` (:func:`.refine.variants`:
    flips averaged, the largest component kept, or both), keyed as
    :func:`smptune.metric_keys.refined_key` keys them; one image at a time, at its true
    size (the post-processing sees no padding)."""
    if not chosen:
        return {}
    from smptune.training.evaluation import SegmentationMetrics

    device = next(model.parameters()).device
    model = model.eval()
    forms = {"none": model, "flips": FlipAverage(model)}
    meters = {v: SegmentationMetrics(data.classes).to(device) for v in chosen}
    for i in indices:
        mask = torch.from_numpy(data.true_mask(i)[None].copy()).to(device)
        outputs: dict[str, np.ndarray] = {}
        for variant, meter in meters.items():
            tta, post = variant_options(variant)
            if tta not in outputs:
                logits = _whole_logits(forms[tta], normalise, data, i, windows, device)
                outputs[tta] = labels_of(logits, data.classes).to(torch.uint8).cpu().numpy()
            labels = postprocessed(outputs[tta], data.classes, post)
            meter.update_labels(torch.from_numpy(labels)[None].to(device), mask)
    return {
        refined_key(name, variant): value
        for variant, meter in meters.items()
        for name, value in meter.compute().items()
    }


def _whole_logits(
    model: torch.nn.Module,
    normalise: Normalise | None,
    data: SegmentationData,
    i: int,
    windows: Windows | None,
    device: torch.device,
) -> torch.Tensor:
    """Logits (K, H, W) of sample ``i`` at its true size: in sliding windows, or the stored
    (padded) image at once, cut to size."""
    if windows is not None:
        image = torch.from_numpy(data.float_image(i)).to(device)
        return sliding_window(model, image, windows, normalise=normalise)
    batch = torch.from_numpy(data.float_image(i, crop=False))[None].to(device)
    if normalise is not None:
        batch = normalise.to(device)(batch)
    height, width = data.size(i)
    logits: torch.Tensor = model(batch).float()
    return logits[0, :, :height, :width]
