"""The delivery store: one row per (invoice, channel), a compare-and-set state machine;
on SQLite and PostgreSQL."""

from __future__ import annotations

import dataclasses

import pytest
import sqlalchemy as sa

from invoicer.ledger import Delivery, Ledger
from invoicer.ledger.schema import deliveries

RACERS = 8


def test_one_delivery_row_per_invoice_and_channel(led: Ledger, facts, race):
    invoice = led.invoices.claim("oi", "D-1", **facts()).invoice
    rows = race(RACERS, lambda i: led.deliveries.ensure(invoice.id, "email"))
    assert len({r.id for r in rows}) == 1
    assert (rows[0].state, rows[0].attempts) == ("pending", 0)
    assert led.deliveries.ensure(invoice.id, "sms").id != rows[0].id
    with pytest.raises(ValueError):
        led.deliveries.ensure(invoice.id, "fax")
    with pytest.raises(sa.exc.IntegrityError):  # foreign key, on SQLite too
        led.deliveries.ensure(10**9, "email")


def test_transition_race_has_one_winner(led: Ledger, facts, race):
    invoice = led.invoices.claim("oi", "D-2", **facts()).invoice
    delivery = led.deliveries.ensure(invoice.id, "email")
    won = race(RACERS, lambda i: led.deliveries.transition(delivery.id, "pending", "sending"))
    assert sum(won) == 1
    now = led.deliveries.get(delivery.id)
    assert (now.state, now.attempts) == ("sending", 1)


def test_transitions_follow_the_state_machine(led: Ledger, facts):
    invoice = led.invoices.claim("oi", "D-3", **facts()).invoice
    d = led.deliveries.ensure(invoice.id, "sms").id
    assert led.deliveries.transition(d, "pending", "sending")
    assert led.deliveries.transition(d, {"sending"}, "pending", error="429 Too Many Requests")
    assert led.deliveries.transition(d, ["pending"], "sending")
    assert not led.deliveries.transition(d, "pending", "sending")  # already moved on
    assert led.deliveries.transition(d, "sending", "sent", message_id="<D-3.sms.1@invoicer>")
    done = led.deliveries.get(d)
    assert (done.state, done.attempts, done.message_id) == ("sent", 2, "<D-3.sms.1@invoicer>")
    assert done.last_error == "429 Too Many Requests" and done.sent_at is not None
    for bad_from, bad_to in [("pending", "sent"), ("sent", "pending"), ("sending", "bogus")]:
        with pytest.raises(ValueError):
            led.deliveries.transition(d, bad_from, bad_to)
    with pytest.raises(ValueError):
        led.deliveries.transition(d, [], "sending")
    # A deliberate re-send leaves "sent" and counts a new attempt.
    assert led.deliveries.transition(d, {"sent", "failed_permanent", "unknown"}, "sending")
    assert led.deliveries.get(d).attempts == 3
    assert led.deliveries.get(10**9) is None


def test_start_creates_a_first_attempt_once_and_only_for_a_new_row(led: Ledger, facts, race):
    invoice = led.invoices.claim("oi", "D-5", **facts()).invoice
    started = race(RACERS, lambda i: led.deliveries.start(invoice.id, "email",
                                                          message_id=f"<D-5.{i}@invoicer>"))
    winners = [d for d in started if d is not None]
    assert len(winners) == 1  # the others find the row and must take the ordinary path
    d = winners[0]
    assert (d.state, d.attempts, d.handed_off_at) == ("sending", 1, None)
    assert led.deliveries.ensure(invoice.id, "email") == led.deliveries.get(d.id)
    assert led.deliveries.get(d.id).message_id == d.message_id
    assert not led.deliveries.transition(d.id, "pending", "sending")  # nobody else sends
    assert led.deliveries.hand_off(d.id)
    assert led.deliveries.transition(d.id, "sending", "sent")
    later = led.deliveries.ensure(invoice.id, "sms")  # an existing row: start says None
    assert led.deliveries.start(invoice.id, "sms", message_id="oi:D-5:sms:0") is None
    assert led.deliveries.get(later.id).state == "pending"
    with pytest.raises(ValueError):
        led.deliveries.start(invoice.id, "fax", message_id="x")


def test_row_dataclass_follows_its_tables_column_order():
    # reports.deliveries() builds rows positionally from a join; that relies on this order.
    assert [f.name for f in dataclasses.fields(Delivery)] == list(deliveries.c.keys())
