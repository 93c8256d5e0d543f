"""``producer cancel``: stop a sweep (queued trials never start, running ones stop at their
next epoch boundary, the partial results are written)."""

from __future__ import annotations

import argparse
import json
from typing import Any

from smptune.cli import broker
from smptune.cli.common import Subparsers
from smptune.errors import ExitCode


def add_parser(sub: Subparsers) -> None:
    cancel = broker.add_option(
        sub.add_parser(
            "cancel",
            help="stop a sweep: queued trials never start, running ones stop at the "
            "next epoch boundary, the partial results are written",
        )
    )
    cancel.add_argument("sweep")
    cancel.add_argument("--json", action="store_true", help="what was done, as JSON")


def run(args: argparse.Namespace) -> int:
    store = broker.store(args)
    status = store.get_sweep(args.sweep).status
    if status.terminal:
        message = f"sweep {args.sweep} has already ended ({status}); nothing to cancel"
    else:
        store.request_cancel(args.sweep)
        _end_what_no_worker_can_run(store, args)
        message = (
            f"cancelling sweep {args.sweep}: queued trials will not start, running ones stop "
            "at their next epoch boundary (fold boundary if the trainable reports no epochs), "
            "then the partial results are written"
        )
    if args.json:
        outcome = {
            "sweep": args.sweep,
            "status": status.value,
            "cancel_requested": not status.terminal,
        }
        print(json.dumps(outcome))
    else:
        print(message)
    return ExitCode.OK


def _end_what_no_worker_can_run(store: Any, args: argparse.Namespace) -> None:
    """Trials waiting for a capability no live worker has go to the sweep's own queue, to be
    recorded cancelled there (see :func:`smptune.queue.routing.send_unmet_home`)."""
    if not store.get_sweep(args.sweep).config.requirements:
        return
    from smptune.queue.routing import send_unmet_home
    from smptune.worker.app import configure, create_app

    app = create_app()
    configure(app, broker.url(args) or "", send_only=True)
    send_unmet_home(store, app, args.sweep)
