"""One record through the pipeline: each archived invoice counted on exactly one line.

A record can be worked on by two runs at once (the same file enqueued twice) or by two
attempts of one chunk (a task redelivered, or retried after its first attempt archived
the invoice and then waited on an e-mail). Whatever interleaving, exactly one (run,
line) reports the invoice ``archived``: the one whose attempt the ledger let mark it.
"""

from __future__ import annotations

import json
import threading

import pytest

from invoicer.delivery.archive import FileArchive
from invoicer.ledger import Ledger
from invoicer.pipeline import Services, process_record
from tests.conftest import SPEC_EXAMPLE

RAW = json.dumps(SPEC_EXAMPLE).encode()


class MeetingArchive(FileArchive):
    """A file archive where the first two PDF puts wait for each other: both writers
    have rendered the invoice and neither has recorded it yet."""

    def __init__(self, root) -> None:
        super().__init__(root)
        self.gate = threading.Barrier(2, timeout=30)

    def put(self, key, data, **kwargs):
        result = super().put(key, data, **kwargs)
        if key.endswith(".pdf"):
            self.gate.wait()
        return result


@pytest.fixture
def ledger(db_url):
    with Ledger.from_url(db_url) as one:
        one.migrate()
        yield one


def test_two_runs_racing_on_one_record_count_it_once(ledger, tmp_path):
    archive = MeetingArchive(tmp_path / "archive")
    runs = [ledger.runs.start("a.jsonl"), ledger.runs.start("b.jsonl")]
    services = Services(ledger=ledger, archive=archive)
    outcomes = [None, None]

    def work(i: int) -> None:
        outcomes[i] = process_record(RAW, line=1, run_id=runs[i], services=services)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    statuses = sorted(o.status for o in outcomes)
    assert statuses == ["already_done", "archived"], outcomes
    winner = outcomes[0] if outcomes[0].status == "archived" else outcomes[1]
    invoice = ledger.invoices.get("oi", SPEC_EXAMPLE["invoice"]["number"])
    assert invoice.status == "archived"
    assert (invoice.run_id, invoice.source_line) == (runs[outcomes.index(winner)], 1)
    assert winner.pages == invoice.pages


def test_a_second_attempt_of_the_same_line_still_counts_it_archived(ledger, tmp_path):
    services = Services(ledger=ledger, archive=FileArchive(tmp_path / "archive"))
    run = ledger.runs.start("a.jsonl")
    first = process_record(RAW, line=3, run_id=run, services=services)
    again = process_record(RAW, line=3, run_id=run, services=services)  # the chunk's retry
    assert (first.status, again.status) == ("archived", "archived")
    assert again.pages == first.pages > 0
    # Another line of the same run: a repeat. Another run: already done.
    assert process_record(RAW, line=7, run_id=run, services=services).status == "repeated"
    rerun = ledger.runs.start("a.jsonl")
    assert process_record(RAW, line=3, run_id=rerun, services=services).status == \
        "already_done"


def test_a_process_stopping_mid_render_never_dead_letters_a_good_record(ledger, tmp_path,
                                                                          monkeypatch):
    """Class: a transient fault of the process taken for the record's. Celery stops a
    pool child with ``SystemExit`` from a signal handler; raised inside pydantic's
    serializer it arrives as a ``PydanticSerializationError`` naming it. Seen with a
    broker restart: a valid invoice was dead-lettered as ``unrenderable``."""
    import pydantic
    from pydantic_core import PydanticSerializationError

    from invoicer import pipeline

    services = Services(ledger=ledger, archive=FileArchive(tmp_path / "archive"))
    run = ledger.runs.start("a.jsonl")
    real = pipeline.render_document
    calls = []

    class Stopping(pydantic.BaseModel):
        @pydantic.field_serializer("x")
        def _stop(self, _):
            raise SystemExit(-15)

        x: int = 0

    def render_once_interrupted(record, options=None):
        calls.append(1)
        if len(calls) == 1:
            Stopping().model_dump_json()  # raises the wrapped SystemExit
        return real(record, options)

    monkeypatch.setattr(pipeline, "render_document", render_once_interrupted)
    stopped = process_record(RAW, line=1, run_id=run, services=services)
    assert (stopped.status, stopped.reason) == ("failed", "internal")
    assert PydanticSerializationError.__name__ in stopped.message
    assert len(calls) == 1  # not rendered again: the process is stopping
    assert ledger.runs.rejects(run) == []  # not dead-lettered: the claim waits
    # The chunk's next attempt finishes it.
    assert process_record(RAW, line=1, run_id=run, services=services).status == "archived"

    # A fault that does not repeat (the process's, not the record's) is rendered again.
    calls.clear()

    def render_once_failing(record, options=None):
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("a passing fault")
        return real(record, options)

    monkeypatch.setattr(pipeline, "render_document", render_once_failing)
    other = json.loads(RAW)
    other["invoice"]["number"] += "-B"
    got = process_record(json.dumps(other).encode(), line=2, run_id=run, services=services)
    assert got.status == "archived" and len(calls) == 2
    assert ledger.runs.rejects(run) == []
