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

Task arguments are identifiers (run id, chunk number, source URL), never personal
data: the records stay in their file or object, and workers read the byte range a
chunk names. Log lines are filtered so that phone numbers and e-mail addresses never
reach a log (:class:`MaskPersonalData`).

Exactly once comes from the ledger, not from the broker: brokers deliver at least once
(a worker killed mid-task, a broker restarted, a reconciler re-enqueueing a chunk), and
every step a record goes through is idempotent (unique invoice numbers and claim,
create-only archive, one delivery row per channel moved by compare-and-set).
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import sys
from typing import Any

from celery import Celery, signals
from celery.exceptions import SoftTimeLimitExceeded

from invoicer import backends
from invoicer.delivery.errors import PermanentDeliveryError, TransientDeliveryError
from invoicer.delivery.links import WeakSecretError, redact_tokens_in_logs
from invoicer.pipeline import Services
from invoicer.runs import ChunkNotFinished, plan, reconcile, run_chunk, source_url
from invoicer.runs.broker import (
    TASK_BILL_RUN,
    TASK_CHUNK,
    TASK_CLOSE_PRINT,
    TASK_RECONCILE,
    TASK_RECORD,
    Broker,
    broker_kind,
    client_config,
)
from invoicer.runs.sources import read_range, size
from invoicer.settings import Settings, get_settings
from invoicer.workflows import printing

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

_EMAIL = re.compile(r"(?<![\w.+-])([\w.+-])[\w.+-]*@([\w-]+(?:\.[\w-]+)+)")
# E.164 (``+5521987654321``) and bare runs of 9-15 digits (a phone number without its
# plus). Invoice numbers such as ``OI-2026-11-0000123`` have shorter digit groups.
_PHONE = re.compile(r"(?<![\w+])\+?\d{9,15}(?!\d)|(?<![\w])\+\d[\d ().-]{6,18}\d")


def mask(text: str) -> str:
    """``text`` with e-mail addresses and phone numbers masked (``m***@example.com``,
    ``+55*********21``)."""
    text = _EMAIL.sub(lambda m: f"{m.group(1)}***@{m.group(2)}", text)
    return _PHONE.sub(lambda m: _mask_digits(m.group(0)), text)


def _mask_digits(number: str) -> str:
    digits = [i for i, c in enumerate(number) if c.isdigit()]
    keep = set(digits[:2] + digits[-2:])
    return "".join(c if (not c.isdigit() or i in keep) else "*" for i, c in enumerate(number))


class MaskPersonalData(logging.Filter):
    """A handler filter: the formatted message and any traceback, masked."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = mask(message)
        if masked != message:
            record.msg, record.args = masked, ()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = mask(record.exc_text)
        return True


def install_log_masking(logger: logging.Logger | None = None) -> None:
    """Put :class:`MaskPersonalData` on every handler of ``logger`` (default: root),
    and take signed link tokens out of every record."""
    redact_tokens_in_logs()
    for handler in (logger or logging.getLogger()).handlers:
        if not any(isinstance(f, MaskPersonalData) for f in handler.filters):
            handler.addFilter(MaskPersonalData())


@signals.after_setup_logger.connect
def _mask_worker_logs(logger: logging.Logger, **_: Any) -> None:
    install_log_masking(logger)


@signals.after_setup_task_logger.connect
def _mask_task_logs(logger: logging.Logger, **_: Any) -> None:
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
