"""Test-time augmentation and post-processing of a model's predictions: the options of the
final evaluation and of ``producer predict``, each reported beside the plain figure.

- ``tta: flips``: the mean of the model's output over the image and its horizontal,
  vertical and both flips (each flipped back), as nnU-Net mirrors at inference.
- ``postprocess: largest_component``: each foreground class keeps only its largest
  connected component (8-connectivity, :func:`scipy.ndimage.label`); class 0 of multi-class
  data is the background and takes the removed pixels.

With ``training.tta`` and ``training.postprocess`` set, the final evaluation reports each
variant beside the plain figures under :func:`smptune.metric_keys.refined_key` (``iou/flips``,
``dice/largest_component``, ``iou/flips_largest_component``).

No torch here: the producer reads the options and the keys; the flips run in
:class:`smptune.training.inference.FlipAverage`.
"""

from __future__ import annotations

import numpy as np

TTA = ("none", "flips")
POSTPROCESS = ("none", "largest_component")

#: The flips :data:`TTA` ``flips`` averages over: the dimensions each one flips.
FLIPS: tuple[tuple[int, ...], ...] = ((), (-1,), (-2,), (-2, -1))


def variants(tta: str, postprocess: str) -> tuple[str, ...]:
    """The evaluations reported beside the plain one under ``tta`` and ``postprocess``:
    each option alone, and both together when both are on."""
    chosen = [name for name, off in ((tta, "none"), (postprocess, "none")) if name != off]
    return (*chosen, "_".join(chosen)) if len(chosen) == 2 else tuple(chosen)


def variant_options(variant: str) -> tuple[str, str]:
    """``(tta, postprocess)`` of a :func:`variants` name."""
    tta = "flips" if variant.startswith("flips") else "none"
    post = "largest_component" if variant.endswith("largest_component") else "none"
    return tta, post


def check_option(key: str, value: str, options: tuple[str, ...]) -> str:
    """``value`` when it is one of ``options``, else a ValueError naming ``key``."""
    if value not in options:
        raise ValueError(f"{key}: must be one of {', '.join(options)}, got {value!r}")
    return value


def largest_component(labels: np.ndarray, classes: int) -> np.ndarray:
    """``labels`` (H, W) with each foreground class reduced to its largest connected
    component (binary data: label 1; multi-class: 1 .. N-1, the rest become 0)."""
    from scipy import ndimage

    out: np.ndarray = labels.copy()
    structure = np.ones((3, 3), dtype=bool)
    for k in range(1, max(2, classes)):
        components, count = ndimage.label(labels == k, structure=structure)
        if count <= 1:
            continue
        sizes = np.bincount(components.ravel())[1:]
        keep = 1 + int(np.argmax(sizes))
        out[(components > 0) & (components != keep)] = 0
    return out


def postprocessed(labels: np.ndarray, classes: int, postprocess: str) -> np.ndarray:
    """``labels`` after ``postprocess`` (one of :data:`POSTPROCESS`)."""
    check_option("postprocess", postprocess, POSTPROCESS)
    return largest_component(labels, classes) if postprocess == "largest_component" else labels
