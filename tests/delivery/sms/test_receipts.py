"""Delivery receipts a gateway posts back: read, or refused with a reason."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from invoicer.delivery.sms import (
    parse_receipt,
)

SAMPLES = Path(__file__).resolve().parents[3] / "samples" / "invoices.jsonl"
LINK = "https://t.example/i/Ab3dE9"
TOKEN = "s3cret-token"
PHONE = "+5521987654321"


def test_parse_receipt():
    receipt = parse_receipt({"reference": "oi:OI-1:sms:1", "message_id": "gw-1",
                             "status": "DELIVRD", "at": "2026-11-05T10:15:30Z"})
    assert receipt.status == "delivered"
    assert receipt.at == datetime(2026, 11, 5, 10, 15, 30, tzinfo=UTC)
    assert (receipt.reference, receipt.message_id, receipt.error) == (
        "oi:OI-1:sms:1", "gw-1", None)
    failed = parse_receipt({"message_id": "gw-2", "status": "failed",
                            "at": "2026-11-05T13:15:30+03:00",
                            "error": "absent\nsubscriber"})
    assert failed.status == "failed" and failed.reference is None
    assert failed.at.utcoffset() == timedelta(hours=3) and failed.error == "absent subscriber"
    assert parse_receipt({"reference": "r", "status": "Expired",
                          "at": "2026-11-06T10:15:30Z"}).status == "expired"
    assert parse_receipt({"reference": "r", "status": "UNDELIV",
                          "at": "2026-11-06T10:15:30Z"}).status == "failed"


@pytest.mark.parametrize("body", [
    {"status": "delivered", "at": "2026-11-05T10:15:30Z"},  # which message?
    {"reference": "r", "status": "ENROUTE", "at": "2026-11-05T10:15:30Z"},  # interim
    {"reference": "r", "status": "delivered", "at": "2026-11-05T10:15:30"},  # naive
    {"reference": "r", "status": "delivered"},
    {"reference": "r", "status": "delivered", "at": "yesterday"},
    {"reference": "bad ref", "status": "delivered", "at": "2026-11-05T10:15:30Z"},
    {"message_id": 5, "status": "delivered", "at": "2026-11-05T10:15:30Z"},
    ["not", "an", "object"],
])
def test_parse_receipt_refuses(body):
    with pytest.raises(ValueError):
        parse_receipt(body)
