"""What a run leaves on disk: the trained model with its ``smptune.json``, and the
``predictions.png`` preview of a few test samples."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from smptune.params import Params
from smptune.training.dataspec import IGNORE
from smptune.training.inference import predict_labels
from smptune.training.model import encoder_normalisation
from smptune.training.module import Normalise, SegmentationModule
from smptune.training.preview import write_predictions
from smptune.training.samples import SegmentationData
from smptune.training.settings import RunSettings

PREVIEW_SAMPLES = 4


@torch.no_grad()
def predict(
    model: torch.nn.Module,
    images: np.ndarray,
    classes: int,
    normalise: Normalise | None = None,
) -> np.ndarray:
    """Labels (N, H, W) for float images (N, C, H, W) in [0, 1] with H, W multiples of 32,
    first normalised as a pretrained encoder expects (``normalise``)."""
    model = model.eval()
    device = next(model.parameters()).device
    batch = torch.from_numpy(np.ascontiguousarray(images)).to(device)
    if normalise is not None:
        batch = normalise.to(device)(batch)
    logits = model(batch).float()
    labels = (logits[:, 0] > 0).long() if classes == 1 else logits.argmax(dim=1)
    out: np.ndarray = labels.cpu().numpy()
    return out


def preview(
    module: SegmentationModule, data: SegmentationData, indices: Sequence[int], path: Path
) -> Path | None:
    """``predictions.png`` of up to :data:`PREVIEW_SAMPLES` samples, without the padding."""
    chosen = np.asarray(list(indices)[:PREVIEW_SAMPLES], dtype=np.int64)
    if not len(chosen):
        return None
    if module.windows is not None:
        return _preview_windows(module, data, [int(i) for i in chosen], path)
    images = data.float_images(chosen)
    labels = predict(module.model, images, data.classes, module.normalise)
    h, w = data.height, data.width
    masks = np.asarray(data.stacked()[1][chosen])
    return write_predictions(path, images[..., :h, :w], masks[:, :h, :w], labels[:, :h, :w])


def _preview_windows(
    module: SegmentationModule, data: SegmentationData, chosen: list[int], path: Path
) -> Path:
    """:func:`preview` of whole images predicted in windows; images of different sizes are
    shown in tiles of the largest (the rest black, grey in the masks)."""
    assert module.windows is not None
    sizes = [data.size(i) for i in chosen]
    h, w = max(s[0] for s in sizes), max(s[1] for s in sizes)
    images = np.zeros((len(chosen), data.in_channels, h, w), dtype=np.float32)
    masks = np.full((len(chosen), h, w), IGNORE, dtype=np.uint8)
    labels = np.full((len(chosen), h, w), IGNORE, dtype=np.uint8)
    device = next(module.model.parameters()).device
    for k, i in enumerate(chosen):
        height, width = sizes[k]
        image = data.float_image(i)
        images[k, :, :height, :width] = image
        masks[k, :height, :width] = data.true_mask(i)
        predicted = predict_labels(
            module.model,
            torch.from_numpy(image).to(device),
            data.classes,
            module.windows,
            normalise=module.normalise,
        )
        labels[k, :height, :width] = predicted.cpu().numpy()
    return write_predictions(path, images, masks, labels)


def save_model(
    model: torch.nn.Module,
    path: Any,
    params: Params,
    rs: RunSettings,
    data: SegmentationData,
    metrics: dict[str, float],
    *,
    kind: str = "test",
) -> None:
    """``model.save_pretrained(path)`` (load with ``smp.from_pretrained(path)``) plus
    ``smptune.json``: how to prepare an image for it and read its output."""
    path = Path(path)
    model = model.cpu().eval().to(memory_format=torch.contiguous_format)
    config = getattr(model, "config", None)
    if isinstance(config, dict):
        # The trained weights are in the file; loading must not download the pretrained ones.
        config["encoder_weights"] = None
    # save_pretrained comes from smp's hub mixin; smp has no types, so torch.nn.Module's
    # do not know it.
    smp_model: Any = model
    smp_model.save_pretrained(str(path), metrics=metrics, dataset=data.source)
    if data.classes == 1:
        output = "one channel: the foreground logit; foreground where sigmoid(logit) > 0.5"
    else:
        output = f"{data.classes} channels: class logits; the label is their arg-max"
    info = {
        "in_channels": data.in_channels,
        "classes": data.classes,
        "class_labels": list(range(max(2, data.classes))),
        "ignore_index": rs.data.ignore_index,
        "output": output,
        "input": "float32 (N, C, H, W) in [0, 1] after the normalisation below, then "
        "(x - mean) / std per channel with encoder_normalisation's (when not null); H and W "
        "multiples of 32 (pad at the bottom and right by reflection)",
        "normalisation": data.normalisation,
        "encoder_normalisation": encoder_normalisation(params, data.in_channels),
        "image_size": [data.height, data.width] if data.uniform else None,
        "resize": rs.data.resize,
        "crop_size": rs.data.crop_size,
        "dataset": data.source,
        "hyperparameters": params,
        f"{kind}_metrics": metrics,
    }
    if rs.data.resize == "crop":
        # whole images of any size: smptune.training.inference.predict_labels(model, image,
        # classes, Windows(window, overlap), normalise=Normalise(encoder_normalisation))
        info.update(window=rs.data.crop_size, overlap=rs.data.overlap, blending="gaussian")
    (path / "smptune.json").write_text(json.dumps(info, indent=2) + "\n")
