"""Planning a bill run: its source cut into chunks, each recorded in the ledger.

The same for every executor: the source is read once (:class:`~runs.chunks.Split`),
its chunks are written as ``planned`` rows as they come, then the source's SHA-256 and
number of records are recorded (so dead letters are kept once per line of the same
file, whichever run sees them). Only then is work handed out: the Celery coordinator
sends a task per chunk, the CLI feeds its process pool; either way through
:func:`planned_chunks`, page by page, so a run of millions of records never has its
chunk list in memory.

Idempotent: planning the same run again (a redelivered coordinator) writes no chunk
twice and hands out only the chunks still ``planned``.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from invoicer.ledger import Ledger
from invoicer.runs.chunks import CHUNK_BYTES, split_source

__all__ = ["PLAN_BATCH", "Plan", "plan", "planned_chunks"]

log = logging.getLogger(__name__)

#: Chunk rows written (and tasks sent) per transaction.
PLAN_BATCH = 200


@dataclass(frozen=True, slots=True)
class Plan:
    """What planning found and did."""

    run_id: int
    records: int
    chunks: int
    handed_out: int
    sha256: str


def plan(ledger: Ledger, run_id: int, source: str, *, chunk_lines: int,
         chunk_bytes: int = CHUNK_BYTES,
         hand_out: Callable[[list[int]], None] | None = None) -> Plan:
    """Cut ``source`` into chunks and record them for run ``run_id``.

    ``hand_out(seqs)``, when given, is called with the sequence numbers of chunks still
    ``planned``, in pages, once the whole source is recorded (the Celery coordinator
    sends their tasks and marks them ``queued``).
    """
    split = split_source(source, chunk_lines, chunk_bytes)
    chunks = iter(split)
    while batch := list(itertools.islice(chunks, PLAN_BATCH)):
        ledger.runs.add_chunks(run_id, batch)
    assert split.sha256 is not None
    ledger.runs.plan(run_id, source_sha256=split.sha256)
    ledger.runs.finish_planning(run_id, split.records)
    handed = 0
    if hand_out is not None:
        for seqs in planned_chunks(ledger, run_id):
            hand_out(seqs)
            handed += len(seqs)
    ledger.runs.finish_if_complete(run_id)  # an empty source has nothing left to do
    log.info("run %s: %d records in %d chunks, %d handed out", run_id, split.records,
             split.chunks, handed)
    return Plan(run_id, split.records, split.chunks, handed, split.sha256)


def planned_chunks(ledger: Ledger, run_id: int, page: int = PLAN_BATCH
                   ) -> Iterator[list[int]]:
    """The run's ``planned`` chunks' sequence numbers, in order, a page at a time (read
    as they are asked for: the pages after one that was handed out)."""
    after = -1
    while seqs := ledger.runs.planned(run_id, after=after, limit=page):
        yield seqs
        after = seqs[-1]
