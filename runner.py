"""The one-machine bill run: a JSON Lines file through ``pipeline.process_record``
across all cores.

Rendering is CPU-bound, so records go to a pool of processes; each process opens its
own ledger connection and archive once. The parent reads the file lazily and keeps a
bounded number of chunks in flight, so a file of millions of records never sits in
memory. Outcomes come back per chunk and are counted in the ledger as they arrive.
"""

from __future__ import annotations

import contextlib
import hashlib
import signal
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path

from invoicer import backends
from invoicer.billing.reader import iter_lines
from invoicer.pipeline import Outcome, Services, process_record
from invoicer.settings import Settings

#: Lines per task: large enough to amortise inter-process traffic, small enough to
#: keep both cores busy to the end. Chunks are also cut at CHUNK_BYTES so one task
#: never carries several 100,000-CDR records.
CHUNK_LINES = 16
CHUNK_BYTES = 4 << 20
IN_FLIGHT_PER_WORKER = 3

# Counted in the ledger's run counters: these leave no invoice or reject row.
_COUNTED = ("already_done", "repeated", "failed")


@dataclass
class RunSummary:
    """What a run did, as the closing table shows it."""

    run_id: int
    outcomes: Counter[str] = field(default_factory=Counter)
    reasons: Counter[tuple[str, str]] = field(default_factory=Counter)
    pages: int = 0
    interrupted: bool = False
    failures: list[Outcome] = field(default_factory=list)
    repeats: list[Outcome] = field(default_factory=list)
    deliveries: Counter[tuple[str, str]] = field(default_factory=Counter)

    def add(self, outcome: Outcome) -> None:
        self.outcomes[outcome.status] += 1
        self.deliveries.update(outcome.deliveries)
        self.pages += outcome.pages
        if outcome.reason:
            self.reasons[outcome.status, outcome.reason] += 1
        if outcome.status == "failed" and len(self.failures) < 100:
            self.failures.append(outcome)
        if outcome.status == "repeated" and len(self.repeats) < 100:
            self.repeats.append(outcome)

    @property
    def records(self) -> int:
        return sum(self.outcomes.values())


# --- worker side ---------------------------------------------------------------------

_services: Services | None = None


def _init_worker(settings: Settings, deliver: bool) -> None:
    global _services
    # Ctrl-C is the parent's to handle: it stops feeding and lets chunks finish.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _services = backends.services(settings, deliver=deliver)


def _run_chunk(run_id: int, chunk: list[tuple[int, bytes]]) -> list[Outcome]:
    assert _services is not None
    return [process_record(raw, line=n, run_id=run_id, services=_services)
            for n, raw in chunk]


# --- parent side ---------------------------------------------------------------------


def file_sha256(path: Path) -> str:
    """SHA-256 of the input file: a re-run of the same file is recognised by it."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def chunks(stream) -> Iterator[list[tuple[int, bytes]]]:
    """Group non-blank lines into tasks of at most CHUNK_LINES lines / CHUNK_BYTES."""
    chunk: list[tuple[int, bytes]] = []
    size = 0
    for number, raw in iter_lines(stream):
        chunk.append((number, raw))
        size += len(raw)
        if len(chunk) >= CHUNK_LINES or size >= CHUNK_BYTES:
            yield chunk
            chunk, size = [], 0
    if chunk:
        yield chunk


def run_file(path: Path, settings: Settings, *, workers: int | None = None,
             deliver: bool = True,
             progress: Callable[[RunSummary, int], None] | None = None) -> RunSummary:
    """Process every record of ``path``; resumable: re-running finishes what is missing.

    ``progress(summary, bytes_read)`` is called as chunks complete. Ctrl-C stops
    feeding new chunks, lets the ones in flight finish and returns with
    ``interrupted`` set; a later run of the same file redoes nothing that was done.
    """
    workers = workers or settings.effective_workers()
    services = backends.services(settings, deliver=deliver)
    ledger = services.ledger
    ledger.migrate()
    run_id = ledger.start_run(str(path), source_sha256=file_sha256(path))
    summary = RunSummary(run_id)

    def collect(outcomes: list[Outcome]) -> None:
        for outcome in outcomes:
            summary.add(outcome)
        counts = Counter(o.status for o in outcomes if o.status in _COUNTED)
        ledger.add_counts(run_id, counts)

    with open(path, "rb") as stream:
        if workers <= 1:
            # In-process: the same code path, without a pool (debugging, tiny files).
            global _services
            _services = services
            try:
                for chunk in chunks(stream):
                    collect(_run_chunk(run_id, chunk))
                    if progress:
                        progress(summary, stream.tell())
            except KeyboardInterrupt:
                summary.interrupted = True
        else:
            _pool_run(stream, run_id, settings, deliver, workers, collect, summary,
                      progress)
    ledger.finish_run(run_id)
    services.close()
    return summary


def _pool_run(stream, run_id: int, settings: Settings, deliver: bool, workers: int,
              collect, summary: RunSummary, progress) -> None:
    limit = workers * IN_FLIGHT_PER_WORKER
    pending: set[Future] = set()
    feed = chunks(stream)

    def settle_one() -> None:
        nonlocal pending
        done, pending = wait(pending, return_when=FIRST_COMPLETED)
        for f in done:
            collect(f.result())
        if progress:
            progress(summary, stream.tell())

    with ProcessPoolExecutor(workers, initializer=_init_worker,
                             initargs=(settings, deliver)) as pool:
        try:
            for chunk in feed:
                pending.add(pool.submit(_run_chunk, run_id, chunk))
                if len(pending) >= limit:  # backpressure: never read far ahead
                    settle_one()
            while pending:
                settle_one()
        except KeyboardInterrupt:
            summary.interrupted = True
            for f in pending:
                f.cancel()
            for f in pending:
                if not f.cancelled():
                    # A broken worker loses its chunk: its records stay claimed and
                    # the next run of the same file finishes them.
                    with contextlib.suppress(Exception):
                        collect(f.result())
