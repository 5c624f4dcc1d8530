"""Signed links are credentials: neither the access log nor the application's logs
of a real ``invoicer serve`` ever hold one (issue 13, class: *token leaked to logs*)."""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
import time

import httpx

from invoicer.delivery.links import (
    LinkClaims,
    RedactLinkTokens,
    redact_tokens,
    redact_tokens_in_logs,
    sign,
)

SECRET = "logs-tests-link-secret-0123456789abcdef"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_the_access_log_of_invoicer_serve_keeps_the_route_not_the_token(tmp_path):
    """Class: token leaked to logs (uvicorn's access log, as `invoicer serve` runs it)."""
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("INVOICER_")}
    env.update(INVOICER_LINK_SECRET=SECRET, INVOICER_DB_URL=f"sqlite:///{tmp_path}/l.db",
               INVOICER_ARCHIVE_URL=f"file://{tmp_path}/archive",
               INVOICER_SMS_URL=f"file://{tmp_path}/sms",
               INVOICER_MAIL_URL=f"file://{tmp_path}/outbox")
    token = sign(LinkClaims("oi", "1234567890", "OI-2026-11-0000123", 10**10),
                 SECRET.encode())
    log = open(tmp_path / "serve.log", "wb")  # noqa: SIM115 - closed below
    server = subprocess.Popen([sys.executable, "-m", "invoicer", "serve", "--port", str(port)],
                              env=env, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
                break
            except httpx.TransportError:
                assert server.poll() is None and time.monotonic() < deadline, \
                    (tmp_path / "serve.log").read_text()
                time.sleep(0.2)
        for path in (f"/invoices/{token}.pdf", f"/invoices/{token}/second-copy.pdf",
                     f"/invoices/{token}.pdf?again=1"):
            answer = httpx.get(f"http://127.0.0.1:{port}{path}", timeout=10)
            assert answer.status_code in (403, 404)
    finally:
        server.terminate()
        server.wait(20)
        log.close()
    text = (tmp_path / "serve.log").read_text()
    assert "/invoices/{token}.pdf" in text  # the access log is on, and shows the route
    assert token not in text and token.split(".")[1] not in text


def test_application_records_lose_their_tokens_whatever_the_handler(caplog):
    """Class: token leaked to logs (an application logger, %-arguments and exceptions)."""
    token = sign(LinkClaims("oi", "1", "N-1", 10**10), SECRET.encode())
    redact_tokens_in_logs()
    with caplog.at_level(logging.INFO):
        logging.getLogger("invoicer.test").info("sent link %s to %s",
                                                f"https://b.example/invoices/{token}.pdf", "x")
        try:
            raise ValueError(f"cannot open /invoices/{token}.pdf")
        except ValueError:
            logging.getLogger("invoicer.test").exception("failed")
    assert token not in caplog.text and "/invoices/{token}.pdf" in caplog.text
    # Short dotted words are not tokens: a log line stays readable.
    assert redact_tokens("invoice OI-2026.pdf at example.com") == \
        "invoice OI-2026.pdf at example.com"
    record = logging.LogRecord("uvicorn.access", logging.INFO, __file__, 1,
                               '%s - "%s %s HTTP/%s" %d',
                               ("1.2.3.4:5", "GET", f"/invoices/{token}.pdf", "1.1", 200), None)
    RedactLinkTokens().filter(record)
    assert record.args[2] == "/invoices/{token}.pdf" and record.args[4] == 200
