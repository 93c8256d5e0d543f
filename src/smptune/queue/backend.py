"""A Redis result backend for processes that send tasks but never wait on their results.

Celery's Redis backend subscribes to a pub/sub channel for every task a process sends, so
that ``AsyncResult.get()`` can be woken; the producer follows sweeps through the sweep
store instead, and a 10,000-trial chord would otherwise open 10,000 subscriptions.
"""

from __future__ import annotations

from typing import Any

from celery.backends.redis import RedisBackend


class SendOnlyRedisBackend(RedisBackend):  # type: ignore[misc]  # celery ships no types
    """Stores and reads results like :class:`RedisBackend`; subscribes to nothing."""

    def on_task_call(self, producer: Any, task_id: str) -> None:
        return None

    def add_pending_result(
        self, result: Any, weak: bool = False, start_drainer: bool = True
    ) -> Any:
        return result

    def remove_pending_result(self, result: Any) -> Any:
        return result
