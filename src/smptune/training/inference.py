"""Whole-image prediction of any size in overlapping, Gaussian-blended sliding windows.

MONAI's :func:`monai.inferers.sliding_window_inference` places the windows and blends them
(each window's output weighted by a Gaussian centred on it, as nnU-Net predicts); this
module only pads images smaller than a window (by reflection, as the data is padded), runs
the encoder's normalisation per window and cuts the result to the image's true size. It
reads no dataset: validation, test, the fold ensemble and a later ``producer predict`` on
new images call it alike.

Memory: the model sees ``sw_batch_size`` windows at a time, so its activations are bounded
by the window batch; MONAI keeps the blended output and the weight count for the whole
image (``(K + 1) × H × W`` float32 on ``buffer_device``), which for large images is most of
the cost; pass ``buffer_device="cpu"`` to keep those in host memory while the windows run
on the model's device.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from smptune.training.refine import FLIPS

DEFAULT_OVERLAP = 0.5
DEFAULT_SW_BATCH_SIZE = 4


@dataclass(frozen=True)
class Windows:
    """How whole images are predicted: ``size``×``size`` windows overlapping by ``overlap``
    (a share of the window), ``batch`` windows through the model at a time."""

    size: int
    overlap: float = DEFAULT_OVERLAP
    batch: int = DEFAULT_SW_BATCH_SIZE


class FlipAverage(torch.nn.Module):
    """``model``'s output (N, K, H, W) averaged over the flips of its input (each flipped
    back): ``tta: flips``, as nnU-Net mirrors at inference."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        total = torch.zeros((), device=images.device)
        for dims in FLIPS:
            out = self.model(images.flip(dims) if dims else images).float()
            total = total + (out.flip(dims) if dims else out)
        return total / len(FLIPS)


def reflect_pad(images: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """``images`` (N, C, H, W) padded at the bottom and right to at least ``height``×``width``
    by reflection, repeated where the pad exceeds the image (edge copies for 1-pixel sides):
    the same padding as :func:`numpy.pad`'s ``reflect`` that the stored data has."""
    while images.shape[-2] < height or images.shape[-1] < width:
        h, w = images.shape[-2:]
        if (h == 1 and h < height) or (w == 1 and w < width):
            pads = (0, max(0, width - w), 0, max(0, height - h))
            images = F.pad(images, pads, mode="replicate")
            continue
        pad_h = min(max(0, height - h), h - 1)
        pad_w = min(max(0, width - w), w - 1)
        images = F.pad(images, (0, pad_w, 0, pad_h), mode="reflect")
    return images


def sliding_window(
    model: torch.nn.Module | Callable[[torch.Tensor], torch.Tensor],
    image: torch.Tensor | np.ndarray,
    windows: Windows,
    *,
    normalise: torch.nn.Module | None = None,
    buffer_device: torch.device | str | None = None,
) -> torch.Tensor:
    """The output (K, H, W) of ``model`` (class logits of an smp model) for one ``image``
    (C, H, W), float in [0, 1], of any size: Gaussian-blended windows of ``windows.size``,
    each normalised first with ``normalise``; exactly the image's own height and width.

    The windows run on the model's device; the blended buffers live on ``buffer_device``
    (default: the image's device)."""
    from monai.inferers.utils import sliding_window_inference

    tensor = torch.as_tensor(image).float()
    if tensor.dim() != 3:
        raise ValueError(f"sliding_window: expected one image (C, H, W), got {tuple(tensor.shape)}")
    height, width = tensor.shape[-2:]
    parameters = model.parameters() if isinstance(model, torch.nn.Module) else iter(())
    device = next(parameters, tensor).device
    if normalise is not None:
        normalise = normalise.to(device)

    def predictor(batch: torch.Tensor) -> torch.Tensor:
        batch = batch.to(device)
        return model(normalise(batch) if normalise is not None else batch).float()

    size = windows.size
    padded = reflect_pad(tensor[None], size, size)
    with torch.no_grad():
        output = sliding_window_inference(
            padded,
            roi_size=(size, size),
            sw_batch_size=windows.batch,
            predictor=predictor,
            overlap=windows.overlap,
            mode="gaussian",
            sw_device=device,
            device=torch.device(buffer_device) if buffer_device is not None else tensor.device,
            progress=False,
        )
    assert isinstance(output, torch.Tensor)
    return output[0, :, :height, :width]


def labels_of(output: torch.Tensor, classes: int) -> torch.Tensor:
    """Labels (…, H, W) of logits (…, K, H, W): foreground where the one logit is positive
    (binary, ``classes == 1``), else the arg-max class."""
    return (output[..., 0, :, :] > 0).long() if classes == 1 else output.argmax(dim=-3)


def predict_labels(
    model: torch.nn.Module,
    image: torch.Tensor | np.ndarray,
    classes: int,
    windows: Windows,
    *,
    normalise: torch.nn.Module | None = None,
    buffer_device: torch.device | str | None = None,
) -> torch.Tensor:
    """Labels (H, W) of one ``image`` (C, H, W) in [0, 1] of any size; see
    :func:`sliding_window`."""
    model = model.eval()
    output = sliding_window(model, image, windows, normalise=normalise, buffer_device=buffer_device)
    return labels_of(output, classes)
