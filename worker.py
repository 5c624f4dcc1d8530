"""Celery workers: the bill run on as many machines as needed.

    celery -A invoicer.worker worker            # a worker: one process per core
    celery -A invoicer.worker beat              # the reconciler's clock (one per deployment)

The Celery app is configured from the service's settings (``INVOICER_BROKER_URL``:
``redis://…`` or ``amqp://…``). Tasks are thin adapters over the bill-run model
(``invoicer.runs``: the same planning, chunks and counts as the CLI's runs) and the
workflows; their public names are what a billing system in any language sends
(``runs.broker``, docs/scaling-out.md):

    invoicer.bill_run(source, run_id=None)   split a JSON Lines file (path, file:// or
                                             s3:// URL) into chunks and enqueue them
    invoicer.process_chunk(run_id, seq)      render, archive, record and deliver one chunk
    invoicer.process_record(source)          one record kept in a file or an S3 object
    invoicer.reconcile()                     re-enqueue what a dead worker left behind
    invoicer.send_webhooks()                 send the webhooks outbox's due events

Task arguments are identifiers (run id, chunk number, source URL), never personal
data: the records stay in their file or object, and workers read the byte range a
chunk names. Log lines are filtered so that phone numbers and e-mail addresses never
reach a log (:class:`~invoicer.logs.MaskPersonalData`), as JSON lines or text
(``INVOICER_LOG_FORMAT``).

Exactly once comes from the ledger, not from the broker: brokers deliver at least once
(a worker killed mid-task, a broker restarted, a reconciler re-enqueueing a chunk), and
every step a record goes through is idempotent (unique invoice numbers and claim,
create-only archive, one delivery row per channel moved by compare-and-set).
"""

from __future__ import annotations

import hashlib
import logging
import os
import sys
import time
from datetime import timedelta
from typing import Any

from celery import Celery, signals
from celery.exceptions import SoftTimeLimitExceeded
from prometheus_client import multiprocess as prometheus_multiprocess
from prometheus_client import start_http_server

from invoicer import backends, longlived, metrics
from invoicer.delivery.errors import PermanentDeliveryError, TransientDeliveryError
from invoicer.delivery.links import WeakSecretError, redact_tokens_in_logs
from invoicer.delivery.webhooks import WebhookPoster
from invoicer.logs import formatter as log_formatter
from invoicer.logs import install_log_masking, mask
from invoicer.pipeline import Services
from invoicer.runs import ChunkNotFinished, plan, reconcile, run_chunk, source_url
from invoicer.runs.broker import (
    TASK_BILL_RUN,
    TASK_CHUNK,
    TASK_CLOSE_PRINT,
    TASK_RECONCILE,
    TASK_RECORD,
    TASK_SEND_WEBHOOKS,
    Broker,
    broker_kind,
    client_config,
)
from invoicer.runs.sources import read_range, size
from invoicer.settings import Settings, get_settings
from invoicer.workflows import printing
from invoicer.workflows.webhooks import send_due

__all__ = ["app", "celery_config", "check_startup", "mask", "redelivery_problems",
           "serve_metrics", "services"]

log = logging.getLogger("invoicer.worker")

#: Slack between the longest a worker may hold a message unacknowledged and the
#: broker's redelivery window: clocks, a slow ack, a busy event loop.
REDELIVERY_MARGIN = 30


# ---------------------------------------------------------------------------- config


def redelivery_window(settings: Settings) -> int:
    """Seconds after which the broker hands an unacknowledged message to another worker."""
    if broker_kind(settings.broker_url) == "redis":
        return settings.broker_visibility_timeout
    return settings.broker_consumer_timeout


def redelivery_problems(settings: Settings) -> list[str]:
    """Why this configuration could run a task twice at the same time (empty: it cannot).

    With late acknowledgement a message stays unacknowledged while its task runs, and
    also while a retry waits for its countdown (the worker holds it until then). If the
    broker's redelivery window (Redis ``visibility_timeout``, RabbitMQ
    ``consumer_timeout``) is shorter than that, the broker gives the message to a second
    worker while the first is still on it. The reconciler must likewise wait past the
    time limit before it calls a chunk abandoned.
    """
    problems = []
    try:
        kind = broker_kind(settings.broker_url)
    except ValueError as exc:
        return [str(exc)]
    window = redelivery_window(settings)
    hold = settings.task_time_limit + settings.retry_backoff_max
    name = ("INVOICER_BROKER_VISIBILITY_TIMEOUT (Redis visibility_timeout)" if kind == "redis"
            else "INVOICER_BROKER_CONSUMER_TIMEOUT (RabbitMQ consumer_timeout)")
    if settings.task_time_limit <= 0:
        problems.append("INVOICER_TASK_TIME_LIMIT must be positive: without a hard limit "
                        "a stuck task outlives any redelivery window")
    if window < hold + REDELIVERY_MARGIN:
        problems.append(
            f"{name} is {window} s, but a task may hold its message for up to "
            f"{hold} s (INVOICER_TASK_TIME_LIMIT {settings.task_time_limit} s + "
            f"INVOICER_RETRY_BACKOFF_MAX {settings.retry_backoff_max} s) plus a "
            f"{REDELIVERY_MARGIN} s margin: the broker would redeliver a task that is "
            f"still running. Raise the window to at least {hold + REDELIVERY_MARGIN} s "
            "or lower the time limit.")
    stale = settings.effective_stale_after()
    if stale <= hold:
        problems.append(
            f"INVOICER_STALE_AFTER is {stale} s, not more than {hold} s "
            f"(INVOICER_TASK_TIME_LIMIT + INVOICER_RETRY_BACKOFF_MAX): the reconciler "
            "would re-enqueue chunks that are still running or about to retry.")
    return problems


def celery_config(settings: Settings) -> dict[str, Any]:
    """The worker's Celery settings, each chosen on purpose (docs/scaling-out.md): the
    ones every sender shares (:func:`~runs.broker.client_config`) and the worker's."""
    return {
        **client_config(settings),
        # Acknowledge after the task ran, not when it arrived: a worker that dies
        # mid-chunk leaves the message to be delivered again, and the ledger makes the
        # second run finish the first one's work without doubling any of it.
        "task_acks_late": True,
        # A pool process killed under a task (OOM killer, SIGKILL) requeues the message
        # instead of acknowledging it as failed.
        "task_reject_on_worker_lost": True,
        # A task that raised (retries used up) or hit its time limit is acknowledged:
        # its chunk stays unfinished in the ledger and the reconciler re-enqueues it
        # later; requeueing at once could spin on a poison chunk.
        "task_acks_on_failure_or_timeout": True,
        # One message per process: a chunk renders for seconds, and a prefetched message
        # would wait in a busy worker (its redelivery clock running) while another
        # worker sits idle.
        "worker_prefetch_multiplier": 1,
        # Limits below the broker's redelivery window (checked at start-up). The soft
        # limit lets a chunk hand itself back to the queue before the hard kill.
        "task_time_limit": settings.task_time_limit,
        "task_soft_time_limit": max(1, int(settings.task_time_limit * 0.9)),
        # On a lost broker connection RabbitMQ requeues unacknowledged messages at once;
        # cancel our copies rather than run them twice side by side.
        "worker_cancel_long_running_tasks_on_connection_loss": True,
        # Memory: a 100,000-CDR record can grow a process; recycle now and then.
        "worker_max_tasks_per_child": 1000,
        "worker_hijack_root_logger": True,
        "beat_schedule": {
            "invoicer-reconcile": {"task": TASK_RECONCILE,
                                   "schedule": float(settings.reconcile_every)},
            **_print_schedule(settings),
            **({"invoicer-send-webhooks": {"task": TASK_SEND_WEBHOOKS,
                                           "schedule": float(settings.webhook_send_every)}}
               if settings.webhook_send_every else {}),
        },
    }


def _print_schedule(settings: Settings) -> dict[str, dict[str, Any]]:
    """Beat entries that close print batches: those full by size often, every open one
    on the slower schedule (what ``invoicer print close`` does by hand)."""
    entries = {}
    if settings.print_close_every:
        entries["invoicer-print-close-full"] = {
            "task": TASK_CLOSE_PRINT, "kwargs": {"seal_open": False},
            "schedule": float(settings.print_close_every)}
    if settings.print_seal_every:
        entries["invoicer-print-close-all"] = {
            "task": TASK_CLOSE_PRINT, "kwargs": {"seal_open": True},
            "schedule": float(settings.print_seal_every)}
    return entries


app = Celery("invoicer")
app.conf.update(celery_config(get_settings()))
broker = Broker(app)


# ---------------------------------------------------------------------------- logging

@signals.after_setup_logger.connect
def _mask_worker_logs(logger: logging.Logger, **_: Any) -> None:
    _format_logs(logger)


@signals.after_setup_task_logger.connect
def _mask_task_logs(logger: logging.Logger, **_: Any) -> None:
    _format_logs(logger)


def _format_logs(logger: logging.Logger) -> None:
    # Celery made the handlers (and honours --loglevel); ours are the format, the
    # masking and the run/invoice context (INVOICER_LOG_FORMAT, docs/observability.md).
    if get_settings().log_format == "json":
        for handler in logger.handlers:
            handler.setFormatter(log_formatter("json"))
    redact_tokens_in_logs()  # signed link tokens out of every record
    install_log_masking(logger)


# ---------------------------------------------------------------------------- start-up


class UnsafeConfiguration(SystemExit):
    """Raised at worker start-up when a task could be redelivered while still running."""


def check_startup(settings: Settings) -> None:
    """Refuse (exit status 78, EX_CONFIG) a configuration that could run a task twice
    at once, or sign links with a weak secret; say why and what to change."""
    problems = redelivery_problems(settings)
    if not problems:
        try:
            backends.link_secret(settings)
        except WeakSecretError as exc:
            print(f"invoicer worker: {exc}", file=sys.stderr, flush=True)
            raise UnsafeConfiguration(78) from None
    if problems:
        lines = ["invoicer worker: refusing to start, a task could be redelivered while "
                 "it is still running:"] + [f"  - {p}" for p in problems]
        print("\n".join(lines), file=sys.stderr, flush=True)
        raise UnsafeConfiguration(78)


@signals.worker_init.connect
def _on_worker_init(**_: Any) -> None:
    settings = get_settings()
    check_startup(settings)
    with backends.ledger(settings) as ledger:
        ledger.migrate()
    serve_metrics(settings)


def serve_metrics(settings: Settings) -> Any:
    """Serve ``/metrics`` from the worker's main process for every pool process
    (``INVOICER_WORKER_METRICS_PORT``), the standard multiprocess way: each process
    writes its values under ``PROMETHEUS_MULTIPROC_DIR`` and this server adds them up.
    Returns the server (``None`` when none is served)."""
    if not settings.worker_metrics_port:
        return None
    if not metrics.multiprocess_dir():
        # Without it each pool process counts in its own memory, out of the server's
        # sight: a /metrics that always says 0 is worse than none.
        print("invoicer worker: INVOICER_WORKER_METRICS_PORT needs PROMETHEUS_MULTIPROC_DIR "
              "(an empty folder, set before the worker starts): no /metrics served",
              file=sys.stderr, flush=True)
        return None
    server, _thread = start_http_server(settings.worker_metrics_port,
                                        addr=settings.worker_metrics_addr,
                                        registry=metrics.process_registry())
    return server


@signals.worker_process_shutdown.connect
def _on_pool_process_exit(pid: int | None = None, **_: Any) -> None:
    if metrics.multiprocess_dir():
        prometheus_multiprocess.mark_process_dead(pid or os.getpid())


@signals.beat_init.connect
def _on_beat_init(**_: Any) -> None:
    check_startup(get_settings())


# ---------------------------------------------------------------------------- per process

_services: Services | None = None
_services_pid = 0


def services() -> Services:
    """This process's pipeline services (ledger, archive, channels), built once.

    Built lazily in each pool process, after the fork: connections are never shared.
    """
    global _services, _services_pid
    if _services is None or _services_pid != os.getpid():
        settings = get_settings()
        built = backends.services(settings)
        if built.channels is not None:
            # The circuit breaker stops knocking on a dead mail server; a task's retry
            # comes back after at most retry_backoff_max and must find it closed again.
            built.channels.cooldown = min(built.channels.cooldown,
                                          max(1.0, settings.retry_backoff_max / 2))
        _services, _services_pid = built, os.getpid()
        longlived.freeze()  # the services live as long as the process
    return _services


# ---------------------------------------------------------------------------- tasks

_RETRY = {
    "autoretry_for": (TransientDeliveryError,),  # only what may pass by itself
    "retry_backoff": 2,
    "retry_backoff_max": get_settings().retry_backoff_max,
    "retry_jitter": True,  # full jitter: a thousand chunks that failed together spread out
    "max_retries": get_settings().max_retries,
}


@app.task(name=TASK_BILL_RUN, **_RETRY)
def bill_run(source: str, run_id: int | None = None) -> dict[str, int]:
    """Plan a bill run of a JSON Lines source and send a task per chunk."""
    ledger = services().ledger
    url = source_url(source)
    if run_id is None:
        run_id = ledger.runs.start(url)

    def send_chunks(seqs: list[int]) -> None:
        for seq in seqs:
            broker.send(TASK_CHUNK, (run_id, seq))
        ledger.runs.mark_chunks_queued(run_id, seqs)

    done = plan(ledger, run_id, url, chunk_lines=get_settings().chunk_lines,
                hand_out=send_chunks)
    return {"run_id": run_id, "records": done.records, "chunks": done.chunks,
            "sent": done.handed_out}


@app.task(name=TASK_CHUNK, **_RETRY)
def process_chunk(run_id: int, seq: int) -> dict[str, Any]:
    """Render, archive, record and deliver the records of one chunk."""
    return _run_chunk(run_id, seq)


def _run_chunk(run_id: int, seq: int) -> dict[str, Any]:
    try:
        return run_chunk(run_id, seq, services(), retry=True).as_dict()
    except SoftTimeLimitExceeded as exc:
        # Hand the chunk back before the hard limit kills the process; the retry (or
        # the reconciler) finishes it.
        services().ledger.runs.end_chunk(run_id, seq, "queued",
                                         error=f"{type(exc).__name__}: {exc}")
        raise


@app.task(name=TASK_RECORD, **_RETRY)
def process_record(source: str) -> dict[str, Any]:
    """One record: the whole file or S3 object is one JSON billing record."""
    ledger = services().ledger
    url = source_url(source)
    length = size(url)
    if length == 0:
        raise PermanentDeliveryError(f"{url} is empty: no record to process")
    data = read_range(url, 0, length)
    sha = hashlib.sha256(data).hexdigest()
    run_id = ledger.runs.for_source(url, sha)
    # A run of one chunk of one record, planned like any other.
    ledger.runs.add_chunks(run_id, [(0, 0, len(data), 1, 1, sha)])
    ledger.runs.mark_chunks_queued(run_id, [0])
    ledger.runs.finish_planning(run_id, 1)
    try:
        return _run_chunk(run_id, 0)
    except ChunkNotFinished:
        # Retrying this task would look the run up again, and two copies of one record
        # that raced may each have opened a run: the retry could land on the other,
        # finished one and leave this chunk queued. The chunk's own task retries it.
        broker.send(TASK_CHUNK, (run_id, 0), countdown=2)
        return {"run_id": run_id, "seq": 0, "state": "queued"}


@app.task(name=TASK_CLOSE_PRINT, **_RETRY)
def close_print_batches(seal_open: bool = False) -> dict[str, int]:
    """Join the print queue into batches and close the sealed ones (``seal_open``: seal
    every open batch first). Safe anywhere, any number of times: a batch has one closer."""
    svc = services()
    report = printing.close(svc.ledger, svc.archive, seal_open=seal_open)
    for batch_id, error in report.failed:
        log.error("print batch %s not closed: %s", printing.batch_name(batch_id), error)
    return {"joined": report.joined, "sealed": len(report.sealed),
            "closed": len(report.closed), "busy": len(report.busy),
            "failed": len(report.failed)}


@app.task(name=TASK_RECONCILE)
def reconcile_task() -> dict[str, int]:
    """The periodic reconciler (Celery beat)."""
    return reconcile(services().ledger, get_settings(), broker.send,
                     waiting=broker.queue_depth)


@app.task(name=TASK_SEND_WEBHOOKS)
def send_webhooks() -> dict[str, int]:
    """Send the due events of the webhooks outbox (Celery beat, every
    ``INVOICER_WEBHOOK_SEND_EVERY`` s). Not retried: what failed is due again later, and
    the next beat (or ``invoicer webhooks send``) takes it. Stops well inside the time
    limit; leases keep overlapping passes apart."""
    settings = get_settings()
    report = send_due(services().ledger, _webhook_poster(), batch=settings.webhook_batch,
                      lease=timedelta(seconds=settings.effective_webhook_lease()),
                      backoff=backends.webhook_backoff(settings),
                      deadline=time.monotonic() + settings.task_time_limit * 0.5)
    return report.as_dict()


_poster: WebhookPoster | None = None
_poster_pid = 0


def _webhook_poster() -> WebhookPoster:
    # One pooled client per process (keep-alive across passes), made after the fork.
    global _poster, _poster_pid
    if _poster is None or _poster_pid != os.getpid():
        _poster, _poster_pid = backends.webhook_poster(get_settings()), os.getpid()
    return _poster
