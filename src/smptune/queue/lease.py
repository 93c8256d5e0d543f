"""Trial leases: at most one live copy of a trial runs, and a lost one is noticed fast.

A running trial holds ``smptune:sweep:{id}:lease:{n}`` with a TTL (``SMPTUNE_LEASE_TTL``,
30 s by default), renewed by a heartbeat thread every third of it. The value names the
holder (``host:pid:token``), so a copy on the same host can take over at once from a
holder process that is gone, and any copy can take over once the lease has expired.
"""

from __future__ import annotations

import logging
import os
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import cast

import redis

from smptune.queue.scripts import LEASE_RELEASE, LEASE_RENEW, LEASE_STEAL, LEASE_TAKE

log = logging.getLogger("smptune.lease")

LEASE_TTL_ENV = "SMPTUNE_LEASE_TTL"


def lease_ttl_s() -> float:
    """The lease TTL every process of a fleet uses (``SMPTUNE_LEASE_TTL``, default 30 s)."""
    return float(os.environ.get(LEASE_TTL_ENV, 30))


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass
class Lease:
    """One trial's lease, held (or wanted) by this process."""

    client: redis.Redis
    key: str
    host: str
    running_key: str
    finished_key: str
    member: str
    ttl_s: float = field(default_factory=lease_ttl_s)
    value: str = ""
    lost: threading.Event = field(default_factory=threading.Event)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __post_init__(self) -> None:
        self.value = f"{self.host}:{os.getpid()}:{secrets.token_hex(6)}"

    @property
    def _ttl_ms(self) -> int:
        return int(self.ttl_s * 1000)

    def try_acquire(self) -> bool:
        """Take the lease if it is free or its holder on this host is gone; taken, its work
        is marked running (:attr:`running_key`) in the same step."""
        if self._take():
            return True
        # The store's client decodes responses (decode_responses=True); redis's types cannot
        # tell that from a plain ``redis.Redis`` and give ``bytes | str``.
        holder = cast("str | None", self.client.get(self.key))
        if holder is None:
            return self._take()
        host, _, rest = holder.partition(":")
        pid = rest.partition(":")[0]
        if host == self.host and pid.isdigit() and not pid_alive(int(pid)):
            log.info("taking over %s from dead process %s on this host", self.key, pid)
            keys = (self.key, self.running_key)
            args = (holder, self.value, self._ttl_ms, self.member)
            return bool(self.client.eval(LEASE_STEAL, 2, *keys, *args))
        return False

    def _take(self) -> bool:
        keys = (self.key, self.running_key, self.finished_key)
        return bool(self.client.eval(LEASE_TAKE, 3, *keys, self.value, self._ttl_ms, self.member))

    def acquire(self, wait_s: float, is_done: Callable[[], bool]) -> bool:
        """Try for up to ``wait_s`` seconds; give up early once ``is_done()`` is true."""
        deadline = time.monotonic() + wait_s
        while True:
            if self.try_acquire():
                return True
            if is_done() or time.monotonic() >= deadline:
                return False
            time.sleep(min(1.0, self.ttl_s / 10))

    def renew(self) -> bool:
        """Extend the lease; False (and :attr:`lost` set) if another holder has it."""
        ok = bool(
            self.client.eval(
                LEASE_RENEW,
                3,
                self.key,
                self.running_key,
                self.finished_key,
                self.value,
                self._ttl_ms,
                self.member,
            )
        )
        if not ok:
            self.lost.set()
        return ok

    def _beat(self) -> None:
        interval = self.ttl_s / 3
        while not self._stop.wait(interval):
            try:
                if not self.renew():
                    log.warning("lease %s was taken by another copy", self.key)
                    return
            except (redis.RedisError, OSError) as exc:  # Redis away: the TTL decides
                log.warning("cannot renew lease %s: %s", self.key, exc)

    def start_heartbeat(self) -> None:
        self._thread = threading.Thread(target=self._beat, name="smptune-lease", daemon=True)
        self._thread.start()

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        try:
            self.client.eval(LEASE_RELEASE, 1, self.key, self.value)
        except (redis.RedisError, OSError) as exc:
            log.warning("cannot release lease %s: %s (it expires by itself)", self.key, exc)
