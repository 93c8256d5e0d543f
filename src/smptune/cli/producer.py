"""The ``producer`` command: submit a sweep and read what it produced.

Each subcommand is a module of this package, ``smptune.cli.<name>``, with
``add_parser(subparsers)`` and ``run(args) -> int``; :data:`COMMANDS` lists them.
Exit codes: 0 ok, 1 anything else, 2 bad config or usage, 3 broker unreachable.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import traceback
from typing import Protocol, cast

from smptune.cli.broker import is_connection_error
from smptune.cli.common import Subparsers, add_common_options, add_verbose_to_commands, complete
from smptune.errors import ExitCode, SmptuneError
from smptune.urls import broker_url_from, mask_secrets

#: The subcommands, in ``producer --help`` order: each is the module ``smptune.cli.<name>``.
COMMANDS = (
    "submit",
    "status",
    "flower",
    "results",
    "cancel",
    "resume",
    "extend",
    "delete",
    "gc",
    "dashboard",
    "predict",
    "list",
)


class Subcommand(Protocol):
    """What a subcommand's module has: its parser, added to the producer's, and its run."""

    def add_parser(self, sub: Subparsers) -> None: ...

    def run(self, args: argparse.Namespace) -> int: ...


def subcommand(name: str) -> Subcommand:
    """The module of the subcommand ``name`` (one of :data:`COMMANDS`)."""
    return cast(Subcommand, importlib.import_module(f"smptune.cli.{name}"))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="producer", description="Submit cross-validated sweeps and read their results."
    )
    add_common_options(parser, "producer")
    sub = parser.add_subparsers(dest="command", required=True)
    for name in COMMANDS:
        subcommand(name).add_parser(sub)
    add_verbose_to_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    complete(parser)
    args = parser.parse_args(argv)
    try:
        return int(subcommand(args.command).run(args))
    except KeyboardInterrupt:
        print("producer: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        url = broker_url_from(getattr(args, "broker", None))
        if args.verbose:
            traceback.print_exc()
        if isinstance(exc, SmptuneError):
            message, code = str(exc), int(exc.exit_code)
        elif is_connection_error(exc):
            message = f"lost the broker: {type(exc).__name__}: {exc}"
            code = int(ExitCode.BROKER_UNREACHABLE)
        else:
            message, code = f"{type(exc).__name__}: {exc}", int(ExitCode.FAILURE)
        print(f"producer: error: {mask_secrets(message, url)}", file=sys.stderr)
        return code


if __name__ == "__main__":
    sys.exit(main())
