"""``SegmentationTrainable``: the built-in trainable (smp models trained with Lightning).

This module and the package's ``__init__`` import no torch, smp or Lightning: the producer
imports them to read :attr:`SegmentationTrainable.defaults`. The heavy modules are imported by
the methods that need them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from smptune.trainable import FoldContext, FoldResult, SweepSettings
from smptune.training.metrics import METRICS
from smptune.training.params import DEFAULTS, resolve_params


class SegmentationTrainable:
    """Binary segmentation with segmentation-models-pytorch, one fold at a time.

    Hyperparameters (:attr:`defaults`): ``model_arch`` and ``model_encoder`` (any smp
    architecture and encoder, ``tu-<timm model>`` included), ``model_encoder_weights``,
    ``augment`` (random flips/rotations), ``learning_rate`` and ``weight_decay`` (AdamW),
    ``gamma`` (ExponentialLR per epoch), ``focal_loss_alpha`` and ``focal_loss_gamma``,
    ``batch_size``. Metrics (:attr:`metrics`), computed on the whole validation set at
    threshold 0.5: iou, f1, precision, recall, accuracy.
    """

    defaults: ClassVar[dict[str, Any]] = dict(DEFAULTS)
    metrics: ClassVar[tuple[str, ...]] = METRICS

    def validate(self, params: Mapping[str, Any], settings: SweepSettings) -> None:
        """Raise :class:`~smptune.errors.ConfigError` naming the key of the first bad value.

        Reads the data (once per process) to check it and the number of folds.
        """
        from smptune.training.data import load_data
        from smptune.training.folds import fold_split
        from smptune.training.model import check_model
        from smptune.training.settings import run_settings

        resolved = resolve_params(params)
        rs = run_settings(settings)
        data = load_data(rs.data)
        fold_split(data.n, rs.seed, rs.data.test_fraction, rs.n_folds, 0)
        check_model(resolved, data.in_channels)

    def train_fold(self, params: Mapping[str, Any], context: FoldContext) -> FoldResult:
        """Train on all folds but ``context.fold``; metrics of the best epoch on that fold."""
        from smptune.training.engine import train_fold

        return train_fold(dict(params), context)

    def retrain_and_test(
        self, params: Mapping[str, Any], epochs: int, context: FoldContext
    ) -> dict[str, float]:
        """Train on the whole train split for ``epochs`` epochs; metrics on the test split.

        With ``context.output_dir`` set, the model is saved to ``output_dir/model``
        (``segmentation_models_pytorch.from_pretrained`` loads it; ``smptune.json`` beside it
        says how to prepare inputs) and the epoch logs to ``output_dir/logs/retrain``.
        """
        from smptune.training.engine import retrain_and_test

        return retrain_and_test(dict(params), epochs, context)


def baseline_metrics(settings: SweepSettings, fold: int | None = None) -> dict[str, float]:
    """Metrics of predicting all background (iou 0, ...) on validation data, without torch.

    ``fold=None``: over the whole train split (the union of every fold's validation set);
    otherwise over fold ``fold``'s validation set.
    """
    from smptune.training.data import IGNORE, load_data
    from smptune.training.folds import fold_split, train_test_split
    from smptune.training.metrics import metrics_from_counts
    from smptune.training.settings import run_settings

    rs = run_settings(settings)
    data = load_data(rs.data)
    if fold is None:
        indices = list(train_test_split(data.n, rs.seed, rs.data.test_fraction).train)
    else:
        indices = list(
            fold_split(data.n, rs.seed, rs.data.test_fraction, rs.n_folds, fold).evaluate
        )
    masks = data.masks[indices]
    foreground = int((masks == 1).sum())
    background = int((masks != IGNORE).sum()) - foreground
    return metrics_from_counts(tp=0, fp=0, fn=foreground, tn=background)
