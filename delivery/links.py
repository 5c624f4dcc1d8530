"""Signed download links for invoices.

An e-mail never carries a raw storage URL: it carries a link to the service with a
token that the service signed (HMAC-SHA256 over operator, account, invoice number and
expiry) and checks before streaming the archived PDF (the HTTP API). Tokens are URL-safe,
carry no personal data beyond the identifiers, and cannot be altered without the secret.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import logging
import os
import re
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass
from json.encoder import encode_basestring_ascii
from pathlib import Path

#: Default validity of a link in an e-mail.
EMAIL_LINK_TTL = 7 * 24 * 3600

#: The shortest signing secret accepted, in bytes: an HMAC-SHA256 key shorter than its
#: 32-byte output is the weak link (an empty one lets anybody forge every token).
MIN_SECRET_BYTES = 32

#: What separates the secrets of a rotation in ``INVOICER_LINK_SECRET``.
SECRET_SEPARATOR = ","

#: One secret, or several for a rotation: the first signs, every one verifies.
Keys = bytes | Sequence[bytes]


class WeakSecretError(ValueError):
    """A signing secret that is missing, empty or shorter than :data:`MIN_SECRET_BYTES`
    (or a secret file that cannot be made): the service refuses to start with it."""


class InvalidLinkError(ValueError):
    """A token that was tampered with, expired, or signed with another secret."""


@dataclass(frozen=True, slots=True)
class LinkClaims:
    """What a valid token grants: one invoice of one account of one operator."""

    operator: str
    account: str
    invoice: str
    expires: int


#: Standard base64's two last letters as base64url spells them.
_URLSAFE = bytes.maketrans(b"+/", b"-_")


def _b64(data: bytes) -> str:
    # base64.urlsafe_b64encode(data) without its two layers of Python wrappers (a
    # history encodes 26 of these).
    return binascii.b2a_base64(data, newline=False).translate(_URLSAFE).rstrip(
        b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    # One spelling per token: the last character of unpadded base64 carries unused
    # bits, and a decoder that ignores them would take several strings for one MAC.
    if _b64(data) != text:
        raise ValueError("not canonical base64")
    return data


#: A signed token inside any text (a URL, a log line): a base64url payload of at least
#: 16 characters, a dot, and the 43 characters of an HMAC-SHA256.
_TOKEN_IN_TEXT = re.compile(r"(?<![A-Za-z0-9_-])[A-Za-z0-9_-]{16,}\.[A-Za-z0-9_-]{43}"
                            r"(?![A-Za-z0-9_-])")


def redact_tokens(text: str) -> str:
    """``text`` with every signed token replaced by ``{token}``: a link is a
    credential, so logs keep the route (``/invoices/{token}.pdf``), never the token."""
    return _TOKEN_IN_TEXT.sub("{token}", text) if "." in text else text


class RedactLinkTokens(logging.Filter):
    """A logging filter (on a logger or a handler) that takes signed tokens out of a
    record's message and arguments (uvicorn's access log formats its arguments
    itself, so they are redacted one by one, not collapsed into the message)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact_tokens(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(redact_tokens(a) if isinstance(a, str) else a
                                for a in record.args)
        elif isinstance(record.args, dict):
            record.args = {k: redact_tokens(v) if isinstance(v, str) else v
                           for k, v in record.args.items()}
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact_tokens(record.exc_text)
        return True


def redact_tokens_in_logs() -> None:
    """From now on, every log record this process makes has its signed tokens
    redacted as it is made (a record factory, not a handler filter: uvicorn's access
    log, the application's loggers and libraries' alike, whatever handlers they end
    in). Idempotent."""
    factory = logging.getLogRecordFactory()
    if getattr(factory, "redacts_link_tokens", False):
        return
    redact = RedactLinkTokens()

    def make(*args, **kwargs):
        record = factory(*args, **kwargs)
        redact.filter(record)
        return record

    make.redacts_link_tokens = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(make)


def keys(secret: Keys) -> tuple[bytes, ...]:
    """``secret`` as a tuple of keys, the signing one first; ``ValueError`` if empty."""
    if type(secret) is bytes:  # the common case, without copies
        return (secret,)
    if type(secret) is tuple and secret and all(type(k) is bytes for k in secret):
        return secret  # already keys (a service's, made once): a history signs 13 links
    found = (secret,) if isinstance(secret, bytes | bytearray) else tuple(secret)
    if not found:
        raise ValueError("no signing key")
    return tuple(bytes(k) for k in found)


#: How JSON spells a string, ASCII only (C code; what ``json.dumps`` uses for a ``str``).
_json_str = encode_basestring_ascii


def sign(claims: LinkClaims, secret: Keys) -> str:
    """A token for ``claims``: ``payload.signature``, both base64url, signed with the
    first key of ``secret``."""
    return sign_fields(claims.operator, claims.account, claims.invoice, claims.expires,
                       keys(secret)[0])


def sign_fields(operator: str, account: str, invoice: str, expires: int, key: bytes) -> str:
    """:func:`sign` of ``LinkClaims(operator, account, invoice, expires)`` with the one
    signing ``key`` (the first of :func:`keys`): the same token, without making the
    claims' object and looking the key up again for each of a history's 13 links."""
    # The payload is json.dumps([operator, account, invoice, expires],
    # separators=(",", ":")), byte for byte, spelt out: a history signs a link per
    # invoice, and the encoder's list machinery cost more than the HMAC (1.4 against
    # 0.3 microseconds; tests/delivery/test_links.py checks the two agree).
    payload = (f"[{_json_str(operator)},{_json_str(account)},{_json_str(invoice)},"
               f"{int(expires)}]").encode()
    mac = hmac.digest(key, payload, "sha256")
    return f"{_b64(payload)}.{_b64(mac)}"


def verify(token: str, secret: Keys, *, now: float | None = None) -> LinkClaims:
    """The claims of a valid, unexpired token signed with any key of ``secret``;
    :class:`InvalidLinkError` otherwise."""
    try:
        payload_b64, mac_b64 = token.split(".")
        payload, mac = _unb64(payload_b64), _unb64(mac_b64)
    except (ValueError, TypeError):
        raise InvalidLinkError("malformed token") from None
    # Every key is tried, whichever matches (constant time each): how long this takes
    # tells nothing about which key, if any, signed the token.
    matched = False
    for key in keys(secret):
        expected = hmac.digest(key, payload, "sha256")
        matched |= hmac.compare_digest(mac, expected)
    if not matched:
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


def tag(secret: Keys, purpose: str, value: str, *, size: int = 10) -> str:
    """A short MAC of ``value`` for ``purpose``: lowercase base32 of the first ``size``
    bytes of HMAC-SHA256(key, purpose NUL value), with the first (signing) key.

    For identifiers that travel where case may not survive (the local part of a VERP
    return path: some MTAs lowercase it) and where length counts. ``purpose`` keeps a
    tag made for one use from being valid for another.
    """
    return _tag(keys(secret)[0], purpose, value, size)


def _tag(key: bytes, purpose: str, value: str, size: int) -> str:
    mac = hmac.digest(key, f"{purpose}\0{value}".encode(), "sha256")[:size]
    return base64.b32encode(mac).decode("ascii").rstrip("=").lower()


def check_tag(secret: Keys, purpose: str, value: str, candidate: str, *,
              size: int = 10) -> bool:
    """Whether ``candidate`` is :func:`tag` of ``value`` under any key of ``secret``
    (constant time, any case): a rotation keeps earlier return paths valid."""
    given = candidate.lower().encode("ascii", "replace").decode()
    matched = False
    for key in keys(secret):
        matched |= hmac.compare_digest(_tag(key, purpose, value, size), given)
    return matched


def invoice_link(base_url: str, operator: str, account: str, invoice: str, secret: Keys,
                 *, ttl: int = EMAIL_LINK_TTL, now: float | None = None) -> str:
    """``{base_url}/invoices/{token}.pdf``, valid ``ttl`` seconds from ``now``."""
    expires = int((now if now is not None else time.time()) + ttl)
    token = sign(LinkClaims(operator, account, invoice, expires), secret)
    return f"{base_url.rstrip('/')}/invoices/{token}.pdf"


def check_secret(value: bytes, where: str) -> bytes:
    """``value`` if it is long enough to sign with; :class:`WeakSecretError` naming
    ``where`` it came from otherwise."""
    if len(value) < MIN_SECRET_BYTES:
        state = "empty" if not value else f"only {len(value)} bytes long"
        raise WeakSecretError(
            f"the signing secret from {where} is {state}: at least {MIN_SECRET_BYTES} "
            "bytes are needed (e.g. `python3 -c 'import secrets; "
            "print(secrets.token_urlsafe(48))'`). Refusing to start: links and SMS "
            "sessions signed with it could be forged.")
    return value


def parse_secrets(text: str, where: str) -> tuple[bytes, ...]:
    """The secrets of a rotation: ``new,old,...`` (separated by
    :data:`SECRET_SEPARATOR`, spaces around each ignored), every one checked."""
    parts = [p.strip() for p in text.split(SECRET_SEPARATOR)]
    return tuple(check_secret(p.encode("utf-8"), f"{where} (secret {n} of {len(parts)})"
                              if len(parts) > 1 else where)
                 for n, p in enumerate(parts, start=1))


def local_secret(path: Path) -> bytes:
    """The embedded default's secret: made once, kept in a 0600 file next to the ledger.

    At scale every machine must share one secret: set ``INVOICER_LINK_SECRET``. The file
    appears whole or not at all (written to a temporary file, flushed to disk, then
    linked into place), so a crash or a full disk never leaves an empty key behind; a
    file that is nevertheless too short (an older version's leftover) is refused with
    :class:`WeakSecretError`, as is a file that cannot be made.
    """
    try:
        return check_secret(path.read_bytes(), str(path))
    except FileNotFoundError:
        pass
    value = secrets.token_bytes(MIN_SECRET_BYTES)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        _publish(path, value)
    except FileExistsError:  # another process made it first: use theirs
        return check_secret(path.read_bytes(), str(path))
    except OSError as exc:
        raise WeakSecretError(f"cannot create the signing secret {path}: "
                              f"{exc.strerror or exc}; free space or set "
                              "INVOICER_LINK_SECRET") from exc
    return value


def _publish(path: Path, value: bytes) -> None:
    """Create ``path`` holding ``value``, mode 0600, atomically; ``FileExistsError`` if
    it exists. ``os.link`` rather than ``os.replace``: two processes making the secret
    at once must not each keep their own, so the second one's link fails and it reads
    the first one's."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        try:
            view = memoryview(value)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.link(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)  # the new name itself survives a power cut
    finally:
        os.close(dir_fd)
