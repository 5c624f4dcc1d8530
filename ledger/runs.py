"""Bill runs in the ledger: the run, its chunks and what they counted, its dead letters.

A run reads one JSON Lines source. Whoever executes it (the CLI's process pool or the
Celery workers), it is planned the same way: the source is split into chunks of whole
lines by byte offsets (``invoicer.runs``), one row per chunk, and each chunk moves
through one state machine:

    planned -> queued -> running -> done | failed
       |         ^___________|   (retry after a transient error; the reconciler)
       '---------------------^   (the CLI's pool takes planned chunks directly)

``planned``: the row is written, its work not yet handed out (the Celery coordinator
sends tasks in batches; the CLI hands chunks to its pool); ``queued``: a task is on the
broker (or should be); ``running``: a process took it (``attempts`` counts how often);
``done``: every record reached an end state (``outcomes`` holds its counts, written in
the same statement, so a run's counts are exact however often a chunk ran); ``failed``:
something a person must look at (a permanent error, records that failed, a run
interrupted before the chunk was taken). Chunks of runs handed to workers that stay
not terminal and untouched for a while belong to a dead worker or a lost message: the
reconciler re-enqueues them (compare-and-set, so two reconcilers agree).

Dead letters (``rejects``) are kept once per line of a source: per the source's SHA-256
when it is known, so a second run of the same file dead-letters nothing twice.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from invoicer.ledger.db import IN_CHUNK, Database
from invoicer.ledger.schema import TERMINAL_CHUNK_STATES, rejects, run_chunks, runs

__all__ = ["Reject", "Run", "RunChunk", "RunStore"]

#: Chunks still to be done (an index range on ``(run_id, state)``, unlike NOT IN).
_OPEN_CHUNK_STATES = ("planned", "queued", "running")

# Runs handed to workers name their source by URL (``invoicer.runs.source_url``); the
# CLI's runs keep the path they were given. Only the former are the reconciler's.
_HANDED_TO_WORKERS = sa.or_(runs.c.source.like("file://%"), runs.c.source.like("s3://%"))


@dataclass(frozen=True, slots=True)
class Run:
    """One ``runs`` row. ``expected`` is set once the whole source is split."""

    id: int
    source: str
    source_sha256: str | None
    expected: int | None
    started_at: datetime
    finished_at: datetime | None


@dataclass(frozen=True, slots=True)
class RunChunk:
    """One ``run_chunks`` row: bytes ``[start_byte, end_byte)`` of the run's source,
    ``lines`` non-blank lines from line ``first_line`` on, whose SHA-256 is ``sha256``
    (the executor checks it: a source rewritten since it was split is refused)."""

    id: int
    run_id: int
    seq: int
    start_byte: int
    end_byte: int
    first_line: int
    lines: int
    sha256: str | None
    state: str
    attempts: int
    last_error: str | None
    outcomes: dict[str, int] | None
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class Reject:
    """One dead letter: the errors and the line exactly as it came."""

    id: int
    run_id: int
    line: int
    invoice_number: str | None
    reason: str
    path: str
    message: str
    issues: list[dict[str, Any]]
    raw: bytes
    """The line, or its first :data:`RAW_KEPT` bytes when it is longer."""
    raw_size: int | None
    """The line's whole length (None: dead-lettered before the length was kept)."""
    raw_file: str | None
    """Where the whole line is when ``raw`` is only its start, else None."""
    created_at: datetime

    @property
    def truncated(self) -> bool:
        """True when ``raw`` is only the start of the line."""
        return self.raw_size is not None and self.raw_size > len(self.raw)


#: Bytes of a dead-lettered line kept in its ``rejects`` row.
RAW_KEPT = 64 << 10


class RunStore:
    """The ``runs``, ``run_chunks`` and ``rejects`` tables."""

    def __init__(self, db: Database) -> None:
        self._db = db
        # A run's source key never changes once written, so it is safe to remember.
        self._source_keys: dict[int, str] = {}

    # ---------------------------------------------------------------- runs

    def start(self, source: str, *, source_sha256: str | None = None,
              expected: int | None = None) -> int:
        """Open a bill run and return its id.

        ``source_sha256`` (the input file's hash) makes dead letters idempotent across
        runs of the same file; ``expected`` (records in the source, if known) feeds
        progress displays.
        """
        with self._db.write() as conn:
            run_id = conn.execute(
                runs.insert()
                .values(source=source, source_sha256=source_sha256, expected=expected,
                        started_at=self._db.now())
                .returning(runs.c.id)
            ).scalar_one()
        self._source_keys[run_id] = _source_key(run_id, source_sha256)
        return run_id

    def get(self, run_id: int) -> Run | None:
        """The run, or ``None``."""
        with self._db.read() as conn:
            row = conn.execute(sa.select(runs).where(runs.c.id == run_id)).one_or_none()
        return Run(**row._mapping) if row else None

    def for_source(self, source: str, source_sha256: str) -> int:
        """The oldest run of ``source`` with this content, opened if there is none
        (single-record tasks: a redelivered task finds the run its first attempt
        opened; a key reused for new content gets a run of its own)."""
        with self._db.read() as conn:
            found = conn.execute(sa.select(sa.func.min(runs.c.id))
                                 .where(runs.c.source == source,
                                        runs.c.source_sha256 == source_sha256)).scalar()
        if found is not None:
            return int(found)
        return self.start(source, source_sha256=source_sha256)

    def finish(self, run_id: int) -> None:
        """Mark the run finished (the first call's time is kept)."""
        with self._db.write() as conn:
            conn.execute(runs.update()
                         .where(runs.c.id == run_id, runs.c.finished_at.is_(None))
                         .values(finished_at=self._db.now()))

    def finish_if_complete(self, run_id: int) -> bool:
        """Mark the run finished if it is split and no chunk is left to do; True when
        this call did it. One statement: the last of several chunks ending at once
        sees the others' ends, so a run is finished exactly when its last chunk is."""
        left = (sa.select(run_chunks.c.id)
                .where(run_chunks.c.run_id == run_id,
                       run_chunks.c.state.in_(_OPEN_CHUNK_STATES))
                .exists())
        with self._db.write() as conn:
            return conn.execute(
                runs.update()
                .where(runs.c.id == run_id, runs.c.finished_at.is_(None),
                       runs.c.expected.is_not(None), ~left)
                .values(finished_at=self._db.now())).rowcount == 1

    def unplanned(self, started_before: datetime, *, limit: int = 100) -> list[Run]:
        """Runs handed to workers whose split never finished (the coordinator died),
        started before ``started_before``."""
        with self._db.read() as conn:
            rows = conn.execute(
                sa.select(runs).where(runs.c.expected.is_(None),
                                      runs.c.finished_at.is_(None),
                                      runs.c.started_at < started_before, _HANDED_TO_WORKERS)
                .order_by(runs.c.id).limit(limit)).all()
        return [Run(**r._mapping) for r in rows]

    # ---------------------------------------------------------------- planning

    def plan(self, run_id: int, *, source_sha256: str | None) -> None:
        """Record what the planner found in the source: its SHA-256 (so that dead
        letters are kept once per line of the same file, whichever run sees them).
        Call before the first chunk is executed."""
        with self._db.write() as conn:
            conn.execute(runs.update().where(runs.c.id == run_id)
                         .values(source_sha256=sa.func.coalesce(runs.c.source_sha256,
                                                                source_sha256)))
        self._source_keys.pop(run_id, None)

    def finish_planning(self, run_id: int, expected: int) -> None:
        """The whole source is split: ``expected`` records in all."""
        with self._db.write() as conn:
            conn.execute(runs.update().where(runs.c.id == run_id).values(expected=expected))

    def add_chunks(self, run_id: int, chunks: Iterable[tuple]) -> list[int]:
        """Write chunk rows ``(seq, start_byte, end_byte, first_line, lines[, sha256])``
        as ``planned`` (existing ones are left alone) and return the sequence numbers
        among them still ``planned``: those whose work must be handed out now."""
        now = self._db.now()
        rows = [{"run_id": run_id, "seq": c[0], "start_byte": c[1], "end_byte": c[2],
                 "first_line": c[3], "lines": c[4], "sha256": c[5] if len(c) > 5 else None,
                 "state": "planned", "attempts": 0, "created_at": now, "updated_at": now}
                for c in chunks]
        if not rows:
            return []
        with self._db.write() as conn:
            conn.execute(self._db.insert(run_chunks).on_conflict_do_nothing(
                index_elements=[run_chunks.c.run_id, run_chunks.c.seq]), rows)
            return list(conn.execute(
                sa.select(run_chunks.c.seq)
                .where(run_chunks.c.run_id == run_id, run_chunks.c.state == "planned",
                       run_chunks.c.seq.in_([r["seq"] for r in rows]))
                .order_by(run_chunks.c.seq)).scalars())

    def planned(self, run_id: int, *, after: int = -1, limit: int = 200) -> list[int]:
        """Sequence numbers of the run's ``planned`` chunks after ``after``, in order:
        a page of the work still to hand out."""
        with self._db.read() as conn:
            return list(conn.execute(
                sa.select(run_chunks.c.seq)
                .where(run_chunks.c.run_id == run_id, run_chunks.c.state == "planned",
                       run_chunks.c.seq > after)
                .order_by(run_chunks.c.seq).limit(limit)).scalars())

    def mark_chunks_queued(self, run_id: int, seqs: Iterable[int]) -> None:
        """Their tasks are on the broker (only ``planned`` rows move)."""
        seqs = list(seqs)
        with self._db.write() as conn:
            for i in range(0, len(seqs), IN_CHUNK):
                conn.execute(run_chunks.update()
                             .where(run_chunks.c.run_id == run_id,
                                    run_chunks.c.seq.in_(seqs[i:i + IN_CHUNK]),
                                    run_chunks.c.state == "planned")
                             .values(state="queued", updated_at=self._db.now()))

    # ---------------------------------------------------------------- executing

    def start_chunk(self, run_id: int, seq: int) -> RunChunk | None:
        """A process takes the chunk: ``running``, one more attempt. ``None`` when it is
        already terminal (a redelivered or re-enqueued task: nothing to do) or unknown."""
        with self._db.write() as conn:
            row = conn.execute(
                run_chunks.update()
                .where(run_chunks.c.run_id == run_id, run_chunks.c.seq == seq,
                       run_chunks.c.state.not_in(TERMINAL_CHUNK_STATES))
                .values(state="running", attempts=run_chunks.c.attempts + 1,
                        updated_at=self._db.now())
                .returning(*run_chunks.c)
            ).one_or_none()
        return RunChunk(**row._mapping) if row else None

    def end_chunk(self, run_id: int, seq: int, state: str, *,
                  outcomes: Mapping[str, int] | None = None, error: str | None = None
                  ) -> bool:
        """Leave ``running``: ``done`` / ``failed`` (terminal) or back to ``queued`` (a
        retry is scheduled, or the reconciler will re-enqueue it). A terminal chunk
        never changes again; True if this call changed the row."""
        if state not in ("done", "failed", "queued"):
            raise ValueError(f"a chunk cannot end in {state!r}")
        values: dict[str, Any] = {"state": state, "updated_at": self._db.now(),
                                  "last_error": error}
        if outcomes is not None:
            values["outcomes"] = dict(outcomes)
        with self._db.write() as conn:
            return conn.execute(
                run_chunks.update()
                .where(run_chunks.c.run_id == run_id, run_chunks.c.seq == seq,
                       run_chunks.c.state.not_in(TERMINAL_CHUNK_STATES))
                .values(values)).rowcount == 1

    def abandon_chunks(self, run_id: int, error: str) -> int:
        """End every unfinished chunk of the run as ``failed`` with ``error``: for an
        executor that has stopped (the CLI after Ctrl-C; nothing of the run is still
        running). Returns how many."""
        with self._db.write() as conn:
            return conn.execute(
                run_chunks.update()
                .where(run_chunks.c.run_id == run_id,
                       run_chunks.c.state.in_(_OPEN_CHUNK_STATES))
                .values(state="failed", last_error=error, updated_at=self._db.now())
            ).rowcount

    def get_chunk(self, run_id: int, seq: int) -> RunChunk | None:
        """One chunk of a run, or ``None``."""
        with self._db.read() as conn:
            row = conn.execute(sa.select(run_chunks).where(
                run_chunks.c.run_id == run_id, run_chunks.c.seq == seq)).one_or_none()
        return RunChunk(**row._mapping) if row else None

    def chunks(self, run_id: int, states: Iterable[str] | None = None) -> list[RunChunk]:
        """The run's chunks (in ``states`` if given), in order."""
        query = sa.select(run_chunks).where(run_chunks.c.run_id == run_id)
        if states is not None:
            query = query.where(run_chunks.c.state.in_(sorted(states)))
        with self._db.read() as conn:
            rows = conn.execute(query.order_by(run_chunks.c.seq)).all()
        return [RunChunk(**r._mapping) for r in rows]

    # ---------------------------------------------------------------- reconciling

    def stale_chunks(self, older_than: datetime, *, limit: int = 1000) -> list[RunChunk]:
        """Chunks of runs handed to workers, not terminal and untouched since
        ``older_than``, oldest first."""
        with self._db.read() as conn:
            rows = conn.execute(
                sa.select(run_chunks)
                .join(runs, runs.c.id == run_chunks.c.run_id)
                .where(run_chunks.c.state.not_in(TERMINAL_CHUNK_STATES),
                       run_chunks.c.updated_at < older_than, _HANDED_TO_WORKERS,
                       # A run still being split is the coordinator's (or, if it
                       # died, planned again whole: see unplanned()).
                       runs.c.expected.is_not(None))
                .order_by(run_chunks.c.updated_at).limit(limit)).all()
        return [RunChunk(**r._mapping) for r in rows]

    def requeue_stale_chunk(self, run_id: int, seq: int, older_than: datetime) -> bool:
        """Take a stale chunk for re-enqueueing: ``queued``, touched now. True for one
        caller only (compare-and-set on the state and the time)."""
        with self._db.write() as conn:
            return conn.execute(
                run_chunks.update()
                .where(run_chunks.c.run_id == run_id, run_chunks.c.seq == seq,
                       run_chunks.c.state.not_in(TERMINAL_CHUNK_STATES),
                       run_chunks.c.updated_at < older_than)
                .values(state="queued", updated_at=self._db.now())).rowcount == 1

    # ---------------------------------------------------------------- dead letters

    def _source_key_of(self, conn: Connection, run_id: int) -> str:
        key = self._source_keys.get(run_id)
        if key is None:
            sha = conn.execute(
                sa.select(runs.c.source_sha256).where(runs.c.id == run_id)
            ).one_or_none()
            if sha is None:
                raise LookupError(f"no run with id {run_id}")
            key = self._source_keys[run_id] = _source_key(run_id, sha[0])
        return key

    def record_reject(self, run_id: int, line: int, error: Mapping[str, Any],
                      raw: bytes | str, *, raw_file: str | None = None) -> bool:
        """Dead-letter a line: its errors (``RecordError.to_dict()``) and raw bytes, of
        which the row keeps the first :data:`RAW_KEPT` (a 50 MB line does not belong in
        a database row; ``raw_file`` names where the caller put the whole of it).

        Once per (source, line): True when recorded now, False when that line of that
        source (same file hash, or the same run without one) was already dead-lettered.
        """
        whole = raw.encode("utf-8", "surrogatepass") if isinstance(raw, str) else raw
        raw_bytes, raw_size = bytes(whole[:RAW_KEPT]), len(whole)
        issues = list(error.get("issues") or [])
        first = issues[0] if issues else {}
        with self._db.write() as conn:
            key = self._source_key_of(conn, run_id)
            stmt = (
                self._db.insert(rejects)
                .values(
                    run_id=run_id, source_key=key, line=line,
                    invoice_number=error.get("invoice_number"),
                    reason=str(error.get("reason") or first.get("reason") or "invalid"),
                    path=str(error.get("path") or first.get("path") or ""),
                    message=str(error.get("message") or first.get("message") or ""),
                    issues=issues, raw=raw_bytes, raw_size=raw_size,
                    raw_file=raw_file if raw_size > RAW_KEPT else None,
                    created_at=self._db.now(),
                )
                .on_conflict_do_nothing(index_elements=[rejects.c.source_key, rejects.c.line])
                .returning(rejects.c.id)
            )
            return conn.execute(stmt).one_or_none() is not None

    def rejects(self, run_id: int, limit: int | None = None) -> list[Reject]:
        """The dead letters a run recorded, in line order (the first ``limit``)."""
        with self._db.read() as conn:
            rows = conn.execute(
                sa.select(*(rejects.c[f.name] for f in fields(Reject)))
                .where(rejects.c.run_id == run_id)
                .order_by(rejects.c.line)
                .limit(limit)
            ).all()
        return [Reject(**r._mapping) for r in rows]


def _source_key(run_id: int, source_sha256: str | None) -> str:
    return f"sha256:{source_sha256}" if source_sha256 else f"run:{run_id}"
