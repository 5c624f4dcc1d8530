"""Sending the webhooks outbox to a real HTTP receiver on loopback that fails, stalls
past the timeout, goes down and comes back; a sender killed mid-batch and run again.
Every event arrives, none is lost, and a duplicate is always the same event (same id,
same bytes). On SQLite and PostgreSQL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from invoicer.delivery.webhooks import HttpxPoster, MemoryPoster, verify
from invoicer.ledger import Ledger
from invoicer.workflows.webhooks import Backoff, retry_delay, send_due
from tests.support.servers import WebhookReceiver

ROOT = Path(__file__).resolve().parents[2]
SECRET = "whsec_" + "k" * 40
QUICK = Backoff(base=0.02, cap=0.1, jitter=0)


def _events(led: Ledger, facts, invoices: int) -> None:
    """invoice.issued, delivery.sent and payment_status.changed per invoice, plus a
    rejected line: what a small bill run and a payment file leave in the outbox."""
    for n in range(invoices):
        inv = led.invoices.claim("oi", f"H-{n}", **facts()).invoice
        led.invoices.mark_archived(inv.id, sha256="b" * 64, archive_key=f"k/{n}",
                                   renderer_version="t", pages=1, size=1)
        d = led.deliveries.ensure(inv.id, "email").id
        led.deliveries.transition(d, "pending", "sending")
        led.deliveries.transition(d, "sending", "sent")
        led.invoices.set_payment_status(inv.id, "paid", amount=Decimal("104.75"),
                                        paid_on=date(2026, 11, 20), source="bank")
    run_id = led.runs.start("file:///run.jsonl")
    led.runs.record_reject(run_id, 3, {"reason": "invalid", "path": "x"}, b"{",
                           operator_id="oi")


def _check_arrivals(led: Ledger, receiver: WebhookReceiver) -> dict[str, int]:
    """Every event arrived, accepted, signed, unchanged; in order per invoice. Returns
    how many times the receiver accepted (2xx) each event id."""
    events = led.webhooks.events(limit=10_000)
    seen: dict[str, int] = defaultdict(int)
    bodies: dict[str, bytes] = {}
    first_arrival: list[str] = []
    for hook in receiver.received:
        assert verify(SECRET, hook.headers["invoicer-signature"], hook.body) > 0
        event_id = hook.event_id
        assert hook.headers["invoicer-event-id"] == event_id
        assert bodies.setdefault(event_id, hook.body) == hook.body  # a duplicate is a copy
        if event_id not in seen:
            first_arrival.append(event_id)
        seen[event_id] += 1
    accepted = {h.event_id for h in receiver.received if h.status and h.status < 300}
    assert accepted == {e.event_id for e in events}  # none lost, nothing invented
    assert set(seen) == accepted
    per_invoice: dict[int, list[str]] = defaultdict(list)
    for e in events:
        if e.invoice_id is not None:
            per_invoice[e.invoice_id].append(e.event_id)
    for recorded in per_invoice.values():
        assert [i for i in first_arrival if i in recorded] == recorded
    assert led.webhooks.backlog() == {}
    accepted_copies: dict[str, int] = defaultdict(int)
    for hook in receiver.received:
        if hook.status and hook.status < 300:
            accepted_copies[hook.event_id] += 1
    return accepted_copies


def test_every_event_arrives_through_errors_timeouts_and_an_outage(led: Ledger, facts):
    with WebhookReceiver() as receiver:
        led.webhooks.add_endpoint("oi", receiver.url, SECRET)
        _events(led, facts, 6)
        receiver.script = [500, 503, ("stall", 3.0), 429, 500, ("stall", 3.0), 502]
        # 1 s: a stall times out, an ordinary answer does not even on a busy machine (one
        # slower than the timeout would be sent again, rightly, and counted accepted
        # twice by the receiver, which records a 200 before it is sent).
        poster = HttpxPoster.with_timeout(1.0)
        try:
            report = send_due(led, poster, batch=5, backoff=QUICK)
            assert report.failed >= 1 and report.deferred >= 1
            receiver.stop()  # the billing system goes down: connections refused
            time.sleep(0.15)
            down = send_due(led, poster, batch=5, backoff=QUICK)
            assert down.failed >= 1 and down.delivered == 0
            receiver.start()  # and comes back on the same port
            deadline = time.monotonic() + 20
            while led.webhooks.backlog() and time.monotonic() < deadline:
                send_due(led, poster, batch=5, backoff=QUICK)
                time.sleep(0.03)
        finally:
            poster.close()
        seen = _check_arrivals(led, receiver)
    # Refused, failed and stalled attempts were retried; each event was accepted once.
    assert set(seen.values()) == {1}
    assert len(receiver.received) > len(seen)
    errors = {(a.status_code, (a.error or "")[:24]) for a in led.webhooks.attempts(limit=500)}
    assert (500, "HTTP 500") in errors and (429, "HTTP 429") in errors
    assert any(code is None and "timed out" in err for code, err in errors)
    assert any(code is None and "not reached" in err for code, err in errors)


def _cli(env: dict[str, str], *args: str):
    """``invoicer webhooks ARGS`` in this process, with ``env``'s settings."""
    from typer.testing import CliRunner

    from invoicer.cli import app
    from invoicer.settings import get_settings

    get_settings.cache_clear()
    try:
        return CliRunner().invoke(app, ["webhooks", *args], env=env)
    finally:
        get_settings.cache_clear()


def test_a_sender_killed_mid_batch_loses_nothing(db_url: str, facts, tmp_path: Path):
    env = {"INVOICER_DB_URL": db_url, "INVOICER_WEBHOOK_BATCH": "8",
           "INVOICER_WEBHOOK_LEASE": "1", "INVOICER_WEBHOOK_TIMEOUT": "5"}
    with Ledger.from_url(db_url) as led, WebhookReceiver() as receiver:
        led.migrate()
        led.webhooks.add_endpoint("*", receiver.url, SECRET)
        _events(led, facts, 10)  # 31 events
        receiver.delay = 0.05
        # A real process, really killed (SIGKILL: no clean-up of any kind).
        sender = subprocess.Popen(
            [sys.executable, "-m", "invoicer", "webhooks", "send"], cwd=tmp_path,
            env={**os.environ, **env, "PYTHONPATH": str(ROOT.parent)},
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while len(receiver.received) < 5 and time.monotonic() < deadline:
            time.sleep(0.01)
        sender.send_signal(signal.SIGKILL)  # mid-batch: some sent, some leased, some not
        sender.wait(10)
        assert 5 <= len(receiver.received) < 31
        assert led.webhooks.backlog()  # work was left behind
        time.sleep(1.2)  # the dead sender's lease runs out
        receiver.delay = 0
        again = _cli(env, "send")
        assert again.exit_code == 0, again.output
        assert "0 waiting" in again.output
        seen = _check_arrivals(led, receiver)
        # Accepted twice only what the killed sender had leased (its batch of 8).
        assert sum(seen.values()) - len(seen) <= 8

        # Replay from the CLI: the same event, same id and bytes, once more.
        first = led.webhooks.events(limit=1)[0]
        assert "1 webhook deliveries queued again" in _cli(env, "replay",
                                                            first.event_id).output
        before = len(receiver.received)
        assert _cli(env, "send").exit_code == 0
        assert [h.event_id for h in receiver.received[before:]] == [first.event_id]
        assert receiver.received[-1].body == first.body.encode()
        log = _cli(env, "attempts", "--event", first.event_id)
        assert log.exit_code == 0 and first.event_id[:12] in log.output


def test_a_failing_endpoint_does_not_hold_up_another(led: Ledger, facts):
    bad = led.webhooks.add_endpoint("oi", "http://bad.test/h", SECRET)
    good = led.webhooks.add_endpoint("*", "http://good.test/h", SECRET)
    _events(led, facts, 3)

    class Split(MemoryPoster):
        def post(self, url, body, headers):
            return 503 if "bad" in url else super().post(url, body, headers)

    poster = Split()
    report = send_due(led, poster, batch=4, backoff=Backoff(base=30, jitter=0))
    assert {p.url for p in poster.posted} == {"http://good.test/h"}
    assert led.webhooks.backlog() == {bad.id: 10}
    assert report.delivered == 10 and report.failed == 1  # one try, then deferred
    assert good.id not in led.webhooks.backlog()


def test_backoff_doubles_up_to_its_cap():
    b = Backoff(base=10, cap=100, jitter=0.5)
    assert [retry_delay(b, n, rand=lambda: 0) for n in (1, 2, 3, 4, 5)] == [10, 20, 40, 80, 100]
    assert retry_delay(b, 2, rand=lambda: 1) == 10  # full jitter takes at most half off


@pytest.mark.parametrize("answer", [None, 500])
def test_a_failed_attempt_is_due_again_only_after_its_backoff(led: Ledger, db_url: str, facts,
                                                              answer):
    # The ledger (led's database) on a clock of the test's own: on the wall clock, the
    # "not due yet" call had to come within the 0.5 s backoff of the failure, and a
    # loaded machine stalling the test that long made the retry due already.
    clock = [datetime.now(UTC)]
    with Ledger.from_url(db_url, clock=lambda: clock[0]) as timed:
        timed.webhooks.add_endpoint("oi", "http://x.test/h", SECRET)
        inv = timed.invoices.claim("oi", "B-1", **facts()).invoice
        timed.invoices.mark_archived(inv.id, sha256="c" * 64, archive_key="k",
                                     renderer_version="t")
        poster = MemoryPoster(answers=[answer])
        backoff = Backoff(base=0.5, jitter=0)
        assert send_due(timed, poster, backoff=backoff).failed == 1
        assert send_due(timed, poster, backoff=backoff).delivered == 0
        clock[0] += timedelta(seconds=0.45)
        assert send_due(timed, poster, backoff=backoff).delivered == 0
        clock[0] += timedelta(seconds=0.1)
        assert send_due(timed, poster, backoff=backoff).delivered == 1
        assert [a.status_code for a in timed.webhooks.attempts()] == [200, answer]
