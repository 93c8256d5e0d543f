"""``producer dashboard``: optuna-dashboard on an Optuna study that follows a sweep as it
runs."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from smptune.cli import broker
from smptune.cli.common import Subparsers
from smptune.cli.results import check_every, follow
from smptune.errors import ConfigError, ExitCode, SmptuneError

DEFAULT_DASHBOARD_STORAGE = "sqlite:///smptune-optuna.db"


def add_parser(sub: Subparsers) -> None:
    dashboard = broker.add_option(
        sub.add_parser(
            "dashboard",
            help="optuna-dashboard following a sweep: the sweep is mirrored into an Optuna "
            "study as it runs",
            description="Mirrors the sweep into --optuna-storage every --every seconds until "
            "it ends and runs `optuna-dashboard` (pip install optuna-dashboard) on that "
            "storage; the dashboard stays up after the sweep ends, until Ctrl-C.",
        )
    )
    dashboard.add_argument("sweep")
    dashboard.add_argument(
        "--optuna-storage",
        default=DEFAULT_DASHBOARD_STORAGE,
        metavar="URL",
        help=f"an RDB URL or a journal file path (default: {DEFAULT_DASHBOARD_STORAGE})",
    )
    dashboard.add_argument(
        "--optuna-study", metavar="NAME", help="the study's name (default: the sweep id)"
    )
    dashboard.add_argument("--port", type=int, default=8080, help="default: 8080")
    dashboard.add_argument("--address", default="127.0.0.1", help="default: 127.0.0.1")
    dashboard.add_argument(
        "--every", type=float, default=5.0, metavar="S", help="seconds between updates"
    )


def run(args: argparse.Namespace) -> int:
    import shutil
    import subprocess

    from smptune.results.optuna_export import open_storage

    check_every(args.every)
    if not 0 < args.port < 65536:
        raise ConfigError(f"--port: must be between 1 and 65535, got {args.port}")
    # on PATH, else installed beside this Python (a virtualenv that is not activated)
    executable = shutil.which("optuna-dashboard") or shutil.which(
        "optuna-dashboard", path=str(Path(sys.executable).parent)
    )
    if executable is None:
        raise ConfigError(
            "dashboard: optuna-dashboard is not installed (pip install optuna-dashboard); "
            f"or mirror the sweep with producer results {args.sweep} --optuna-storage URL "
            "--follow and run optuna-dashboard URL yourself"
        )
    store = broker.store(args)
    store.get_sweep(args.sweep)  # an unknown sweep: exit 2 before anything starts
    open_storage(args.optuna_storage)  # a bad storage: exit 2 likewise
    study = args.optuna_study or args.sweep
    command = [executable, args.optuna_storage, "--host", args.address, "--port", str(args.port)]
    server = subprocess.Popen(command, stdin=subprocess.DEVNULL)
    print(
        f"optuna-dashboard on http://{args.address}:{args.port}/ (study {study!r})",
        file=sys.stderr,
        flush=True,
    )
    try:
        follow(args, store, study, stop=lambda: server.poll() is not None)
        if server.poll() is None:
            print("the sweep has ended; the dashboard stays up until Ctrl-C", file=sys.stderr)
            server.wait()
    finally:
        if server.poll() is None:
            server.terminate()
            try:
                server.wait(10)
            except subprocess.TimeoutExpired:
                server.kill()
    if server.returncode not in (0, None, -15):
        raise SmptuneError(f"dashboard: optuna-dashboard exited with code {server.returncode}")
    return ExitCode.OK
