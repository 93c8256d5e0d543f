"""``producer list``: the sweeps this broker knows, with their counts and Redis memory."""

from __future__ import annotations

import argparse
import json
import time

from smptune.cli import broker, output
from smptune.cli.common import Subparsers
from smptune.errors import ExitCode


def add_parser(sub: Subparsers) -> None:
    listing = broker.add_option(sub.add_parser("list", help="the sweeps this broker knows"))
    listing.add_argument("--json", action="store_true", help="the sweeps as a JSON list")


def run(args: argparse.Namespace) -> int:
    from rich.table import Table

    store = broker.store(args)
    memory = store.memory_by_sweep()
    sweeps = store.list_sweeps()
    if args.json:
        rows = [{**s.to_dict(), "redis_bytes": memory.get(s.id, 0)} for s in sweeps]
        print(json.dumps(rows, indent=2))
        return ExitCode.OK
    table = Table()
    columns = ("sweep", "name", "status", "created", "trials", "complete", "failed", "redis")
    for column in columns:
        table.add_column(column, no_wrap=column in ("sweep", "created"))
    for s in sweeps:
        created = time.strftime("%Y-%m-%d %H:%M", time.localtime(s.created))
        table.add_row(
            s.id,
            s.name,
            s.status.value,
            created,
            str(s.n_trials),
            str(s.trials_complete),
            str(s.trials_failed),
            output.human_bytes(memory.get(s.id, 0)),
        )
    console = output.console()
    console.print(table)
    console.print(
        f"{len(memory)} sweeps use {output.human_bytes(sum(memory.values()))} of Redis memory "
        f"(producer gc --older-than AGE removes old ones)"
    )
    return ExitCode.OK
