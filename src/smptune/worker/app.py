"""The Celery app and every setting, in one place: workers, producer and Flower load this.

Every process must agree on ``broker_transport_options`` (Redis uses the shortest
visibility timeout any client sets), so they are built here from the environment alone.
"""

from __future__ import annotations

import gc
import importlib
import os
from typing import Any

from celery import Celery
from celery.signals import worker_init, worker_process_init

from smptune.messages import DEFAULT_QUEUE  # re-exported: smptune.worker.app.DEFAULT_QUEUE
from smptune.retries import DELIVERY_SETTINGS, VISIBILITY_TIMEOUT_S
from smptune.trainable import PRELOAD_ENV
from smptune.urls import BROKER_ENV, tls_options
from smptune.worker.host_share import apply_in_child

DEFAULT_BROKER = "redis://127.0.0.1:6379/0"

#: Results (and chord counters) must outlive the longest sweep, or the chord never fires.
RESULT_EXPIRES_S = int(os.environ.get("SMPTUNE_RESULT_EXPIRES", 30 * 24 * 3600))

TRANSPORT_OPTIONS = {
    "visibility_timeout": VISIBILITY_TIMEOUT_S,
    "socket_keepalive": True,
    "health_check_interval": 10,
    "retry_on_timeout": True,
}


def configure(app: Celery, broker_url: str, send_only: bool = False) -> None:
    """Point ``app`` at ``broker_url`` (broker, result backend and sweep store alike).

    ``send_only`` is for the producer: it sends tasks and never waits on their results.
    """
    backend = broker_url
    if send_only:
        backend = f"smptune.queue.backend:SendOnlyRedisBackend+{broker_url}"
    previous = app.conf.broker_url
    app.conf.update(broker_url=broker_url, result_backend=backend)
    if previous and previous != broker_url:
        _forget_connections(app)
    tls = tls_options(broker_url)
    if tls is not None:  # rediss://: the same TLS settings for the broker and the backend
        app.conf.update(broker_use_ssl=tls, redis_backend_use_ssl=tls)


def _forget_connections(app: Celery) -> None:
    """Drop the connection pools and the result backend Celery built for the previous
    broker, so that the next send uses the new one (the Python API in one process may talk to
    several brokers, an embedded one per ``api.local()`` block). Celery has no public call for
    this; these are the attributes its own ``_after_fork`` resets."""
    import threading

    if app._pool is not None:
        app._pool.force_close_all()
    app._after_fork()
    app._backend_cache = None
    app._local = threading.local()


def create_app() -> Celery:
    app = Celery("smptune", include=["smptune.worker.tasks"])
    app.conf.update(
        # JSON only: pickle on a shared broker lets anyone who can write to Redis run code.
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        result_accept_content=["json"],
        event_serializer="json",
        # One trial at a time per device; a lost worker's trial goes back to the queue.
        **DELIVERY_SETTINGS,  # the retry policy's: smptune.retries
        worker_prefetch_multiplier=1,
        task_track_started=True,
        task_default_queue=DEFAULT_QUEUE,
        # Flower sees every task.
        worker_send_task_events=True,
        task_send_sent_event=True,
        broker_transport_options=TRANSPORT_OPTIONS,
        result_backend_transport_options=TRANSPORT_OPTIONS,
        redis_socket_keepalive=True,
        redis_backend_health_check_interval=10,
        result_expires=RESULT_EXPIRES_S,
        result_extended=True,
        broker_connection_retry_on_startup=True,
        broker_connection_max_retries=None,
        worker_cancel_long_running_tasks_on_connection_loss=False,
        worker_hijack_root_logger=False,
        timezone="UTC",
    )
    configure(app, os.environ.get(BROKER_ENV) or DEFAULT_BROKER)
    return app


app = create_app()


@worker_init.connect  # type: ignore[untyped-decorator]  # celery ships no types
def _preload_training(**_: Any) -> None:
    """Import the training stack in the worker's main process, so that every pool child it
    forks (the first, and each replacement) starts with it imported: ~10 s less before a
    fresh child's first step. CUDA stays uninitialised here; children initialise their own."""
    for module in filter(None, os.environ.get(PRELOAD_ENV, "").split(",")):
        importlib.import_module(module)


@worker_process_init.connect  # type: ignore[untyped-decorator]  # celery ships no types
def _take_the_workers_share(**_: Any) -> None:
    """A pool child runs on its worker's cores with torch's threads set to them (see
    :mod:`smptune.worker.host_share`)."""
    apply_in_child()


@worker_process_init.connect  # type: ignore[untyped-decorator]  # celery ships no types
def _freeze_inherited_objects(**_: Any) -> None:
    """Keep what a pool child inherits from its parent (Celery, kombu, smptune, and the
    training stack with ``--preload``) out of the cyclic collector's scans, so its
    collections, and the ``gc.collect()`` after a GPU task (``smptune.worker.tasks``), scan only
    what the child created since: tens of ms less per trial."""
    gc.freeze()
