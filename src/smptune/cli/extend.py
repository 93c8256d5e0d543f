"""``producer extend``: N more trials for a sweep, running or ended."""

from __future__ import annotations

import argparse
from typing import Any

from smptune.cli import broker
from smptune.cli.common import Subparsers
from smptune.cli.resume import add_continue_options, continued
from smptune.errors import ConfigError


def add_parser(sub: Subparsers) -> None:
    extend = broker.add_option(
        sub.add_parser(
            "extend",
            help="N more trials for a sweep, running or ended; the ranking covers them all",
            description="Random search continues its seeded stream without repeating a "
            "configuration; adaptive samplers learn from every earlier trial.",
        )
    )
    extend.add_argument("sweep")
    extend.add_argument("--trials", type=int, required=True, metavar="N")
    extend.add_argument(
        "--allow-trainable",
        action="append",
        default=[],
        metavar="MODULE:OBJECT",
        help="import this trainable named in the sweep's record (beyond the built-ins and "
        "$SMPTUNE_ALLOWED_TRAINABLES), as its workers were told with workers start "
        "--allow-trainable; repeatable",
    )
    add_continue_options(extend)


def run(args: argparse.Namespace) -> int:
    from smptune.queue.resume import extend
    from smptune.trainable import BUILTIN_TRAINABLES, allowed_trainables, load_trainable

    def action(store: Any, app: Any, budget: float | None) -> Any:
        config = store.get_sweep(args.sweep).config
        # the trainable is named by the sweep's record in Redis: whoever can write there must
        # not get a module of their choosing imported here
        allowed = [*allowed_trainables(), *args.allow_trainable]
        if config.trainable not in {*BUILTIN_TRAINABLES, *allowed}:
            raise ConfigError(
                f"sweep {args.sweep}: its trainable {config.trainable!r} is not allowed on "
                f"this producer (extend it with --allow-trainable {config.trainable}, as its "
                "workers were started)"
            )
        defaults = dict(load_trainable(config.trainable, allowed=allowed).defaults)
        return extend(store, app, args.sweep, args.trials, defaults=defaults, time_budget_s=budget)

    return continued(args, action)
