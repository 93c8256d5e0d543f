"""``producer results``: a sweep's ranking and test metrics, its results folder (``--out``),
and its Optuna study (``--optuna-storage``, kept up to date with ``--follow``)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from smptune.cli import broker, output
from smptune.cli.common import Subparsers
from smptune.errors import ConfigError, ExitCode
from smptune.records import FullSweepRecord
from smptune.urls import mask_url


def add_parser(sub: Subparsers) -> None:
    results = broker.add_option(
        sub.add_parser("results", help="ranking and test metrics of a sweep")
    )
    results.add_argument("sweep")
    results.add_argument("--json", action="store_true")
    results.add_argument(
        "--out",
        type=Path,
        metavar="DIR",
        help="write the results folder (tables, report.html, plots) to DIR",
    )
    results.add_argument(
        "--optuna-storage",
        metavar="URL",
        help="also mirror the sweep into an Optuna study (created, or brought up to date): an "
        "RDB URL (sqlite:///sweeps.db) or a journal file path",
    )
    results.add_argument(
        "--optuna-study", metavar="NAME", help="the Optuna study's name (default: the sweep id)"
    )
    results.add_argument(
        "--follow",
        action="store_true",
        help="keep the Optuna study up to date until the sweep ends (for optuna-dashboard)",
    )
    results.add_argument(
        "--every",
        type=float,
        default=5.0,
        metavar="S",
        help="with --follow: seconds between updates (default: 5)",
    )


def run(args: argparse.Namespace) -> int:
    from smptune.results.folder import write_results
    from smptune.results.progress import ranking_table
    from smptune.results.summary import SweepResults, summarize

    if args.optuna_study is not None and not args.optuna_storage:
        raise ConfigError("--optuna-study: needs --optuna-storage URL")
    if args.follow and not args.optuna_storage:
        raise ConfigError("--follow: needs --optuna-storage URL")
    check_every(args.every)
    store = broker.store(args)
    sweep = store.get_sweep(args.sweep, full=True)
    results = SweepResults.from_dict(sweep.results) if sweep.results else None
    results = results or summarize(store, args.sweep)
    config = sweep.config
    exported = None
    if args.optuna_storage is not None:
        from smptune.results.optuna_export import mirror_study

        study = args.optuna_study or args.sweep
        if args.follow:
            return follow(args, store, study)
        done = mirror_study(results, config, args.optuna_storage, study)
        where = mask_url(args.optuna_storage)
        exported = (
            f"Optuna study {study!r}: {done.total} trials in {where} ({done.added} added, "
            f"{done.updated} brought up to date)"
        )
        if args.json:
            print(exported, file=sys.stderr)
    if args.out:
        _copy_predictions(sweep, args.out)
        write_results(
            results,
            config,
            args.out,
            sweep.test_metrics,
            splits=sweep.splits,
        )
    if args.json:
        print(
            json.dumps(
                {**results.to_dict(), "status": sweep.status, "test_metrics": sweep.test_metrics},
                indent=2,
                default=str,
            )
        )
        return ExitCode.OK
    console = output.console()
    console.print(ranking_table(results, limit=50))
    if results.pareto is not None:
        console.print(results.pareto.front_line(), markup=False)
    if results.no_best:
        console.print(f"sweep {args.sweep}: {results.no_best}", markup=False)
    if sweep.test_metrics:
        from smptune.results.labels import metrics_text

        shown = metrics_text(sweep.test_metrics, sweep.config.class_names)
        console.print(f"test metrics: {shown}", markup=False)
        output.print_final_figures(console, results, sweep.test_metrics)
    if args.out:
        console.print(f"results written to {args.out} (report: {args.out / 'report.html'})")
    if exported:
        console.print(exported, markup=False)
    return ExitCode.OK


def check_every(every: float) -> None:
    """``--every`` is a sane number of seconds between two mirrorings."""
    if not 0.1 <= every <= 3600:
        raise ConfigError(f"--every: must be between 0.1 and 3600 seconds, got {every:g}")


def follow(args: argparse.Namespace, store: Any, study: str, stop: Any = None) -> int:
    """Mirror the sweep into the Optuna study until it ends, a line per change."""
    from smptune.results.optuna_export import follow as follow_study

    where = mask_url(args.optuna_storage)
    print(
        f"mirroring sweep {args.sweep} into Optuna study {study!r} in {where} every "
        f"{args.every:g} s until it ends (Ctrl-C stops mirroring, not the sweep)",
        file=sys.stderr,
        flush=True,
    )

    def report(done: Any) -> None:
        print(
            f"Optuna study {study!r}: {done.total} trials ({done.running} running; "
            f"{done.added} added, {done.updated} brought up to date)",
            flush=True,
        )

    last = follow_study(store, args.sweep, args.optuna_storage, study, args.every, report, stop)
    status = store.get_sweep(args.sweep).status
    print(f"sweep {args.sweep} {status.value}: {last.total} trials in the study", flush=True)
    return ExitCode.OK


def _copy_predictions(sweep: FullSweepRecord, out: Path) -> None:
    """Put the final model's sample predictions into ``out/final/`` for the report: from the
    sweep's ``predictions_png`` (base64), else from its final folder when this machine sees it."""
    import base64
    import binascii
    import shutil

    target = out / "final" / "predictions.png"
    source = Path(sweep.final_model_dir or "") / "predictions.png"
    if sweep.predictions_png:
        try:
            data = base64.b64decode(sweep.predictions_png, validate=True)
        except (binascii.Error, ValueError):
            return
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    elif sweep.final_model_dir and source.is_file() and not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
