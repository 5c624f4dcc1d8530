"""Reading what comes back to the bounce address: VERP, DSNs, ARF, provider events."""

from __future__ import annotations

import pytest

from invoicer.delivery.bounces import Verp, parse_event, parse_report
from tests.support.dsn import arf, dsn, out_of_office

SECRET = b"k" * 32
VERP = Verp(SECRET, "bounce.oi.example")


# ---------------------------------------------------------------------------- VERP


def test_a_return_path_names_its_delivery_and_survives_lowercasing():
    address = VERP.address(4711)
    assert address.startswith("bounces+4711-") and address.endswith("@bounce.oi.example")
    assert len(address.split("@")[0]) <= 64  # a local part's limit
    assert VERP.delivery_of(address) == 4711
    assert VERP.delivery_of(address.upper()) == 4711  # an MTA that changes case
    assert VERP.delivery_of(f"<{address}>") == 4711


@pytest.mark.parametrize("forged", [
    lambda a: a.replace("+4711-", "+4712-"),         # another delivery, same tag
    lambda a: a.split("-")[0] + "-" + "a" * 16 + "@bounce.oi.example",  # another tag
    lambda a: a.replace("bounce.oi.example", "evil.example"),
    lambda a: a.replace("bounces+", "other+"),
    lambda a: "bounces@bounce.oi.example",
    lambda a: "",
])
def test_a_forged_or_foreign_return_path_names_nothing(forged):
    assert VERP.delivery_of(forged(VERP.address(4711))) is None


def test_another_secret_does_not_verify_and_a_rotation_keeps_old_return_paths():
    assert Verp(b"z" * 32, "bounce.oi.example").delivery_of(VERP.address(1)) is None
    rotated = Verp((b"z" * 32, SECRET), "bounce.oi.example")  # new signs, old verifies
    assert rotated.delivery_of(VERP.address(1)) == 1
    assert rotated.address(1) != VERP.address(1) and rotated.delivery_of(rotated.address(1)) == 1


# ---------------------------------------------------------------------------- DSN


def test_a_5xx_dsn_is_a_hard_bounce_with_status_diagnostic_and_return_path():
    rp = VERP.address(12)
    report = parse_report(dsn(rp, recipient="ana@example.com"))
    assert (report.kind, report.hard, report.status) == ("bounce", True, "5.1.1")
    assert "Recipient address rejected" in report.diagnostic
    assert report.recipient == "ana@example.com"
    assert report.message_id == "<m1@mail.example>"
    assert rp in report.addresses


@pytest.mark.parametrize(("status", "action"), [("4.2.2", "delayed"), ("4.4.7", "failed"),
                                                ("5.1.1", "delayed")])
def test_4xx_or_a_delay_is_a_soft_bounce(status, action):
    report = parse_report(dsn("x@y.example", status=status, action=action))
    assert report.kind == "bounce" and report.hard is False


def test_a_positive_dsn_is_not_a_bounce():
    report = parse_report(dsn("x@y.example", status="2.0.0", action="delivered"))
    assert report.kind == "none"


@pytest.mark.parametrize("raw", [
    out_of_office("bounces+1-aaaaaaaaaaaaaaaa@bounce.oi.example"),
    b"",
    b"\x00\xff garbage \r\n\r\n\x80",
    b"Content-Type: multipart/report; report-type=delivery-status; boundary=x\r\n\r\n--x--",
    dsn("x@y.example", status="5.1.1;\x00bad").replace(b"Status: 5.1.1;", b"Status: five"),
    dsn("x@y.example").replace(b"message/delivery-status", b"text/plain"),
    b"Content-Type: multipart/report; report-type=delivery-status; boundary=" + b"a" * 5000,
])
def test_an_out_of_office_or_unreadable_message_is_never_a_bounce(raw):
    assert parse_report(raw).kind == "none"


def test_a_diagnostic_is_data_one_clean_line():
    hostile = "smtp; 550 \x1b[31mno\u202e such\r\n user " + "x" * 2000
    report = parse_report(dsn("x@y.example", diagnostic=hostile.replace("\r\n", " ")))
    assert report.hard and "\x1b" not in report.diagnostic and "\u202e" not in report.diagnostic
    assert len(report.diagnostic) <= 500


# ---------------------------------------------------------------------------- ARF


def test_an_arf_report_is_a_complaint_about_the_original_recipient():
    rp = VERP.address(99)
    report = parse_report(arf("fbl@oi.example", return_path=rp, recipient="bob@example.com"))
    assert (report.kind, report.status, report.recipient) == ("complaint", "abuse",
                                                             "bob@example.com")
    assert VERP.delivery_of(next(a for a in report.addresses if "bounces+" in a)) == 99


# ---------------------------------------------------------------------------- provider events


def test_the_generic_event_shape():
    rp = VERP.address(5)
    hard = parse_event({"type": "bounce", "return_path": rp, "status": "5.7.1",
                        "diagnostic": "blocked"})
    assert (hard.kind, hard.hard, hard.status, hard.addresses) == ("bounce", True, "5.7.1",
                                                                    (rp,))
    soft = parse_event({"type": "bounce", "message_id": "<a@b>", "status": "4.2.2"})
    assert soft.hard is False and soft.message_id == "<a@b>"
    complaint = parse_event({"type": "complaint", "message_id": "<a@b>"})
    assert complaint.kind == "complaint"


@pytest.mark.parametrize("body", [
    [], "x", {"type": "open"}, {"type": "bounce", "status": "5.1.1"},
    {"type": "bounce", "message_id": "<a@b>"},
    {"type": "bounce", "message_id": "<a@b>", "status": "2.0.0"},
    {"type": "bounce", "message_id": "a@b", "status": "5.1.1"},
    {"type": "bounce", "return_path": "not an address", "status": "5.1.1"},
    {"type": "bounce", "message_id": "<a@b>", "status": "5.1.1", "diagnostic": 5},
])
def test_a_malformed_event_is_refused_with_a_reason(body):
    with pytest.raises(ValueError):
        parse_event(body)
