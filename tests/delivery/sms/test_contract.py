"""The SMS gateway contract, run over every backend: the file outbox, the in-memory
fake and a real HTTP gateway on loopback."""

from __future__ import annotations

from pathlib import Path

import pytest

from invoicer.delivery.sms import (
    FileSmsOutbox,
    HttpSmsGateway,
    MemorySmsGateway,
    SmsGateway,
)

SAMPLES = Path(__file__).resolve().parents[3] / "samples" / "invoices.jsonl"
LINK = "https://t.example/i/Ab3dE9"
TOKEN = "s3cret-token"
PHONE = "+5521987654321"


@pytest.fixture(params=["file", "memory", "http"])
def sms_backend(request, tmp_path):
    """``(gateway, delivered)``: the backend, and a function listing what it delivered
    as ``(reference, to, text)`` (for HTTP: what the gateway accepted, once per key)."""
    if request.param == "file":
        outbox = FileSmsOutbox(tmp_path / "sms")
        return outbox, lambda: [(m.reference, m.to, m.text) for m in outbox.messages()]
    if request.param == "memory":
        memory = MemorySmsGateway()
        return memory, lambda: [(m.reference, m.to, m.text) for m in memory.messages]
    server = request.getfixturevalue("sms_gateway_server")
    gateway = HttpSmsGateway(f"{server.url}/v1/messages", TOKEN, timeout=2)

    def delivered():
        first = {}
        for r in server.received:
            body = r.json()
            key = r.headers["idempotency-key"]
            if key in server.accepted:
                first.setdefault(key, (body["reference"], body["to"], body["text"]))
        return list(first.values())

    return gateway, delivered


def test_contract_send_once_per_reference(sms_backend):
    gateway, delivered = sms_backend
    assert isinstance(gateway, SmsGateway)
    text = "Oi: sua fatura de R$ 104,75 vence em 20/11/2026."
    first = gateway.send(PHONE, text, reference="oi:OI-1:sms:1")
    assert first.segments == 1 and first.message_id and not first.already_sent
    again = gateway.send(PHONE, text, reference="oi:OI-1:sms:1")
    assert again.message_id == first.message_id and again.segments == 1
    other = gateway.send(PHONE, "a" * 161, reference="oi:OI-1:sms:2")  # a deliberate resend
    assert other.segments == 2 and other.message_id != first.message_id
    assert delivered() == [("oi:OI-1:sms:1", PHONE, text), ("oi:OI-1:sms:2", PHONE, "a" * 161)]


@pytest.mark.parametrize(("to", "text", "reference"), [
    ("5521987654321", "hi", "r1"),  # not E.164
    ("+5521 98765", "hi", "r1"),
    (PHONE, "", "r1"),
    (PHONE, "   ", "r1"),
    (PHONE, "a" * (153 * 10 + 1), "r1"),  # 11 parts
    (PHONE, "hi", ""),
    (PHONE, "hi", "ref with space"),
    (PHONE, "hi", "ref\r\nX-Injected: 1"),
])
def test_contract_refuses_bad_arguments_before_any_io(sms_backend, to, text, reference):
    gateway, delivered = sms_backend
    with pytest.raises(ValueError):
        gateway.send(to, text, reference=reference)
    assert delivered() == []
