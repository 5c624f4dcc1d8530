"""Delivery receipts: a gateway's final word on a message, as it posts it back."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from invoicer.delivery.sms.gateway import REFERENCE_RE
from invoicer.delivery.sms.text import clean_value

__all__ = ["Receipt", "ReceiptStatus", "parse_receipt"]

ReceiptStatus = Literal["delivered", "failed", "expired"]

# Our words, then the SMPP delivery-receipt "stat" values gateways pass through.
_RECEIPT_STATUSES: Mapping[str, ReceiptStatus] = {
    "delivered": "delivered", "delivrd": "delivered",
    "failed": "failed", "undeliverable": "failed", "undeliv": "failed",
    "rejected": "failed", "rejectd": "failed", "deleted": "failed",
    "expired": "expired",
}


@dataclass(frozen=True, slots=True)
class Receipt:
    """A gateway's final word on one message."""

    status: ReceiptStatus
    at: datetime  # timezone-aware
    reference: str | None
    message_id: str | None
    error: str | None = None


def parse_receipt(body: Mapping[str, Any]) -> Receipt:
    """Read a delivery receipt a gateway posts back; raise ``ValueError`` if malformed.

    Expected JSON (one receipt per request)::

        {
          "reference": "OI-2026-11-0000123:sms:1",   # ours, as sent; or/and
          "message_id": "gw-8f3a",                   # the gateway's, from send()
          "status": "delivered",                     # | "failed" | "expired"
          "at": "2026-11-05T10:15:30Z",              # ISO 8601 with an offset
          "error": "absent subscriber"               # optional, for failed/expired
        }

    At least one of ``reference`` and ``message_id`` is required. ``status`` is
    case-insensitive and also takes SMPP receipt states (``DELIVRD``, ``UNDELIV``,
    ``REJECTD``, ``DELETED`` -> failed, ``EXPIRED``). Interim states (``ENROUTE``,
    ``ACCEPTD``, ``UNKNOWN``) are not receipts and raise ``ValueError``: the endpoint
    should acknowledge and ignore them.
    """
    if not isinstance(body, Mapping):
        raise ValueError("a receipt is a JSON object")
    reference = body.get("reference")
    message_id = body.get("message_id")
    if reference is not None and (not isinstance(reference, str)
                                  or not REFERENCE_RE.fullmatch(reference)):
        raise ValueError(f"reference {reference!r} is not one we send")
    if message_id is not None and (not isinstance(message_id, str)
                                   or not re.fullmatch(r"[!-~]{1,128}", message_id)):
        raise ValueError("message_id must be 1 to 128 printable ASCII characters")
    if reference is None and message_id is None:
        raise ValueError("a receipt names the message: reference or message_id")
    raw_status = body.get("status")
    status = _RECEIPT_STATUSES.get(raw_status.lower()) if isinstance(raw_status, str) else None
    if status is None:
        raise ValueError(f"status {raw_status!r} is not delivered, failed or expired")
    raw_at = body.get("at")
    try:
        at = datetime.fromisoformat(raw_at) if isinstance(raw_at, str) else None
    except ValueError:
        at = None
    if at is None or at.tzinfo is None:
        raise ValueError(f"at {raw_at!r} is not an ISO 8601 time with an offset")
    error = body.get("error")
    if error is not None:
        error = clean_value(error)[:200] if isinstance(error, str) else None
    return Receipt(status, at, reference, message_id, error or None)
