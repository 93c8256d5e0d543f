"""``producer status``: a sweep's progress (who runs what, trials done, best so far, ETA),
once or with ``--wait`` until it ends."""

from __future__ import annotations

import argparse
import json

from smptune.cli import broker, output
from smptune.cli.common import Subparsers
from smptune.errors import ExitCode


def add_parser(sub: Subparsers) -> None:
    status = broker.add_option(
        sub.add_parser(
            "status",
            help="progress of a sweep: who runs what, trials done, best so far, ETA",
            description="The ETA comes from the measured run (fold) times and the number of "
            "workers busy. With --wait: show progress until the sweep ends; exit 0 if it "
            "ended done, 1 if it failed or was cancelled.",
        )
    )
    status.add_argument("sweep")
    status.add_argument("--json", action="store_true", help="the snapshot as JSON")
    status.add_argument("--wait", action="store_true", help="poll until the sweep ends")


def run(args: argparse.Namespace) -> int:
    from smptune.results.progress import snapshot, status_lines
    from smptune.results.progress import wait as wait_for

    store = broker.store(args)
    snap = snapshot(store, args.sweep)
    if args.wait:
        snap = wait_for(store, args.sweep, output.console(stderr=args.json))
    if args.json:
        print(json.dumps(snap.to_dict(), indent=2))
    else:
        console = output.console()
        for line in status_lines(snap):
            console.print(line, markup=False)
    if args.wait and snap.status.value != "done":
        return ExitCode.FAILURE
    return ExitCode.OK
