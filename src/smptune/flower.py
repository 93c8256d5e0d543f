"""Flower for a sweep's broker, and the task labels it shows.

Flower loads ``smptune.worker.app`` like every other process, so it reads the same
``broker_transport_options``. A trial's ``argsrepr`` (sent in the task message's headers
and in the ``task-sent``/``task-received`` events) is what Flower's *args* column shows.
"""

from __future__ import annotations

import ipaddress
import os
import sys
from collections.abc import Iterable, Mapping
from typing import Any

from smptune.errors import ConfigError
from smptune.search.distributions import param_text
from smptune.urls import BROKER_ENV

#: The parameter part of a trial's label is cut to about this many characters.
PARAMS_MAX_CHARS = 120
#: Flower reads its options from ``FLOWER_<OPTION>`` too; the login goes there, not argv.
BASIC_AUTH_ENV = "FLOWER_BASIC_AUTH"
#: The tasks page's columns: Flower's default set plus ``args``, where a trial's label is.
TASKS_COLUMNS = "name,uuid,state,args,received,runtime,worker"


def trial_argsrepr(
    sweep_id: str,
    trial: int,
    params: Mapping[str, Any] | None = None,
    names: Iterable[str] = (),
) -> str:
    """``trial 7: learning_rate=0.0012, model_arch=Unet (sweep=<id>)``.

    The parameters come first: Flower's args column is narrow, and its uuid column already
    shows sweep and trial (``<sweep>-trial-<n>``). They are shown for the searched ``names``
    that ``params`` holds (floats to 4 significant digits, cut at a parameter boundary near
    :data:`PARAMS_MAX_CHARS`); ``params`` None (an adaptive sampler chooses them when the
    trial starts) gives ``trial 7 (sweep=<id>)``.
    """
    text = ""
    if params:
        for name in names:
            if name not in params:
                continue
            item = param_text(name, params[name])
            candidate = f"{text}, {item}" if text else item
            if len(candidate) > PARAMS_MAX_CHARS:
                text = (text + ", …") if text else item[: PARAMS_MAX_CHARS - 1] + "…"
                break
            text = candidate
    return f"trial {trial}{': ' + text if text else ''} (sweep={sweep_id})"


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
