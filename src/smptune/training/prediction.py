"""Masks for new images from a sweep's final model or fold ensemble, prepared as the sweep
prepared its data: the same scaling to [0, 1], the encoder's normalisation and the same
overlapping sliding windows (what ``producer predict`` and ``api.predict`` run).

A mask has the image's height and width and is written in the image's format: PNG (or NPY)
of the class labels (``0 .. N-1``; binary: 0 and 255), or a TIFF that keeps a GeoTIFF
input's georeferencing tags.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from smptune.errors import ConfigError
from smptune.training.dataspec import padded_side
from smptune.training.decode import SUFFIXES, read_image, scaled, scaled_labels
from smptune.training.ensemble import EnsembleLogits, load_ensemble, load_members
from smptune.training.inference import (
    DEFAULT_OVERLAP,
    FlipAverage,
    Windows,
    labels_of,
    sliding_window,
)
from smptune.training.module import Normalise
from smptune.training.refine import POSTPROCESS, TTA, check_option, postprocessed

#: What ``producer predict --model`` chooses from: the fold ensemble or the retrained model.
MODELS = ("ensemble", "retrained")

#: GeoTIFF's tags (ModelPixelScale, ModelTiepoint, ModelTransformation, GeoKeyDirectory,
#: GeoDoubleParams, GeoAsciiParams) and GDAL's metadata and nodata tags: kept on a mask.
GEO_TAGS = (33550, 33922, 34264, 34735, 34736, 34737, 42112, 42113)


@dataclass(frozen=True)
class Predictor:
    """A final model (or the fold ensemble) with what its inputs need."""

    model: torch.nn.Module  # class logits (N, K, H, W) of normalised images
    normalise: Normalise | None  # the encoder's normalisation (the ensemble does its own)
    classes: int
    in_channels: int
    scaling: dict[str, Any]  # smptune.json's "normalisation": the data's scaling to [0, 1]
    windows: Windows
    kind: str  # "retrained model" or "fold ensemble"
    postprocess: str = "none"  # see :mod:`.refine`
    resize_to: tuple[int, int] | None = None  # ``resize: scale``'s (height, width)

    def scale(self, raw: np.ndarray) -> np.ndarray:
        """A file's (C, H, W) values as float32 in [0, 1], as the sweep scaled its data."""
        image = raw.astype(np.float32, copy=True)
        method = self.scaling.get("method", "none")
        if method == "divide":
            image /= float(self.scaling["by"])
        elif method != "none":
            low = np.asarray(self.scaling["low"], dtype=np.float32)[:, None, None]
            span = np.asarray(self.scaling["span"], dtype=np.float32)[:, None, None]
            image = (image - low) / span
        return image

    def labels(self, raw: np.ndarray) -> np.ndarray:
        """The label of every pixel (H, W, uint8) of a file's (C, H, W) values."""
        if raw.shape[0] != self.in_channels:
            raise ValueError(f"has {raw.shape[0]} channels, the model takes {self.in_channels}")
        image = self.scale(raw)
        if self.resize_to is not None:  # as the sweep resized its data, and back
            image = scaled(image, self.resize_to)
        output = sliding_window(self.model, image, self.windows, normalise=self.normalise)
        labels = labels_of(output, self.classes).to(torch.uint8).cpu().numpy()
        if self.resize_to is not None:
            labels = scaled_labels(labels, (raw.shape[1], raw.shape[2]))
        return postprocessed(labels, self.classes, self.postprocess)


def load_predictor(
    results_dir: str | Path,
    *,
    model: str | None = None,
    device: str | None = None,
    overlap: float | None = None,
    tta: str = "none",
    postprocess: str = "none",
) -> Predictor:
    """The sweep's ``model`` (:data:`MODELS`; default: the fold ensemble of
    ``final/ensemble`` when the sweep exported one, else the retrained model of
    ``final/model``) on ``device`` (default: CUDA when there is one), with ``tta`` and
    ``postprocess`` (:mod:`.refine`)."""
    final = Path(results_dir) / "final"
    if model is None:
        model = "ensemble" if (final / "ensemble" / "smptune.json").is_file() else "retrained"
    try:
        check_option("--model", model, MODELS)
    except ValueError as exc:
        raise ConfigError(f"predict: {exc}") from None
    ensemble = model == "ensemble"
    folder = final / ("ensemble" if ensemble else "model")
    info_path = folder / "smptune.json"
    if not info_path.is_file():
        what = "fold ensemble" if ensemble else "final model"
        raise ConfigError(
            f"predict: {results_dir} has no {what} ({info_path} is missing); it is written "
            "when retrain-and-test ends"
        )
    info = json.loads(info_path.read_text())
    network: torch.nn.Module
    if ensemble:
        network, normalise = EnsembleLogits(load_ensemble(folder)), None
        info = json.loads((folder / info["members"][0] / "smptune.json").read_text())
    else:
        network = load_members([folder])[0]
        normalise = Normalise(info.get("encoder_normalisation"))
    target = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    size = info.get("image_size")
    # whole images at once for models trained on them, padded as their data was
    window = info.get("window") or info.get("crop_size") or padded_side(max(size or [256]))
    chosen = info.get("overlap", DEFAULT_OVERLAP) if overlap is None else overlap
    try:
        check_option("tta", tta, TTA)
        check_option("postprocess", postprocess, POSTPROCESS)
    except ValueError as exc:
        raise ConfigError(f"predict: {exc}") from None
    if tta == "flips":
        network = FlipAverage(network)
    return Predictor(
        model=network.to(target).eval(),
        normalise=normalise,
        classes=int(info["classes"]),
        in_channels=int(info["in_channels"]),
        scaling=dict(info.get("normalisation") or {"method": "none"}),
        windows=Windows(int(window), float(chosen)),
        kind="fold ensemble" if ensemble else "retrained model",
        postprocess=postprocess,
        resize_to=(int(size[0]), int(size[1])) if info.get("resize") == "scale" else None,
    )


def image_files(inputs: Sequence[str | Path]) -> list[Path]:
    """The images named by ``inputs``: files as given, folders' PNG, TIFF and NPY files in
    name order; a missing path, or a folder without images, is a :class:`ConfigError`."""
    found: list[Path] = []
    for given in map(Path, inputs):
        if given.is_dir():
            inside = sorted(
                p for p in given.iterdir() if p.is_file() and p.suffix.lower() in SUFFIXES
            )
            if not inside:
                raise ConfigError(f"predict: {given} holds no images (PNG, TIFF or NPY)")
            found += inside
        elif given.is_file():
            found.append(given)
        else:
            raise ConfigError(f"predict: {given} does not exist")
    if not found:
        raise ConfigError("predict: no images given")
    return found


def mask_path(image: Path, out: Path) -> Path:
    """Where ``image``'s mask goes: ``out/<stem>.png`` (``.tif`` for TIFF, ``.npy`` for NPY)."""
    suffix = image.suffix.lower()
    return out / (image.stem + (".tif" if suffix in (".tif", ".tiff") else suffix))


def write_mask(labels: np.ndarray, image: Path, path: Path, classes: int) -> None:
    """Write ``labels`` (H, W) to ``path`` in ``image``'s format (binary: 0 and 255)."""
    values = labels * np.uint8(255) if classes == 1 else labels
    suffix = path.suffix.lower()
    partial = path.with_name(path.name + ".partial")
    if suffix == ".npy":
        with partial.open("wb") as f:
            np.save(f, values)
    elif suffix == ".tif":
        import tifffile

        tifffile.imwrite(partial, values, extratags=_geo_tags(image), photometric="minisblack")
    else:
        from PIL import Image

        Image.fromarray(values).save(partial, format="PNG")
    partial.replace(path)  # a mask is there whole or not at all


def _geo_tags(image: Path) -> list[tuple[int, int, int, Any, bool]]:
    """``image``'s GeoTIFF tags as tifffile's ``extratags``; none for other files."""
    if image.suffix.lower() not in (".tif", ".tiff"):
        return []
    import tifffile

    with tifffile.TiffFile(image) as tif:
        tags = tif.pages[0].tags
        return [
            (tag.code, tag.dtype, tag.count, tag.value, True)
            for tag in tags.values()
            if tag.code in GEO_TAGS
        ]


def predict_files(
    predictor: Predictor,
    images: Sequence[Path],
    out: Path,
    progress: Callable[[Path], None] | None = None,
) -> Iterator[Path]:
    """Write each image's mask into ``out`` and yield its path, in order. A file that
    cannot be read or has the wrong channels raises a :class:`ConfigError` naming it; the
    masks written before it stay."""
    out.mkdir(parents=True, exist_ok=True)
    for image in images:
        raw = read_image(image, f"predict: {image}")
        try:
            labels = predictor.labels(raw)
        except ValueError as exc:
            raise ConfigError(f"predict: {image} {exc}") from None
        path = mask_path(image, out)
        write_mask(labels, image, path, predictor.classes)
        if progress is not None:
            progress(image)
        yield path
