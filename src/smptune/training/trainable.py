"""``SegmentationTrainable``: the built-in trainable (smp models trained with Lightning).

This module and the package's ``__init__`` import no torch, smp or Lightning: the producer
imports them to read :attr:`SegmentationTrainable.defaults`. The heavy modules are imported by
the methods that need them.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

from smptune.params import Params, ParamsView
from smptune.trainable import FoldContext, FoldResult, SweepSettings
from smptune.training.metrics import METRICS
from smptune.training.params import DEFAULTS, resolve_params


class SegmentationTrainable:
    """Binary or multi-class segmentation with segmentation-models-pytorch, one run at a time.

    Hyperparameters (:attr:`defaults`): ``model_arch`` and ``model_encoder`` (any smp
    architecture and encoder, ``tu-<timm model>`` included), ``model_encoder_weights``,
    ``augment`` (augmentation sets, see :data:`~smptune.training.params.AUGMENTATIONS`),
    ``learning_rate`` and ``weight_decay`` (AdamW), ``gamma`` (ExponentialLR per epoch),
    ``loss`` (see :data:`~smptune.training.params.LOSSES`; weighted sums too),
    ``focal_loss_alpha`` and ``focal_loss_gamma``, ``tversky_alpha`` and ``tversky_beta``,
    ``batch_size``. Metrics (:attr:`metrics`
    for binary data; see :func:`~smptune.training.metrics.metric_names`), computed on the
    whole validation set: iou, f1, precision, recall, accuracy, loss (and ``iou_class_<k>``
    for multi-class data).
    """

    defaults: ClassVar[Params] = dict(DEFAULTS)
    metrics: ClassVar[tuple[str, ...]] = METRICS

    def validate(self, params: ParamsView, settings: SweepSettings) -> None:
        """Raise :class:`~smptune.errors.ConfigError` naming the key of the first bad value.

        Reads the data (once per process) to check it, the splits and the scoring metrics.
        """
        from smptune.training.model import check_model
        from smptune.training.splits import splits_for

        resolved = resolve_params(params)
        _, data, _ = splits_for(settings)
        check_model(resolved, data.in_channels)

    def train_fold(self, params: ParamsView, context: FoldContext) -> FoldResult:
        """Train on the train split less fold ``context.fold`` with seed ``context.run_seed``;
        metrics of the best epoch on that fold. With ``context.output_dir`` the epoch log goes
        to ``output_dir/logs/fold_<k>_seed_<r>/metrics.csv``."""
        from smptune.training.engine import train_fold

        return train_fold(dict(params), context)

    def retrain_and_test(
        self, params: ParamsView, epochs: int, context: FoldContext
    ) -> dict[str, float]:
        """Train on the whole train split for ``epochs`` epochs; metrics on the test split.

        With ``context.output_dir`` set, the model is saved to ``output_dir/model``
        (``segmentation_models_pytorch.from_pretrained`` loads it; ``smptune.json`` beside it
        says how to prepare inputs), the epoch logs to ``output_dir/logs/retrain`` and up to
        four test samples with their predictions to ``output_dir/predictions.png``.
        """
        from smptune.training.engine import retrain_and_test

        return retrain_and_test(dict(params), epochs, context)

    def test_ensemble(
        self, params: ParamsView, members: Sequence[Path], context: FoldContext
    ) -> dict[str, float]:
        """Test-split metrics of the fold models in ``members`` (the best runs' folders, in
        smp's format) together, their probabilities averaged; with ``context.output_dir``
        set, the ensemble is exported to ``output_dir/ensemble`` (see
        :mod:`smptune.training.ensemble`)."""
        from smptune.training.engine import ensemble_test
        from smptune.training.ensemble import export_ensemble

        metrics = ensemble_test(dict(params), members, context)
        if context.output_dir is not None:
            export_ensemble(members, Path(context.output_dir) / "ensemble", metrics)
        return metrics

    def describe_splits(self, settings: SweepSettings) -> dict[str, object]:
        """See :func:`describe_splits`."""
        return describe_splits(settings)


def describe_splits(settings: SweepSettings) -> dict[str, object]:
    """The names of the test samples and of each fold's validation samples (JSON data, for
    ``splits.json``); see :func:`smptune.training.splits.describe_splits`."""
    from smptune.training.splits import describe_splits as describe

    return describe(settings)


def baseline_metrics(settings: SweepSettings, fold: int | None = None) -> dict[str, float]:
    """Metrics of predicting all background (class 0) on validation data, without torch
    (``loss`` is left out: it is undefined for a constant prediction).

    ``fold=None``: over the whole train split; otherwise over fold ``fold``'s validation set.
    """
    import numpy as np

    from smptune.training.dataspec import IGNORE
    from smptune.training.metrics import metrics_from_confusion, metrics_from_counts
    from smptune.training.splits import splits_for

    _, data, plan = splits_for(settings)
    indices = list(plan.train if fold is None else plan.fold(fold).evaluate)
    counts = np.zeros(IGNORE + 1, dtype=np.int64)
    for i in indices:
        counts += np.bincount(np.asarray(data.masks[i]).ravel(), minlength=IGNORE + 1)
    if data.classes == 1:
        foreground, background = int(counts[1]), int(counts[0])
        return metrics_from_counts(tp=0, fp=0, fn=foreground, tn=background)
    confusion = [[0] * data.classes for _ in range(data.classes)]
    for k in range(data.classes):
        confusion[k][0] = int(counts[k])
    return metrics_from_confusion(confusion)
