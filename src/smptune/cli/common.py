"""What the ``producer`` and ``workers`` commands share: ``--version``, ``-v`` before or after
the subcommand, help text from docstrings, and shell completion."""

from __future__ import annotations

import argparse
import os
import re
from typing import TypeAlias

from smptune import __version__

VERBOSE_HELP = "tracebacks on errors"

#: What ``add_subparsers`` returns: each subcommand's ``add_parser`` adds its parser to it.
Subparsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


def add_common_options(parser: argparse.ArgumentParser, prog: str) -> None:
    """``--version`` and ``-v/--verbose`` on the command itself."""
    parser.add_argument("--version", action="version", version=f"{prog} (smptune) {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help=VERBOSE_HELP)


def add_verbose_to_commands(subparsers: Subparsers) -> None:
    """``-v`` also after the subcommand (``producer status X -v``); a subcommand that is not
    given it leaves the command's own value alone."""
    for command in subparsers.choices.values():
        command.add_argument(
            "-v", "--verbose", action="store_true", default=argparse.SUPPRESS, help=VERBOSE_HELP
        )


def plain(text: str) -> str:
    """A docstring's reST as terminal text: ````workers```` and ``:mod:`x``` lose their
    markup."""
    return re.sub(r":\w+:`([^`]+)`", r"\1", re.sub(r"``(.+?)``", r"\1", text))


def complete(parser: argparse.ArgumentParser) -> None:
    """Answer the shell's completion request, if this run is one (argcomplete's protocol:
    ``eval "$(register-python-argcomplete producer)"`` in the shell's startup file). Nothing
    is imported otherwise."""
    if "_ARGCOMPLETE" not in os.environ:
        return
    import argcomplete

    argcomplete.autocomplete(parser)
