"""The exception hierarchy and the exit codes every command uses."""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """Process exit codes of the ``producer`` and ``workers`` commands."""

    OK = 0
    FAILURE = 1
    USAGE = 2
    BROKER_UNREACHABLE = 3


class SmptuneError(Exception):
    """Root of every error smptune raises on purpose."""

    exit_code: ExitCode = ExitCode.FAILURE


class ConfigError(SmptuneError):
    """A sweep config, a CLI argument or a data folder is invalid."""

    exit_code = ExitCode.USAGE


class BrokerError(SmptuneError):
    """The broker (Redis) cannot be reached or refused the connection."""

    exit_code = ExitCode.BROKER_UNREACHABLE


class TrialError(SmptuneError):
    """A single trial failed; the sweep goes on without it."""


class SweepNotFoundError(SmptuneError):
    """No sweep with the given id is recorded in the store."""

    exit_code = ExitCode.USAGE


class SweepConflictError(SmptuneError):
    """Another writer changed the sweep first (the same id recorded, a racing extend or
    resume); nothing of this command was written, so running it again is safe."""
