"""Detailed bills, fleet managers and invoice lines in the ledger, under races, on SQLite
and PostgreSQL."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from invoicer.ledger import Ledger


def _racers(db_url: str, n: int) -> list[Ledger]:
    return [Ledger.from_url(db_url) for _ in range(n)]


def test_a_detailed_bill_is_recorded_once_per_invoice_and_line(led, db_url, facts):
    invoice = led.invoices.claim("oi", "A-1", **facts()).invoice
    ledgers = _racers(db_url, 8)
    try:
        with ThreadPoolExecutor(8) as pool:
            made = list(pool.map(lambda one: one.detailed_bills.record(
                invoice.id, "", archive_key=f"k{id(one)}", sha256="0" * 64, size=1,
                pages=1, renderer_version="1"), ledgers))
    finally:
        for one in ledgers:
            one.close()
    assert len({m.archive_key for m in made}) == 1
    assert led.detailed_bills.get(invoice.id) == made[0]
    assert led.detailed_bills.get(invoice.id, "+5521911110001") is None
    line = led.detailed_bills.record(invoice.id, "+5521911110001", archive_key="k-line",
                                     sha256="1" * 64, size=2, pages=1, renderer_version="1")
    assert line.line == "+5521911110001" and led.detailed_bills.get(invoice.id) == made[0]


def test_managers_are_the_list_last_sent(led):
    fleet = led.fleet
    first = fleet.set_managers("oi", "9", [("+5521900000001", "a@example.com"),
                                           ("+5521900000002", None)])
    assert [(m.phone, m.email) for m in first] == [("+5521900000001", "a@example.com"),
                                                   ("+5521900000002", None)]
    again = fleet.set_managers("oi", "9", [("+5521900000001", "a@example.com"),
                                           ("+5521900000002", None)])
    assert again == first  # registration dates kept
    changed = fleet.set_managers("oi", "9", [("+5521900000002", "b@example.com")])
    assert [(m.phone, m.email) for m in changed] == [("+5521900000002", "b@example.com")]
    assert fleet.is_manager("oi", "9", "+5521900000002")
    assert not fleet.is_manager("oi", "9", "+5521900000001")
    assert not fleet.is_manager("vivo", "9", "+5521900000002")
    assert fleet.managed_by("+5521900000002").account == "9"
    assert fleet.set_managers("oi", "9", []) == []
    assert fleet.managed_by("+5521900000002") is None


def test_lines_are_recorded_once_and_found_through_archived_invoices(led, facts):
    a = led.invoices.claim("oi", "B-1", **facts(account="9")).invoice
    led.fleet.record_lines(a.id, ["+5521900000011", "+5521900000012"])
    led.fleet.record_lines(a.id, ["+5521900000011"])  # again: no change, no error
    assert led.fleet.latest_for_line("+5521900000011") is None  # not archived yet
    led.invoices.mark_archived(a.id, sha256="0" * 64, archive_key="oi/9/x.pdf",
                               renderer_version="1")
    assert led.fleet.latest_for_line("+5521900000011").number == "B-1"
    assert led.fleet.covers(a.id, "+5521900000012")
    assert not led.fleet.covers(a.id, "+5521900000013")
    assert [i.number for i in led.fleet.line_invoices("oi", "9", "+5521900000012")] == ["B-1"]
    assert led.fleet.line_invoices("oi", "8", "+5521900000012") == []
