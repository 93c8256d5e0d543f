"""Training loop: one fold of the segmentation trainable against a plain PyTorch loop.

Both train the same smp model (Unet, ``tu-regnetx_002``, no pretrained weights) on the same
synthetic data and fold split, with the same epochs, batch size, precision (fp32 on a CPU),
AdamW + ExponentialLR, binary focal loss and a validation pass (IoU) after every epoch, no
augmentation. The trainable's fold is ``smptune.training.engine.train_fold`` called in this
process (Lightning); the plain loop is written here. They run alternately, after one untimed
run of each; the medians are compared. Target: the trainable ≤ 1.10× the plain loop.

    python -m benchmarks.training_loop [--quick]
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from typing import Any

from benchmarks.harness import run_alone
from benchmarks.table import Row

ENCODER = "tu-regnetx_002"
PARAMS = {
    "model_arch": "Unet",
    "model_encoder": ENCODER,
    "model_encoder_weights": None,
    "augment": False,
    "batch_size": 8,
    "learning_rate": 1e-3,
    "weight_decay": 1e-2,
    "gamma": 0.9,
    "focal_loss_alpha": None,
    "focal_loss_gamma": 2.0,
}
MAX_RATIO = 1.10


def _settings(quick: bool) -> Any:
    from smptune.trainable import SweepSettings

    return SweepSettings(
        seed=0,
        metric="iou",
        mode="max",
        data={"synthetic": {"n_images": 48 if quick else 160, "size": 64}, "test_fraction": 0.2},
        cv={"n_folds": 4},
        training={"max_epochs": 2 if quick else 3, "precision": "32-true"},
    )


def smptune_fold(settings: Any) -> float:
    """Seconds for ``train_fold`` of fold 0."""
    from smptune.trainable import FoldContext
    from smptune.training.engine import train_fold

    started = time.perf_counter()
    train_fold(dict(PARAMS), FoldContext("bench", 0, 0, 4, settings))
    return time.perf_counter() - started


def plain_fold(settings: Any) -> float:
    """Seconds for the same fold in a plain PyTorch loop."""
    import numpy as np
    import segmentation_models_pytorch as smp
    import torch

    from smptune.training.splits import splits_for

    started = time.perf_counter()
    rs, data, plan = splits_for(settings)
    split = plan.fold(0)
    torch.manual_seed(0)
    model = smp.create_model(
        "Unet", encoder_name=ENCODER, encoder_weights=None, in_channels=data.in_channels, classes=1
    )
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=PARAMS["learning_rate"], weight_decay=PARAMS["weight_decay"]
    )
    scheduler = torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=PARAMS["gamma"])
    loss_fn = smp.losses.FocalLoss("binary", alpha=None, gamma=PARAMS["focal_loss_gamma"])
    train = torch.as_tensor(split.train)
    evaluate = torch.as_tensor(split.evaluate)
    size = PARAMS["batch_size"]
    generator = torch.Generator().manual_seed(0)

    def batch(indices: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        chosen = indices.numpy()
        images = torch.from_numpy(np.ascontiguousarray(data.images[chosen])).float()
        masks = torch.from_numpy(np.ascontiguousarray(data.masks[chosen]))
        return images * data.scale, (masks == 1).float().unsqueeze(1)

    for _ in range(rs.max_epochs):
        model.train()
        order = train[torch.randperm(len(train), generator=generator)]
        for start in range(0, len(order), size):
            if len(order) - start == 1 and start:  # as the trainable: no batch of one
                break
            images, target = batch(order[start : start + size])
            loss = loss_fn(model(images), target)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        scheduler.step()
        model.eval()
        inter = union = 0.0
        with torch.no_grad():
            for start in range(0, len(evaluate), size):
                images, target = batch(evaluate[start : start + size])
                pred = (model(images) > 0).float()
                inter += float((pred * target).sum())
                union += float(((pred + target) > 0).sum())
        _ = inter / max(union, 1.0)
    return time.perf_counter() - started


def measure(quick: bool) -> dict[str, float]:
    settings = _settings(quick)
    repeats = 3 if quick else 5
    ours, plain = [], []
    with tempfile.TemporaryDirectory() as cache:
        previous = os.environ.get("SMPTUNE_CACHE_DIR")
        os.environ["SMPTUNE_CACHE_DIR"] = cache  # not the user's cache
        try:
            smptune_fold(settings)  # untimed: imports, the data cache, allocator warm-up
            plain_fold(settings)
            for _ in range(repeats):
                ours.append(smptune_fold(settings))
                plain.append(plain_fold(settings))
        finally:
            if previous is None:
                os.environ.pop("SMPTUNE_CACHE_DIR", None)
            else:
                os.environ["SMPTUNE_CACHE_DIR"] = previous
    return {
        "smptune_s": statistics.median(ours),
        "plain_s": statistics.median(plain),
        "repeats": repeats,
        "n_images": settings.data["synthetic"]["n_images"],
        "epochs": settings.training["max_epochs"],
    }


def rows(quick: bool) -> list[Row]:
    m = measure(quick)
    return [
        Row(
            f"training loop ({m['n_images']} imgs x 64 px, {m['epochs']} epochs, fp32 CPU): "
            f"smptune fold vs plain loop, median of {m['repeats']}",
            m["smptune_s"],
            m["plain_s"],
            reference_label="plain PyTorch",
            max_ratio=MAX_RATIO,
        )
    ]


def main() -> None:
    run_alone(rows, __doc__)


if __name__ == "__main__":
    main()
