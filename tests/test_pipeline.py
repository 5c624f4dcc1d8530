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
