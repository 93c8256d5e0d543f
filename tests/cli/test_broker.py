"""The broker a producer subcommand talks to: ``--broker`` first, then the environment, each
checked; none is local mode, or an error where a broker is needed."""

from __future__ import annotations

import argparse

import pytest

from smptune.cli import broker
from smptune.errors import ConfigError
from smptune.urls import BROKER_ENV


def _args(*argv: str) -> argparse.Namespace:
    return broker.add_option(argparse.ArgumentParser()).parse_args(argv)


def test_the_option_comes_before_the_environment(monkeypatch):
    monkeypatch.setenv(BROKER_ENV, "redis://from-env:6379/0")
    assert broker.url(_args("--broker", "redis://from-option:6379/1")) == (
        "redis://from-option:6379/1"
    )
    assert broker.url(_args()) == "redis://from-env:6379/0"


def test_no_broker_is_local_mode_or_an_error_where_one_is_needed(monkeypatch):
    monkeypatch.delenv(BROKER_ENV, raising=False)
    assert broker.url(_args()) is None
    with pytest.raises(ConfigError, match=f"no broker: pass --broker URL or set {BROKER_ENV}"):
        broker.store(_args())


def test_a_malformed_url_is_named_by_where_it_came_from(monkeypatch):
    with pytest.raises(ConfigError, match="--broker"):
        broker.url(_args("--broker", "notaurl"))
    monkeypatch.setenv(BROKER_ENV, "http://127.0.0.1:1/0")
    with pytest.raises(ConfigError, match=BROKER_ENV):
        broker.url(_args())
