"""The run store: runs, their chunks and counts, dead letters; on SQLite and PostgreSQL."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest

from invoicer.ledger import Ledger, RunChunk
from invoicer.ledger.schema import run_chunks

RACERS = 8

ERROR = {
    "line": 12, "invoice_number": "OI-9", "reason": "reconciliation",
    "path": "totals.total_due", "message": "total_due is 104.70 but ... = 104.75",
    "issues": [{"path": "totals.total_due", "message": "total_due is 104.70 but ... = 104.75",
                "reason": "reconciliation"}],
}


# ---------------------------------------------------------------------------- dead letters


def test_rejects_are_recorded_once_per_source_line(led: Ledger):
    raw = b'{"schema": "billing-record/1", \xff broken'
    run = led.runs.start("bill.jsonl", source_sha256="f" * 64)
    assert led.runs.record_reject(run, 12, ERROR, raw) is True
    assert led.runs.record_reject(run, 12, ERROR, raw) is False
    # The same file run again (after a crash): the line is already dead-lettered.
    rerun = led.runs.start("bill.jsonl", source_sha256="f" * 64)
    assert led.runs.record_reject(rerun, 12, ERROR, raw) is False
    assert led.runs.record_reject(rerun, 13, ERROR, "text line") is True
    # Without a file hash, idempotent per run.
    blind = led.runs.start("stdin")
    assert led.runs.record_reject(blind, 12, ERROR, raw) is True
    assert led.runs.record_reject(blind, 12, ERROR, raw) is False

    [dead] = led.runs.rejects(run)
    assert (dead.line, dead.invoice_number, dead.reason, dead.path) == (
        12, "OI-9", "reconciliation", "totals.total_due")
    assert dead.raw == raw and dead.issues == ERROR["issues"]
    assert led.runs.rejects(rerun)[0].raw == b"text line"


def test_a_planned_sha256_keys_the_dead_letters_of_the_file(led: Ledger):
    # A run opened before its file was read (workers): planning records the hash, and
    # from then on the lines are dead-lettered per file, whichever run sees them.
    first = led.runs.start("file:///bill.jsonl")
    led.runs.record_reject(first, 3, ERROR, b"x")  # before planning: per run
    led.runs.plan(first, source_sha256="a" * 64)
    assert led.runs.record_reject(first, 4, ERROR, b"y") is True
    second = led.runs.start("file:///bill.jsonl", source_sha256="a" * 64)
    assert led.runs.record_reject(second, 4, ERROR, b"y") is False
    assert led.runs.record_reject(second, 3, ERROR, b"x") is True


def test_reject_race_records_one(led: Ledger, race):
    run = led.runs.start("bill.jsonl", source_sha256="e" * 64)
    assert sum(race(RACERS, lambda i: led.runs.record_reject(run, 5, ERROR, b"x"))) == 1


def test_writers_that_read_first_wait_instead_of_failing(led: Ledger, db_url: str, race):
    # record_reject reads the run's source key, then inserts. On SQLite a deferred
    # transaction doing that fails with "database is locked" as soon as another writer
    # commits in between; the ledger's writers take the lock up front and wait instead.
    run = led.runs.start("bill.jsonl", source_sha256="9" * 64)
    ledgers = [Ledger.from_url(db_url) for _ in range(RACERS)]

    def write(i: int) -> int:
        mine = ledgers[i]
        for line in range(25):
            mine.runs._source_keys.clear()  # force the read on every call
            mine.runs.record_reject(run, i * 1000 + line, ERROR, b"x")
        return 25

    try:
        assert sum(race(RACERS, write)) == RACERS * 25
    finally:
        for one in ledgers:
            one.close()
    assert len(led.runs.rejects(run)) == RACERS * 25


# ---------------------------------------------------------------------------- runs and chunks


def test_runs_start_and_finish_once(led: Ledger):
    run = led.runs.start("bill.jsonl", source_sha256="d" * 64, expected=5)
    started = led.runs.get(run)
    assert started.finished_at is None and started.expected == 5
    led.runs.finish(run)
    finished = led.runs.get(run).finished_at
    led.runs.finish(run)
    assert finished is not None and led.runs.get(run).finished_at == finished
    assert led.runs.get(10**9) is None


def test_chunk_counts_are_kept_once_however_many_attempts_end_it(led: Ledger, race):
    # Several attempts at one chunk (a redelivered task, a re-enqueued one) end it at
    # once: exactly one ending lands, with its counts; the run's counts are exact.
    run = led.runs.start("file:///bill.jsonl")
    assert led.runs.add_chunks(run, [(0, 0, 10, 1, 2, "a"), (1, 10, 20, 3, 2, "b")]) == [0, 1]
    assert led.runs.add_chunks(run, [(0, 0, 10, 1, 2, "a")]) == [0]  # still planned
    led.runs.finish_planning(run, 4)
    for _ in range(3):
        assert led.runs.start_chunk(run, 0) is not None
    ended = race(RACERS, lambda i: led.runs.end_chunk(
        run, 0, "done", outcomes={"archived": 1, "already_done": 1}))
    assert sum(ended) == 1
    assert led.runs.start_chunk(run, 0) is None  # terminal: nothing left to do
    assert not led.runs.end_chunk(run, 0, "failed", error="late")
    chunk = led.runs.get_chunk(run, 0)
    assert (chunk.state, chunk.attempts, chunk.outcomes) == (
        "done", 3, {"archived": 1, "already_done": 1})
    with pytest.raises(ValueError):
        led.runs.end_chunk(run, 1, "running")
    progress = led.reports.run_progress(run)
    assert (progress.records_done, progress.outcomes, progress.finished) == (
        2, {"archived": 1, "already_done": 1}, False)


def test_a_run_is_finished_exactly_when_its_last_chunk_ends(led: Ledger, race):
    run = led.runs.start("file:///bill.jsonl")
    led.runs.add_chunks(run, [(i, i * 10, i * 10 + 10, i + 1, 1) for i in range(RACERS)])
    assert not led.runs.finish_if_complete(run)  # not even planned
    led.runs.finish_planning(run, RACERS)
    for i in range(RACERS):
        led.runs.start_chunk(run, i)

    def end(i: int) -> bool:
        led.runs.end_chunk(run, i, "done" if i else "failed", outcomes={"archived": 1})
        return led.runs.finish_if_complete(run)

    assert sum(race(RACERS, end)) == 1  # the last one to end, and only it
    progress = led.reports.run_progress(run)
    assert progress.finished and led.runs.get(run).finished_at is not None
    # Failed chunks count too: their records reached an end (or a person must look).
    assert progress.outcomes == {"archived": RACERS} and progress.records_done == RACERS
    # An empty source: planned with nothing to do is finished at once.
    empty = led.runs.start("file:///empty.jsonl")
    led.runs.finish_planning(empty, 0)
    assert led.runs.finish_if_complete(empty)


def test_planned_pages_and_abandoned_chunks(led: Ledger):
    run = led.runs.start("bill.jsonl")
    led.runs.add_chunks(run, [(i, i * 10, i * 10 + 10, i + 1, 1) for i in range(7)])
    led.runs.start_chunk(run, 2)
    assert led.runs.planned(run, limit=3) == [0, 1, 3]
    assert led.runs.planned(run, after=3, limit=3) == [4, 5, 6]
    assert led.runs.planned(run, after=6) == []
    led.runs.start_chunk(run, 0)
    led.runs.end_chunk(run, 0, "done", outcomes={"archived": 1})
    assert led.runs.abandon_chunks(run, "interrupted") == 6
    states = {c.seq: (c.state, c.last_error) for c in led.runs.chunks(run)}
    assert states[0] == ("done", None)
    assert {s for seq, s in states.items() if seq} == {("failed", "interrupted")}
    assert [c.seq for c in led.runs.chunks(run, ["done"])] == [0]


def test_only_workers_runs_are_reconciled(tmp_path):
    clock = [datetime.now(UTC)]
    led = Ledger.from_url(f"sqlite:///{tmp_path}/l.db", clock=lambda: clock[0])
    led.migrate()
    cli = led.runs.start("samples/invoices.jsonl")  # the CLI's: a path
    workers = led.runs.start("file:///srv/bill.jsonl")
    splitting = led.runs.start("s3://bucket/bill.jsonl")  # its coordinator died
    for run in (cli, workers, splitting):
        led.runs.add_chunks(run, [(0, 0, 10, 1, 1)])
    for run in (cli, workers):
        led.runs.finish_planning(run, 1)
    later = clock[0] + timedelta(hours=1)
    assert [(c.run_id, c.seq) for c in led.runs.stale_chunks(later)] == [(workers, 0)]
    assert [r.id for r in led.runs.unplanned(later)] == [splitting]
    assert led.runs.requeue_stale_chunk(workers, 0, later)
    assert not led.runs.requeue_stale_chunk(workers, 0, clock[0])  # just touched
    led.close()


def test_row_dataclass_follows_its_tables_column_order():
    assert [f.name for f in dataclasses.fields(RunChunk)] == list(run_chunks.c.keys())
