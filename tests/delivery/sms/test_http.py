"""The HTTP SMS gateway against a real HTTP server on loopback: the request as sent,
statuses, Retry-After, timeouts; and its URL."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from invoicer.delivery.errors import PermanentDeliveryError, TransientDeliveryError
from invoicer.delivery.retry import retry_transient
from invoicer.delivery.sms import (
    FileSmsOutbox,
    HttpSmsGateway,
    MemorySmsGateway,
    SmsResult,
    gateway_from_url,
)
from tests.support.servers import SmsGatewayServer, SmsReply, closed_port

SAMPLES = Path(__file__).resolve().parents[3] / "samples" / "invoices.jsonl"
LINK = "https://t.example/i/Ab3dE9"
TOKEN = "s3cret-token"
PHONE = "+5521987654321"


# --- HTTP gateway ----------------------------------------------------------------------


def http_gateway(server: SmsGatewayServer, **options) -> HttpSmsGateway:
    return HttpSmsGateway(f"{server.url}/v1/messages?account=acme", TOKEN,
                          **{"timeout": 2.0, **options})


def test_http_request_as_the_gateway_receives_it(sms_gateway_server):
    server = sms_gateway_server
    text = "Polder Telecom: uw factuur van € 98,49 moet uiterlijk 18-11-2026 betaald zijn."
    result = http_gateway(server).send("+31612345678", text, reference="polder:PT-1:sms:1")
    assert result == SmsResult("gw-1", 1)
    (request,) = server.received
    assert (request.method, request.path) == ("POST", "/v1/messages?account=acme")
    assert request.headers["authorization"] == f"Bearer {TOKEN}"
    assert request.headers["idempotency-key"] == "polder:PT-1:sms:1"
    assert request.headers["content-type"] == "application/json; charset=utf-8"
    assert request.json() == {"to": "+31612345678", "text": text,
                              "reference": "polder:PT-1:sms:1", "encoding": "gsm7",
                              "segments": 1}


GOLDEN = [
    ("plain GSM, 161 characters", "a" * 161, "gsm7", 2),
    ("€ at a part boundary", "a" * 152 + "€" + "b" * 10, "gsm7", 2),
    ("Romanian with ș ț", "Carpați Telecom: factura de 50,69 RON are scadența 18.11.2026. "
     "Cod de plată: CT5500778899-20261118-5069", "ucs2", 2),
    ("Romanian without diacritics", "Carpati Telecom: factura de 50,69 RON are scadenta "
     "18.11.2026. Cod de plata: CT5500778899-20261118-5069", "gsm7", 1),
    ("Persian", "البرز: صورتحساب ریال 4,180,990، مهلت پرداخت 2026/11/17.", "ucs2", 1),
    ("Persian with a reference", "البرز: صورتحساب ریال 4,180,990، مهلت پرداخت 2026/11/17. "
     "شناسه پرداخت: 8800012345000004180990", "ucs2", 2),
    ("emoji at 70 units", "a" * 68 + "😀", "ucs2", 1),
    ("emoji across 67", "a" * 66 + "😀" + "b" * 10, "ucs2", 2),
]


@pytest.mark.parametrize(("name", "text", "enc", "segments"), GOLDEN,
                         ids=[g[0] for g in GOLDEN])
def test_http_golden_segment_counts(sms_gateway_server, name, text, enc, segments):
    result = http_gateway(sms_gateway_server).send(PHONE, text, reference="r-1")
    assert result.segments == segments
    body = sms_gateway_server.received[0].json()
    assert (body["encoding"], body["segments"], body["text"]) == (enc, segments, text)


def test_http_429_then_200_is_delivered_once_after_a_retry(sms_gateway_server):
    server = sms_gateway_server
    server.reply(SmsReply(429, {"error": "slow down"}, headers={"Retry-After": "2"}))
    gateway = http_gateway(server)
    sleeps: list[float] = []
    result = retry_transient(lambda: gateway.send(PHONE, "hello", reference="oi:OI-9:sms:1"),
                             sleep=sleeps.append)
    assert sleeps == [2.0]  # the gateway's Retry-After, not our backoff
    assert [r.headers["idempotency-key"] for r in server.received] == ["oi:OI-9:sms:1"] * 2
    assert server.accepted == {"oi:OI-9:sms:1": result.message_id}


def test_http_400_is_permanent_and_not_retried(sms_gateway_server):
    server = sms_gateway_server
    server.reply(SmsReply(400, {"error": "number not mobile\r\nX-Evil: 1"}))
    gateway = http_gateway(server)
    sleeps: list[float] = []
    with pytest.raises(PermanentDeliveryError, match="HTTP 400") as caught:
        retry_transient(lambda: gateway.send(PHONE, "hello", reference="r-400"),
                        sleep=sleeps.append)
    assert "number not mobile X-Evil: 1" in str(caught.value)  # one line, gateway's words
    assert sleeps == [] and len(server.received) == 1 and server.accepted == {}


def test_http_503_with_retry_after(sms_gateway_server):
    server = sms_gateway_server
    server.reply(SmsReply(503, "maintenance", headers={"Retry-After": "7"}))
    with pytest.raises(TransientDeliveryError, match="HTTP 503") as caught:
        http_gateway(server).send(PHONE, "hello", reference="r-503")
    assert caught.value.retry_after == 7.0


def test_http_retry_after_beyond_the_in_process_limit_is_left_to_the_queue(
        sms_gateway_server):
    server = sms_gateway_server
    server.reply(SmsReply(429, headers={"Retry-After": "120"}))
    gateway = http_gateway(server)
    sleeps: list[float] = []
    with pytest.raises(TransientDeliveryError) as caught:
        retry_transient(lambda: gateway.send(PHONE, "hi", reference="r-1"),
                        sleep=sleeps.append, max_delay=30)
    assert caught.value.retry_after == 120.0 and sleeps == [] and len(server.received) == 1


def test_http_5xx_retried_with_growing_delays_then_given_up(sms_gateway_server):
    server = sms_gateway_server
    server.reply(SmsReply(500), SmsReply(502), SmsReply(504))
    gateway = http_gateway(server)
    sleeps: list[float] = []
    with pytest.raises(TransientDeliveryError, match="HTTP 504"):
        retry_transient(lambda: gateway.send(PHONE, "hi", reference="r-1"), attempts=3,
                        base_delay=0.5, sleep=sleeps.append, rand=lambda: 1.0)
    assert sleeps == [0.5, 1.0] and len(server.received) == 3


def test_http_timeout_is_transient(sms_gateway_server):
    server = sms_gateway_server
    server.reply(SmsReply(stall=3.0))
    gateway = http_gateway(server, timeout=0.3)
    started = time.monotonic()
    with pytest.raises(TransientDeliveryError, match="timed out"):
        gateway.send(PHONE, "hi", reference="r-slow")
    assert time.monotonic() - started < 2.0


def test_http_connection_refused_is_transient():
    gateway = HttpSmsGateway(f"http://127.0.0.1:{closed_port()}/send", TOKEN,
                             connect_timeout=1)
    with pytest.raises(TransientDeliveryError) as caught:
        gateway.send(PHONE, "hi", reference="r-down")
    assert isinstance(caught.value.__cause__, OSError)


def test_http_501_is_permanent(sms_gateway_server):
    sms_gateway_server.reply(SmsReply(501))
    with pytest.raises(PermanentDeliveryError):
        http_gateway(sms_gateway_server).send(PHONE, "hi", reference="r-1")


def test_http_answer_without_an_id_and_the_gateways_own_count(sms_gateway_server):
    server = sms_gateway_server
    server.reply(SmsReply(202, ""), SmsReply(200, {"id": 12345, "segments": 3}),
                 SmsReply(200, "<html>ok</html>"))
    gateway = http_gateway(server)
    assert gateway.send(PHONE, "hi", reference="r-1") == SmsResult("r-1", 1)
    assert gateway.send(PHONE, "hi", reference="r-2") == SmsResult("12345", 3)
    assert gateway.send(PHONE, "hi", reference="r-3") == SmsResult("r-3", 1)


def test_retry_after_as_an_http_date():
    from invoicer.delivery.sms.http import _retry_after

    now = datetime(2026, 11, 5, 10, 0, 0, tzinfo=UTC)
    assert _retry_after("Thu, 05 Nov 2026 10:00:10 GMT", lambda: now) == 10.0
    assert _retry_after("Thu, 05 Nov 2026 09:00:00 GMT", lambda: now) == 0.0
    assert _retry_after("soon", lambda: now) is None
    assert _retry_after(None) is None


# --- URLs ------------------------------------------------------------------------------


def test_http_from_url_token_in_the_password_and_options():
    gateway = gateway_from_url("https://:tok%2Fen@sms.example.com:8443/v1/send?"
                               "timeout=3&connect_timeout=1.5&account=acme")
    assert isinstance(gateway, HttpSmsGateway)
    assert gateway.endpoint == "https://sms.example.com:8443/v1/send?account=acme"
    assert (gateway.token, gateway.timeout, gateway.connect_timeout) == ("tok/en", 3.0, 1.5)
    assert "tok" not in repr(gateway)


def test_http_from_url_token_in_the_query_or_given_apart():
    gateway = HttpSmsGateway.from_url("https://sms.example.com/send?token=abc&x=1")
    assert (gateway.token, gateway.endpoint) == ("abc", "https://sms.example.com/send?x=1")
    # The service passes INVOICER_SMS_TOKEN (tests/test_backends.py checks it does).
    assert HttpSmsGateway.from_url("https://sms.example.com/send",
                                   token="from-env").token == "from-env"
    assert gateway_from_url("https://sms.example.com/send", token="t").token == "t"
    assert HttpSmsGateway.from_url("https://sms.example.com/send?token=url",
                                   token="apart").token == "url"


@pytest.mark.parametrize("url", [
    "https://sms.example.com/send",  # no token anywhere
    "https://tok@sms.example.com/send",  # a user name would be printed unmasked
    "https://sms.example.com/send?token=a&timeout=soon",
    "https://sms.example.com/send?token=a&timeout=0",
    "https:///send?token=a",
])
def test_http_from_url_refuses(url):
    with pytest.raises(ValueError):
        gateway_from_url(url)


def test_gateway_from_url_default_and_schemes(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    default = gateway_from_url()
    assert isinstance(default, FileSmsOutbox) and default.root == Path("var/sms")
    # INVOICER_SMS_URL is read by the settings (tests/test_backends.py).
    assert isinstance(gateway_from_url("memory://"), MemorySmsGateway)
    assert gateway_from_url("file:///tmp/x/sms").root == Path("/tmp/x/sms")
    with pytest.raises(ValueError, match="unknown SMS scheme"):
        gateway_from_url("smpp://smsc.example.com")
