"""Handing bill runs to the Celery workers: the task names, the broker, enqueueing.

What any process that sends work to the workers needs (the worker itself, ``invoicer
enqueue``, the API's Celery queue, the reconciler), without importing the worker: the
public task names a billing system in any language sends, the broker settings every
Celery app of ours shares (JSON only, no result backend, one queue), and a small
:class:`Broker` client over them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from celery import Celery

from invoicer.ledger import Ledger
from invoicer.runs.sources import source_url
from invoicer.settings import Settings

__all__ = ["QUEUE", "TASK_BILL_RUN", "TASK_CHUNK", "TASK_CLOSE_PRINT", "TASK_NAMES",
           "TASK_RECONCILE", "TASK_RECORD", "TASK_SEND_WEBHOOKS", "Broker", "Send", "broker_kind",
           "client_config", "enqueue"]

log = logging.getLogger(__name__)

TASK_BILL_RUN = "invoicer.bill_run"
"""``bill_run(source, run_id=None)``: plan a run of a JSON Lines file and enqueue it."""
TASK_CHUNK = "invoicer.process_chunk"
"""``process_chunk(run_id, seq)``: render, archive, record and deliver one chunk."""
TASK_RECORD = "invoicer.process_record"
"""``process_record(source)``: one record kept in a file or an S3 object."""
TASK_RECONCILE = "invoicer.reconcile"
"""``reconcile()``: re-enqueue what a dead worker left behind."""
TASK_CLOSE_PRINT = "invoicer.close_print_batches"
"""``close_print_batches(seal_open=False)``: join, seal and close print batches."""
TASK_SEND_WEBHOOKS = "invoicer.send_webhooks"
"""``send_webhooks()``: send the due events of the webhooks outbox."""
TASK_NAMES = (TASK_BILL_RUN, TASK_CHUNK, TASK_RECORD, TASK_RECONCILE)

QUEUE = "invoicer"
"""The one task queue."""

Send = Callable[..., None]
"""``send(task_name, args=(), **options)``: put a task on the queue."""


def broker_kind(url: str) -> str:
    """``redis`` or ``amqp`` (``rediss``/``amqps``/``pyamqp`` included)."""
    scheme = urlsplit(url).scheme
    if scheme in ("redis", "rediss"):
        return "redis"
    if scheme in ("amqp", "amqps", "pyamqp"):
        return "amqp"
    raise ValueError(f"INVOICER_BROKER_URL must be redis://… or amqp://…, not {scheme}://")


def client_config(settings: Settings) -> dict[str, Any]:
    """The Celery settings every app of ours shares, senders and workers alike."""
    transport: dict[str, Any] = {}
    if broker_kind(settings.broker_url) == "redis":
        # How long Redis keeps a delivered, unacknowledged message before handing it to
        # another worker: checked at start-up to exceed the longest a task may hold it.
        transport["visibility_timeout"] = settings.broker_visibility_timeout
    return {
        "broker_url": settings.broker_url,
        "broker_transport_options": transport,
        "broker_connection_retry_on_startup": True,
        # JSON only: task arguments are identifiers, and no pickle from the wire.
        "task_serializer": "json",
        "accept_content": ["json"],
        # Outcomes live in the ledger; a result backend would be a second truth.
        "task_ignore_result": True,
        "result_backend": None,
        "task_default_queue": QUEUE,
        "task_create_missing_queues": True,
        # Task events, so that Flower (or `celery events`) shows tasks as they are
        # sent, started, retried and finished; task arguments are identifiers only.
        "worker_send_task_events": True,
        "task_send_sent_event": True,
    }


class Broker:
    """Sends tasks to the workers and reads the queue's depth, over a Celery app.

    ``Broker(app)`` takes a ready app (the worker's own); ``Broker.from_settings``
    makes a sending-only client on ``INVOICER_BROKER_URL``.
    """

    def __init__(self, app: Celery) -> None:
        self.app = app

    @classmethod
    def from_settings(cls, settings: Settings) -> Broker:
        """A client app with :func:`client_config`."""
        app = Celery("invoicer-client")
        app.conf.update(client_config(settings))
        return cls(app)

    def send(self, name: str, args: tuple = (), **options: Any) -> None:
        """Put task ``name`` with ``args`` on the queue."""
        self.app.send_task(name, args=args, **options)

    def ping(self, timeout: float = 3.0) -> None:
        """Connect to the broker once (readiness probes); raises if it cannot."""
        with self.app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, interval_start=0, interval_step=0,
                                   timeout=timeout)

    def queue_depth(self, queue: str = QUEUE) -> int:
        """Messages waiting in the task queue (not those held by workers); 0 when the
        queue does not exist (a Redis list vanishes when empty, and after a restart)."""
        try:
            with self.app.connection_for_write() as conn:
                return int(conn.default_channel.queue_declare(queue=queue, passive=True)
                           .message_count)
        except Exception as exc:  # NOT_FOUND on both brokers: nothing is waiting
            log.debug("queue %s: %s", queue, exc)
            return 0


def enqueue(source: str, ledger: Ledger, send: Send) -> int:
    """Open a run for ``source`` (path or URL, kept as its URL) and send its
    coordinating task; returns the run id."""
    url = source_url(source)
    run_id = ledger.runs.start(url)
    send(TASK_BILL_RUN, (url, run_id))
    return run_id
