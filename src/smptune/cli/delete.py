"""``producer delete``: remove a sweep's keys from Redis (``--force``: stopping it first)."""

from __future__ import annotations

import argparse

from smptune.cli import broker, output
from smptune.cli.common import Subparsers
from smptune.errors import ExitCode


def add_parser(sub: Subparsers) -> None:
    delete = broker.add_option(
        sub.add_parser(
            "delete",
            help="remove an ended sweep's keys from Redis (its results folder stays)",
            description="With --force, a sweep in any state: it is told to stop (its running "
            "trials stop at their next epoch boundary and record nothing), and its queued "
            "trials are ignored by the workers that take them.",
        )
    )
    delete.add_argument("sweep")
    delete.add_argument(
        "--force", action="store_true", help="stop and remove it even if it has not ended"
    )


def run(args: argparse.Namespace) -> int:
    store = broker.store(args)
    sweep = store.get_sweep(args.sweep)
    live = not sweep.status.terminal and args.force
    told = []  # what runs now, held by a live worker
    if live:
        running = [n for n in store.running_numbers(sweep.id) if store.lease_exists(sweep.id, n)]
        if running:
            told.append(f"{len(running)} running trial{'' if len(running) == 1 else 's'}")
        if store.retrain_held(sweep.id):
            told.append("its retrain-and-test")
    memory = store.memory_by_sweep().get(args.sweep, 0)
    removed = store.delete_sweep(args.sweep, force=args.force)
    line = f"deleted sweep {args.sweep}" + (f" (it was {sweep.status})" if live else "")
    line += f": {removed} keys, {output.human_bytes(memory)} of Redis memory"
    if told:
        line += f"; {' and '.join(told)} told to stop (at the next epoch, recording nothing)"
    elif live:
        line += "; nothing was running"
    print(line)
    return ExitCode.OK
