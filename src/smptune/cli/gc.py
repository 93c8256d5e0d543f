"""``producer gc``: remove the keys of sweeps that ended longer ago than ``--older-than``."""

from __future__ import annotations

import argparse
import time

from smptune.cli import broker, output
from smptune.cli.common import Subparsers
from smptune.errors import ExitCode


def add_parser(sub: Subparsers) -> None:
    gc = broker.add_option(
        sub.add_parser(
            "gc",
            help="remove the keys of sweeps that ended longer ago than --older-than",
            description="Never touches a queued, running or retraining sweep; results "
            "folders stay. Redis runs with noeviction: keys nobody removes stay forever.",
        )
    )
    gc.add_argument(
        "--older-than",
        required=True,
        metavar="AGE",
        help="e.g. 30d, 12h, 90m: sweeps that ended (or were created, if they never ran) "
        "before now - AGE",
    )
    gc.add_argument("--dry-run", action="store_true", help="list them; remove nothing")


def run(args: argparse.Namespace) -> int:
    from smptune.config_fields import parse_duration

    age = parse_duration("--older-than", args.older_than)
    store = broker.store(args)
    cutoff = time.time() - age
    memory = store.memory_by_sweep()
    old = []
    for row in store.list_sweeps():
        sweep = store.get_sweep(row.id)
        ended = sweep.finished or sweep.finalized_at or sweep.created
        if sweep.status.terminal and ended < cutoff:
            old.append(sweep.id)
    freed = sum(memory.get(sweep_id, 0) for sweep_id in old)
    if args.dry_run:
        for sweep_id in old:
            print(f"would delete {sweep_id} ({output.human_bytes(memory.get(sweep_id, 0))})")
        print(
            f"{len(old)} sweeps ended more than {args.older_than} ago ({output.human_bytes(freed)})"
        )
        return ExitCode.OK
    keys = sum(store.delete_sweep(sweep_id) for sweep_id in old)
    print(
        f"deleted {len(old)} sweeps that ended more than {args.older_than} ago: {keys} keys, "
        f"{output.human_bytes(freed)} of Redis memory"
    )
    return ExitCode.OK
