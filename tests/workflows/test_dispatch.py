"""Routing and exactly-once delivery, against a real aiosmtpd, a real SQLite ledger and
the real SMS outbox."""

from __future__ import annotations

import copy
import email
import json
import threading
from email import policy

import pytest

from invoicer.billing import parse_record
from invoicer.delivery.email import mailer_from_url
from invoicer.delivery.retry import Backoff, retry
from invoicer.delivery.sms import FileSmsOutbox
from invoicer.ledger import Ledger
from invoicer.workflows.dispatch import EMAIL, PRINT, SMS, Channels, dispatch, resend, route
from tests.conftest import SPEC_EXAMPLE

PDF = b"%PDF-1.4 test invoice\n%%EOF\n"


def _record(**delivery):
    data = copy.deepcopy(SPEC_EXAMPLE)
    data["delivery"].update({"sms_notice": False, **delivery})
    data["delivery"] = {k: v for k, v in data["delivery"].items() if v is not None}
    return parse_record(json.dumps(data))


@pytest.fixture
def ledger(tmp_path):
    led = Ledger.from_url(f"sqlite:///{tmp_path}/ledger.db")
    led.migrate()
    yield led
    led.close()


def _invoice(ledger, record):
    inv = record.invoice
    claim = ledger.invoices.claim(
        record.operator.id, inv.number, account=record.account.number,
        period_start=inv.period.start, period_end=inv.period.end,
        issue_date=inv.issue_date, due_date=inv.due_date, total=record.totals.total_due,
        currency=inv.currency, locale=inv.locale, delivery_mode=record.delivery.mode.value)
    return claim.invoice


def _channels(tmp_path, mail_url, sleeps=None, attempts=4):
    waits = sleeps if sleeps is not None else []
    return Channels(
        mailer=mailer_from_url(mail_url), sms=FileSmsOutbox(tmp_path / "sms"),
        public_url="https://bills.example", link_secret=b"s" * 32,
        sender="faturas@oi.example",
        retry=lambda call: retry(call, backoff=Backoff(attempts=attempts, base=0.01, cap=0.1),
                                 sleep=waits.append))


@pytest.mark.parametrize(("mode", "email_addr", "sms", "expected", "fallback"), [
    ("electronic", "a@b.example", False, (EMAIL,), False),
    ("electronic", "a@b.example", True, (EMAIL, SMS), False),
    ("paper", "a@b.example", True, (PRINT, SMS), False),
    ("paper", None, False, (PRINT,), False),
    ("both", "a@b.example", False, (EMAIL, PRINT), False),
    ("electronic", None, True, (PRINT, SMS), True),
    ("both", None, False, (PRINT,), True),
])
def test_route_follows_the_subscribers_preference(mode, email_addr, sms, expected, fallback):
    r = route(_record(mode=mode, email=email_addr, sms_notice=sms))
    assert r.channels == expected and (r.fallback is not None) == fallback


def test_dispatch_twice_sends_once(tmp_path, ledger, smtp_server):
    record = _record(mode="both", sms_notice=True)
    invoice = _invoice(ledger, record)
    channels = _channels(tmp_path, smtp_server.url)
    first = dispatch(invoice, record, lambda: PDF, ledger=ledger, channels=channels)
    again = dispatch(invoice, record, lambda: PDF, ledger=ledger, channels=channels)
    assert first == again == {EMAIL: "sent", PRINT: "pending", SMS: "sent"}
    assert smtp_server.handler.data_attempts == 1
    (_, rcpts, raw), = smtp_server.handler.received
    msg = email.message_from_bytes(raw, policy=policy.default)
    assert rcpts == ["maria@example.com"]
    attachment = next(msg.iter_attachments())
    assert attachment.get_content() == PDF
    assert len(FileSmsOutbox(tmp_path / "sms").messages()) == 1
    rows = {d.channel: d for d in ledger.deliveries.for_invoice(invoice.id)}
    assert rows[EMAIL].message_id == msg["Message-ID"]


def test_fifty_concurrent_dispatches_make_one_smtp_data(tmp_path, ledger, smtp_server):
    record = _record(mode="electronic", sms_notice=True)
    invoice = _invoice(ledger, record)
    channels = _channels(tmp_path, smtp_server.url)
    barrier = threading.Barrier(50)
    results = []

    def go():
        barrier.wait()
        results.append(dispatch(invoice, record, lambda: PDF, ledger=ledger,
                                channels=channels))

    threads = [threading.Thread(target=go) for _ in range(50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(results) == 50
    assert smtp_server.handler.data_attempts == 1
    assert len(smtp_server.handler.received) == 1
    assert len(FileSmsOutbox(tmp_path / "sms").messages()) == 1
    assert {d.state for d in ledger.deliveries.for_invoice(invoice.id)} == {"sent"}


def test_451_three_times_then_accepted_is_one_delivery(tmp_path, ledger, smtp_server):
    smtp_server.handler.data_script[:] = ["451 4.3.0 try later"] * 3
    record = _record(mode="electronic")
    invoice = _invoice(ledger, record)
    sleeps = []
    states = dispatch(invoice, record, lambda: PDF, ledger=ledger,
                      channels=_channels(tmp_path, smtp_server.url, sleeps))
    assert states == {EMAIL: "sent"}
    assert smtp_server.handler.data_attempts == 4 and len(smtp_server.handler.received) == 1
    assert len(sleeps) == 3 and sleeps == sorted(sleeps)  # growing waits


def test_550_is_permanent_and_not_retried(tmp_path, ledger, smtp_server):
    smtp_server.handler.data_script[:] = ["550 5.1.1 no such user"]
    record = _record(mode="electronic")
    invoice = _invoice(ledger, record)
    channels = _channels(tmp_path, smtp_server.url)
    # Failed for good: the default policy falls back; no phone on file, so paper.
    assert dispatch(invoice, record, lambda: PDF, ledger=ledger,
                    channels=channels) == {EMAIL: "failed_permanent", PRINT: "pending"}
    assert dispatch(invoice, record, lambda: PDF, ledger=ledger,
                    channels=channels) == {EMAIL: "failed_permanent", PRINT: "pending"}
    assert smtp_server.handler.data_attempts == 1
    row, paper = ledger.deliveries.for_invoice(invoice.id)
    assert "550" in row.last_error
    assert paper.replaces_id == row.id and paper.channel == PRINT


def test_server_down_then_up_delivers_once_after_recovery(tmp_path, ledger, smtp_server):
    record = _record(mode="electronic")
    invoice = _invoice(ledger, record)
    smtp_server.stop()
    try:
        channels = _channels(tmp_path, smtp_server.url, attempts=2)
        assert dispatch(invoice, record, lambda: PDF, ledger=ledger,
                        channels=channels) == {EMAIL: "pending"}
        # The circuit is open: a second record in this process does not knock again.
        assert channels.paused(EMAIL)
    finally:
        smtp_server.start()
    channels = _channels(tmp_path, smtp_server.url)  # a later run, a fresh process
    assert dispatch(invoice, record, lambda: PDF, ledger=ledger,
                    channels=channels) == {EMAIL: "sent"}
    assert dispatch(invoice, record, lambda: PDF, ledger=ledger,
                    channels=channels) == {EMAIL: "sent"}
    assert len(smtp_server.handler.received) == 1


def test_connection_lost_after_data_is_unknown_and_only_resent_deliberately(
        tmp_path, ledger, smtp_server):
    smtp_server.handler.data_script[:] = ["drop"]
    record = _record(mode="electronic")
    invoice = _invoice(ledger, record)
    channels = _channels(tmp_path, smtp_server.url)
    assert dispatch(invoice, record, lambda: PDF, ledger=ledger,
                    channels=channels) == {EMAIL: "unknown"}
    assert dispatch(invoice, record, lambda: PDF, ledger=ledger,
                    channels=channels) == {EMAIL: "unknown"}
    assert smtp_server.handler.data_attempts == 1  # never resent on its own
    first_id = ledger.deliveries.for_invoice(invoice.id)[0].message_id

    assert resend(invoice, record, EMAIL, lambda: PDF, ledger=ledger,
                  channels=channels) == "sent"
    (row,) = ledger.deliveries.for_invoice(invoice.id)
    assert row.attempts == 2 and row.message_id != first_id
    (_, _, raw), = smtp_server.handler.received
    assert email.message_from_bytes(raw, policy=policy.default)["Message-ID"] == row.message_id


def test_electronic_without_address_falls_back_to_paper_on_record(tmp_path, ledger,
                                                                  smtp_server):
    record = _record(mode="electronic", email=None)
    invoice = _invoice(ledger, record)
    states = dispatch(invoice, record, lambda: PDF, ledger=ledger,
                      channels=_channels(tmp_path, smtp_server.url))
    assert states == {EMAIL: "failed_permanent", PRINT: "pending"}
    rows = {d.channel: d for d in ledger.deliveries.for_invoice(invoice.id)}
    assert "paper" in rows[EMAIL].last_error
    assert smtp_server.handler.data_attempts == 0


def test_link_instead_of_attachment_when_asked(tmp_path, ledger, smtp_server):
    record = _record(mode="electronic", attach_pdf=False)
    invoice = _invoice(ledger, record)
    dispatch(invoice, record, lambda: pytest.fail("PDF not needed"), ledger=ledger,
             channels=_channels(tmp_path, smtp_server.url))
    (_, _, raw), = smtp_server.handler.received
    msg = email.message_from_bytes(raw, policy=policy.default)
    assert not list(msg.iter_attachments())
    assert "https://bills.example/invoices/" in msg.get_body(("plain",)).get_content()
