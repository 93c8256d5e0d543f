"""Train one fold on a GPU and print training images per second in fp32 and bf16-mixed.

    .venv/bin/python -m benchmarks.gpu_check [--images 512] [--size 256] [--epochs 2]
        [--encoder resnet34] [--batch-size 16]

Uses the trainable's own data path (the machine cache, pinned memory, non-blocking copies,
augmentation and channels_last on the device). The first ``--warmup`` steps of each run are
not timed (cuDNN autotuning, allocator growth). Exits with code 1 on a machine without CUDA.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time

MESSAGE_NO_CUDA = (
    "gpu_check: no CUDA device is visible (torch.cuda.is_available() is False); "
    "run it on a GPU machine"
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=512)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--encoder", default="resnet34")
    parser.add_argument("--arch", default="Unet")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps per run")
    args = parser.parse_args()

    import torch

    if not torch.cuda.is_available():
        print(MESSAGE_NO_CUDA, file=sys.stderr)
        return 1
    import lightning.pytorch as pl

    from smptune.trainable import FoldContext, SweepSettings
    from smptune.training import engine
    from smptune.training.params import resolve_params
    from smptune.training.splits import splits_for

    class Throughput(pl.Callback):
        """Images per second over the training steps after the first ``warmup``."""

        def __init__(self, warmup: int) -> None:
            self.warmup, self.steps, self.images = warmup, 0, 0
            self.started: float | None = None

        def on_train_batch_start(self, trainer, module, batch, batch_idx) -> None:
            if self.steps == self.warmup:
                torch.cuda.synchronize()
                self.started = time.perf_counter()

        def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
            self.steps += 1
            if self.steps > self.warmup:
                self.images += int(batch[0].shape[0])

        def rate(self) -> float:
            torch.cuda.synchronize()
            if self.started is None or not self.images:
                raise SystemExit("gpu_check: too few steps to time; raise --images or --epochs")
            return self.images / (time.perf_counter() - self.started)

    settings = SweepSettings(
        seed=0,
        metric="iou",
        mode="max",
        data={"synthetic": {"n_images": args.images, "size": args.size}},
        cv={"n_folds": 5},
        training={"max_epochs": args.epochs, "early_stopping_patience": 0},
    )
    params = resolve_params(
        {"model_arch": args.arch, "model_encoder": args.encoder, "batch_size": args.batch_size}
    )
    rs, data, plan = splits_for(settings)
    name = torch.cuda.get_device_name(0)
    print(
        f"{name}: {args.arch}/{args.encoder}, {args.images} images of {args.size} px, "
        f"batch {args.batch_size}, fold 0 of 5 ({len(plan.fold(0).train)} training images)"
    )
    precisions = ["32-true"]
    if torch.cuda.is_bf16_supported():
        precisions.append("bf16-mixed")
    else:
        print("  bf16-mixed: this GPU has no bfloat16 support; skipped")
    for precision in precisions:
        run = dataclasses.replace(rs, precision=precision)
        module, train, _ = engine._prepare(params, run, data, plan.fold(0), seed=0)
        meter = Throughput(args.warmup)
        context = FoldContext("gpu-check", 0, 0, 5, settings)
        trainer = engine._trainer(run, context, args.epochs, [meter], "gpu_check", params)
        started = time.perf_counter()
        engine._run(lambda t=trainer, m=module, d=train: t.fit(m, train_dataloaders=d))
        wall = time.perf_counter() - started
        peak = torch.cuda.max_memory_allocated() / 2**30
        print(
            f"  {precision:>10}: {meter.rate():8.1f} images/s training "
            f"({wall:.1f} s for {args.epochs} epochs, peak {peak:.2f} GiB)"
        )
        torch.cuda.reset_peak_memory_stats()
        del module, trainer
        engine._release()
    return 0


if __name__ == "__main__":
    sys.exit(main())
