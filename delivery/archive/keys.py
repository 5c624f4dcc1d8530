"""Archive keys, and the other arguments every backend checks before any I/O.

Keys are ``/``-separated safe segments: ``{operator}/{account}/{YYYY-MM}/{invoice}.pdf``
(:func:`invoice_key`). The identifiers were validated by the billing-record contract
already; they are checked again here, where they become paths and object names, so that
no identifier can reach outside its account's prefix, whatever the caller.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from datetime import date
from pathlib import Path

from invoicer.billing.fields import IDENTIFIER_PATTERN
from invoicer.delivery.archive.base import CHUNK_SIZE, CONTENT_TYPES, MAX_URL_EXPIRES

__all__ = [
    "SEGMENT_RE",
    "account_prefix",
    "check_expires",
    "check_key",
    "check_metadata",
    "check_prefix",
    "check_range",
    "content_type_for",
    "file_sha256",
    "hashed",
    "invoice_key",
]

_IDENTIFIER_RE = re.compile(IDENTIFIER_PATTERN)
# A stored segment may be a bit longer than an identifier: an invoice number (64) plus
# its extension. It starts with a letter or digit, so never "." / ".." / a dotfile —
# which is also what keeps temp files and sidecars out of the key space.
SEGMENT_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
_MAX_KEY_LENGTH = 512


def _check_identifier(name: str, value: object) -> str:
    # fullmatch, not the pattern's "$", which would let a trailing newline through.
    if not isinstance(value, str) or not _IDENTIFIER_RE.fullmatch(value) or ".." in value:
        raise ValueError(
            f"{name} {value!r} is not a safe identifier (1 to 64 of A-Z a-z 0-9 . _ -, "
            "starting with a letter or digit, without '..')"
        )
    return value


def _check_segments(what: str, value: object, *, allow_empty: bool) -> list[str]:
    if not isinstance(value, str):
        raise ValueError(f"{what} must be a string, not {type(value).__name__}")
    if value == "" and allow_empty:
        return []
    if len(value) > _MAX_KEY_LENGTH:
        raise ValueError(f"{what} is longer than {_MAX_KEY_LENGTH} characters")
    segments = value.split("/")
    for segment in segments:
        if not SEGMENT_RE.fullmatch(segment) or ".." in segment:
            raise ValueError(
                f"{what} {value!r} has an unsafe segment {segment!r} (segments are "
                "A-Z a-z 0-9 . _ -, start with a letter or digit, no '..', no empty ones)"
            )
    return segments


def check_key(key: str) -> str:
    """Return ``key`` if it is made of safe segments, else raise ``ValueError``."""
    _check_segments("key", key, allow_empty=False)
    return key


def check_prefix(prefix: str) -> str:
    """Normalise a folder-like prefix to ``""`` or ``"a/b/"`` (trailing slash optional)."""
    if isinstance(prefix, str) and prefix.endswith("/"):
        prefix = prefix[:-1]
    segments = _check_segments("prefix", prefix, allow_empty=True)
    return "".join(f"{segment}/" for segment in segments)


def invoice_key(
    operator: str, account: str, period_start_date: date, invoice_number: str, ext: str
) -> str:
    """Build ``{operator}/{account}/{YYYY-MM}/{invoice_number}.{pdf|json|xml}``.

    The identifiers were validated by the billing-record contract already; they are
    checked again against the same pattern here because this is where they become
    paths: a bad one raises ``ValueError`` before anything touches storage.
    """
    _check_identifier("operator", operator)
    _check_identifier("account", account)
    _check_identifier("invoice_number", invoice_number)
    if not isinstance(period_start_date, date):
        raise ValueError(f"period_start_date must be a date, not {period_start_date!r}")
    kind = ext.removeprefix(".") if isinstance(ext, str) else ext
    if kind not in CONTENT_TYPES:
        raise ValueError(f"ext must be one of {sorted(CONTENT_TYPES)}, not {ext!r}")
    period = f"{period_start_date.year:04d}-{period_start_date.month:02d}"
    return f"{operator}/{account}/{period}/{invoice_number}.{kind}"


def account_prefix(operator: str, account: str) -> str:
    """The prefix holding every object of one account: ``{operator}/{account}/``."""
    _check_identifier("operator", operator)
    _check_identifier("account", account)
    return f"{operator}/{account}/"


def content_type_for(key: str) -> str:
    """``application/pdf`` for ``.pdf``, ``application/json`` for ``.json``,
    ``application/xml`` for ``.xml``."""
    return CONTENT_TYPES.get(key.rpartition(".")[2], "application/octet-stream")


_META_KEY_RE = re.compile(r"[a-z0-9][a-z0-9-]{0,63}")
_META_VALUE_RE = re.compile(r"[\x20-\x7e]{0,256}")


def check_metadata(metadata: Mapping[str, str] | None) -> dict[str, str]:
    """The caller's metadata, checked: ``[a-z0-9-]`` names (not ``sha256``), printable
    ASCII values of at most 256 characters; ``ValueError`` otherwise."""
    # S3 sends user metadata as HTTP headers: lower-case names, ASCII values. Holding
    # the file backend to the same rule keeps the two interchangeable.
    checked: dict[str, str] = {}
    for name, value in (metadata or {}).items():
        if not isinstance(name, str) or not _META_KEY_RE.fullmatch(name) or name == "sha256":
            raise ValueError(f"metadata name {name!r} must be lower-case [a-z0-9-], not sha256")
        if not isinstance(value, str) or not _META_VALUE_RE.fullmatch(value):
            raise ValueError(f"metadata {name!r} must be printable ASCII, 256 chars at most")
        checked[name] = value
    return checked


def hashed(data: bytes, sha256: str | None) -> tuple[bytes, str]:
    """``(data as bytes, its hex SHA-256)``; ``ValueError`` if the caller's ``sha256``
    is another's."""
    data = bytes(data)
    actual = hashlib.sha256(data).hexdigest()
    if sha256 is not None and sha256.lower() != actual:
        # The caller hashed other bytes than it hands over: a bug upstream, and the
        # ledger would record a checksum the archive does not hold.
        raise ValueError(f"sha256 {sha256} does not match the data (sha256 {actual})")
    return data, actual


def check_expires(expires: int) -> int:
    """Seconds a link lives: a positive whole number, at most :data:`MAX_URL_EXPIRES`."""
    if isinstance(expires, bool) or not isinstance(expires, int) or expires <= 0:
        raise ValueError(f"expires must be a positive number of seconds, not {expires!r}")
    return min(expires, MAX_URL_EXPIRES)


def file_sha256(path: Path) -> str:
    """The hex SHA-256 of a file, read in chunks."""
    sha = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(CHUNK_SIZE):
            sha.update(chunk)
    return sha.hexdigest()


def check_range(start: int, end: int | None) -> None:
    """``ValueError`` unless ``0 <= start`` and ``end`` is None or ``>= start``."""
    if isinstance(start, bool) or not isinstance(start, int) or start < 0 or (
            end is not None and (isinstance(end, bool) or not isinstance(end, int)
                                 or end < start)):
        raise ValueError(f"not a byte range: start={start!r}, end={end!r}")
