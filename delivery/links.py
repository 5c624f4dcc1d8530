"""Signed download links for invoices.

An e-mail never carries a raw storage URL: it carries a link to the service with a
token that the service signed (HMAC-SHA256 over operator, account, invoice number and
expiry) and checks before streaming the archived PDF (the HTTP API). Tokens are URL-safe,
carry no personal data beyond the identifiers, and cannot be altered without the secret.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

#: Default validity of a link in an e-mail.
EMAIL_LINK_TTL = 7 * 24 * 3600


class InvalidLinkError(ValueError):
    """A token that was tampered with, expired, or signed with another secret."""


@dataclass(frozen=True, slots=True)
class LinkClaims:
    """What a valid token grants: one invoice of one account of one operator."""

    operator: str
    account: str
    invoice: str
    expires: int


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def sign(claims: LinkClaims, secret: bytes) -> str:
    """A token for ``claims``: ``payload.signature``, both base64url."""
    payload = json.dumps([claims.operator, claims.account, claims.invoice, claims.expires],
                         separators=(",", ":")).encode()
    mac = hmac.new(secret, payload, hashlib.sha256).digest()
    return f"{_b64(payload)}.{_b64(mac)}"


def verify(token: str, secret: bytes, *, now: float | None = None) -> LinkClaims:
    """The claims of a valid, unexpired token; :class:`InvalidLinkError` otherwise."""
    try:
        payload_b64, mac_b64 = token.split(".")
        payload, mac = _unb64(payload_b64), _unb64(mac_b64)
    except (ValueError, TypeError):
        raise InvalidLinkError("malformed token") from None
    expected = hmac.new(secret, payload, hashlib.sha256).digest()
    if not hmac.compare_digest(mac, expected):  # constant time
        raise InvalidLinkError("bad signature")
    try:
        operator, account, invoice, expires = json.loads(payload)
    except ValueError:
        raise InvalidLinkError("malformed token") from None
    if not all(isinstance(v, str) for v in (operator, account, invoice)) or \
            not isinstance(expires, int):
        raise InvalidLinkError("malformed token")
    if (now if now is not None else time.time()) >= expires:
        raise InvalidLinkError("expired")
    return LinkClaims(operator, account, invoice, expires)


def tag(secret: bytes, purpose: str, value: str, *, size: int = 10) -> str:
    """A short MAC of ``value`` for ``purpose``: lowercase base32 of the first ``size``
    bytes of HMAC-SHA256(secret, purpose NUL value).

    For identifiers that travel where case may not survive (the local part of a VERP
    return path: some MTAs lowercase it) and where length counts. ``purpose`` keeps a
    tag made for one use from being valid for another.
    """
    mac = hmac.new(secret, f"{purpose}\0{value}".encode(), hashlib.sha256).digest()[:size]
    return base64.b32encode(mac).decode("ascii").rstrip("=").lower()


def check_tag(secret: bytes, purpose: str, value: str, candidate: str, *,
              size: int = 10) -> bool:
    """Whether ``candidate`` is :func:`tag` of ``value`` (constant time, any case)."""
    return hmac.compare_digest(tag(secret, purpose, value, size=size),
                               candidate.lower().encode("ascii", "replace").decode())


def invoice_link(base_url: str, operator: str, account: str, invoice: str, secret: bytes,
                 *, ttl: int = EMAIL_LINK_TTL, now: float | None = None) -> str:
    """``{base_url}/invoices/{token}.pdf``, valid ``ttl`` seconds from ``now``."""
    expires = int((now if now is not None else time.time()) + ttl)
    token = sign(LinkClaims(operator, account, invoice, expires), secret)
    return f"{base_url.rstrip('/')}/invoices/{token}.pdf"


def local_secret(path: Path) -> bytes:
    """The embedded default's secret: made once, kept in a 0600 file next to the ledger.

    At scale every machine must share one secret: set ``INVOICER_LINK_SECRET``.
    """
    try:
        return path.read_bytes()
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True)
        value = secrets.token_bytes(32)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process made it first: use theirs
            return path.read_bytes()
        with os.fdopen(fd, "wb") as f:
            f.write(value)
        return value
