"""The subscriber-access store (and payment status) under races, on SQLite and PostgreSQL."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from invoicer.ledger import Ledger


def _racers(db_url: str, n: int, **options) -> list[Ledger]:
    return [Ledger.from_url(db_url, **options) for _ in range(n)]


def test_one_right_answer_wins_and_wrong_tries_stop_at_five(led, db_url):
    store = led.access
    code = store.add_code(phone="+5521987654321", operator_id="oi", account="1",
                          salt="s", code_hash="h", ttl=timedelta(minutes=15))
    ledgers = _racers(db_url, 8)
    try:
        with ThreadPoolExecutor(8) as pool:
            wins = list(pool.map(lambda one: one.access.use_code(code.id), ledgers))
        assert wins.count(True) == 1
        other = store.add_code(phone="+5521911112222", operator_id="oi", account="2",
                               salt="s", code_hash="h", ttl=timedelta(minutes=15))
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda one: one.access.wrong_try(other.id), ledgers))
        assert store.live_code("+5521911112222") is None  # 8 wrong tries: dead
        assert led.access.use_code(other.id) is False
    finally:
        for one in ledgers:
            one.close()


def test_rate_counters_and_second_copies_hold_under_races(led, db_url, facts):
    invoice = led.invoices.claim("oi", "A-1", **facts()).invoice
    # The 40 hits count in one fixed 15-minute window of the racers' clock: on the wall
    # clock a quarter hour passing among them would split the count over two windows.
    now = datetime.now(UTC)
    ledgers = _racers(db_url, 8, clock=lambda: now)
    try:
        with ThreadPoolExecutor(8) as pool:
            counts = list(pool.map(
                lambda one: one.access.hit(["b1", "b2"], timedelta(minutes=15)),
                ledgers * 5))
        assert sorted(c[0] for c in counts) == list(range(1, 41))
        with ThreadPoolExecutor(8) as pool:
            copies = list(pool.map(lambda one: one.access.record_second_copy(
                invoice.id, archive_key=f"k{id(one)}", sha256="0" * 64, size=1, pages=1,
                renderer_version="1"), ledgers))
        assert len({c.archive_key for c in copies}) == 1
    finally:
        for one in ledgers:
            one.close()
    store = led.invoices
    changed = store.set_payment_status(invoice.id, "partially_paid", amount=Decimal("1.50"),
                                       paid_on=facts()["issue_date"], source="t")
    again = store.set_payment_status(invoice.id, "partially_paid", amount=Decimal("1.50"),
                                     paid_on=facts()["issue_date"], source="t")
    assert changed[1] and not again[1]
    assert [e.amount for e in store.payment_history(invoice.id)] == [Decimal("1.50")]
