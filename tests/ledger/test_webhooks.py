"""The webhooks outbox: events written with the change they announce, fanned out to
endpoints, leased in order per invoice, replayed; on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from datetime import date, timedelta
from decimal import Decimal

import pytest
import sqlalchemy as sa

from invoicer.ledger import DELIVERY_EVENTS, Ledger, new_secret

SECRET = "s" * 32


def _issue(led: Ledger, facts, number: str, operator: str = "oi") -> int:
    invoice = led.invoices.claim(operator, number, **facts()).invoice
    assert led.invoices.mark_archived(invoice.id, sha256="a" * 64, archive_key=f"k/{number}",
                                      renderer_version="t", pages=2, size=10)
    return invoice.id


def _sent(led: Ledger, invoice_id: int, channel: str = "email") -> int:
    d = led.deliveries.ensure(invoice_id, channel).id
    assert led.deliveries.transition(d, "pending", "sending")
    assert led.deliveries.transition(d, "sending", "sent", message_id="<m@x>")
    return d


def test_every_announced_change_leaves_one_event_and_nothing_else_does(led: Ledger, facts):
    endpoint = led.webhooks.add_endpoint("oi", "http://127.0.0.1:9/h", SECRET)
    invoice_id = _issue(led, facts, "W-1")
    # A second mark_archived (a retry) changes nothing and announces nothing.
    assert not led.invoices.mark_archived(invoice_id, sha256="a" * 64, archive_key="k/W-1",
                                          renderer_version="t")
    email = _sent(led, invoice_id)
    sms = led.deliveries.ensure(invoice_id, "sms").id
    led.deliveries.transition(sms, "pending", "sending")
    led.deliveries.transition(sms, "sending", "pending", error="429")  # a step: no event
    led.deliveries.transition(sms, "pending", "sending")
    led.deliveries.transition(sms, "sending", "failed_permanent", error="no such number")
    led.invoices.set_payment_status(invoice_id, "paid", amount=Decimal("104.75"),
                                    paid_on=date(2026, 11, 19), source="billing")
    led.invoices.set_payment_status(invoice_id, "paid", amount=Decimal("104.75"),
                                    paid_on=date(2026, 11, 19), source="billing")  # no-op
    run_id = led.runs.start("file:///x.jsonl")
    assert led.runs.record_reject(run_id, 7, {"invoice_number": "W-9", "reason": "invalid",
                                              "path": "delivery.email", "message": "m@x.y"},
                                  b"{}", operator_id="oi")
    assert not led.runs.record_reject(run_id, 7, {"reason": "invalid"}, b"{}",
                                      operator_id="oi")
    led.webhooks.preference_changed("oi", "1234567890",
                                    {"delivery_mode": {"from": "paper", "to": "electronic"}},
                                    source="self-service")

    events = led.webhooks.events()
    assert [e.type for e in events] == [
        "invoice.issued", "delivery.sent", "delivery.failed", "payment_status.changed",
        "invoice.rejected", "subscriber.preference_changed"]
    assert len({e.event_id for e in events}) == len(events)
    bodies = [json.loads(e.body) for e in events]
    assert all(b["id"] == e.event_id and b["type"] == e.type and b["operator"] == "oi"
               for b, e in zip(bodies, events, strict=True))
    issued, sent, failed, paid, rejected, pref = (b["data"] for b in bodies)
    assert issued["invoice"]["total"] == "104.75" and issued["invoice"]["number"] == "W-1"
    assert sent["delivery"] == {"id": email, "channel": "email", "state": "sent",
                                "attempts": 1, "error": None, "message_id": "<m@x>",
                                "replaces": None, "report_status": None}
    assert failed["delivery"]["error"] == "no such number"
    assert paid["payment"] == {"status": "paid", "previous_status": "unpaid",
                               "amount": "104.75", "paid_on": "2026-11-19",
                               "source": "billing"}
    assert rejected["issues"] == [{"path": "delivery.email", "reason": "invalid"}]
    assert "m@x.y" not in events[4].body  # the rejected value is not sent on
    assert pref["changes"]["delivery_mode"]["to"] == "electronic"
    # Every event is queued for the operator's endpoint.
    assert led.webhooks.backlog() == {endpoint.id: len(events)}


def test_the_event_commits_or_rolls_back_with_its_change(led: Ledger, facts):
    invoice_id = _issue(led, facts, "W-2")
    d = led.deliveries.ensure(invoice_id, "email").id
    assert led.deliveries.transition(d, "pending", "sending")
    with led.engine.begin() as conn:  # the outbox breaks: the change must not happen alone
        conn.execute(sa.text("ALTER TABLE webhook_events RENAME TO webhook_events_gone"))
    with pytest.raises(sa.exc.DBAPIError):
        led.deliveries.transition(d, "sending", "sent")
    assert led.deliveries.get(d).state == "sending"
    with pytest.raises(sa.exc.DBAPIError):
        led.invoices.set_payment_status(invoice_id, "paid", source="billing")
    assert led.invoices.get_by_id(invoice_id).payment_status == "unpaid"
    with led.engine.begin() as conn:
        conn.execute(sa.text("ALTER TABLE webhook_events_gone RENAME TO webhook_events"))
    assert led.deliveries.transition(d, "sending", "sent")
    assert [e.type for e in led.webhooks.events(invoice_id=invoice_id)] == [
        "invoice.issued", "delivery.sent"]


def test_every_delivery_state_with_an_event_maps_to_a_known_type():
    from invoicer.ledger import EVENT_TYPES
    from invoicer.ledger.deliveries import EVENTS
    assert set(DELIVERY_EVENTS.values()) | set(EVENTS) == {
        t for t in EVENT_TYPES if t.startswith("delivery.")}


def test_endpoints_per_operator_and_wildcard(led: Ledger, facts):
    oi = led.webhooks.add_endpoint("oi", "http://127.0.0.1:9/oi", new_secret())
    vivo = led.webhooks.add_endpoint("vivo", "https://example.test/vivo", new_secret())
    every = led.webhooks.add_endpoint("*", "http://127.0.0.1:9/all", new_secret())
    _issue(led, facts, "W-3", "oi")
    _issue(led, facts, "W-4", "vivo")
    assert led.webhooks.backlog() == {oi.id: 1, vivo.id: 1, every.id: 2}
    assert led.webhooks.remove_endpoint(vivo.id) and not led.webhooks.remove_endpoint(vivo.id)
    _issue(led, facts, "W-5", "vivo")
    assert led.webhooks.backlog() == {oi.id: 1, every.id: 3}
    assert [e.id for e in led.webhooks.endpoints()] == [oi.id, every.id]
    with pytest.raises(ValueError, match="32 bytes"):
        led.webhooks.add_endpoint("oi", "http://x/", "short")
    with pytest.raises(ValueError):
        led.webhooks.add_endpoint("oi", "ftp://x/", SECRET)
    assert len(new_secret().encode()) >= 32 + len("whsec_")


def test_lease_is_in_order_per_invoice_and_exclusive(led: Ledger, facts, race):
    led.webhooks.add_endpoint("oi", "http://127.0.0.1:9/h", SECRET)
    a, b = _issue(led, facts, "W-6"), _issue(led, facts, "W-7")
    _sent(led, a)
    _sent(led, b)
    # Only the head of each invoice is due; racing senders share nothing.
    got = race(4, lambda i: led.webhooks.lease(10, timedelta(seconds=60)))
    leased = [d for batch in got for d in batch]
    assert sorted(d.type for d in leased) == ["invoice.issued", "invoice.issued"]
    assert led.webhooks.lease(10, timedelta(seconds=60)) == []  # leased, or blocked behind
    first_a = next(d for d in leased if json.loads(d.body)["data"]["invoice"]["number"]
                   == "W-6")
    led.webhooks.record_attempt(first_a.delivery_id, ok=False, status_code=500, error=None,
                                duration_ms=3, retry_at=led.clock())
    again = led.webhooks.lease(10, timedelta(seconds=60))
    assert [d.event_id for d in again] == [first_a.event_id]  # W-6's delivery.sent waits
    assert again[0].attempts == 1
    led.webhooks.record_attempt(first_a.delivery_id, ok=True, status_code=204, error=None,
                                duration_ms=3)
    nxt = led.webhooks.lease(10, timedelta(seconds=60))
    assert [d.type for d in nxt] == ["delivery.sent"]
    log = led.webhooks.attempts(event_id=first_a.event_id)
    assert [(x.status_code, x.error) for x in log] == [(204, None), (500, None)]


def test_an_expired_lease_comes_due_again(led: Ledger, facts):
    led.webhooks.add_endpoint("oi", "http://127.0.0.1:9/h", SECRET)
    _issue(led, facts, "W-8")
    (due,) = led.webhooks.lease(10, timedelta(seconds=-1))  # a sender that died at once
    (again,) = led.webhooks.lease(10, timedelta(seconds=60))
    assert again.delivery_id == due.delivery_id


def test_replay_requeues_same_ids_and_reaches_new_endpoints(led: Ledger, facts):
    first = led.webhooks.add_endpoint("oi", "http://127.0.0.1:9/a", SECRET)
    _issue(led, facts, "W-9")
    (due,) = led.webhooks.lease(10, timedelta(seconds=60))
    led.webhooks.record_attempt(due.delivery_id, ok=True, status_code=200, error=None,
                                duration_ms=1)
    assert led.webhooks.backlog() == {}
    later = led.webhooks.add_endpoint("oi", "http://127.0.0.1:9/b", SECRET)
    assert led.webhooks.replay([due.event_id]) == 2
    again = led.webhooks.lease(10, timedelta(seconds=60))
    assert {(d.event_id, d.endpoint_id) for d in again} == {
        (due.event_id, first.id), (due.event_id, later.id)}
    assert {d.body for d in again} == {due.body}
    assert led.webhooks.replay(since=led.clock() + timedelta(days=1)) == 0
    with pytest.raises(ValueError):
        led.webhooks.replay()


def test_a_preference_that_counts_is_announced_with_it_and_without_the_address(led: Ledger):
    paper = led.preferences.add("oi", "77", mode="paper", email=None, via="page",
                                client=None, confirmed_via="page-session")
    waiting = led.preferences.add("oi", "77", mode="electronic", email="ana@example.com",
                                  via="api", client=None)
    assert [e.type for e in led.webhooks.events()] == ["subscriber.preference_changed"]
    assert led.preferences.confirm(waiting.id, via="email-link") is not None
    assert led.preferences.confirm(waiting.id, via="email-link") is None  # once
    first, second = (json.loads(e.body)["data"] for e in led.webhooks.events())
    assert first["changes"] == {"delivery_mode": {"from": None, "to": "paper"}}
    assert first["preference_id"] == paper.id and first["account"] == "77"
    assert second["changes"] == {"delivery_mode": {"from": "paper", "to": "electronic"}}
    assert second["source"] == "email-link"
    assert all("ana@" not in e.body for e in led.webhooks.events())


def test_hostile_text_travels_escaped(led: Ledger):
    led.webhooks.emit("invoice.rejected", None, {"invoice_number": "\ud800<b>Ç\u202e"})
    (event,) = led.webhooks.events()
    assert event.body.isascii() and event.operator_id is None
    assert json.loads(event.body)["data"]["invoice_number"] == "\ud800<b>Ç\u202e"
