"""The API behind a proxy and in a browser: forged headers, cross-site posts, timing.

Classes of failure covered (issue 13, "Behind a proxy, and in a browser"):

- *a client picks its own address*: ``X-Forwarded-For`` is believed from the trusted
  proxies only (none by default), so rotating it escapes no rate limit;
- *cross-site form posts* (CSRF, login CSRF included): the page's POSTs check
  ``Origin`` / ``Sec-Fetch-Site``;
- *an enumeration signal in timing*: the lookup and SMS of an access code delayed the
  next request on the same connection for subscribers' numbers only;
- *OPTIONS without Allow*.
"""

from __future__ import annotations

import asyncio
import socket
import time

import httpx
import pytest

from invoicer.api import create_app
from invoicer.api.access import AccessLimits
from invoicer.api.edge import TrustedProxies, parse_networks
from invoicer.delivery.archive import FileArchive
from invoicer.delivery.sms.http import HttpSmsGateway
from invoicer.ledger import Ledger
from invoicer.settings import Settings
from tests.api.conftest import SECRET, Clock, LiveServer, client, sms_code
from tests.api.world import MAIN, populate
from tests.support.servers import SmsGatewayServer, SmsReply

STRANGER = "+5521900000001"


# ---------------------------------------------------------------------------- proxies


async def _client_seen(trusted: str, peer: str, *forwarded: str) -> tuple[str, int]:
    seen = {}

    async def app(scope, receive, send):
        seen["client"] = scope["client"]

    headers = [(b"x-forwarded-for", value.encode()) for value in forwarded]
    await TrustedProxies(app, parse_networks(trusted))(
        {"type": "http", "client": (peer, 5555), "headers": headers}, None, None)
    return seen["client"]


@pytest.mark.parametrize(("trusted", "peer", "forwarded", "client"), [
    ("", "127.0.0.1", ["6.6.6.6"], "127.0.0.1"),  # nobody trusted: the header is noise
    ("10.0.0.1", "127.0.0.1", ["6.6.6.6"], "127.0.0.1"),  # not from the proxy
    ("10.0.0.1", "10.0.0.1", ["203.0.113.7"], "203.0.113.7"),
    # The client wrote its own XFF; the proxy appended the address it saw: that one.
    ("10.0.0.1", "10.0.0.1", ["6.6.6.6, 203.0.113.7"], "203.0.113.7"),
    ("10.0.0.0/8", "10.0.0.1", ["6.6.6.6, 203.0.113.7, 10.0.0.2"], "203.0.113.7"),
    ("10.0.0.1", "10.0.0.1", ["6.6.6.6", "203.0.113.7"], "203.0.113.7"),  # two headers
    ("10.0.0.1", "10.0.0.1", ["not-an-ip"], "10.0.0.1"),
    ("10.0.0.1, ::1", "::1", ["[2001:db8::5]:443"], "2001:db8::5"),
])
def test_forwarded_for_is_believed_from_trusted_proxies_only(trusted, peer, forwarded, client):
    """Class: a client picks its own address (forged headers)."""
    assert asyncio.run(_client_seen(trusted, peer, *forwarded))[0] == client


@pytest.fixture
def world(tmp_path):
    # A clock that stands still: rate limits count in fixed 15-minute windows of the
    # ledger's clock, and on the wall clock a window's end (every :00, :15, :30, :45)
    # falling among a test's five requests would start a fresh count.
    ledger = Ledger.from_url(f"sqlite:///{tmp_path / 'ledger.db'}", clock=Clock())
    ledger.migrate()
    archive = FileArchive(tmp_path / "archive")
    populate(ledger, archive)
    yield ledger, archive
    ledger.close()


def _serve(world, tmp_path, *, sms, trusted="", limits=None):
    ledger, archive = world
    settings = Settings(db_url="sqlite:///unused", archive_url="file:///unused",
                        trusted_proxies=trusted, link_secret=SECRET.decode())
    return LiveServer(create_app(settings, ledger=ledger, archive=archive, sms=sms,
                                 link_secret=SECRET, limits=limits))


def test_rotating_forwarded_for_escapes_no_rate_limit(world, tmp_path):
    """Class: a client picks its own address, end to end (today every forged address
    was a new per-client bucket)."""
    limits = AccessLimits(codes_per_client=3, codes_per_phone=100)
    with _serve(world, tmp_path, sms=None, limits=limits) as server, \
            client(server.url) as http:
        answers = [http.post("/v1/subscriber/sms-code", json={"phone": f"+55219000000{i:02d}"},
                             headers={"X-Forwarded-For": f"198.51.100.{i}"}).status_code
                   for i in range(5)]
    assert answers == [202, 202, 202, 429, 429]
    limits = AccessLimits(codes_per_client=3, codes_per_phone=100)
    with _serve(world, tmp_path, sms=None, limits=limits, trusted="127.0.0.1") as server, \
            client(server.url) as http:
        # Behind a trusted proxy each forwarded client has its own bucket.
        answers = [http.post("/v1/subscriber/sms-code", json={"phone": f"+55219000001{i:02d}"},
                             headers={"X-Forwarded-For": f"198.51.100.{i}"}).status_code
                   for i in range(5)]
    assert answers == [202] * 5


# ---------------------------------------------------------------------------- CSRF


def test_cross_site_form_posts_are_refused(sub):
    """Class: cross-site form posts. A right code posted from another site (login
    CSRF) opens nothing and stays usable; the page's own post works."""
    phone = MAIN[2]
    assert sub.http.post("/v1/subscriber/sms-code", json={"phone": phone}).status_code == 202
    code = sms_code(sub.outbox, phone)
    form = {"phone": phone, "code": code, "lang": "en"}
    for headers in ({"Origin": "https://evil.example"},
                    {"Origin": "null", "Sec-Fetch-Site": "cross-site"},
                    {"Origin": "null"},
                    {"Sec-Fetch-Site": "cross-site"},
                    {"Origin": sub.url.replace("127.0.0.1", "127.0.0.2")}):
        refused = sub.http.post("/access/session", data=form, headers=headers)
        assert refused.status_code == 403, headers
        assert "set-cookie" not in refused.headers
        assert sub.http.post("/access/code", data={"phone": phone}, headers=headers
                             ).status_code == 403
    own = sub.http.post("/access/session", data=form,
                        headers={"Origin": "null", "Sec-Fetch-Site": "same-origin"})
    assert own.status_code == 303 and "set-cookie" in own.headers
    # With the session cookie now held (the client keeps it), the preference forms
    # refuse other sites too.
    assert sub.http.cookies
    for path, data in (("/access/delivery", {"mode": "paper"}),
                       ("/access/confirm/x.y", {"lang": "en"})):
        cross = sub.http.post(path, data=data, headers={"Origin": "https://evil.example"})
        assert cross.status_code == 403, path
        assert cross.json()["type"].endswith("cross-site-post")


# ---------------------------------------------------------------------------- timing


def test_a_subscribers_code_delays_no_later_request(world, tmp_path):
    """Class: an enumeration signal in timing. The gateway takes 1.5 s; the request
    after "send me a code" on the same connection answers as fast for a subscriber's
    number as for a stranger's (it waited for the SMS before)."""
    with SmsGatewayServer() as gateway:
        gateway.reply(SmsReply(stall=1.5))
        sms = HttpSmsGateway(gateway.url + "/send", "gateway-token", timeout=5)
        with _serve(world, tmp_path, sms=sms) as server:
            transport = httpx.HTTPTransport(
                socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)])
            with httpx.Client(base_url=server.url, transport=transport, timeout=30) as http:
                after = {}
                for phone in (STRANGER, MAIN[2]):
                    assert http.post("/v1/subscriber/sms-code",
                                     json={"phone": phone}).status_code == 202
                    started = time.perf_counter()
                    assert http.get("/openapi.json").status_code == 200
                    after[phone] = time.perf_counter() - started
            deadline = time.monotonic() + 10
            while not gateway.received and time.monotonic() < deadline:
                time.sleep(0.05)
    assert [r.json()["to"] for r in gateway.received] == [MAIN[2]]  # it did go out
    assert after[MAIN[2]] < 0.5, after


# ---------------------------------------------------------------------------- OPTIONS


def test_options_answers_allow(sub):
    """Class: OPTIONS without Allow (and a 405 listing one route's methods only)."""
    cases = {"/v1/subscriber/sms-code": "OPTIONS, POST",
             "/invoices/x.pdf": "GET, HEAD, OPTIONS",
             "/access/code": "OPTIONS, POST",
             "/v1/billing/operators/oi/invoices/N-1/payment-status": "GET, HEAD, OPTIONS, PUT"}
    for path, allow in cases.items():
        got = sub.http.options(path)
        assert (got.status_code, got.headers.get("allow")) == (204, allow), path
    assert sub.http.options("/nowhere").status_code == 404
    wrong = sub.http.delete("/v1/billing/operators/oi/invoices/N-1/payment-status")
    assert wrong.status_code == 405 and wrong.headers["allow"] == "GET, HEAD, OPTIONS, PUT"

