"""The invoice store: claimed once, archived once, on SQLite and PostgreSQL."""

from __future__ import annotations

import dataclasses
import multiprocessing
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa

from invoicer.ledger import Invoice, Ledger, LedgerConflict
from invoicer.ledger.schema import invoices

RACERS = 8


def test_second_claim_of_a_number_finds_the_first(led: Ledger, facts):
    run = led.runs.start("bill.jsonl")
    first = led.invoices.claim("oi", "OI-1", run_id=run, source_line=3, **facts())
    assert first.created and first.status == "claimed" and not first.done
    again = led.invoices.claim("oi", "OI-1", run_id=run, source_line=9,
                               **facts(total=Decimal("1.00")))
    assert not again.created
    assert again.invoice == first.invoice  # the first claim's facts stand
    assert (again.invoice.run_id, again.invoice.source_line) == (run, 3)
    other_operator = led.invoices.claim("vivo", "OI-1", **facts())
    assert other_operator.created


def test_claim_race_between_threads_has_one_creator(led: Ledger, facts, race):
    claims = race(RACERS, lambda i: led.invoices.claim("oi", "RACE-1", source_line=i,
                                                       **facts()))
    assert sum(c.created for c in claims) == 1
    assert len({c.invoice.id for c in claims}) == 1
    with led.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(invoices)).scalar() == 1


def _claim_in_child(url: str, gate: Any, out: Any, i: int, values: dict) -> None:
    with Ledger.from_url(url) as mine:
        gate.wait()
        claim = mine.invoices.claim("oi", "PROC-1", source_line=i, **values)
        out.put((claim.created, claim.invoice.id))


def test_claim_race_between_processes_has_one_creator(sqlite_led: Ledger, sqlite_url: str,
                                                       facts):
    # Processes sharing one SQLite file is the CLI's default set-up; on PostgreSQL,
    # processes are no different from the threads above.
    ctx = multiprocessing.get_context("fork")
    gate, out = ctx.Barrier(4), ctx.Queue()
    procs = [ctx.Process(target=_claim_in_child, args=(sqlite_url, gate, out, i, facts()))
             for i in range(4)]
    for p in procs:
        p.start()
    results = [out.get(timeout=30) for _ in procs]
    for p in procs:
        p.join(timeout=30)
        assert p.exitcode == 0
    assert sorted(created for created, _ in results) == [False, False, False, True]
    assert len({invoice_id for _, invoice_id in results}) == 1


def test_a_claim_finds_the_previous_invoice_as_the_look_up_does(led: Ledger, facts):
    """``previous_before``: the insert finds the account's previous archived original
    itself (one statement); the same invoice :meth:`previous` names, fixed by the first
    claim like a ``previous_number`` given."""
    def archive(number: str, start: date, end: date, **over: Any) -> None:
        invoice = led.invoices.claim("oi", number, **facts(period_start=start,
                                                           period_end=end, **over)).invoice
        led.invoices.mark_archived(invoice.id, sha256="a" * 64, renderer_version="r1",
                                   archive_key=f"oi/1234567890/x/{number}.pdf")

    first = led.invoices.claim("oi", "PB-0", previous_before=date(2026, 8, 1),
                               **facts(period_start=date(2026, 8, 1),
                                       period_end=date(2026, 8, 31))).invoice
    assert first.previous_number is None  # nothing archived before
    archive("PB-1", date(2026, 8, 1), date(2026, 8, 31))
    archive("PB-2", date(2026, 9, 1), date(2026, 9, 30))
    archive("PB-3", date(2026, 9, 1), date(2026, 9, 30), kind="duplicate")  # not original
    archive("PB-4", date(2026, 9, 1), date(2026, 9, 30), account="999")  # another account
    led.invoices.claim("oi", "PB-5", **facts(period_start=date(2026, 9, 1),
                                             period_end=date(2026, 9, 30)))  # not archived
    claim = led.invoices.claim("oi", "PB-6", previous_before=date(2026, 10, 1),
                               **facts(period_start=date(2026, 10, 1)))
    assert claim.created and claim.invoice.previous_number == "PB-2"
    assert led.invoices.previous("oi", "1234567890", date(2026, 10, 1)).number == "PB-2"
    archive("PB-7", date(2026, 9, 2), date(2026, 9, 30))  # ties on the period's end
    again = led.invoices.claim("oi", "PB-6", previous_before=date(2026, 10, 1),
                               **facts(period_start=date(2026, 10, 1)))
    assert not again.created and again.invoice.previous_number == "PB-2"  # fixed
    later = led.invoices.claim("oi", "PB-8", previous_before=date(2026, 10, 1),
                               **facts(period_start=date(2026, 10, 1)))
    assert later.invoice.previous_number == "PB-7"  # the highest number of the tie
    with pytest.raises(ValueError):
        led.invoices.claim("oi", "PB-9", previous_before=date(2026, 10, 1),
                           previous_number="PB-1", **facts())


def test_mark_archived_once_and_never_with_other_bytes(led: Ledger, facts):
    invoice = led.invoices.claim("oi", "AR-1", **facts()).invoice
    args = dict(sha256="a" * 64, archive_key="oi/1234567890/2026-10/AR-1.pdf",
                renderer_version="r1", pages=2, size=4096)
    assert led.invoices.mark_archived(invoice.id, **args) is True
    assert led.invoices.mark_archived(invoice.id, **args) is False  # a retry: fine
    with pytest.raises(LedgerConflict):
        led.invoices.mark_archived(invoice.id, **{**args, "sha256": "b" * 64})
    done = led.invoices.get("oi", "AR-1")
    assert (done.status, done.sha256, done.pages, done.archived_at is not None) == (
        "archived", "a" * 64, 2, True)
    claim = led.invoices.claim("oi", "AR-1", **facts())
    assert not claim.created and claim.done
    with pytest.raises(LookupError):
        led.invoices.mark_archived(10**9, **args)


def test_the_line_that_archives_an_invoice_is_recorded_once(led: Ledger, facts, race):
    # Two runs of the same records race on one invoice: whichever marks it archived
    # first is its run and line for good, so the invoice is counted exactly once.
    first, second = led.runs.start("a.jsonl"), led.runs.start("b.jsonl")
    invoice = led.invoices.claim("oi", "W-1", run_id=first, source_line=4, **facts()).invoice
    args = dict(sha256="c" * 64, archive_key="k", renderer_version="r1")
    won = race(RACERS, lambda i: led.invoices.mark_archived(
        invoice.id, run_id=(first, second)[i % 2], source_line=4 + i % 2, **args))
    assert sum(won) == 1
    done = led.invoices.get_by_id(invoice.id)
    winner = won.index(True) % 2
    assert (done.run_id, done.source_line) == ((first, second)[winner], 4 + winner)
    # Without a run (tools, tests), the claim's run and line stay.
    other = led.invoices.claim("oi", "W-2", run_id=first, source_line=9, **facts()).invoice
    assert led.invoices.mark_archived(other.id, **args)
    assert (led.invoices.get_by_id(other.id).run_id,
            led.invoices.get_by_id(other.id).source_line) == (first, 9)


def test_already_done_sees_only_archived_numbers_in_batches(led: Ledger, facts):
    numbers = [f"B-{i:05d}" for i in range(1200)]
    with led.db.write() as conn:  # bulk set-up; claim is tested elsewhere
        now = datetime.now(UTC)
        conn.execute(invoices.insert(), [
            {"operator_id": "oi", "number": n, "kind": "original", "status": "archived",
             "payment_status": "unpaid", "created_at": now, "updated_at": now, **facts()}
            for n in numbers[::2]
        ])
    led.invoices.claim("oi", "B-00001", **facts())  # claimed, not done
    asked = [*numbers, "B-00000", "nope"]
    assert led.invoices.already_done("oi", asked) == set(numbers[::2])
    assert led.invoices.already_done("vivo", asked) == set()
    assert led.invoices.already_done("oi", []) == set()


def test_account_history_is_the_latest_archived_first(led: Ledger, facts):
    for month in range(1, 16):
        inv = led.invoices.claim("oi", f"H-{month:02d}", **facts(
            issue_date=date(2025, month, 5) if month <= 12 else date(2026, month - 12, 5)
        )).invoice
        led.invoices.mark_archived(inv.id, sha256=f"{month:064d}", archive_key=f"k{month}",
                                   renderer_version="r1")
    led.invoices.claim("oi", "H-99", **facts(issue_date=date(2027, 1, 5)))  # not archived
    led.invoices.claim("oi", "X-1", **facts(account="other"))
    history = led.invoices.for_account("oi", "1234567890")
    assert [i.number for i in history] == [f"H-{m:02d}" for m in range(15, 2, -1)]
    assert len(led.invoices.for_account("oi", "1234567890", limit=3)) == 3
    assert led.invoices.for_account("vivo", "1234567890") == []


def test_row_dataclass_follows_its_tables_column_order():
    # Joins (print batches, reports) build rows positionally; that relies on this order.
    assert [f.name for f in dataclasses.fields(Invoice)] == list(invoices.c.keys())
