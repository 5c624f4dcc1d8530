"""Self-service over a real uvicorn: the e-invoice/paper choice and its e-mailed link,
the payment code (typeable line, reference, QR as SVG, direct debit), overdue, the
operator's history length and name. Refusals included: a link flipped, expired,
replayed or superseded; another account's choice or invoice; an invoice link instead
of an SMS-code session."""

from __future__ import annotations

import json
import re
from datetime import UTC, date, datetime

import pytest

from invoicer.api.self_service import qr_svg
from invoicer.billing.paycodes import febraban
from invoicer.delivery.email import MemoryMailer
from invoicer.delivery.sms import FileSmsOutbox
from invoicer.pipeline import Services, process_record
from invoicer.workflows.dispatch import Channels
from tests.api.conftest import SECRET
from tests.api.self_service_world import EXTRA, add_samples, link_of, mails
from tests.api.subscriber_client import API, BEFORE_DUE, bearer, link_token, session
from tests.api.world import MAIN, NEIGHBOUR, OTHER_OPERATOR, record

PREF = f"{API}/delivery-preference"

def choose(sub, token, mode, address=None):
    body = {"mode": mode} if address is None else {"mode": mode, "email": address}
    return sub.http.put(PREF, json=body, headers=bearer(token))


def confirm(sub, token):
    return sub.http.post(f"{PREF}/confirmation", json={"token": token})


# ---------------------------------------------------------------------------- the choice


def test_the_account_delivery_as_it_is(sub):
    got = sub.http.get(PREF, headers=bearer(session(sub)))
    assert got.status_code == 200, got.text
    body = got.json()
    assert (body["operator"], body["account"], body["owner"]) == ("oi", MAIN[1], "service")
    assert body["current"]["mode"] == "electronic"
    assert body["current"]["email"] == "maria@example.com"
    assert body["current"]["postal_address"][0] == "Maria da Conceição Souza"
    assert body["choice"] is None and body["waiting"] is None


def test_paper_is_pending_until_the_next_invoice_goes_out_on_paper(sub):
    token = session(sub)
    got = choose(sub, token, "paper")
    assert got.status_code == 202, got.text
    choice = got.json()["choice"]
    assert (choice["mode"], choice["state"], choice["requested_via"]) == (
        "paper", "pending", "api")
    assert choice["requested_at"] == choice["confirmed_at"]
    assert choice["confirmed_via"] == "api-session"
    (row,) = sub.ledger.preferences.current("oi", MAIN[1])
    assert row.requested_from == "127.0.0.1"
    # The next invoice, through the pipeline with real channels: the record says
    # electronic, Oi lets the service own the choice, so it goes to the print queue.
    mailer = MemoryMailer()
    services = Services(ledger=sub.ledger, archive=sub.archive, channels=Channels(
        mailer=mailer, sms=FileSmsOutbox(sub.tmp / "sms-pipeline"),
        public_url=sub.url, link_secret=SECRET, sender="faturas@oi.example"))
    sub.clock.advance(1)
    rec = record(*MAIN, "OI-2026-12-0000123", 2026, 12)
    run = sub.ledger.runs.start("next-month")
    outcome = process_record(json.dumps(rec).encode(), line=1, run_id=run, services=services)
    assert outcome.status == "archived" and dict(outcome.deliveries) == {
        "print": "pending", "sms": "sent"}
    assert mailer.sent == []
    after = sub.http.get(PREF, headers=bearer(token)).json()
    assert after["choice"]["state"] == "applied"
    assert after["choice"]["applied_invoice"] == "OI-2026-12-0000123"
    assert after["current"]["mode"] == "paper"


def test_electronic_needs_its_link_which_works_once(sub):
    token = session(sub)
    got = choose(sub, token, "electronic", "nova@example.com")
    assert got.status_code == 202, got.text
    body = got.json()
    assert body["waiting"]["state"] == "awaiting_confirmation" and body["choice"] is None
    (message,) = mails(sub)
    assert message["To"] == "nova@example.com"
    assert message["Subject"].startswith("Oi: ")  # the operator's name, not its id
    link = link_of(message)
    # Opening the link shows a question and changes nothing (mail scanners open links).
    page = sub.http.get(f"/access/confirm/{link}", params={"lang": "pt_BR"})
    assert page.status_code == 200 and "nova@example.com" in page.text
    assert sub.ledger.preferences.current("oi", MAIN[1])[0].state == "unconfirmed"
    done = confirm(sub, link)
    assert done.status_code == 200, done.text
    assert (done.json()["state"], done.json()["confirmed_via"]) == ("pending", "email-link")
    replay = confirm(sub, link)
    assert replay.status_code == 404 and replay.json()["type"].endswith("link-refused")
    assert sub.http.post(f"/access/confirm/{link}").status_code == 404
    view = sub.http.get(PREF, headers=bearer(token)).json()
    assert view["choice"]["email"] == "nova@example.com" and view["waiting"] is None


def test_refused_links_are_one_404(sub):
    token = session(sub)
    assert choose(sub, token, "both", "a@example.com").status_code == 202
    superseded = link_of(mails(sub)[-1])
    assert choose(sub, token, "electronic", "b@example.com").status_code == 202
    link = link_of(mails(sub)[-1])
    payload, mac = link.split(".")
    flipped = [f"{payload[:-2]}{'AB' if payload[-2:] != 'AB' else 'CD'}.{mac}",
               f"{payload}.{mac[:-1]}{'A' if mac[-1] != 'A' else 'B'}"]
    answers = [confirm(sub, t) for t in (superseded, *flipped, "x" * 700)]
    assert [a.status_code for a in answers[:3]] == [404, 404, 404]
    assert answers[3].status_code == 422  # too long to be a token at all
    assert len({a.content for a in answers[:3]}) == 1
    # An invoice link's token (signed with the link secret) is not a confirmation.
    other_kind = link_token("oi", MAIN[1], "OI-2026-11-0000123")
    assert confirm(sub, other_kind).status_code == 404
    # Expired: 24 hours and a second later.
    sub.clock.advance(24 * 3600 + 1)
    assert confirm(sub, link).status_code == 404
    assert all(p.state in ("unconfirmed",) for p in sub.ledger.preferences.current("oi", MAIN[1]))


def test_another_account_sees_and_changes_only_its_own(sub):
    mine = session(sub)
    assert choose(sub, mine, "paper").status_code == 202
    theirs = session(sub, NEIGHBOUR[2])
    view = sub.http.get(PREF, headers=bearer(theirs)).json()
    assert view["account"] == NEIGHBOUR[1] and view["choice"] is None
    assert choose(sub, theirs, "electronic", "vizinho@example.com").status_code == 202
    assert sub.ledger.preferences.current("oi", MAIN[1])[0].mode == "paper"
    # The neighbour's link confirms the neighbour's choice, nothing of MAIN's.
    assert confirm(sub, link_of(mails(sub)[-1])).status_code == 200
    (main_row,) = sub.ledger.preferences.current("oi", MAIN[1])
    assert (main_row.mode, main_row.email) == ("paper", None)


def test_an_invoice_link_cannot_choose(sub):
    token = link_token("oi", MAIN[1], "OI-2026-11-0000123")
    got = choose(sub, token, "paper")
    assert got.status_code == 403 and got.json()["type"].endswith("session-required")
    assert sub.http.get(PREF, headers=bearer(token)).status_code == 403
    assert sub.http.put(PREF, json={"mode": "paper"}).status_code == 401
    assert sub.ledger.preferences.current("oi", MAIN[1]) == []


@pytest.mark.parametrize(("body", "problem"), [
    ({"mode": "electronic"}, "email-required"),
    ({"mode": "both", "email": ""}, "email-required"),
    ({"mode": "electronic", "email": "not-an-address"}, "invalid-email"),
    ({"mode": "electronic", "email": "a@b.example\r\nBcc: c@evil.example"}, "invalid-email"),
    ({"mode": "fax"}, None),
    ({"mode": "paper", "extra": 1}, None),
])
def test_bad_choices_are_422(sub, body, problem):
    got = sub.http.put(PREF, json=body, headers=bearer(session(sub)))
    assert got.status_code == 422, got.text
    if problem:
        assert got.json()["type"].endswith(problem)
    assert sub.ledger.preferences.current("oi", MAIN[1]) == [] and mails(sub) == []


def test_choices_are_rate_limited_per_account(sub):
    token = session(sub)
    codes = [choose(sub, token, "electronic", f"x{i}@example.com").status_code
             for i in range(7)]
    assert codes == [202] * 5 + [429] * 2
    assert len(mails(sub)) == 5


# ---------------------------------------------------------------------------- payment


def payment(sub, token, number):
    return sub.http.get(f"{API}/invoices/{number}/payment", headers=bearer(token))


def test_febraban_typeable_line_and_overdue(sub):
    sub.clock.now = BEFORE_DUE
    token = session(sub)
    got = payment(sub, token, "OI-2026-11-0000123")
    assert got.status_code == 200, got.text
    body = got.json()
    code = "84680000001047501080000001234567890202611200"
    assert (body["method"], body["scheme"], body["payment_status"]) == (
        "barcode", "febraban", "unpaid")
    assert body["typeable_line"] == febraban.parse(code).formatted
    assert body["qr_svg"] is None and body["to_pay"] is True
    # The day after the due date, not marked paid: overdue, in the list as well.
    sub.clock.now = datetime(2026, 11, 21, 0, 0, 1, tzinfo=UTC)
    token = session(sub)
    assert payment(sub, token, "OI-2026-11-0000123").json()["payment_status"] == "overdue"
    listed = sub.http.get(f"{API}/invoices", headers=bearer(token)).json()
    assert listed["latest"]["payment_status"] == "overdue"
    # Marked paid: neither overdue nor a code to copy.
    invoice = sub.ledger.invoices.get("oi", "OI-2026-11-0000123")
    sub.ledger.invoices.set_payment_status(invoice.id, "paid", paid_on=date(2026, 11, 22),
                                           source="test")
    paid = payment(sub, token, "OI-2026-11-0000123").json()
    assert (paid["payment_status"], paid["to_pay"], paid["typeable_line"]) == (
        "paid", False, None)
    # Partly paid past the due date is still overdue.
    sub.ledger.invoices.set_payment_status(invoice.id, "partially_paid", source="test")
    assert payment(sub, token, "OI-2026-11-0000123").json()["payment_status"] == "overdue"


def test_qr_codes_are_svg_of_the_records_payload(sub):
    records = add_samples(sub, ("VT-2026-11-0003345", "PT-2026-11-0012012"))
    sub.clock.now = datetime(2026, 11, 1, tzinfo=UTC)
    for number, scheme in (("VT-2026-11-0003345", "gost_qr"),
                           ("PT-2026-11-0012012", "epc_qr")):
        token = session(sub, EXTRA[number])
        body = payment(sub, token, number).json()
        payload = records[number].payment.code
        assert (body["scheme"], body["qr_payload"]) == (scheme, payload)
        assert body["qr_svg"].startswith("<svg") and body["qr_svg"] == qr_svg(payload)
        # No text of the record inside the SVG: only geometry.
        assert not re.search(r"<(?!/?(svg|path)\b)", body["qr_svg"])


def test_direct_debit_says_when(sub):
    add_samples(sub, ("AM-2026-11-0031337",))
    token = session(sub, EXTRA["AM-2026-11-0031337"])
    invoice = sub.ledger.invoices.get("albion", "AM-2026-11-0031337")
    body = payment(sub, token, invoice.number).json()
    assert (body["method"], body["to_pay"]) == ("direct_debit", False)
    assert body["direct_debit_on"] == invoice.due_date.isoformat()
    sub.ledger.invoices.set_payment_status(invoice.id, "paid", paid_on=date(2026, 11, 17),
                                           source="test")
    assert payment(sub, token, invoice.number).json()["direct_debit_on"] == "2026-11-17"


def test_another_accounts_payment_code_is_the_same_404(sub):
    token = session(sub)
    theirs = payment(sub, token, "OI-2026-11-0000777")
    none = payment(sub, token, "OI-1999-01-0000000")
    other_op = payment(sub, token, "VV-2026-11-0000042")
    assert theirs.status_code == none.status_code == other_op.status_code == 404
    assert theirs.content == none.content == other_op.content
    assert payment(sub, token, "..%2f..%2fetc").status_code == 404


# ---------------------------------------------------------------------------- operators


def test_history_length_is_the_operators_setting(sub):
    run = sub.ledger.runs.start("carpati")
    services = Services(ledger=sub.ledger, archive=sub.archive)
    phone = "+40744000111"
    for month in range(1, 10):
        rec = record("carpati", "RO-77", phone, f"CT-2026-{month:02d}-0000001", 2026, month)
        assert process_record(json.dumps(rec).encode(), line=month, run_id=run,
                              services=services).status == "archived"
    body = sub.http.get(f"{API}/invoices", headers=bearer(session(sub, phone))).json()
    assert len(body["invoices"]) == 6 and body["latest"]["number"] == "CT-2026-09-0000001"
    assert len(sub.http.get(f"{API}/invoices",
                            headers=bearer(session(sub))).json()["invoices"]) == 13


def test_the_sms_code_names_the_operator_not_its_id(sub):
    session(sub, OTHER_OPERATOR[2])  # vivo: no settings, no operators.toml entry
    text = [m for m in sub.outbox.messages() if m.to == OTHER_OPERATOR[2]][-1].text
    assert text.startswith("Vivo: ") and not text.startswith("vivo")
    session(sub)
    assert [m for m in sub.outbox.messages() if m.to == MAIN[2]][-1].text.startswith("Oi: ")


def test_page_is_branded_and_its_one_script_is_allowed_by_hash(sub):
    import base64
    import hashlib

    sub.clock.now = BEFORE_DUE
    token = session(sub)
    sub.http.cookies.set("invoicer_session", token, path="/access")
    page = sub.http.get("/access/invoices", params={"lang": "pt_BR"})
    sub.http.cookies.clear()
    assert page.status_code == 200
    csp = page.headers["content-security-policy"]
    scripts = re.findall(r"<script>(.*?)</script>", page.text, re.S)
    assert len(scripts) == 1
    digest = base64.b64encode(hashlib.sha256(scripts[0].encode()).digest()).decode()
    assert f"script-src 'sha256-{digest}'" in csp and "unsafe-inline" not in csp.split(
        "script-src")[1].split(";")[0]
    assert "--accent: #00875a" in page.text  # Oi's green
    assert 'id="support"' in page.text and "*144" in page.text
    assert "Linha digitável" in page.text and 'id="pay-code"' in page.text


def test_hostile_record_text_is_data_on_the_page(sub):
    records = add_samples(sub, ("AM-2026-11-0066666",))
    hostile = records["AM-2026-11-0066666"]
    token = session(sub, "+447700900666")
    sub.http.cookies.set("invoicer_session", token, path="/access")
    try:
        page = sub.http.get("/access/invoices", params={"lang": "en"})
        form = sub.http.get("/access/delivery", params={"lang": "en"})
    finally:
        sub.http.cookies.clear()
    assert page.status_code == form.status_code == 200
    for html in (page.text, form.text):
        assert "<script>alert" not in html and "<img src=x" not in html
        assert 'href="javascript' not in html
    assert "Albion Mobile Ltd &lt;script&gt;alert(" in page.text  # the name, as text
    assert len(re.findall(r"<script>", page.text)) == 1  # only the copy button's
    # The reference is shown (and copied) exactly, as text: no markup, no template.
    code = hostile.payment.code
    assert ">" + code.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;") \
        + "</textarea>" in page.text.replace("&#34;", '"')
    assert "&lt;b&gt;Bold&lt;/b&gt;" in form.text  # the customer's name on the address
