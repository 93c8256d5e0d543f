"""``python -m benchmarks.sliding_window_memory SIDE``: time and peak memory of one
whole-image prediction in sliding windows (Unet on ``tu-regnetx_002``, 3 channels, binary,
windows of 256 px overlapping by half, 4 at a time, 2 CPU threads) on a random SIDE×SIDE
image; run once per size, each in a fresh process, so each peak is its own. Not in
:data:`benchmarks.BENCHMARKS` (for information; docs/performance.md has the figures)."""

from __future__ import annotations

import resource
import sys
import time

import numpy as np
import torch

from smptune.training.inference import Windows, predict_labels
from smptune.training.model import build_model
from smptune.training.params import resolve_params


def main() -> None:
    torch.set_num_threads(2)
    side = int(sys.argv[1])
    model = build_model(resolve_params({"model_encoder": "tu-regnetx_002"}), 3, 1).eval()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    image = np.random.default_rng(0).random((3, side, side), dtype=np.float32)
    start = time.perf_counter()
    labels = predict_labels(model, image, 1, Windows(256, 0.5, 4))
    took = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"{side}x{side}: {took:.1f} s, peak RSS {peak:.0f} MB, before the image "
        f"{before:.0f} MB, image {image.nbytes / 2**20:.0f} MB, labels {tuple(labels.shape)}"
    )


if __name__ == "__main__":
    main()
