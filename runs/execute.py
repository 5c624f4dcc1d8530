"""Executing one chunk of a bill run, and counting what became of its records.

Every executor runs a chunk through :func:`run_chunk`: the chunk is taken in the ledger
(``running``, one more attempt), its byte range read and checked against the SHA-256 it
was planned with, every record walked through ``pipeline.process_records``, and the
chunk ended with its outcome counts in the same statement, so a run's counts are exact
however often a chunk ran. What differs is only what an executor does with records
that wait on a backend:

- ``retry=True`` (the Celery workers): a record that failed transiently, or an e-mail
  or SMS still ``pending``/``sending``, puts the chunk back to ``queued`` and raises
  :class:`ChunkNotFinished`, for the task's retry (or the reconciler) to finish it;
- ``retry=False`` (the CLI's one pass): the chunk ends now; records that failed make it
  ``failed`` (run the same file again to finish them), deliveries left ``pending`` go
  out on that next run.

Either way a chunk whose records failed for good is ``failed``, with the first reasons
in its ``last_error``; the run is finished when its last chunk is.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from invoicer.delivery.errors import (
    DeliveryError,
    PermanentDeliveryError,
    TransientDeliveryError,
)
from invoicer.logs import log_context
from invoicer.pipeline import Outcome, Services, process_records
from invoicer.runs.chunks import chunk_lines
from invoicer.runs.sources import read_range

__all__ = ["ChunkNotFinished", "ChunkResult", "run_chunk"]

#: Reasons kept in a chunk's ``last_error``.
SHOWN_ERRORS = 5
#: Attempts of a chunk in which an unexpected error of a record (outcome ``internal``)
#: sends the chunk back to the queue rather than failing it for a person.
INTERNAL_ATTEMPTS = 3


class ChunkNotFinished(TransientDeliveryError):
    """Some records of the chunk wait on a backend (storage down, SMTP down, a delivery
    in flight elsewhere): the task retries later; the reconciler if retries run out."""


@dataclass(frozen=True, slots=True)
class ChunkResult:
    """How one attempt at a chunk ended: ``done``, ``failed`` or ``skipped`` (the chunk
    was already finished, or is unknown), its records' outcomes and its size."""

    run_id: int
    seq: int
    state: str
    outcomes: list[Outcome] = field(default_factory=list)
    size: int = 0
    error: str | None = None

    def counts(self) -> Counter[str]:
        """Records by outcome."""
        return Counter(o.status for o in self.outcomes)

    def as_dict(self) -> dict[str, Any]:
        """What a task returns (identifiers and counts only)."""
        if self.state == "skipped":
            return {"run_id": self.run_id, "seq": self.seq, "skipped": True}
        return {"run_id": self.run_id, "seq": self.seq, "state": self.state,
                **self.counts()}


def run_chunk(run_id: int, seq: int, services: Services, *, retry: bool) -> ChunkResult:
    """Process one chunk of a run (see :func:`_run_chunk`); its log lines name the run
    and the chunk."""
    with log_context(run_id=run_id, chunk=seq):
        return _run_chunk(run_id, seq, services, retry=retry)


def _run_chunk(run_id: int, seq: int, services: Services, *, retry: bool) -> ChunkResult:
    """Process one chunk of a run: every record through ``pipeline.process_records``.

    ``retry`` says what records waiting on a backend do (see the module's docstring).
    A source that changed since it was split, or is gone, fails the chunk; one that
    cannot be read now is a transient error (raised with ``retry``, a failed chunk
    without).
    """
    ledger = services.ledger
    chunk = ledger.runs.start_chunk(run_id, seq)
    if chunk is None:
        return ChunkResult(run_id, seq, "skipped")
    size = chunk.end_byte - chunk.start_byte
    run = ledger.runs.get(run_id)
    assert run is not None  # a chunk without its run: the foreign key forbids it
    try:
        data = read_range(run.source, chunk.start_byte, chunk.end_byte)
        if chunk.sha256 and hashlib.sha256(data).hexdigest() != chunk.sha256:
            raise PermanentDeliveryError(
                f"{run.source} changed since run {run_id} was split (bytes "
                f"{chunk.start_byte}-{chunk.end_byte} differ): run it as a new run")
        outcomes = process_records(chunk_lines(data, chunk.first_line, chunk.start_byte == 0),
                                   run_id=run_id, services=services)
    except TransientDeliveryError as exc:
        error = f"{type(exc).__name__}: {exc}"
        if retry:
            ledger.runs.end_chunk(run_id, seq, "queued", error=error)
            raise
        return _end(services, ChunkResult(run_id, seq, "failed", size=size, error=error))
    except DeliveryError as exc:
        return _end(services, ChunkResult(run_id, seq, "failed", size=size, error=str(exc)),
                    counted=False)
    # An unexpected error (``internal``) may be the process's rather than the record's
    # (a connection left mid-statement by a signal, as when a worker is told to stop):
    # on the workers the chunk goes back to the queue for a few attempts before a
    # person is asked to look. A record's own fault fails the same way each time.
    again = "internal" if retry and chunk.attempts < INTERNAL_ATTEMPTS else None
    transient = [f"line {o.line}: {o.message}" for o in outcomes
                 if o.status == "failed" and o.reason in ("transient", again)]
    broken = [f"line {o.line}: {o.reason}: {o.message}" for o in outcomes
              if o.status == "failed" and o.reason not in ("transient", again)]
    if retry:
        waiting = transient + [f"line {o.line}: {channel} {state}" for o in outcomes
                               for channel, state in o.deliveries
                               if channel in ("email", "sms")
                               and state in ("pending", "sending")]
        if waiting:
            ledger.runs.end_chunk(run_id, seq, "queued",
                                  error="; ".join(waiting[:SHOWN_ERRORS]))
            raise ChunkNotFinished(f"run {run_id} chunk {seq}: {len(waiting)} record(s) "
                                   f"waiting: {waiting[0]}")
    else:
        broken = transient + broken
    state = "failed" if broken else "done"
    return _end(services, ChunkResult(run_id, seq, state, outcomes, size,
                                      "; ".join(broken[:SHOWN_ERRORS]) or None))


def _end(services: Services, result: ChunkResult, *, counted: bool = True) -> ChunkResult:
    """Record how the chunk ended (its counts, unless nothing was processed) and finish
    the run if this was its last chunk."""
    ledger = services.ledger
    ledger.runs.end_chunk(result.run_id, result.seq, result.state,
                          outcomes=dict(result.counts()) if counted else None,
                          error=result.error)
    ledger.runs.finish_if_complete(result.run_id)
    return result
