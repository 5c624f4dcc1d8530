"""Celery workers: the bill run on as many machines as needed.

    celery -A invoicer.worker worker            # a worker: one process per core
    celery -A invoicer.worker beat              # the reconciler's clock (one per deployment)

The Celery app is configured from the service's settings (``INVOICER_BROKER_URL``:
``redis://…`` or ``amqp://…``). Tasks are thin adapters over plain functions of this
module and of ``pipeline.py``; their public names are what a billing system in any
language sends (see README "Scaling out"):

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
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from celery import Celery, signals
from celery.exceptions import SoftTimeLimitExceeded

from invoicer.delivery.errors import DeliveryError, PermanentDeliveryError, TransientDeliveryError
from invoicer.delivery.s3 import S3Object
from invoicer.settings import Settings, get_settings

log = logging.getLogger("invoicer.worker")

#: A chunk is also cut at this size, so that one task never carries several
#: 100,000-CDR records (the same bound as the in-process run).
CHUNK_BYTES = 4 << 20
#: Chunk rows written (and tasks sent) per transaction by the coordinator.
PLAN_BATCH = 200
#: Slack between the longest a worker may hold a message unacknowledged and the
#: broker's redelivery window: clocks, a slow ack, a busy event loop.
REDELIVERY_MARGIN = 30

TASK_NAMES = ("invoicer.bill_run", "invoicer.process_chunk", "invoicer.process_record",
              "invoicer.reconcile")


# ---------------------------------------------------------------------------- config


def broker_kind(url: str) -> str:
    """``redis`` or ``amqp`` (``rediss``/``amqps``/``pyamqp`` included)."""
    scheme = urlsplit(url).scheme
    if scheme in ("redis", "rediss"):
        return "redis"
    if scheme in ("amqp", "amqps", "pyamqp"):
        return "amqp"
    raise ValueError(f"INVOICER_BROKER_URL must be redis://… or amqp://…, not {scheme}://")


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
    """The Celery settings, each chosen on purpose (README "Scaling out")."""
    kind = broker_kind(settings.broker_url)
    transport: dict[str, Any] = {}
    if kind == "redis":
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
        "task_default_queue": "invoicer",
        "task_create_missing_queues": True,
        "worker_hijack_root_logger": True,
        "beat_schedule": {
            "invoicer-reconcile": {"task": "invoicer.reconcile",
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
            "task": "invoicer.close_print_batches", "kwargs": {"seal_open": False},
            "schedule": float(settings.print_close_every)}
    if settings.print_seal_every:
        entries["invoicer-print-close-all"] = {
            "task": "invoicer.close_print_batches", "kwargs": {"seal_open": True},
            "schedule": float(settings.print_seal_every)}
    return entries


app = Celery("invoicer")
app.conf.update(celery_config(get_settings()))


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
    """Put :class:`MaskPersonalData` on every handler of ``logger`` (default: root)."""
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
    at once; say why and what to change."""
    problems = redelivery_problems(settings)
    if problems:
        lines = ["invoicer worker: refusing to start, a task could be redelivered while "
                 "it is still running:"] + [f"  - {p}" for p in problems]
        print("\n".join(lines), file=sys.stderr, flush=True)
        raise UnsafeConfiguration(78)


@signals.worker_init.connect
def _on_worker_init(**_: Any) -> None:
    settings = get_settings()
    check_startup(settings)
    from invoicer import backends

    with backends.ledger(settings) as ledger:
        ledger.migrate()


@signals.beat_init.connect
def _on_beat_init(**_: Any) -> None:
    check_startup(get_settings())


# ---------------------------------------------------------------------------- sources


def source_url(path_or_url: str) -> str:
    """A run's source as a URL: ``s3://…`` and ``file://…`` as given, a path made
    absolute (``file:///abs/run.jsonl``). Runs enqueued for workers keep the URL."""
    if "://" in path_or_url:
        scheme = urlsplit(path_or_url).scheme
        if scheme not in ("file", "s3"):
            raise ValueError(f"a bill run's source is a path, file:// or s3:// URL, "
                             f"not {scheme}://")
        return path_or_url
    return Path(path_or_url).resolve().as_uri()


def _file_path(url: str) -> Path:
    return Path(unquote(urlsplit(url).path))


def read_range(url: str, start: int, end: int) -> bytes:
    """Bytes ``[start, end)`` of a source."""
    if url.startswith("s3://"):
        return S3Object.from_url(url).read_range(start, end)
    try:
        with open(_file_path(url), "rb") as f:
            f.seek(start)
            data = f.read(end - start)
    except FileNotFoundError as exc:
        raise PermanentDeliveryError(f"source {url} is gone: {exc}") from exc
    except OSError as exc:
        raise TransientDeliveryError(f"cannot read {url}: {exc}") from exc
    if len(data) != end - start:
        raise PermanentDeliveryError(f"source {url} is shorter than when it was split")
    return data


def _blocks(url: str) -> Iterator[bytes]:
    if url.startswith("s3://"):
        yield from S3Object.from_url(url).blocks(1 << 20)
        return
    try:
        with open(_file_path(url), "rb") as f:
            while block := f.read(1 << 20):
                yield block
    except FileNotFoundError as exc:
        raise PermanentDeliveryError(f"source {url} not found") from exc


def split_source(url: str, chunk_lines: int, chunk_bytes: int = CHUNK_BYTES
                 ) -> tuple[list[tuple[int, int, int, int, int, str]], str, int]:
    """Read a source once: its chunks ``(seq, start, end, first line, lines, sha256)``
    of whole non-blank lines (lines split on ``\\n`` only, as the in-process reader
    does), its SHA-256 and its number of records."""
    sha = hashlib.sha256()
    part = hashlib.sha256()  # of the chunk being gathered, blank lines inside included
    chunks: list[tuple[int, int, int, int, int, str]] = []
    pos = line_no = records = 0
    start = first = n = size = 0
    end = 0
    tail = blanks = b""

    def lines() -> Iterator[bytes]:
        nonlocal tail
        for block in _blocks(url):
            sha.update(block)
            parts = (tail + block).split(b"\n")
            tail = parts.pop()
            for part in parts:
                yield part + b"\n"
        if tail:
            yield tail

    for raw in lines():
        line_no += 1
        at, pos = pos, pos + len(raw)
        content = raw[3:] if line_no == 1 and raw.startswith(b"\xef\xbb\xbf") else raw
        if not content.strip():
            blanks += raw  # inside the chunk only if another record follows
            continue
        records += 1
        if n == 0:
            start, first, size, part = at, line_no, 0, hashlib.sha256()
        else:
            part.update(blanks)
        blanks = b""
        part.update(raw)
        n, size, end = n + 1, size + len(raw), pos
        if n >= chunk_lines or size >= chunk_bytes:
            chunks.append((len(chunks), start, end, first, n, part.hexdigest()))
            n = 0
    if n:
        chunks.append((len(chunks), start, end, first, n, part.hexdigest()))
    return chunks, sha.hexdigest(), records


def chunk_lines(data: bytes, first_line: int, at_start: bool) -> Iterator[tuple[int, bytes]]:
    """``(line number, bytes)`` of a chunk's non-blank lines, EOL (and a file's BOM)
    removed, numbered as in the whole source."""
    for offset, raw in enumerate(data.split(b"\n")):
        if offset == 0 and at_start and raw.startswith(b"\xef\xbb\xbf"):
            raw = raw[3:]
        raw = raw.rstrip(b"\r")
        if raw.strip():
            yield first_line + offset, raw


# ---------------------------------------------------------------------------- per process

_services: Any = None
_services_pid = 0


def services() -> Any:
    """This process's pipeline services (ledger, archive, channels), built once.

    Built lazily in each pool process, after the fork: connections are never shared.
    """
    global _services, _services_pid
    if _services is None or _services_pid != os.getpid():
        from invoicer import backends

        settings = get_settings()
        built = backends.services(settings)
        if built.channels is not None:
            # The circuit breaker stops knocking on a dead mail server; a task's retry
            # comes back after at most retry_backoff_max and must find it closed again.
            built.channels.cooldown = min(built.channels.cooldown,
                                          max(1.0, settings.retry_backoff_max / 2))
        _services, _services_pid = built, os.getpid()
    return _services


def _send(name: str, args: tuple = (), **options: Any) -> None:
    app.send_task(name, args=args, **options)


# ---------------------------------------------------------------------------- plain functions


def plan_run(ledger: Any, source: str, run_id: int, settings: Settings,
             send: Callable[..., None] = _send) -> dict[str, int]:
    """The coordinator: split the source into chunks, record them, enqueue their tasks.

    Idempotent: running it again (a redelivered message) writes no chunk twice and
    sends only the tasks of chunks still ``planned``.
    """
    chunks, sha, records = split_source(source, settings.chunk_lines)
    ledger.plan_run(run_id, source_sha256=sha)
    sent = 0
    for i in range(0, len(chunks), PLAN_BATCH):
        todo = ledger.add_chunks(run_id, chunks[i:i + PLAN_BATCH])
        for seq in todo:
            send("invoicer.process_chunk", (run_id, seq))
        ledger.mark_chunks_queued(run_id, todo)
        sent += len(todo)
    ledger.finish_planning(run_id, records)
    log.info("run %s: %d records in %d chunks, %d tasks sent", run_id, records,
             len(chunks), sent)
    return {"run_id": run_id, "records": records, "chunks": len(chunks), "sent": sent}


class ChunkNotFinished(TransientDeliveryError):
    """Some records of the chunk wait on a backend (storage down, SMTP down, a delivery
    in flight elsewhere): the task retries later; the reconciler if retries run out."""


def run_chunk(run_id: int, seq: int, svc: Any) -> dict[str, Any]:
    """Process one chunk: every record through ``pipeline.process_record``.

    ``done`` when every record reached an end state and every e-mail and SMS went out
    (or failed for good); ``failed`` on a permanent error a person must see; otherwise
    back to ``queued`` and :class:`ChunkNotFinished` for a retry.
    """
    from invoicer.pipeline import process_record

    ledger = svc.ledger
    chunk = ledger.start_chunk(run_id, seq)
    if chunk is None:
        return {"run_id": run_id, "seq": seq, "skipped": True}
    run = ledger.get_run(run_id)
    try:
        data = read_range(run.source, chunk.start_byte, chunk.end_byte)
        if chunk.sha256 and hashlib.sha256(data).hexdigest() != chunk.sha256:
            raise PermanentDeliveryError(
                f"{run.source} changed since run {run_id} was split (bytes "
                f"{chunk.start_byte}-{chunk.end_byte} differ): enqueue it as a new run")
        outcomes = [process_record(raw, line=n, run_id=run_id, services=svc)
                    for n, raw in chunk_lines(data, chunk.first_line, chunk.start_byte == 0)]
    except (TransientDeliveryError, SoftTimeLimitExceeded) as exc:
        ledger.end_chunk(run_id, seq, "queued", error=f"{type(exc).__name__}: {exc}")
        raise
    except DeliveryError as exc:
        ledger.end_chunk(run_id, seq, "failed", error=str(exc))
        _maybe_finish(ledger, run_id)
        return {"run_id": run_id, "seq": seq, "state": "failed"}
    counts = Counter(o.status for o in outcomes)
    waiting = [f"line {o.line}: {o.message}" for o in outcomes
               if o.status == "failed" and o.reason == "transient"]
    waiting += [f"line {o.line}: {channel} {state}" for o in outcomes
                for channel, state in o.deliveries
                if channel in ("email", "sms") and state in ("pending", "sending")]
    broken = [f"line {o.line}: {o.reason}: {o.message}" for o in outcomes
              if o.status == "failed" and o.reason != "transient"]
    if waiting:
        ledger.end_chunk(run_id, seq, "queued", error="; ".join(waiting[:5]))
        raise ChunkNotFinished(f"run {run_id} chunk {seq}: {len(waiting)} record(s) "
                               f"waiting: {waiting[0]}")
    state = "failed" if broken else "done"
    ledger.end_chunk(run_id, seq, state, outcomes=dict(counts),
                     error="; ".join(broken[:5]) or None)
    _maybe_finish(ledger, run_id)
    return {"run_id": run_id, "seq": seq, "state": state, **counts}


def _maybe_finish(ledger: Any, run_id: int) -> None:
    progress = ledger.run_progress(run_id)
    if progress is not None and progress.finished:
        ledger.finish_run(run_id)


def queue_depth(queue: str = "invoicer") -> int:
    """Messages waiting in the task queue (not those held by workers); 0 when the
    queue does not exist (a Redis list vanishes when empty, and after a restart)."""
    try:
        with app.connection_for_write() as conn:
            return int(conn.default_channel.queue_declare(queue=queue, passive=True)
                       .message_count)
    except Exception as exc:  # NOT_FOUND on both brokers: nothing is waiting
        log.debug("queue %s: %s", queue, exc)
        return 0


def reconcile(ledger: Any, settings: Settings, send: Callable[..., None] = _send,
              now: datetime | None = None,
              waiting: int | Callable[[], int] = queue_depth) -> dict[str, int]:
    """Re-enqueue what dead workers and lost messages left behind; safe to run anywhere,
    any number of times at once.

    - chunks not terminal and untouched for ``stale_after`` (their task died with its
      worker, its message was lost in a broker restart, or its retries ran out);
    - runs whose coordinator never finished splitting the source;
    - e-mails and SMS stuck in ``sending`` for ``stale_after``: their sender is dead
      (every sender runs inside a task with a hard time limit). Those it had not handed
      to the server yet go back to ``pending`` and the chunk's next attempt sends them
      with the same Message-ID / reference; an e-mail whose data had gone out
      (``handed_off_at``) may have been delivered: it becomes ``unknown`` for a person
      (``invoicer deliveries``, ``invoicer resend``), never sent twice blindly.
    """
    now = now or datetime.now(UTC)
    cutoff = now - timedelta(seconds=settings.effective_stale_after())
    stats = Counter[str]()
    # A ``queued`` chunk may simply be waiting its turn behind a long run (a bill run of
    # millions enqueues far more than workers take in an hour): while messages wait in
    # the queue, only chunks whose task died (``running``) or was never sent
    # (``planned``) are re-enqueued; a lost ``queued`` message is found once the queue
    # has drained. Re-enqueueing everything stale would flood the queue with copies.
    waiting = waiting() if callable(waiting) else waiting
    for d, inv in ledger.deliveries_in(["sending"], older_than=cutoff, limit=10_000):
        if d.channel not in ("email", "sms"):
            continue
        if d.handed_off_at is not None:
            if ledger.transition(
                    d.id, "sending", "unknown",
                    error="the worker died after handing the message to the server: it "
                          "may have been delivered, so it is not sent again automatically"):
                log.warning("delivery %s (%s of invoice id %s): sender died after the "
                            "hand-off: outcome unknown", d.id, d.channel, inv.id)
                stats["deliveries_unknown"] += 1
            continue
        if ledger.transition(
                d.id, "sending", "pending",
                error="the worker sending it died; sent again with the same identifier"):
            log.warning("delivery %s (%s of invoice id %s) was stuck in sending: re-queued",
                        d.id, d.channel, inv.id)
            stats["deliveries_requeued"] += 1
    for chunk in ledger.stale_chunks(cutoff, limit=10_000):
        if chunk.state == "queued" and waiting:
            stats["queued_chunks_left_waiting"] += 1
            continue
        if ledger.requeue_stale_chunk(chunk.run_id, chunk.seq, cutoff):
            send("invoicer.process_chunk", (chunk.run_id, chunk.seq))
            stats["chunks_requeued"] += 1
    for run in _unplanned_runs(ledger, cutoff):
        send("invoicer.bill_run", (run.source, run.id))
        stats["runs_replanned"] += 1
    if stats:
        log.warning("reconciler: %s", dict(stats))
    return dict(stats)


def _unplanned_runs(ledger: Any, cutoff: datetime) -> list[Any]:
    """Runs enqueued for workers (their source is a URL) whose split never finished."""
    import sqlalchemy as sa

    from invoicer.ledger import Run, runs

    with ledger.engine.connect() as conn:
        rows = conn.execute(
            sa.select(runs).where(runs.c.expected.is_(None), runs.c.finished_at.is_(None),
                                  runs.c.started_at < cutoff,
                                  sa.or_(runs.c.source.like("file://%"),
                                         runs.c.source.like("s3://%")))
            .limit(100)).all()
    return [Run(**r._mapping) for r in rows]


def enqueue(source: str, ledger: Any, send: Callable[..., None] = _send) -> int:
    """Open a run for ``source`` (path or URL) and send its coordinating task."""
    url = source_url(source)
    run_id = ledger.start_run(url)
    send("invoicer.bill_run", (url, run_id))
    return run_id


# ---------------------------------------------------------------------------- tasks

_RETRY = {
    "autoretry_for": (TransientDeliveryError,),  # only what may pass by itself
    "retry_backoff": 2,
    "retry_backoff_max": get_settings().retry_backoff_max,
    "retry_jitter": True,  # full jitter: a thousand chunks that failed together spread out
    "max_retries": get_settings().max_retries,
}


@app.task(name="invoicer.bill_run", **_RETRY)
def bill_run(source: str, run_id: int | None = None) -> dict[str, int]:
    """Split a bill run's JSON Lines source into chunks and enqueue them."""
    ledger = services().ledger
    url = source_url(source)
    if run_id is None:
        run_id = ledger.start_run(url)
    return plan_run(ledger, url, run_id, get_settings())


@app.task(name="invoicer.process_chunk", **_RETRY)
def process_chunk(run_id: int, seq: int) -> dict[str, Any]:
    """Render, archive, record and deliver the records of one chunk."""
    return run_chunk(run_id, seq, services())


@app.task(name="invoicer.process_record", **_RETRY)
def process_record(source: str) -> dict[str, Any]:
    """One record: the whole file or S3 object is one JSON billing record."""
    svc = services()
    url = source_url(source)
    size = _size(url)
    if size == 0:
        raise PermanentDeliveryError(f"{url} is empty: no record to process")
    data = read_range(url, 0, size)
    sha = hashlib.sha256(data).hexdigest()
    run_id = svc.ledger.run_for_source(url, sha)
    svc.ledger.add_chunks(run_id, [(0, 0, len(data), 1, 1, sha)])
    svc.ledger.mark_chunks_queued(run_id, [0])
    svc.ledger.finish_planning(run_id, 1)
    try:
        return run_chunk(run_id, 0, svc)
    except ChunkNotFinished:
        # Retrying this task would look the run up again, and two copies of one record
        # that raced may each have opened a run: the retry could land on the other,
        # finished one and leave this chunk queued. The chunk's own task retries it.
        _send("invoicer.process_chunk", (run_id, 0), countdown=2)
        return {"run_id": run_id, "seq": 0, "state": "queued"}


def _size(url: str) -> int:
    if url.startswith("s3://"):
        return S3Object.from_url(url).size()
    return _file_path(url).stat().st_size


@app.task(name="invoicer.close_print_batches", **_RETRY)
def close_print_batches(seal_open: bool = False) -> dict[str, int]:
    """Join the print queue into batches and close the sealed ones (``seal_open``: seal
    every open batch first). Safe anywhere, any number of times: a batch has one closer."""
    from invoicer.delivery import printing

    svc = services()
    report = printing.close(svc.ledger, svc.archive, seal_open=seal_open)
    for batch_id, error in report.failed:
        log.error("print batch %s not closed: %s", printing.batch_name(batch_id), error)
    return {"joined": report.joined, "sealed": len(report.sealed),
            "closed": len(report.closed), "busy": len(report.busy),
            "failed": len(report.failed)}


@app.task(name="invoicer.reconcile")
def reconcile_task() -> dict[str, int]:
    """The periodic reconciler (Celery beat)."""
    return reconcile(services().ledger, get_settings())
