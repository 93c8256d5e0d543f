"""``producer flower``: Flower (the web UI of tasks and workers) on a sweep's broker.

Flower loads ``smptune.worker.app`` like every other process, so it reads the same
``broker_transport_options``. The trials' labels it shows are :mod:`smptune.task_labels`'.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import sys

from smptune.cli import broker
from smptune.cli.common import Subparsers
from smptune.errors import ConfigError, ExitCode
from smptune.urls import BROKER_ENV, mask_url

#: Flower reads its options from ``FLOWER_<OPTION>`` too; the login goes there, not argv.
BASIC_AUTH_ENV = "FLOWER_BASIC_AUTH"
#: The tasks page's columns: Flower's default set plus ``args``, where a trial's label is.
TASKS_COLUMNS = "name,uuid,state,args,received,runtime,worker"


def add_parser(sub: Subparsers) -> None:
    flower = broker.add_option(
        sub.add_parser(
            "flower",
            help="start Flower (web UI of tasks and workers) on this broker",
            description="Runs `celery --app smptune.worker.app flower`, so Flower loads the "
            "same transport options as the workers. Listening beyond this machine "
            "(--address 0.0.0.0) needs --basic-auth.",
        )
    )
    flower.add_argument("--port", type=int, default=5555, help="default: 5555")
    flower.add_argument("--address", default="127.0.0.1", help="default: 127.0.0.1")
    flower.add_argument(
        "--basic-auth",
        metavar="USER:PASSWORD",
        help="ask for this login (comma-separate several); default: $FLOWER_BASIC_AUTH",
    )


def run(args: argparse.Namespace) -> int:
    from smptune.queue.store import connect

    url = broker.url(args)
    if url is None:
        raise ConfigError(f"flower: no broker: pass --broker URL or set {BROKER_ENV}")
    basic_auth = args.basic_auth or os.environ.get(BASIC_AUTH_ENV) or None
    check_options(args.port, args.address, basic_auth)
    connect(url).close()  # an unreachable broker: exit 3 now, not a Flower that retries
    login = "with a login" if basic_auth else "without a login"
    print(
        f"Flower on http://{args.address}:{args.port}/ ({login}) for {mask_url(url)}",
        file=sys.stderr,
    )
    exec_flower(url, args.port, args.address, basic_auth)
    return ExitCode.FAILURE  # not reached: exec_flower replaces this process


def _is_loopback(address: str) -> bool:
    if address in ("localhost", ""):
        return address == "localhost"
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


def flower_argv(port: int, address: str) -> list[str]:
    """``celery --app smptune.worker.app flower`` on ``address:port``, run by this Python."""
    return [
        sys.executable,
        "-m",
        "celery",
        "--app",
        "smptune.worker.app",
        "flower",
        f"--port={port}",
        f"--address={address}",
        f"--tasks_columns={TASKS_COLUMNS}",
    ]


def flower_env(broker_url: str, basic_auth: str | None) -> dict[str, str]:
    """This environment with the broker set (``smptune.worker.app`` reads it) and the login
    in :data:`BASIC_AUTH_ENV`, so that it is not on Flower's command line."""
    env = dict(os.environ)
    env[BROKER_ENV] = broker_url
    if basic_auth:
        env[BASIC_AUTH_ENV] = basic_auth
    return env


def check_options(port: int, address: str, basic_auth: str | None) -> None:
    """Raise :class:`ConfigError` for a bad port or login, or a Flower that would listen
    beyond this machine without a login (Flower can revoke and terminate tasks)."""
    if not 0 < port < 65536:
        raise ConfigError(f"--port: must be 1-65535, got {port}")
    if basic_auth is not None:
        for login in basic_auth.split(","):
            user, sep, password = login.partition(":")
            if not sep or not user or not password:
                raise ConfigError(
                    f"--basic-auth (or ${BASIC_AUTH_ENV}): expected USER:PASSWORD with neither "
                    "empty (comma-separated for several logins)"
                )
    if basic_auth is None and not _is_loopback(address):
        raise ConfigError(
            f"--address {address or '(every interface)'}: Flower would be reachable from other "
            "machines without a login; pass --basic-auth USER:PASSWORD"
        )


def exec_flower(broker_url: str, port: int, address: str, basic_auth: str | None) -> None:
    """Replace this process with Flower (signals then reach Flower directly)."""
    check_options(port, address, basic_auth)
    argv = flower_argv(port, address)
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, argv, flower_env(broker_url, basic_auth))
