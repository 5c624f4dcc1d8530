"""The archive's Protocol, what its calls return, and the limits every backend keeps."""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

__all__ = [
    "CHUNK_SIZE",
    "CONTENT_TYPES",
    "DEFAULT_ARCHIVE_URL",
    "MAX_URL_EXPIRES",
    "Archive",
    "ObjectInfo",
    "PutResult",
]

DEFAULT_ARCHIVE_URL = "file://var/archive"
"""Where invoices go when nothing is configured: ``./var/archive``."""

MAX_URL_EXPIRES = 900
"""Download links live at most 15 minutes: long enough to click, short enough to leak."""

CHUNK_SIZE = 1 << 20
"""Bytes per chunk when a file is hashed, copied or streamed (1 MiB)."""

CONTENT_TYPES: Mapping[str, str] = {"pdf": "application/pdf", "json": "application/json",
                                    "xml": "application/xml"}
"""The object kinds an invoice key may name: the PDF, its canonical record and, for an
e-invoice that travels beside the PDF (XRechnung, Peppol BIS 3, RO_CIUS), its XML."""


# --- results ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PutResult:
    """What ``put`` did: ``created`` is False when the same bytes were already there."""

    key: str
    sha256: str
    size: int
    created: bool

    @property
    def already_there(self) -> bool:
        """True when this put found the identical object and wrote nothing."""
        return not self.created


@dataclass(frozen=True, slots=True)
class ObjectInfo:
    """An archived object's size, SHA-256 (hex), content type and caller metadata."""

    key: str
    size: int
    sha256: str
    content_type: str
    metadata: Mapping[str, str] = field(default_factory=dict)


# --- the Protocol ----------------------------------------------------------------------


@runtime_checkable
class Archive(Protocol):
    """Immutable object storage for invoices.

    Keys are ``/``-separated safe segments (build them with :func:`.keys.invoice_key`);
    every method checks a key before any I/O and raises ``ValueError`` for a bad one.
    Failures of the store raise :class:`~invoicer.delivery.errors.DeliveryError` subclasses.
    Implementations are safe to share between threads.
    """

    def put(
        self,
        key: str,
        data: bytes,
        *,
        sha256: str | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> PutResult:
        """Store ``data`` under ``key`` unless the key exists; never overwrite.

        ``sha256`` (hex), when given, must be the digest of ``data`` (it is checked);
        it is computed otherwise. ``metadata`` keys are lower-case ``[a-z0-9-]`` and
        values printable ASCII (what S3 user metadata allows). Same bytes already
        there: ``created=False``; different bytes: ``ArchiveConflictError``.
        """
        ...

    def put_file(
        self,
        key: str,
        path: str | os.PathLike[str],
        *,
        sha256: str | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> PutResult:
        """Like :meth:`put` for the contents of a local file, streamed, never read whole.

        Same create-only promise: same bytes already there is ``created=False``, other
        bytes ``ArchiveConflictError``. ``sha256`` is checked against what is read (a
        mismatch is ``ValueError`` and nothing is stored); without it the file is hashed
        first.
        """
        ...

    def get(self, key: str) -> bytes:
        """Return the object's bytes, or raise ``ArchiveNotFoundError``."""
        ...

    def open_range(self, key: str, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        """Bytes ``start`` up to ``end`` (exclusive, like a slice; ``None``: to the end)
        of the object, as an iterator of chunks of at most :data:`CHUNK_SIZE`.

        The object is opened before this returns (``ArchiveNotFoundError`` is raised
        here, not on the first chunk), so a caller can still answer "not found" before
        it starts a response. Close the iterator (``.close()``) when stopping early.
        ``0 <= start <= end <= size`` is the caller's to check (``stat`` has the size).
        """
        ...

    def exists(self, key: str) -> bool:
        """Tell whether an object is archived under ``key``."""
        ...

    def stat(self, key: str) -> ObjectInfo:
        """Return the object's size, SHA-256 and metadata without its bytes."""
        ...

    def url(self, key: str, expires: int = MAX_URL_EXPIRES) -> str:
        """Return a URL that fetches the object; links expire after at most 900 s.

        No I/O and no existence check: a link to a missing key answers "not found".
        """
        ...

    def list(self, prefix: str = "") -> list[str]:
        """Return the sorted keys under a folder-like prefix (``account_prefix(...)``)."""
        ...


