"""Validation metrics with torchmetrics over a whole evaluation set (definitions:
:mod:`smptune.training.metrics`); pixels with the value :data:`IGNORE` are left out."""

from __future__ import annotations

from typing import TypedDict

import torch
from torchmetrics import MetricCollection
from torchmetrics import classification as tmc

from smptune.training.dataspec import IGNORE
from smptune.training.metrics import metric_names


class _MulticlassOptions(TypedDict):
    num_classes: int
    ignore_index: int


class SegmentationMetrics(torch.nn.Module):
    """Accumulates predictions batch by batch; :meth:`compute` gives the named metrics."""

    def __init__(self, classes: int) -> None:
        super().__init__()
        self.classes = classes
        if classes == 1:
            self.collection = MetricCollection(
                {
                    "iou": tmc.BinaryJaccardIndex(ignore_index=IGNORE),
                    "f1": tmc.BinaryF1Score(ignore_index=IGNORE),
                    "precision": tmc.BinaryPrecision(ignore_index=IGNORE),
                    "recall": tmc.BinaryRecall(ignore_index=IGNORE),
                    "accuracy": tmc.BinaryAccuracy(ignore_index=IGNORE),
                },
                compute_groups=False,
            )
        else:
            common: _MulticlassOptions = {"num_classes": classes, "ignore_index": IGNORE}
            self.collection = MetricCollection(
                {
                    "iou": tmc.MulticlassJaccardIndex(average="macro", **common),
                    "f1": tmc.MulticlassF1Score(average="macro", **common),
                    "precision": tmc.MulticlassPrecision(average="macro", **common),
                    "recall": tmc.MulticlassRecall(average="macro", **common),
                    "accuracy": tmc.MulticlassAccuracy(average="micro", **common),
                    "iou_class": tmc.MulticlassJaccardIndex(average="none", **common),
                    "dice_class": tmc.MulticlassF1Score(average="none", **common),
                },
                compute_groups=False,
            )

    def predict(self, logits: torch.Tensor) -> torch.Tensor:
        """Class labels (N, H, W): foreground at sigmoid > 0.5, or the arg-max class."""
        if self.classes == 1:
            return (logits[:, 0] > 0).long()
        return logits.argmax(dim=1)

    def update(self, logits: torch.Tensor, masks: torch.Tensor) -> None:
        self.update_labels(self.predict(logits.detach()), masks)

    def update_labels(self, labels: torch.Tensor, masks: torch.Tensor) -> None:
        """Count predicted class ``labels`` (N, H, W) against ``masks``."""
        self.collection.update(labels.long(), masks.long())

    def compute(self) -> dict[str, float]:
        values = self.collection.compute()
        out: dict[str, float] = {}
        for name, value in values.items():
            if value.ndim == 0:
                out[name] = float(value)
            else:
                out.update({f"{name}_{k}": float(v) for k, v in enumerate(value.tolist())})
        # A class's Dice coefficient is its F1 score: computed once, reported under both names.
        out["dice"] = out["f1"]
        return {name: out[name] for name in metric_names(self.classes) if name in out}

    def reset(self) -> None:
        self.collection.reset()
