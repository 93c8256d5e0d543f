"""DDP throughput: images per second of one fold of the segmentation trainable on 1 and on 2
devices (``training.devices_per_trial``).

On a machine with two GPUs or more the two-device run is DDP over NCCL on two of them; on a
CPU it is two processes with gloo, each on half of this process's cores (so the figure says
what the launcher and the gradient exchange cost, not a speed-up). The same fold, data, model
and epochs each time; a one-device run first, untimed (imports, the data cache). Each figure
is the fold's training images times its epochs over the fold's time: ``train`` as rank 0
measures it (from the data loaded to the last epoch), ``wall`` from the call to the result
(the ranks' start-up included). For information: no target.

    python -m benchmarks.ddp_throughput [--quick]
"""

from __future__ import annotations

import os
import tempfile
import time
from typing import Any

from benchmarks.harness import run_alone
from benchmarks.table import Row

PARAMS = {
    "model_arch": "Unet",
    "model_encoder": "resnet18",
    "model_encoder_weights": None,
    "augment": False,
    "batch_size": 4,
}


def _settings(quick: bool, devices: int, on_gpu: bool) -> Any:
    from smptune.trainable import SweepSettings

    size = (64 if quick else 128) if on_gpu else (32 if quick else 64)
    n_images = (32 if quick else 256) * (4 if on_gpu else 1)
    return SweepSettings(
        seed=0,
        metric="iou",
        mode="max",
        data={"synthetic": {"n_images": n_images, "size": size}, "test_fraction": 0.2},
        cv={"n_folds": 4},
        training={
            "max_epochs": 1 if quick else 3,
            "precision": "32-true",
            "devices_per_trial": devices,
        },
    )


def one_fold(quick: bool, devices: int, on_gpu: bool) -> dict[str, float]:
    """Images per second of fold 0 on ``devices`` devices (train time and wall time)."""
    from smptune.trainable import FoldContext
    from smptune.training.engine import train_fold
    from smptune.training.splits import splits_for
    from smptune.worker.devices import DEVICES_ENV

    settings = _settings(quick, devices, on_gpu)
    _, _, plan = splits_for(settings)
    images = len(plan.fold(0).train) * settings.training["max_epochs"]
    os.environ[DEVICES_ENV] = str(devices)  # this process is the worker that owns them
    started = time.perf_counter()
    result = train_fold(dict(PARAMS), FoldContext("bench", 0, 0, 4, settings))
    wall = time.perf_counter() - started
    return {"train": images / result.duration_s, "wall": images / wall}


def measure(quick: bool) -> dict[str, Any]:
    import torch

    on_gpu = torch.cuda.is_available()
    two = not on_gpu or torch.cuda.device_count() >= 2
    saved = {k: os.environ.get(k) for k in ("SMPTUNE_CACHE_DIR", "SMPTUNE_DEVICES_PER_WORKER")}
    with tempfile.TemporaryDirectory() as cache:
        os.environ["SMPTUNE_CACHE_DIR"] = cache  # not the user's cache
        try:
            one_fold(True, 1, on_gpu)  # untimed warm-up
            one = one_fold(quick, 1, on_gpu)
            both = one_fold(quick, 2, on_gpu) if two else None
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
    backend = "nccl" if on_gpu else "gloo"
    return {"one": one, "two": both, "backend": backend, "on_gpu": on_gpu}


def rows(quick: bool) -> list[Row]:
    figures = measure(quick)
    one, two, backend = figures["one"], figures["two"], figures["backend"]
    device = "GPU" if figures["on_gpu"] else "CPU"
    out = []
    for kind in ("train", "wall"):
        note = f"{device}, DDP over {backend}" if two else "one GPU only: no DDP run"
        out.append(
            Row(
                f"ddp fold images/s, 2 devices vs 1 ({kind})",
                two[kind] if two else None,
                one[kind],
                unit="img/s",
                reference_label="1 device",
                note=note,
            )
        )
    return out


if __name__ == "__main__":
    run_alone(rows, __doc__, "a smaller fold")
