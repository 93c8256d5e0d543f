"""The broker a ``producer`` subcommand talks to: ``--broker``, its URL, its store, and
whether an error means it was lost."""

from __future__ import annotations

import argparse
from typing import Any

from smptune.errors import ConfigError
from smptune.urls import BROKER_ENV, broker_url_from, check_broker_url


def add_option(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """``p`` with the ``--broker URL`` option."""
    p.add_argument("--broker", help=f"Redis URL (default: ${BROKER_ENV})")
    return p


def url(args: argparse.Namespace) -> str | None:
    """``--broker``, else ``$SMPTUNE_BROKER_URL``, checked; None for neither (local mode)."""
    address = broker_url_from(args.broker)
    if address is not None:
        check_broker_url(address, "--broker" if args.broker else BROKER_ENV)
    return address


def store(args: argparse.Namespace) -> Any:
    """The :class:`~smptune.queue.store.SweepStore` on the broker ``args`` name;
    :class:`ConfigError` if they name none."""
    from smptune.queue.store import SweepStore

    address = url(args)
    if address is None:
        raise ConfigError(f"no broker: pass --broker URL or set {BROKER_ENV}")
    return SweepStore.from_url(address)


def is_connection_error(exc: BaseException) -> bool:
    """A redis-py or kombu connection failure raised after the first successful PING."""
    from kombu.exceptions import OperationalError
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import TimeoutError as RedisTimeoutError

    return isinstance(exc, OperationalError | RedisConnectionError | RedisTimeoutError)
