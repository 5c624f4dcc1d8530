"""The subscriber's e-invoice/paper choice: confirmation links and the precedence rule,
over a real SQLite ledger, the memory mailer and the real file SMS outbox."""

from __future__ import annotations

import copy
import email
import json
import logging
import re
import time
from email import policy

import pytest

from invoicer.billing import parse_record
from invoicer.delivery import links
from invoicer.delivery.email import MemoryMailer
from invoicer.delivery.errors import TransientDeliveryError
from invoicer.delivery.links import LinkClaims
from invoicer.delivery.sms import FileSmsOutbox
from invoicer.ledger import Ledger
from invoicer.workflows.dispatch import EMAIL, PRINT, Channels, dispatch
from invoicer.workflows.preferences import (
    CONFIRM_TTL,
    ConfirmationMail,
    InvalidEmail,
    choose,
    confirm,
    confirmation_key,
    is_pending,
)
from tests.api.conftest import Clock
from tests.conftest import SPEC_EXAMPLE

SECRET = b"preference-tests-secret-0123456789abcdef"
KEY = confirmation_key(SECRET)
PDF = b"%PDF-1.4 test invoice\n%%EOF\n"


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def ledger(tmp_path, clock):
    led = Ledger.from_url(f"sqlite:///{tmp_path}/ledger.db", clock=clock)
    led.migrate()
    yield led
    led.close()


@pytest.fixture
def mail():
    return ConfirmationMail(mailer=MemoryMailer(), sender="faturas@oi.example",
                            public_url="https://bills.example", key=KEY)


def _record(number="OI-2026-11-0000123", operator="oi", account="1234567890", **delivery):
    data = copy.deepcopy(SPEC_EXAMPLE)
    data["invoice"]["number"] = number
    data["operator"]["id"] = operator
    data["account"]["number"] = account
    data["delivery"].update({"sms_notice": False, **delivery})
    data["delivery"] = {k: v for k, v in data["delivery"].items() if v is not None}
    return parse_record(json.dumps(data))


def _invoice(ledger, record):
    inv = record.invoice
    return ledger.invoices.claim(
        record.operator.id, inv.number, account=record.account.number,
        period_start=inv.period.start, period_end=inv.period.end,
        issue_date=inv.issue_date, due_date=inv.due_date, total=record.totals.total_due,
        currency=inv.currency, locale=inv.locale,
        delivery_mode=record.delivery.mode.value).invoice


def _channels(tmp_path):
    return Channels(mailer=MemoryMailer(), sms=FileSmsOutbox(tmp_path / "sms"),
                    public_url="https://bills.example", link_secret=SECRET,
                    sender="faturas@oi.example")


def _choose(ledger, mail, clock, mode, email_addr=None, *, operator="oi",
            account="1234567890", via="page"):
    return choose(ledger, mail, operator=operator, account=account, mode=mode,
                  email=email_addr, via=via, client="127.0.0.1", locale="pt_BR",
                  operator_name="Oi", now=clock.now.timestamp())


def _link_token(mail) -> str:
    msg = email.message_from_bytes(mail.mailer.sent[-1].data, policy=policy.default)
    link = re.search(r"https://bills\.example/access/confirm/([A-Za-z0-9_.-]+)", msg.get_content())
    return link.group(1)


# ---------------------------------------------------------------------------- choosing


def test_paper_counts_at_once_with_when_and_how(ledger, mail, clock, caplog):
    with caplog.at_level(logging.INFO, logger="invoicer.workflows.preferences"):
        pref = _choose(ledger, mail, clock, "paper", via="api")
    assert (pref.state, pref.mode, pref.email) == ("confirmed", "paper", None)
    assert (pref.requested_via, pref.requested_from, pref.confirmed_via) == (
        "api", "127.0.0.1", "api-session")
    assert pref.requested_at == pref.confirmed_at == clock.now
    assert is_pending(pref) and mail.mailer.sent == []
    assert "delivery preference" in caplog.text  # preference_changed was called


def test_electronic_waits_for_its_link_which_works_once(ledger, mail, clock, caplog):
    pref = _choose(ledger, mail, clock, "electronic", " Maria@Example.COM ")
    assert (pref.state, pref.email) == ("unconfirmed", "Maria@example.com")
    (sent,) = mail.mailer.sent
    assert sent.recipients == ("Maria@example.com",)
    msg = email.message_from_bytes(sent.data, policy=policy.default)
    assert msg["Subject"] == "Oi: confirme este endereço para suas faturas"
    assert "1234567890" in msg.get_content()
    token = _link_token(mail)
    clock.advance(60)
    with caplog.at_level(logging.INFO, logger="invoicer.workflows.preferences"):
        done = confirm(ledger, KEY, token, now=clock.now.timestamp())
    assert done is not None and done.state == "confirmed" and done.confirmed_via == "email-link"
    assert done.confirmed_at == clock.now and "delivery preference" in caplog.text
    # Replayed: refused, and nothing changes.
    assert confirm(ledger, KEY, token, now=clock.now.timestamp()) is None
    assert ledger.preferences.get(pref.id).confirmed_at == done.confirmed_at


def test_refused_links_flipped_expired_superseded_other_account_other_key(ledger, mail,
                                                                          clock):
    first = _choose(ledger, mail, clock, "electronic", "a@example.com")
    old = _link_token(mail)
    _choose(ledger, mail, clock, "both", "b@example.com")
    token = _link_token(mail)
    now = clock.now.timestamp()
    # A link of a choice replaced by a newer one.
    assert confirm(ledger, KEY, old, now=now) is None
    assert ledger.preferences.get(first.id).state == "superseded"
    # One flipped character of the payload or of the signature.
    payload, mac = token.split(".")
    for bad in (f"{payload[:-1]}{'A' if payload[-1] != 'A' else 'B'}.{mac}",
                f"{payload}.{mac[:-1]}{'A' if mac[-1] != 'A' else 'B'}"):
        assert confirm(ledger, KEY, bad, now=now) is None
    # The same claims signed with the link secret itself (an invoice link's key).
    claims = links.verify(token, KEY, now=now)
    assert confirm(ledger, KEY, links.sign(claims, SECRET), now=now) is None
    # Correctly signed, but naming another account than the row's.
    other = links.sign(LinkClaims("oi", "2222222222", claims.invoice, claims.expires), KEY)
    assert confirm(ledger, KEY, other, now=now) is None
    # Expired: one second past the TTL.
    later = now + CONFIRM_TTL.total_seconds() + 1
    assert confirm(ledger, KEY, token, now=later) is None
    assert all(p.state == "unconfirmed" for p in ledger.preferences.current("oi", "1234567890"))
    # Still good inside the TTL.
    assert confirm(ledger, KEY, token, now=now + 3600) is not None


def test_bad_address_and_unknown_mode_are_refused(ledger, mail, clock):
    with pytest.raises(InvalidEmail):
        _choose(ledger, mail, clock, "electronic", "not an address")
    with pytest.raises(InvalidEmail):
        _choose(ledger, mail, clock, "both", "x@y\r\nBcc: z@evil.example")
    with pytest.raises(ValueError):
        _choose(ledger, mail, clock, "fax", "a@example.com")
    assert ledger.preferences.current("oi", "1234567890") == [] and mail.mailer.sent == []


def test_a_mailer_down_leaves_the_choice_waiting(ledger, mail, clock):
    mail.mailer.fail_next(TransientDeliveryError("451 try later"))
    with pytest.raises(TransientDeliveryError):
        _choose(ledger, mail, clock, "electronic", "a@example.com")
    (waiting,) = ledger.preferences.current("oi", "1234567890")
    assert waiting.state == "unconfirmed"


def test_hostile_operator_name_stays_in_the_subject(ledger, clock):
    mail = ConfirmationMail(MemoryMailer(), "faturas@oi.example", "https://bills.example", KEY)
    choose(ledger, mail, operator="oi", account="1", mode="electronic", email="a@example.com",
           via="api", client=None, locale="en", operator_name="Evil\r\nBcc: x@evil.example",
           now=time.time())
    (sent,) = mail.mailer.sent
    assert sent.recipients == ("a@example.com",)
    msg = email.message_from_bytes(sent.data, policy=policy.default)
    assert msg["Bcc"] is None and "Evil Bcc: x@evil.example" in msg["Subject"]


# ---------------------------------------------------------------------------- precedence


def test_service_owned_choice_overrides_the_records_mode(tmp_path, ledger, mail, clock):
    # Oi's setting: the service owns the preference. The record says electronic.
    pref = _choose(ledger, mail, clock, "paper")
    clock.advance(1)
    record = _record(mode="electronic", email="maria@example.com")
    invoice = _invoice(ledger, record)
    channels = _channels(tmp_path)
    states = dispatch(invoice, record, lambda: PDF, ledger=ledger, channels=channels)
    assert states == {PRINT: "pending"} and channels.mailer.sent == []
    applied = ledger.preferences.get(pref.id)
    assert applied.applied_invoice == record.invoice.number and not is_pending(applied)
    # Dispatched again (a retry): same route, still the first invoice on record.
    assert dispatch(invoice, record, lambda: PDF, ledger=ledger, channels=channels) == states
    assert ledger.preferences.get(pref.id).applied_at == applied.applied_at


def test_confirmed_address_replaces_the_records_and_only_for_later_claims(
        tmp_path, ledger, mail, clock):
    _choose(ledger, mail, clock, "electronic", "new@example.com")
    record_before = _record("OI-2026-11-0000001", mode="paper")
    before = _invoice(ledger, record_before)  # claimed while the link was unused
    clock.advance(5)
    assert confirm(ledger, KEY, _link_token(mail), now=clock.now.timestamp()) is not None
    clock.advance(5)
    record_after = _record("OI-2026-11-0000002", mode="paper", email="old@example.com")
    after = _invoice(ledger, record_after)
    channels = _channels(tmp_path)
    # The earlier claim keeps the record's route even though it is dispatched now.
    assert dispatch(before, record_before, lambda: PDF, ledger=ledger,
                    channels=channels) == {PRINT: "pending"}
    assert dispatch(after, record_after, lambda: PDF, ledger=ledger,
                    channels=channels) == {EMAIL: "sent"}
    (sent,) = channels.mailer.sent
    assert sent.recipients == ("new@example.com",)


def test_unconfirmed_choice_changes_nothing(tmp_path, ledger, mail, clock):
    pref = _choose(ledger, mail, clock, "electronic", "new@example.com")
    clock.advance(1)
    record = _record(mode="paper")
    invoice = _invoice(ledger, record)
    assert dispatch(invoice, record, lambda: PDF, ledger=ledger,
                    channels=_channels(tmp_path)) == {PRINT: "pending"}
    assert ledger.preferences.get(pref.id).applied_at is None


def test_billing_owned_record_wins_and_applies_when_it_follows(tmp_path, ledger, mail, clock):
    # carpati's setting: the billing system owns the preference.
    pref = _choose(ledger, mail, clock, "paper", operator="carpati")
    clock.advance(1)
    channels = _channels(tmp_path)
    still_email = _record("CT-1", operator="carpati", mode="electronic", email="m@example.com")
    got = dispatch(_invoice(ledger, still_email), still_email, lambda: PDF, ledger=ledger,
                   channels=channels)
    assert got == {EMAIL: "sent"}
    assert is_pending(ledger.preferences.get(pref.id))
    follows = _record("CT-2", operator="carpati", mode="paper")
    got = dispatch(_invoice(ledger, follows), follows, lambda: PDF, ledger=ledger,
                   channels=channels)
    assert got == {PRINT: "pending"}
    assert ledger.preferences.get(pref.id).applied_invoice == "CT-2"


def test_another_accounts_choice_is_not_applied(tmp_path, ledger, mail, clock):
    _choose(ledger, mail, clock, "paper", account="2222222222")
    clock.advance(1)
    record = _record(mode="electronic", email="maria@example.com")
    got = dispatch(_invoice(ledger, record), record, lambda: PDF, ledger=ledger,
                   channels=_channels(tmp_path))
    assert got == {EMAIL: "sent"}
