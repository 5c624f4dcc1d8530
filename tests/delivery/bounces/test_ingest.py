"""Bounces arrive three ways, each against a real peer on loopback: the SMTP/LMTP
receiver (aiosmtpd) spoken to by smtplib, an IMAP mailbox on pymap (a real IMAP server,
in-memory backend) read by ``invoicer bounces fetch``, and the HTTP callbacks on uvicorn."""

from __future__ import annotations

import imaplib
import os
import smtplib
import socket
import subprocess
import sys
import time

import httpx
import pytest

from invoicer.api import create_app
from invoicer.delivery.archive import FileArchive
from invoicer.delivery.bounces import BounceHandler, BounceReceiver, parse_report
from invoicer.delivery.sms import MemorySmsGateway
from invoicer.settings import Settings
from invoicer.workflows.bounces import take_report
from tests.api.conftest import LiveServer
from tests.support.bounce_world import SECRET, VERP, World
from tests.support.dsn import arf, dsn, out_of_office
from tests.support.servers import closed_port


@pytest.fixture
def world(sqlite_led, tmp_path, sms_gateway_server):
    return World(sqlite_led, tmp_path, sms_gateway_server)


# ---------------------------------------------------------------------------- SMTP / LMTP


@pytest.fixture(params=["smtp", "lmtp"])
def receiver(request, world):
    taken = []

    def take(raw, envelope_to):
        if b"X-Test-Fail" in raw:
            raise RuntimeError("the ledger is down")
        taken.append(take_report(parse_report(raw, envelope_to=envelope_to), world.intake))

    lmtp = request.param == "lmtp"
    server = BounceReceiver(BounceHandler(VERP, take, lmtp=lmtp), "127.0.0.1", closed_port())
    server.start()
    client = (smtplib.LMTP if lmtp else smtplib.SMTP)("127.0.0.1", server.port, timeout=10)
    yield client, taken
    client.quit()
    server.stop()


def test_the_receiver_records_a_bounce_sent_to_the_return_path(world, receiver):
    client, taken = receiver
    inv = world.issue("R-1")
    rp = world.mailer.sent[0].sender
    # An MTA sends the DSN with the null sender to the original's return path.
    refused = client.sendmail("<>", [rp, "postmaster@bounce.oi.example"], dsn(rp))
    assert list(refused) == ["postmaster@bounce.oi.example"]  # not a bounce address
    assert taken == ["bounced"]
    assert world.rows(inv)["email"].state == "bounced" and len(world.sms_sent()) == 1
    client.sendmail("<>", [rp], out_of_office(rp))
    assert taken == ["bounced", "ignored"]


def test_the_receiver_answers_451_when_it_cannot_record(world, receiver):
    client, _ = receiver
    world.issue("R-2")
    rp = world.mailer.sent[0].sender
    with pytest.raises((smtplib.SMTPDataError, smtplib.SMTPRecipientsRefused)) as err:
        client.sendmail("<>", [rp], b"X-Test-Fail: 1\r\n" + dsn(rp))
    assert "451" in str(err.value)


def test_the_receiver_refuses_mail_for_others(receiver):
    client, _ = receiver
    with pytest.raises(smtplib.SMTPRecipientsRefused):
        client.sendmail("a@b.example", ["ana@example.com"], b"Subject: hi\r\n\r\nhi\r\n")


# ---------------------------------------------------------------------------- IMAP


@pytest.fixture
def imap_server():
    """pymap: a real IMAP4rev1 server (in-memory backend), on a free loopback port."""
    port = closed_port()
    exe = os.path.join(os.path.dirname(sys.executable), "pymap")
    proc = subprocess.Popen([exe, "--host", "127.0.0.1", "--port", str(port), "--no-tls",
                             "dict", "--demo-user", "bounces", "--demo-password", "pw"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 15
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.kill()
                pytest.fail("pymap did not start")
            time.sleep(0.05)
    yield port
    proc.terminate()
    proc.wait(10)


def _mailbox(port):
    client = imaplib.IMAP4("127.0.0.1", port, timeout=10)
    client.login("bounces", "pw")
    return client


def _env(world, tmp_path, sms_url, **extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith("INVOICER_")}
    env.update(INVOICER_DB_URL=str(world.ledger.engine.url),
               INVOICER_ARCHIVE_URL=f"file://{tmp_path}/archive",
               INVOICER_MAIL_URL=f"file://{tmp_path}/outbox",
               INVOICER_SMS_URL=sms_url, INVOICER_SMS_TOKEN="tok",
               INVOICER_LINK_SECRET=SECRET.decode(),
               INVOICER_BOUNCE_DOMAIN="bounce.oi.example", **extra)
    return env


def test_fetch_reads_the_mailbox_records_once_and_leaves_the_rest(world, tmp_path,
                                                                  imap_server):
    inv = world.issue("I-1")
    other = world.issue("I-2", email="bob@example.com")
    rp1, rp2 = (m.sender for m in world.mailer.sent)
    box = _mailbox(imap_server)
    for raw in (dsn(rp1), out_of_office(rp1), arf("fbl@oi.example", return_path=rp2,
                                                 recipient="bob@example.com")):
        assert box.append("INBOX", None, None, raw)[0] == "OK"
    env = _env(world, tmp_path, f"{world.gateway.url}/v1/sms",
               INVOICER_BOUNCE_IMAP_URL=f"imap://bounces:pw@127.0.0.1:{imap_server}/INBOX")
    cmd = [sys.executable, "-m", "invoicer", "bounces", "fetch"]
    first = subprocess.run(cmd, env=env, cwd=tmp_path, capture_output=True, text=True,
                           timeout=60)
    assert first.returncode == 0, first.stderr
    assert "3 read, 2 recorded and deleted" in first.stdout
    assert world.rows(inv)["email"].state == "bounced"
    assert world.rows(inv)["sms"].state == "sent" and len(world.sms_sent()) == 1
    assert world.ledger.deliveries.suppressed("oi", "bob@example.com") == "complaint"
    assert world.rows(other)["email"].state == "sent"
    # What was not a report stays for a person; a second fetch reads nothing new.
    box.select("INBOX")
    _, left = box.uid("SEARCH", None, "ALL")
    assert len(left[0].split()) == 1
    again = subprocess.run(cmd, env=env, cwd=tmp_path, capture_output=True, text=True,
                           timeout=60)
    assert again.returncode == 0 and "0 read" in again.stdout
    assert len(world.sms_sent()) == 1
    box.logout()


def test_fetch_from_a_dead_server_fails_loudly(world, tmp_path):
    env = _env(world, tmp_path, "memory://",
               INVOICER_BOUNCE_IMAP_URL=f"imap://u:p@127.0.0.1:{closed_port()}/INBOX")
    result = subprocess.run([sys.executable, "-m", "invoicer", "bounces", "fetch"],
                            env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert result.returncode == 1 and "bounce mailbox" in result.stderr


# ---------------------------------------------------------------------------- HTTP callbacks

TOKEN = "c" * 40


@pytest.fixture
def api(world, tmp_path):
    settings = Settings(db_url="sqlite:///unused", archive_url="file:///unused",
                        callback_token=TOKEN, bounce_domain="bounce.oi.example",
                        link_secret=SECRET.decode())
    app = create_app(settings, ledger=world.ledger, archive=world.archive,
                     sms=world.channels.sms, link_secret=SECRET)
    with LiveServer(app) as server, httpx.Client(base_url=server.url, timeout=30) as http:
        yield http


def test_provider_events_need_the_token_and_record_once(world, api):
    inv = world.issue("H-1")
    event = {"type": "bounce", "return_path": world.mailer.sent[0].sender,
             "status": "5.1.1", "diagnostic": "smtp; 550 no such user"}
    url = "/v1/callbacks/email-events"
    assert api.post(url, json=event).status_code == 401
    assert api.post(url, json=event, headers={"Authorization": "Bearer " + "x" * 40}
                    ).status_code == 401
    ok = api.post(url, json=[event, event], headers={"Authorization": f"Bearer {TOKEN}"})
    assert ok.status_code == 200 and ok.json() == {"taken": ["bounced", "duplicate"]}
    assert world.rows(inv)["sms"].state == "sent" and len(world.sms_sent()) == 1
    bad = api.post(url, json={"type": "bounce"}, headers={"Authorization": f"Bearer {TOKEN}"})
    assert bad.status_code == 400 and bad.headers["content-type"].startswith(
        "application/problem+json")
    deep = api.post(url, content=b"[" * 5000 + b"]" * 5000,
                    headers={"Authorization": f"Bearer {TOKEN}"})
    assert deep.status_code == 400


def test_sms_receipts_by_basic_auth_fall_back_to_paper(world, api):
    inv = world.issue("H-2")
    take_report(parse_report(dsn(world.mailer.sent[0].sender)), world.intake)
    sms = world.rows(inv)["sms"]
    receipts = [{"message_id": sms.message_id, "status": "ENROUTE"},
                {"reference": sms.reference, "status": "UNDELIV", "at": "2026-12-07T08:00:00Z",
                 "error": "absent subscriber"}]
    got = api.post("/v1/callbacks/sms-receipts", json=receipts, auth=("gateway", TOKEN))
    assert got.status_code == 200 and got.json() == {"taken": ["ignored", "bounced"]}
    rows = world.rows(inv)
    assert rows["sms"].state == "bounced" and rows["print"].replaces_id == rows["sms"].id


def test_callbacks_are_off_without_a_token(sqlite_led, tmp_path):
    app = create_app(Settings(db_url="sqlite:///unused", archive_url="file:///unused"),
                     ledger=sqlite_led, archive=FileArchive(tmp_path / "a"),
                     sms=MemorySmsGateway(), link_secret=SECRET)
    with LiveServer(app) as server, httpx.Client(base_url=server.url) as http:
        # An empty token configured must never match an empty Authorization.
        got = http.post("/v1/callbacks/sms-receipts", json={}, auth=("gateway", ""))
    assert got.status_code == 404


def test_operations_see_the_bounce_and_where_it_fell_back(world, api):
    from invoicer.api.keys import create_key

    inv = world.issue("H-3")
    world.gateway.refuse = {"+5521987654321"}
    take_report(parse_report(dsn(world.mailer.sent[0].sender)), world.intake)
    key = create_key(world.ledger, role="operations", operators=["oi"], name="NOC").token
    got = api.get("/v1/operations/deliveries", headers={"Authorization": f"Bearer {key}"})
    assert got.status_code == 200, got.text
    rows = {d["channel"]: d for d in got.json()["deliveries"] if d["invoice"] == inv.number}
    assert rows["email"]["state"] == "bounced" and rows["email"]["report_status"] == "5.1.1"
    assert rows["email"]["fell_back_to"]["channel"] == "sms"
    assert rows["sms"]["state"] == "failed_permanent"
    assert rows["sms"]["replaces"] == rows["email"]["id"]
    assert rows["sms"]["fell_back_to"] == {"id": rows["sms"]["fell_back_to"]["id"],
                                           "channel": "print", "state": "pending"}
    assert "print" not in rows  # paper waiting for its batch is normal
