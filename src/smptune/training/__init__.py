"""The built-in segmentation trainable: smp models trained with Lightning, fold by fold.

Importing this package imports no torch, smp or Lightning (the producer reads
``SegmentationTrainable.defaults`` from it); training imports them when it starts.

Modules, one role each: :mod:`.params` (hyperparameters), :mod:`.settings` (sweep settings),
:mod:`.data`, :mod:`.dataspec`, :mod:`.decode`, :mod:`.samples`, :mod:`.cache` and
:mod:`.synthetic` (the data), :mod:`.folds` and :mod:`.splits` (test split and folds),
:mod:`.model` (smp look-ups and building), :mod:`.augment`, :mod:`.losses`, :mod:`.metrics`
and :mod:`.evaluation` (metric definitions, torchmetrics), :mod:`.module` (the
LightningModule), :mod:`.loaders` (its batches), :mod:`.engine` (the Trainer runs),
:mod:`.saved_model` (the model on disk), :mod:`.preview` (``predictions.png``),
:mod:`.trainable` (the :class:`~smptune.trainable.Trainable` itself).
"""

from smptune.training.metrics import METRICS, metric_names
from smptune.training.params import DEFAULTS
from smptune.training.trainable import SegmentationTrainable, baseline_metrics, describe_splits

__all__ = [
    "DEFAULTS",
    "METRICS",
    "SegmentationTrainable",
    "baseline_metrics",
    "describe_splits",
    "metric_names",
]
