"""Bill runs handed over by the billing system: a small queue behind one Protocol.

The HTTP endpoint (``POST /v1/billing/runs``) takes a JSON Lines upload (spooled to a
file) or an ``s3://bucket/key`` URL and hands a :class:`BillRunSource` to a
:class:`BillRunQueue`. The only queue here, :class:`ThreadBillRunQueue`, runs
``runner.run_file`` in one background thread of the API process, one run at a time;
a Celery queue (``worker.py``) implements the same two methods and is plugged in
with ``create_app(bill_runs=...)``.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

from settings import Settings

__all__ = ["BillRunJob", "BillRunQueue", "BillRunSource", "ThreadBillRunQueue",
           "foreign_operators"]

log = logging.getLogger(__name__)


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
    JSON objects with an operator id are left for the run to reject with the reason."""
    allowed = set(allowed)
    found: set[str] = set()
    for raw in lines:
        try:
            doc = json.loads(raw)
            operator = doc["operator"]["id"]
        except (ValueError, KeyError, TypeError):
            continue
        if isinstance(operator, str) and operator not in allowed:
            found.add(operator)
    return found


def _s3_download(url: str, dest: Path, endpoint: str | None) -> None:
    import boto3

    parts = urlsplit(url)
    client = boto3.client("s3", endpoint_url=endpoint) if endpoint else boto3.client("s3")
    client.download_file(parts.netloc, parts.path.lstrip("/"), str(dest))


class ThreadBillRunQueue:
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

    def spool_path(self) -> Path:
        """A fresh file to spool an upload into."""
        self.spool.mkdir(parents=True, exist_ok=True)
        return self.spool / f"upload-{uuid.uuid4().hex}.jsonl"

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

    def _set(self, job_id: str, **changes: Any) -> None:
        with self._lock:
            self._jobs[job_id] = replace(self._jobs[job_id], **changes)

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
        if path is None:
            assert source.url is not None
            path = self.spool_path()
            _s3_download(source.url, path, self.s3_endpoint)
            with open(path, "rb") as f:
                foreign = foreign_operators(f, source.operators)
            if foreign:
                self._set(job_id, state="refused", finished_at=datetime.now(UTC),
                          error="records of operators this key does not act for: "
                                + ", ".join(sorted(foreign)))
                return
        run_file = self._run_file
        if run_file is None:
            from runner import run_file
        summary = run_file(path, self.settings, workers=self.workers, deliver=self.deliver)
        self._set(job_id, state="done", run_id=summary.run_id,
                  outcomes=dict(summary.outcomes), finished_at=datetime.now(UTC))
