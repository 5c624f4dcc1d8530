"""``Invoicer-Signature``: HMAC-SHA256 over the timestamp and the body.

The header is ``Invoicer-Signature: t=<unix seconds>,v1=<hex digest>`` where the digest
is HMAC-SHA256, keyed with the endpoint's secret, of ``"<t>." + body`` (the body's exact
bytes). The timestamp inside the signed text lets a receiver refuse a replayed request
(tolerance, default five minutes); the scheme is Stripe's, so receivers that know it need
nothing new. docs/webhooks.md carries a standalone verification snippet.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Mapping

__all__ = ["SIGNATURE_HEADER", "SignatureError", "sign", "signed_headers", "verify"]

SIGNATURE_HEADER = "Invoicer-Signature"


class SignatureError(ValueError):
    """A request's signature is missing, malformed, wrong or too old."""


def sign(secret: str | bytes, body: bytes, timestamp: int) -> str:
    """The ``Invoicer-Signature`` value of ``body`` at ``timestamp``."""
    key = secret.encode("utf-8") if isinstance(secret, str) else secret
    digest = hmac.new(key, f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def signed_headers(secret: str | bytes, body: bytes, *, event_id: str, event_type: str,
                   timestamp: int | None = None) -> dict[str, str]:
    """The headers of one attempt: content type, signature, event id and type."""
    return {
        "Content-Type": "application/json",
        SIGNATURE_HEADER: sign(secret, body, int(time.time()) if timestamp is None
                               else timestamp),
        "Invoicer-Event-Id": event_id,
        "Invoicer-Event-Type": event_type,
    }


def verify(secret: str | bytes, header: str | None, body: bytes, *,
           tolerance: int = 300, now: float | None = None) -> int:
    """Check a request's signature; its timestamp if good, else :class:`SignatureError`.

    Every ``v1`` in the header is tried (a sender rotating secrets may send two);
    comparison is constant-time.
    """
    if not header:
        raise SignatureError("no signature")
    parts: Mapping[str, list[str]] = {}
    for item in header.split(","):
        name, _, value = item.strip().partition("=")
        parts.setdefault(name, []).append(value)  # type: ignore[attr-defined]
    try:
        timestamp = int(parts["t"][0])
    except (KeyError, ValueError):
        raise SignatureError("no timestamp") from None
    if abs((time.time() if now is None else now) - timestamp) > tolerance:
        raise SignatureError("timestamp outside the tolerance")
    expected = sign(secret, body, timestamp).split("v1=", 1)[1]
    if not any(hmac.compare_digest(expected, v) for v in parts.get("v1", [])):
        raise SignatureError("signature does not match")
    return timestamp
