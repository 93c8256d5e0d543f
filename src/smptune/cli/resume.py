"""``producer resume``: continue an ended or interrupted sweep; and what ``resume`` and
``extend`` share (``--time-budget``, ``--wait``, reporting what was queued)."""

from __future__ import annotations

import argparse
from typing import Any

from smptune.cli import broker, output
from smptune.cli.common import Subparsers
from smptune.errors import ExitCode


def add_parser(sub: Subparsers) -> None:
    resume = broker.add_option(
        sub.add_parser(
            "resume",
            help="continue an ended sweep: its cancelled, skipped and stopped trials run "
            "again from their first unrecorded fold (or epoch, from a checkpoint); ranked and "
            "finalized again (a sweep whose retrain-and-test failed is retrained); or an "
            "interrupted one: what it lost is queued again at once",
            description="Complete and pruned trials are kept as they are. Retrain-and-test "
            "runs again only if the best trial changed (or it never ran). A sweep that still "
            "says it runs, but that no live worker holds (Redis and every worker were killed), "
            "keeps its chord: its trials that lost their worker or message are sent again.",
        )
    )
    resume.add_argument("sweep")
    resume.add_argument("--retry-failed", action="store_true", help="failed trials too")
    add_continue_options(resume)


def run(args: argparse.Namespace) -> int:
    from smptune.queue.resume import resume

    return continued(
        args,
        lambda store, app, budget: resume(
            store, app, args.sweep, time_budget_s=budget, retry_failed=args.retry_failed
        ),
    )


def add_continue_options(p: argparse.ArgumentParser) -> None:
    """``--time-budget`` and ``--wait`` of ``resume`` and ``extend``."""
    p.add_argument(
        "--time-budget",
        metavar="T",
        help="no trial starts after now + T (90m, 2h); default: no budget",
    )
    p.add_argument("--wait", action="store_true", help="show progress until it ends")


def continued(args: argparse.Namespace, action: Any) -> int:
    """Resume or extend (``action(store, app, budget)``), then report or wait."""
    from smptune.config_fields import parse_duration
    from smptune.results.progress import wait as wait_for
    from smptune.worker.app import app, configure

    budget = None if args.time_budget is None else parse_duration("--time-budget", args.time_budget)
    store = broker.store(args)
    url = broker.url(args)
    assert url is not None
    configure(app, url, send_only=True)
    done = action(store, app, budget)
    if done.interrupted and not done.trials:
        print(f"{args.sweep}: nothing was lost; its queued trials wait for workers")
    elif done.interrupted:
        print(
            f"{args.sweep}: {len(done.trials)} trials that lost their worker or message "
            f"queued again: {output.numbers(done.trials)}"
        )
    elif not done.trials:
        print(f"{args.sweep}: every trial has ended; ranking it and retraining the best again")
    else:
        how = "a new chord" if done.new_chord else "the running chord"
        print(
            f"{args.sweep}: {len(done.trials)} trials queued ({how}): {output.numbers(done.trials)}"
        )
    if not args.wait:
        return ExitCode.OK
    console = output.console()
    snap = wait_for(store, args.sweep, console)
    return output.print_outcome(console, store, args.sweep, snap)
