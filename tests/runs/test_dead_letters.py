"""Dead letters, on SQLite and PostgreSQL: any line can be dead-lettered, a huge one
without filling a database row.

Classes of failure covered (issue 13):

- *a dead letter that cannot be stored*: a hostile line's text (a lone surrogate, a
  NUL) quoted in an error message must not make the ledger's insert fail (PostgreSQL
  refuses both in text), or the line would be neither processed nor dead-lettered;
- *unbounded rows*: a rejected 200 KB line keeps 64 KiB in its row, the whole of it in
  a file the operator can read, named in the row;
- *valid but unrenderable, failed forever*: dead-lettered with its reason instead.
"""

from __future__ import annotations

import json

import pytest

from invoicer.billing import Issue, RecordError
from invoicer.delivery.archive import FileArchive
from invoicer.ledger import Ledger
from invoicer.ledger.runs import RAW_KEPT
from invoicer.pipeline import Services, dead_letter, process_record
from tests.conftest import SPEC_EXAMPLE


@pytest.fixture
def ledger(db_url):
    with Ledger.from_url(db_url) as one:
        one.migrate()
        yield one


def test_a_huge_rejected_line_keeps_its_start_in_the_row_and_all_of_it_in_a_file(
        ledger, tmp_path):
    services = Services(ledger=ledger, archive=FileArchive(tmp_path / "archive"),
                        rejects_dir=tmp_path / "rejects")
    run_id = ledger.runs.start("big.jsonl")
    raw = json.dumps({"schema": "billing-record/1", "padding": "x" * 200_000}).encode()
    outcome = process_record(raw, line=3, run_id=run_id, services=services)
    assert outcome.status == "rejected"
    (reject,) = ledger.runs.rejects(run_id)
    assert len(reject.raw) == RAW_KEPT and reject.raw == raw[:RAW_KEPT]
    assert reject.raw_size == len(raw) and reject.truncated
    assert reject.raw_file is not None
    with open(reject.raw_file, "rb") as f:
        assert f.read() == raw
    assert [p.name for p in (tmp_path / "rejects").iterdir()] == [f"run-{run_id}-line-3.jsonl"]
    small = ledger.runs.start("small.jsonl")
    process_record(b"not json", line=1, run_id=small, services=services)
    (kept,) = ledger.runs.rejects(small)
    assert kept.raw == b"not json" and kept.raw_file is None and not kept.truncated


def test_hostile_text_in_a_dead_letter_is_stored(ledger, tmp_path):
    services = Services(ledger=ledger, archive=FileArchive(tmp_path / "archive"))
    run_id = ledger.runs.start("hostile.jsonl")
    error = RecordError(Issue("account.customer.name", "holds \ud800 and \x00 here", "text"),
                        line=1, invoice_number="N\x00-\ud800")
    dead_letter(services, run_id, 1, error, b'{"name": "\\ud800\\u0000"}')
    (reject,) = ledger.runs.rejects(run_id)
    assert reject.message == "holds \\ud800 and \\x00 here"
    assert reject.raw == b'{"name": "\\ud800\\u0000"}'


def test_a_valid_record_that_cannot_be_rendered_is_dead_lettered(ledger, tmp_path):
    services = Services(ledger=ledger, archive=FileArchive(tmp_path / "archive"))
    doc = json.loads(json.dumps(SPEC_EXAMPLE))
    doc["services"][0]["usage"][0]["duration_s"] = 10**15  # a 15-digit call: no layout
    run_id = ledger.runs.start("r.jsonl")
    outcome = process_record(json.dumps(doc).encode(), line=1, run_id=run_id,
                             services=services)
    assert outcome.status == "rejected" and outcome.reason == "unrenderable", outcome
    (reject,) = ledger.runs.rejects(run_id)
    assert reject.reason == "unrenderable" and "cannot be rendered" in reject.message
    assert not list((tmp_path / "archive").rglob("*.pdf"))


def test_a_killed_writers_temporary_is_swept(ledger, tmp_path):
    """Class: leftovers of a killed run stay forever (a dead letter's temporary)."""
    import os
    import subprocess
    import sys

    from invoicer import pipeline

    rejects = tmp_path / "rejects"
    rejects.mkdir()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()
    (rejects / f".run-1-line-9.jsonl.{dead}.tmp").write_bytes(b"half")
    live = rejects / f".run-1-line-8.jsonl.{os.getppid()}.tmp"
    live.write_bytes(b"someone's")
    pipeline._swept.discard(rejects)
    services = Services(ledger=ledger, archive=FileArchive(tmp_path / "archive"),
                        rejects_dir=rejects)
    run_id = ledger.runs.start("big2.jsonl")
    process_record(b"[" + b"1," * 40_000 + b"1]", line=2, run_id=run_id, services=services)
    assert sorted(p.name for p in rejects.iterdir()) == sorted(
        [live.name, f"run-{run_id}-line-2.jsonl"])
