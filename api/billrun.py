"""Bill runs handed over by the billing system: a small queue behind one Protocol.

The HTTP endpoint (``POST /v1/billing/runs``) takes a JSON Lines upload (spooled to a
file) or an ``s3://bucket/key`` URL and hands a :class:`BillRunSource` to a
:class:`BillRunQueue`: :class:`ThreadBillRunQueue` runs ``runner.run_file`` in one
background thread of the API process, one run at a time; :class:`CeleryBillRunQueue`
hands the run to the Celery workers through the broker (``invoicer.runs.broker``),
without importing the worker. Either is plugged in with ``create_app(bill_runs=...)``.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import re
import threading
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from invoicer import backends
from invoicer.billing.fields import IDENTIFIER_PATTERN
from invoicer.delivery.s3 import S3Object
from invoicer.ledger import Ledger
from invoicer.runner import run_file as run_in_pool
from invoicer.runs import enqueue
from invoicer.runs.broker import Send
from invoicer.settings import Settings

__all__ = ["BillRunJob", "BillRunQueue", "BillRunSource", "CeleryBillRunQueue", "LineSplitter",
           "ThreadBillRunQueue", "foreign_operators", "queue_from_settings"]

log = logging.getLogger(__name__)

_IDENTIFIER = re.compile(IDENTIFIER_PATTERN)


@dataclass(frozen=True, slots=True)
class BillRunSource:
    """What to run: a spooled local file, or an ``s3://`` object; and for whom.

    ``operators`` are the submitting key's: a record of any other operator makes the
    whole run refused before anything is rendered.
    """

    operators: tuple[str, ...]
    submitted_by: int
    path: Path | None = None
    url: str | None = None


@dataclass(frozen=True, slots=True)
class BillRunJob:
    """A run's state as the billing system sees it."""

    id: str
    state: str  # queued, running, done, failed, refused
    submitted_at: datetime
    source: str
    run_id: int | None = None
    outcomes: dict[str, int] = field(default_factory=dict)
    error: str | None = None
    finished_at: datetime | None = None
    operators: tuple[str, ...] = ()


class BillRunQueue(Protocol):
    """Runs bill runs somewhere else than the request that asked for them."""

    def enqueue(self, source: BillRunSource) -> BillRunJob:
        """Queue a run; returns at once with the job (``queued``)."""
        ...

    def status(self, job_id: str) -> BillRunJob | None:
        """The job's current state, or ``None`` for an unknown id."""
        ...


def foreign_operators(lines: Iterable[bytes], allowed: Iterable[str]) -> set[str]:
    """Operator ids of records in ``lines`` outside ``allowed``. Lines that are not
    JSON objects with an operator id that is an identifier (the contract's) are left
    for the run to reject with the reason."""
    allowed = set(allowed)
    found: set[str] = set()
    for raw in lines:
        try:
            doc = json.loads(raw)
            operator = doc["operator"]["id"]
        except (ValueError, KeyError, TypeError, RecursionError):
            continue  # the run dead-letters it (RecursionError: nested too deep)
        if isinstance(operator, str) and operator not in allowed \
                and _IDENTIFIER.fullmatch(operator):
            found.add(operator)
    return found


class LineSplitter:
    """Whole lines out of a stream of blocks, in time linear in the bytes: a line that
    spans many blocks is gathered as a list of parts and joined once (gluing the tail
    to each new block instead copied a 50 MB line some thousand times)."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []

    def feed(self, block: bytes) -> list[bytes]:
        """The lines ``block`` completes (without their ``\n``)."""
        lines, at = [], 0
        while (nl := block.find(b"\n", at)) >= 0:
            self._parts.append(block[at:nl])
            lines.append(b"".join(self._parts))
            self._parts, at = [], nl + 1
        if at < len(block):
            self._parts.append(block[at:])
        return lines

    def rest(self) -> bytes:
        """The last line, when the stream does not end with ``\n``."""
        rest, self._parts = b"".join(self._parts), []
        return rest


def _s3_download(url: str, dest: Path, endpoint: str | None) -> None:
    S3Object.from_url(url, endpoint=endpoint).download(dest)


class _Jobs:
    """What both queues keep: the spool folder for uploads and the jobs by id."""

    spool: Path
    s3_endpoint: str | None
    _jobs: dict[str, BillRunJob]
    _lock: threading.Lock

    def spool_path(self) -> Path:
        """A fresh file to spool an upload into, named after this process (see
        :meth:`sweep`)."""
        self.spool.mkdir(parents=True, exist_ok=True)
        return self.spool / f"upload-{os.getpid()}-{uuid.uuid4().hex}.jsonl"

    def sweep(self) -> int:
        """Remove spooled files that a process which is gone left behind (killed before
        its run ended), on this machine; returns how many. A file of a live process,
        this one's included, is left alone: its run may still be reading it."""
        removed = 0
        for path in self.spool.glob("upload-*-*.jsonl") if self.spool.is_dir() else ():
            try:
                pid = int(path.name.split("-")[1])
            except ValueError:
                continue
            if pid != os.getpid() and not _alive(pid):
                path.unlink(missing_ok=True)
                removed += 1
        return removed

    def _set(self, job_id: str, **changes: Any) -> None:
        with self._lock:
            self._jobs[job_id] = replace(self._jobs[job_id], **changes)

    def _fetch_checked(self, job_id: str, source: BillRunSource, dest: Path) -> bool:
        """Download an ``s3://`` source to ``dest`` and check its operators; False (and
        the job ``refused``) when it holds records of operators the key does not act for."""
        assert source.url is not None
        _s3_download(source.url, dest, self.s3_endpoint)
        with open(dest, "rb") as f:
            foreign = foreign_operators(f, source.operators)
        if foreign:
            self._set(job_id, state="refused", finished_at=datetime.now(UTC),
                      error="records of operators this key does not act for: "
                            + ", ".join(sorted(foreign)))
        return not foreign


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive, not ours to judge
        return True
    return True


class ThreadBillRunQueue(_Jobs):
    """One background thread running ``runner.run_file``, one run at a time.

    Jobs live in this process's memory (a restart forgets their states, not their
    work: the ledger has the runs, and re-submitting a file finishes what is missing).
    ``s3_endpoint`` is where ``s3://`` sources are read (the archive's S3 endpoint;
    ``None``: AWS).
    """

    def __init__(self, settings: Settings, spool: Path, *, workers: int | None = None,
                 deliver: bool = True, s3_endpoint: str | None = None,
                 run_file: Callable[..., Any] | None = None) -> None:
        self.settings = settings
        self.spool = spool
        self.workers = workers
        self.deliver = deliver
        self.s3_endpoint = s3_endpoint
        self._run_file = run_file
        self._jobs: dict[str, BillRunJob] = {}
        self._sources: queue.Queue[tuple[str, BillRunSource]] = queue.Queue()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self.sweep()  # what a killed API process left (its runs died with it)

    def enqueue(self, source: BillRunSource) -> BillRunJob:
        job = BillRunJob(uuid.uuid4().hex, "queued", datetime.now(UTC),
                         source.url or (source.path.name if source.path else ""),
                         operators=source.operators)
        with self._lock:
            self._jobs[job.id] = job
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._work, daemon=True,
                                                name="bill-runs")
                self._thread.start()
        self._sources.put((job.id, source))
        return job

    def status(self, job_id: str) -> BillRunJob | None:
        with self._lock:
            return self._jobs.get(job_id)

    def _work(self) -> None:
        while True:
            job_id, source = self._sources.get()
            try:
                self._run(job_id, source)
            except Exception as exc:  # a failed run must not stop the queue
                log.exception("bill run %s failed", job_id)
                self._set(job_id, state="failed", error=f"{type(exc).__name__}: {exc}",
                          finished_at=datetime.now(UTC))
            finally:
                self._sources.task_done()

    def _run(self, job_id: str, source: BillRunSource) -> None:
        self._set(job_id, state="running")
        path = source.path
        try:
            if path is None:
                path = self.spool_path()
                if not self._fetch_checked(job_id, source, path):
                    return
            run_file = self._run_file or run_in_pool
            summary = run_file(path, self.settings, workers=self.workers,
                               deliver=self.deliver)
        finally:
            # The spooled copy is ours alone (the ledger keeps the run, its counts and
            # its dead letters); a re-submitted file is spooled afresh.
            if path is not None and path.parent == self.spool:
                path.unlink(missing_ok=True)
        self._set(job_id, state="done", run_id=summary.run_id,
                  outcomes=dict(summary.outcomes), finished_at=datetime.now(UTC))


class CeleryBillRunQueue(_Jobs):
    """Bill runs handed to the Celery workers: the job is a ledger run.

    An upload is spooled to ``spool`` and enqueued as its ``file://`` URL, so the workers
    must see that folder (the same machine, or a mount they share); an ``s3://`` source
    is read by the workers themselves, after this queue has read it once (in a
    background thread) to refuse records of operators the key does not act for. The
    job's state and outcome counts come from the run's chunks in the ledger, so any
    API process answers for a run while it is in memory here; ``invoicer runs show``
    answers for it always.
    """

    def __init__(self, ledger: Ledger, spool: Path, *, send: Send,
                 s3_endpoint: str | None = None) -> None:
        self.ledger = ledger
        self.spool = spool
        self.s3_endpoint = s3_endpoint
        self._send = send
        self._jobs: dict[str, BillRunJob] = {}
        self._spooled: dict[str, Path] = {}  # uploads to remove once their run ends
        self._lock = threading.Lock()

    def _enqueue_url(self, job_id: str, url: str) -> None:
        run_id = enqueue(url, self.ledger, self._send)
        with self._lock:
            self._jobs[job_id] = replace(self._jobs[job_id], run_id=run_id)

    def enqueue(self, source: BillRunSource) -> BillRunJob:
        job = BillRunJob(uuid.uuid4().hex, "queued", datetime.now(UTC),
                         source.url or (source.path.name if source.path else ""),
                         operators=source.operators)
        with self._lock:
            self._jobs[job.id] = job
        if source.path is not None:  # checked by the endpoint as it was uploaded
            self._spooled[job.id] = source.path
            self._enqueue_url(job.id, source.path.resolve().as_uri())
        else:
            threading.Thread(target=self._check_then_enqueue, args=(job.id, source),
                             daemon=True, name=f"bill-run-{job.id[:8]}").start()
        return self.status(job.id) or job

    def _check_then_enqueue(self, job_id: str, source: BillRunSource) -> None:
        assert source.url is not None
        copy = self.spool_path()
        try:
            try:
                checked = self._fetch_checked(job_id, source, copy)
            finally:
                # Only the check reads the copy (the workers read the source itself):
                # gone before the run is enqueued and its id visible to anyone.
                copy.unlink(missing_ok=True)
            if checked:
                self._enqueue_url(job_id, source.url)
        except Exception as exc:  # nobody to raise to: the job says it
            log.exception("bill run %s could not be enqueued", job_id)
            self._set(job_id, state="failed", error=f"{type(exc).__name__}: {exc}",
                      finished_at=datetime.now(UTC))

    def status(self, job_id: str) -> BillRunJob | None:
        with self._lock:
            job = self._jobs.get(job_id)
        if job is None or job.run_id is None:
            return job
        progress = self.ledger.reports.run_progress(job.run_id)
        if progress is None:
            return job
        chunks = {state: n for state, n in progress.chunks.items() if n}
        if progress.finished:
            state = "failed" if chunks.get("failed") else "done"
            spooled = self._spooled.pop(job_id, None)
            if spooled is not None:  # the workers are done reading it
                spooled.unlink(missing_ok=True)
        elif set(chunks) - {"planned", "queued"}:
            state = "running"
        else:
            state = "queued"
        return replace(job, state=state, outcomes=dict(progress.outcomes),
                       finished_at=progress.last_change if progress.finished else None)


def queue_from_settings(settings: Settings, ledger: Ledger, spool: Path) -> BillRunQueue:
    """The queue ``INVOICER_API_BILL_RUNS`` names: ``thread`` (in the API process) or
    ``celery`` (the workers on ``INVOICER_BROKER_URL``)."""
    if settings.api_bill_runs == "celery":
        return CeleryBillRunQueue(ledger, spool, send=backends.broker(settings).send)
    return ThreadBillRunQueue(settings, spool)
