"""``producer predict``: masks of new images from a sweep's fold ensemble or its retrained
model; needs no broker."""

from __future__ import annotations

import argparse
from pathlib import Path

from smptune.cli import output
from smptune.cli.common import Subparsers
from smptune.errors import ConfigError, ExitCode


def add_parser(sub: Subparsers) -> None:
    from smptune.training.refine import POSTPROCESS, TTA

    predict = sub.add_parser(
        "predict",
        help="masks of new images from a sweep's fold ensemble (or its retrained model)",
        description="Runs the sweep's fold ensemble (RESULTS_DIR/final/ensemble; or, "
        "with --model retrained or without an ensemble, the retrained final/model) on "
        "images of any size, prepared as the sweep prepared its data (scaling, the encoder's "
        "normalisation, the same sliding windows), and writes one mask per image into --out "
        "in the image's format (PNG or NPY of class labels, binary 0/255; TIFF keeping "
        "GeoTIFF tags). Needs no broker.",
    )
    predict.add_argument("results_dir", type=Path, metavar="RESULTS_DIR")
    predict.add_argument("images", nargs="+", type=Path, metavar="IMAGES", help="files or folders")
    predict.add_argument("--out", type=Path, required=True, metavar="DIR", help="masks go here")
    predict.add_argument(
        "--model",
        choices=("ensemble", "retrained"),
        help="ensemble: the best trial's fold models together (the default when the sweep "
        "exported them); retrained: the final model trained on the whole train split",
    )
    predict.add_argument("--device", help="cpu, cuda, cuda:1, ... (default: cuda if present)")
    predict.add_argument("--tta", choices=TTA, default="none", help="test-time augmentation")
    predict.add_argument(
        "--postprocess", choices=POSTPROCESS, default="none", help="post-processing of masks"
    )
    predict.add_argument(
        "--overlap",
        type=float,
        metavar="F",
        help="windows' overlap in [0, 1) (default: the sweep's)",
    )


def run(args: argparse.Namespace) -> int:
    from rich.progress import Progress

    from smptune.training.prediction import image_files, load_predictor, predict_files

    if args.overlap is not None and not 0.0 <= args.overlap < 1.0:
        raise ConfigError(f"--overlap: must be in [0, 1), got {args.overlap}")
    files = image_files(args.images)
    predictor = load_predictor(
        args.results_dir,
        model=args.model,
        device=args.device,
        overlap=args.overlap,
        tta=args.tta,
        postprocess=args.postprocess,
    )
    written = 0
    with Progress(console=output.console(stderr=True), transient=True) as progress:
        task = progress.add_task(f"predicting ({predictor.kind})", total=len(files))
        try:
            for _ in predict_files(predictor, files, args.out, lambda _: progress.advance(task)):
                written += 1
        except ConfigError as exc:
            kept = f"the {written} masks written before it stay in {args.out}" if written else ""
            raise ConfigError(f"{exc}{'; ' + kept if kept else ''}") from None
    print(f"{written} masks written to {args.out} ({predictor.kind})")
    return ExitCode.OK
