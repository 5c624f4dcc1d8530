"""End to end: a bill run against a real SMTP server that accepts every message and
then bounces some (a loopback aiosmtpd that sends DSNs, as an MTA does, to the return
path: ``invoicer bounces serve``), a real HTTP SMS gateway that refuses one number, and
the print batches closed afterwards. Every subscriber is reached by e-mail, SMS or paper,
exactly once per channel, counted at the peers themselves."""

from __future__ import annotations

import collections
import copy
import json
import os
import smtplib
import socket
import subprocess
import sys
import threading
import time

import pytest
from aiosmtpd.controller import Controller

from invoicer.delivery.archive import FileArchive
from invoicer.ledger import Ledger
from invoicer.workflows import printing
from tests.conftest import SPEC_EXAMPLE
from tests.support.dsn import dsn
from tests.support.servers import closed_port

SECRET = "e" * 40
DOMAIN = "bounce.oi.example"


class BouncingMx:
    """Accepts every message; for dead addresses, sends a DSN to the message's return
    path a moment later, from another connection (as a real MTA's queue would)."""

    def __init__(self, dead: set[str], bounce_port: int) -> None:
        self.dead, self.bounce_port = dead, bounce_port
        self.received: list[tuple[str, str]] = []  # (return path, recipient)
        self.dsn_sent: list[str] = []
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()

    async def handle_DATA(self, server, session, envelope):
        for rcpt in envelope.rcpt_tos:
            with self._lock:
                self.received.append((envelope.mail_from, rcpt))
            if rcpt in self.dead:
                t = threading.Thread(target=self._bounce, args=(envelope.mail_from, rcpt))
                t.start()
                self._threads.append(t)
        return "250 2.0.0 Ok: queued"

    def _bounce(self, return_path: str, rcpt: str) -> None:
        time.sleep(0.05)
        with smtplib.SMTP("127.0.0.1", self.bounce_port, timeout=30) as client:
            client.sendmail("<>", [return_path],
                            dsn(return_path, recipient=rcpt, message_id="<unknown@x>"))
        with self._lock:
            self.dsn_sent.append(rcpt)

    def join(self) -> None:
        for t in self._threads:
            t.join(30)


def _record(n: int, mode: str, email: str | None, phone: str | None) -> str:
    data = copy.deepcopy(SPEC_EXAMPLE)
    data["invoice"]["number"] = f"E2E-{n:03d}"
    data["delivery"] = {k: v for k, v in {
        "mode": mode, "email": email, "phone": phone, "sms_notice": False,
        "attach_pdf": True}.items() if v is not None}
    return json.dumps(data)


# number -> (mode, e-mail, phone, how it must reach the subscriber)
CASES = {
    1: ("electronic", "alive1@example.com", "+5521900000001", {"email"}),
    2: ("electronic", "dead2@example.com", "+5521900000002", {"sms"}),
    3: ("electronic", "dead3@example.com", None, {"print"}),
    4: ("electronic", "dead4@example.com", "+5521900000004", {"print"}),  # SMS refused
    5: ("paper", None, "+5521900000005", {"print"}),
    6: ("both", "dead6@example.com", "+5521900000006", {"print"}),  # paper already
    7: ("electronic", "alive7@example.com", None, {"email"}),
    8: ("electronic", "dead8@example.com", "+5521900000008", {"sms"}),
}
DEAD = {email for _, email, _, _ in CASES.values() if email and email.startswith("dead")}
REFUSED = {"+5521900000004"}


def _wait_port(port: int, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                out = proc.stdout.read() if proc.stdout else ""
                pytest.fail(f"the bounce receiver did not start: {out}")
            time.sleep(0.1)


def test_every_subscriber_is_reached_once_per_channel(tmp_path, sms_gateway_server):
    gateway = sms_gateway_server
    gateway.refuse = REFUSED
    bounce_port = closed_port()
    mx = BouncingMx(DEAD, bounce_port)
    mx_server = Controller(mx, hostname="127.0.0.1", port=closed_port())
    mx_server.start()
    db = tmp_path / "ledger.db"
    env = {k: v for k, v in os.environ.items() if not k.startswith("INVOICER_")}
    env.update(INVOICER_DB_URL=f"sqlite:///{db}",
               INVOICER_ARCHIVE_URL=f"file://{tmp_path}/archive",
               INVOICER_MAIL_URL=f"smtp://127.0.0.1:{mx_server.port}?timeout=10",
               INVOICER_MAIL_FROM="faturas@oi.example",
               INVOICER_SMS_URL=f"{gateway.url}/v1/sms", INVOICER_SMS_TOKEN="tok",
               INVOICER_LINK_SECRET=SECRET, INVOICER_BOUNCE_DOMAIN=DOMAIN,
               INVOICER_BOUNCE_LISTEN=f"127.0.0.1:{bounce_port}", INVOICER_WORKERS="2")
    source = tmp_path / "run.jsonl"
    source.write_text("\n".join(_record(n, *case[:3]) for n, case in CASES.items()) + "\n")
    cli = [sys.executable, "-m", "invoicer"]
    # The ledger exists before the receiver starts: both migrate it.
    subprocess.run([*cli, "deliveries"], env=env, cwd=tmp_path, check=True,
                   capture_output=True, timeout=60)
    receiver = subprocess.Popen([*cli, "bounces", "serve"], env=env, cwd=tmp_path,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        _wait_port(bounce_port, receiver)
        run = subprocess.run([*cli, "run", str(source)], env=env, cwd=tmp_path,
                             capture_output=True, text=True, timeout=300)
        assert run.returncode == 0, run.stdout + run.stderr
        mx.join()
        assert sorted(mx.dsn_sent) == sorted(DEAD)
        ledger = Ledger.from_url(f"sqlite:///{db}")
        # The receiver records each DSN before answering 250: all are in the ledger now.
        printing.close(ledger, FileArchive(tmp_path / "archive"), "oi")
        listed = subprocess.run([*cli, "deliveries"], env={**env, "COLUMNS": "250"},
                                cwd=tmp_path, capture_output=True, text=True, timeout=60)
        shown = subprocess.run([*cli, "deliveries", "--invoice", "E2E-004"],
                               env={**env, "COLUMNS": "250"},
                               cwd=tmp_path, capture_output=True, text=True, timeout=60)
    finally:
        receiver.terminate()
        receiver.wait(30)
        mx_server.stop()

    archive = FileArchive(tmp_path / "archive")
    printed = collections.Counter(
        doc["invoice"]
        for batch in ledger.print_batches.in_states({"closed"})
        for doc in json.loads(archive.get(batch.json_key))["documents"])
    mailed = collections.Counter(rcpt for _, rcpt in mx.received)
    texted = collections.Counter(r.json()["to"] for r in gateway.received
                                 if r.json()["to"] not in REFUSED)
    for n, (_, email, phone, reached) in CASES.items():
        number = f"E2E-{n:03d}"
        got = set()
        if email and mailed[email]:
            assert mailed[email] == 1, number
            if email not in DEAD:
                got.add("email")
        if phone and texted[phone]:
            assert texted[phone] == 1, number
            got.add("sms")
        if printed[number]:
            assert printed[number] == 1, number
            got.add("print")
        assert got == reached, (number, got)
    # Each return path is the delivery's own, and signed: no two messages share one.
    assert len({rp for rp, _ in mx.received}) == len(mx.received)
    assert all(rp.startswith("bounces+") and rp.endswith("@" + DOMAIN)
               for rp, _ in mx.received)
    # The operator sees the chain: e-mail bounced -> SMS refused -> paper.
    assert shown.returncode == 0, shown.stderr
    text = " ".join(shown.stdout.split())
    # (The print row is in a closed batch now: handed to the print shop.)
    assert "bounced (5.1.1)" in text and "failed" in text and "being sent" in text, text
    # The default listing: every bounce, with the fallback that replaced it.
    bounced = [line for line in listed.stdout.splitlines() if "bounced (5.1.1)" in line]
    assert len(bounced) == len(DEAD), listed.stdout
    assert all(" sms #" in line or " print #" in line for line in bounced), listed.stdout
    assert "already on print" in next(line for line in bounced if "E2E-006" in line)
    ledger.close()
