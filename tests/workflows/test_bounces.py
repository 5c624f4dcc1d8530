"""Bounces, complaints and receipts recorded once, and the fallback they set off:
SMS (at a real HTTP gateway on loopback), then paper (the print queue), per operator
policy, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest

from invoicer.delivery.bounces import parse_event, parse_report
from invoicer.delivery.sms import parse_receipt
from invoicer.workflows.bounces import Intake, send_waiting, take_receipt, take_report
from invoicer.workflows.fallback import Policy
from tests.support.bounce_world import VERP, World
from tests.support.dsn import arf, dsn, out_of_office
from tests.support.servers import SmsReply


@pytest.fixture
def world(led, tmp_path, sms_gateway_server):
    return World(led, tmp_path, sms_gateway_server)


def test_the_return_path_is_the_deliverys_signed_address(world):
    inv = world.issue("B-1")
    (sent,) = world.mailer.sent
    email = world.rows(inv)["email"]
    assert sent.sender == VERP.address(email.id)
    assert (email.state, email.recipient, email.reference) == ("sent", "ana@example.com",
                                                               sent.message_id)


def test_a_hard_bounce_falls_back_to_one_sms_with_amount_due_date_and_payment(world):
    inv = world.issue("B-2")
    rp = world.mailer.sent[0].sender
    assert take_report(parse_report(dsn(rp)), world.intake) == "bounced"
    rows = world.rows(inv)
    assert rows["email"].state == "bounced" and rows["email"].report_status == "5.1.1"
    assert "Recipient address rejected" in rows["email"].last_error
    assert rows["sms"].replaces_id == rows["email"].id and rows["sms"].state == "sent"
    (sms,) = world.sms_sent()
    assert sms["to"] == "+5521987654321"
    assert "104,75" in sms["text"] and "20/11/2026" in sms["text"]  # amount, due date
    # The same DSN again (a redelivery, or also read over IMAP): nothing more.
    assert take_report(parse_report(dsn(rp)), world.intake) == "duplicate"
    assert len(world.sms_sent()) == 1 and "print" not in world.rows(inv)
    # The address is suppressed: the next invoice to it is not mailed, it falls back.
    nxt = world.issue("B-3")
    assert len(world.mailer.sent) == 1
    rows = world.rows(nxt)
    assert rows["email"].state == "failed_permanent" and "suppressed (bounce)" in \
        rows["email"].last_error
    assert rows["sms"].state == "sent" and len(world.sms_sent()) == 2


def test_many_copies_of_a_bounce_at_once_make_one_fallback(world, race):
    inv = world.issue("B-4")
    raw = dsn(world.mailer.sent[0].sender)
    taken = race(8, lambda _: take_report(parse_report(raw), world.intake))
    assert sorted(taken) == ["bounced"] + ["duplicate"] * 7
    assert len(world.sms_sent()) == 1
    assert [d.channel for d in world.ledger.reports.invoice_deliveries(inv.id)] == [
        "email", "sms"]


def test_no_phone_falls_back_to_paper_in_the_print_queue(world):
    inv = world.issue("B-5", phone=None)
    take_report(parse_report(dsn(world.mailer.sent[0].sender)), world.intake)
    rows = world.rows(inv)
    assert rows["print"].state == "pending" and rows["print"].replaces_id == rows["email"].id
    assert world.sms_sent() == []
    assert world.ledger.print_batches.join_queue("oi", _limits()) >= 1


def _limits():
    from invoicer.ledger import BatchLimits
    return BatchLimits()


def test_a_failed_fallback_sms_falls_back_to_paper(world):
    inv = world.issue("B-6")
    world.gateway.reply(SmsReply(status=400, body={"error": "invalid number"}))
    take_report(parse_report(dsn(world.mailer.sent[0].sender)), world.intake)
    rows = world.rows(inv)
    assert rows["sms"].state == "failed_permanent"
    assert rows["print"].replaces_id == rows["sms"].id and rows["print"].state == "pending"


def test_an_undeliverable_sms_receipt_falls_back_to_paper_and_delivered_is_recorded(world):
    inv = world.issue("B-7")
    take_report(parse_report(dsn(world.mailer.sent[0].sender)), world.intake)
    sms = world.rows(inv)["sms"]
    delivered = parse_receipt({"reference": sms.reference, "status": "DELIVRD",
                               "at": "2026-12-07T08:00:00Z"})
    other = world.issue("B-8", email="carla@example.com")
    take_report(parse_report(dsn(world.mailer.sent[1].sender)), world.intake)
    sms2 = world.rows(other)["sms"]
    assert take_receipt(delivered, world.intake) == "delivered"
    assert world.rows(inv)["sms"].report_status == "delivered"
    failed = parse_receipt({"message_id": sms2.message_id, "status": "UNDELIV",
                            "at": "2026-12-07T08:00:00Z", "error": "absent subscriber"})
    assert take_receipt(failed, world.intake) == "bounced"
    assert take_receipt(failed, world.intake) == "duplicate"
    rows = world.rows(other)
    assert rows["sms"].state == "bounced" and rows["sms"].last_error == "absent subscriber"
    assert rows["print"].replaces_id == rows["sms"].id
    assert "print" not in world.rows(inv)


def test_a_soft_bounce_is_recorded_and_changes_nothing_else(world):
    inv = world.issue("B-9")
    rp = world.mailer.sent[0].sender
    assert take_report(parse_report(dsn(rp, status="4.2.2", action="delayed")),
                       world.intake) == "soft"
    rows = world.rows(inv)
    assert rows["email"].state == "sent" and rows["email"].report_status == "4.2.2"
    assert set(rows) == {"email"} and world.sms_sent() == []


@pytest.mark.parametrize("make", [
    lambda rp: out_of_office(rp),
    lambda rp: dsn(rp.replace("bounces+", "bounces+9")),  # a forged delivery id
    lambda rp: b"not a message at all",
])
def test_out_of_office_forged_or_unreadable_changes_nothing(world, make):
    inv = world.issue("B-10")
    rp = world.mailer.sent[0].sender
    raw = make(rp).replace(b"<m1@mail.example>", b"<other@mail.example>")
    assert take_report(parse_report(raw), world.intake) in ("ignored", "unmatched")
    assert set(world.rows(inv)) == {"email"} and world.rows(inv)["email"].state == "sent"


def test_a_complaint_stops_email_to_that_address(world):
    inv = world.issue("B-11", email="bob@example.com")
    rp = world.mailer.sent[0].sender
    assert take_report(parse_report(arf("fbl@oi.example", return_path=rp,
                                        recipient="bob@example.com")),
                       world.intake) == "complaint"
    assert world.rows(inv)["email"].state == "sent"  # it was delivered
    assert world.ledger.deliveries.suppressed("oi", "BOB@example.com") == "complaint"
    world.issue("B-12", email="bob@example.com", phone=None)
    assert len(world.mailer.sent) == 1  # not mailed again


def test_a_provider_event_by_message_id(world):
    inv = world.issue("B-13")
    event = parse_event({"type": "bounce", "message_id": world.mailer.sent[0].message_id,
                         "status": "5.2.1", "diagnostic": "mailbox disabled"})
    assert take_report(event, world.intake) == "bounced"
    assert world.rows(inv)["email"].report_status == "5.2.1"


@pytest.mark.parametrize(("policy", "expected"), [
    (Policy.parse("sms,print", {"oi": "print"}), {"email", "print"}),
    (Policy.parse("sms,print", {"oi": "none"}), {"email"}),
    (Policy.parse("print,sms"), {"email", "print"}),
])
def test_the_operators_policy_decides(led, tmp_path, sms_gateway_server, policy, expected):
    world = World(led, tmp_path, sms_gateway_server, policy)
    inv = world.issue("B-14")
    take_report(parse_report(dsn(world.mailer.sent[0].sender)), world.intake)
    assert set(world.rows(inv)) == expected and world.sms_sent() == []


def test_without_a_gateway_the_fallback_sms_waits_and_goes_once(world):
    inv = world.issue("B-15")
    quiet = Intake(world.ledger, world.archive, VERP, world.policy, channels=None)
    take_report(parse_report(dsn(world.mailer.sent[0].sender)), quiet)
    assert world.rows(inv)["sms"].state == "pending" and world.sms_sent() == []
    assert send_waiting(world.intake) == {"sent": 1}
    assert send_waiting(world.intake) == {}
    assert len(world.sms_sent()) == 1


def test_every_change_passes_the_one_hook_inside_its_transaction(world):
    seen = []
    world.ledger.deliveries.listeners.append(
        lambda conn, event: seen.append((event.kind, event.delivery.channel,
                                         event.delivery.state)))
    world.gateway.reply(SmsReply(status=400, body={"error": "invalid number"}))
    world.issue("B-16")
    take_report(parse_report(dsn(world.mailer.sent[0].sender)), world.intake)
    assert seen == [("delivery.bounced", "email", "bounced"),
                    ("delivery.fell_back", "sms", "pending"),
                    ("delivery.failed", "sms", "failed_permanent"),
                    ("delivery.fell_back", "print", "pending")]
