"""The one-machine bill run: a JSON Lines file's chunks across all cores.

The run is planned like any other (``invoicer.runs``: the file cut into chunks, one
ledger row each), then its chunks go to a pool of processes: rendering is CPU-bound,
and each process opens its own ledger connection and archive once. The parent feeds
chunk numbers (never records) and keeps a bounded number in flight; each process reads
its chunk's bytes itself and ends it in the ledger with its counts, so ``invoicer runs``
shows this run exactly as it shows one executed by Celery workers. The records'
outcomes also come back to the parent for the closing table.
"""

from __future__ import annotations

import contextlib
import signal
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path

from invoicer import backends, longlived
from invoicer.pipeline import Outcome, Services
from invoicer.runs import ChunkResult, plan, planned_chunks, run_chunk
from invoicer.settings import Settings

IN_FLIGHT_PER_WORKER = 3
#: Chunks a pool's process runs before the pool is replaced by a fresh one (about
#: 3,200 records at 16 a chunk). A rendering process's memory creeps up ~10 KB a
#: record with every cache bounded and its count of live objects flat (measured over
#: 1,500-5,000 records in one process): what is retained is the churn of the text
#: layout cache (8,192 shaped lines of every size), most likely fragmenting the
#: allocator's arenas. Left alone, a 100,000-invoice run would end with each process
#: hundreds of MB larger than a 10,000 one. A fresh pool costs each process its
#: warm-up (~0.5 s CPU), ~0.15 ms per record at this period.
CHUNKS_PER_POOL = 200

#: Why a chunk of an interrupted run was not done (``invoicer runs show`` says it).
INTERRUPTED = "interrupted before this chunk was done: run the same file again to finish"
STOPPED = "the run stopped on an error before this chunk was done: run the same file again"


@dataclass
class RunSummary:
    """What a run did, as the closing table shows it."""

    run_id: int
    outcomes: Counter[str] = field(default_factory=Counter)
    reasons: Counter[tuple[str, str]] = field(default_factory=Counter)
    pages: int = 0
    bytes_done: int = 0
    interrupted: bool = False
    failures: list[Outcome] = field(default_factory=list)
    repeats: list[Outcome] = field(default_factory=list)
    conflicts: list[Outcome] = field(default_factory=list)
    """Lines refused because their invoice number was issued with other content."""
    unread: list[tuple[int, str]] = field(default_factory=list)
    """Chunks that could not be read at all: ``(seq, why)``."""
    deliveries: Counter[tuple[str, str]] = field(default_factory=Counter)
    einvoices: Counter[str] = field(default_factory=Counter)
    """E-invoices issued by this run, per format."""

    def add(self, outcome: Outcome) -> None:
        self.outcomes[outcome.status] += 1
        self.deliveries.update(outcome.deliveries)
        if outcome.status == "archived" and outcome.einvoice:
            self.einvoices[outcome.einvoice] += 1
        self.pages += outcome.pages
        if outcome.reason:
            self.reasons[outcome.status, outcome.reason] += 1
        if outcome.status == "failed" and len(self.failures) < 100:
            self.failures.append(outcome)
        if outcome.status == "repeated" and len(self.repeats) < 100:
            self.repeats.append(outcome)
        if outcome.reason == "conflict" and len(self.conflicts) < 100:
            self.conflicts.append(outcome)

    def add_chunk(self, result: ChunkResult) -> None:
        for outcome in result.outcomes:
            self.add(outcome)
        self.bytes_done += result.size
        if result.state == "failed" and not result.outcomes:
            self.unread.append((result.seq, result.error or "unknown"))

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
    longlived.freeze()  # the services live as long as the process


def _run_chunk(run_id: int, seq: int) -> ChunkResult:
    assert _services is not None
    return run_chunk(run_id, seq, _services, retry=False)


# --- parent side ---------------------------------------------------------------------


def run_file(path: Path, settings: Settings, *, workers: int | None = None,
             deliver: bool = True,
             progress: Callable[[RunSummary, int], None] | None = None,
             own_process: bool = False) -> RunSummary:
    """Process every record of ``path``; resumable: re-running finishes what is missing.

    ``progress(summary, bytes_done)`` is called as chunks complete. Ctrl-C stops
    feeding new chunks, lets the ones in flight finish and returns with
    ``interrupted`` set (the chunks not done are ended ``failed``, saying so); a later
    run of the same file redoes nothing that was done.

    ``own_process``: this process does nothing but this run (``invoicer run``), so
    what it holds is frozen out of the garbage collector's way (:mod:`longlived`)
    before the pool forks, or before the records with one worker. Leave it False in a
    process that lives on (the API's bill-run thread): frozen objects that later form
    garbage cycles are never collected. The pool's own processes always freeze.
    """
    global _services
    workers = workers or settings.effective_workers()
    services = backends.services(settings, deliver=deliver)
    ledger = services.ledger
    ledger.migrate()
    source = str(path)
    run_id = ledger.runs.start(source)
    summary = RunSummary(run_id)
    completed = False
    try:
        plan(ledger, run_id, source, chunk_lines=settings.chunk_lines)
        seqs = (seq for page in planned_chunks(ledger, run_id) for seq in page)

        def collect(result: ChunkResult) -> None:
            summary.add_chunk(result)
            if progress:
                progress(summary, summary.bytes_done)

        if workers <= 1:
            # In-process: the same code path, without a pool (debugging, tiny files).
            _services = services
            if own_process:
                longlived.freeze()  # as a pool's process does, once its services are built
            try:
                for seq in seqs:
                    collect(_run_chunk(run_id, seq))
            except KeyboardInterrupt:
                summary.interrupted = True
        else:
            _pool_run(seqs, run_id, settings, deliver, workers, collect, summary,
                      freeze=own_process)
        completed = True
    except KeyboardInterrupt:  # while planning
        summary.interrupted = True
        completed = True
    finally:
        if summary.interrupted or not completed:
            # Nothing of this run is running any more: what is left is not done. (If
            # the run stopped on an error, that error is what the caller must see.)
            with contextlib.suppress(Exception):
                ledger.runs.abandon_chunks(run_id, INTERRUPTED if summary.interrupted
                                           else STOPPED)
                ledger.runs.finish_if_complete(run_id)
        services.close()
    return summary


def _warm_renderer() -> None:
    """Register the fonts and render one small synthetic invoice here, in the parent,
    before any pool forks: every process of every pool then starts with the fonts read
    and the renderer's first-use work done (~0.1 s CPU each, paid once instead of once
    per process and again with every fresh pool). Whatever fails here (a missing font)
    fails again in the processes, on the records, where it is reported."""
    with contextlib.suppress(Exception):
        import json

        from invoicer.billing import parse_record
        from invoicer.billing.synthetic import generate
        from invoicer.renderer import render

        for record in generate(1, 20, 0):
            render(parse_record(json.dumps(record).encode()))


def _pool_run(seqs: Iterator[int], run_id: int, settings: Settings, deliver: bool,
              workers: int, collect: Callable[[ChunkResult], None],
              summary: RunSummary, *, freeze: bool) -> None:
    """Hand the chunks to pools of ``workers`` processes, a new pool after every
    :data:`CHUNKS_PER_POOL` chunks a process (see there); ``freeze``: this process is
    the run's own (see :func:`run_file`)."""
    _warm_renderer()
    limit = workers * IN_FLIGHT_PER_WORKER
    pending: set[Future[ChunkResult]] = set()

    def settle_one() -> None:
        nonlocal pending
        done, pending = wait(pending, return_when=FIRST_COMPLETED)
        for f in done:
            collect(f.result())

    more = True
    while more:
        more = False
        if freeze:  # right before the fork: the children share, never copy, them
            longlived.freeze()
        with ProcessPoolExecutor(workers, initializer=_init_worker,
                                 initargs=(settings, deliver)) as pool:
            try:
                for handed, seq in enumerate(seqs, 1):
                    pending.add(pool.submit(_run_chunk, run_id, seq))
                    if len(pending) >= limit:  # backpressure: never hand out far ahead
                        settle_one()
                    if handed >= CHUNKS_PER_POOL * workers:
                        more = True  # the rest goes to fresh processes
                        break
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
                return
