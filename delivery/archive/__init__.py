"""The invoice archive: immutable, checksummed objects behind one small Protocol.

Backends, picked by URL (:func:`archive_from_url`):

- ``file://PATH`` -> :class:`FileArchive`, a local folder (the embedded default);
- ``s3://bucket/prefix?endpoint=...&region=...`` -> :class:`S3Archive`, AWS S3 or any
  S3-compatible store through boto3;
- :class:`MemoryArchive`, a dict, for tests of callers (not configurable by URL: an
  archive that forgets everything at exit is never what a deployment wants).

All keep the same promises, checked by one contract test suite:

- **create-only**: the first ``put`` of a key wins; putting the same bytes again is a
  no-op success (``created=False``), putting different bytes raises
  :class:`~invoicer.delivery.errors.ArchiveConflictError`; nothing is ever overwritten;
- **checksummed**: the SHA-256 of every object is stored with it (with the caller's
  metadata, e.g. ``renderer-version``) and can be read back with ``stat``;
- **contained**: keys are made only of safe segments (see :func:`invoice_key`), checked
  before any I/O, so no identifier can reach outside its account's prefix;
- **translated errors**: vendor errors leave as ``TransientDeliveryError`` (retry) or
  ``PermanentDeliveryError`` (report);
- **streamed when large**: ``put_file`` uploads a file and ``open_range`` reads a byte
  range chunk by chunk, so a print batch of hundreds of megabytes never sits in memory.

Modules: ``base`` (the Protocol and its results), ``keys`` (keys and the checks before
any I/O), ``file``, ``s3``, ``memory`` (the backends).
"""

from __future__ import annotations

from invoicer.delivery.archive.base import (
    CHUNK_SIZE,
    DEFAULT_ARCHIVE_URL,
    MAX_URL_EXPIRES,
    Archive,
    ObjectInfo,
    PutResult,
)
from invoicer.delivery.archive.file import META_XATTR, FileArchive
from invoicer.delivery.archive.keys import account_prefix, check_key, invoice_key
from invoicer.delivery.archive.memory import MemoryArchive
from invoicer.delivery.archive.s3 import S3Archive
from invoicer.delivery.fileurl import by_scheme

__all__ = [
    "CHUNK_SIZE",
    "DEFAULT_ARCHIVE_URL",
    "MAX_URL_EXPIRES",
    "META_XATTR",
    "Archive",
    "FileArchive",
    "MemoryArchive",
    "ObjectInfo",
    "PutResult",
    "S3Archive",
    "account_prefix",
    "archive_from_url",
    "check_key",
    "invoice_key",
]

# Scheme -> class; configuration names a URL, never a class path.
_BACKENDS = {
    "file": FileArchive.from_url,
    "s3": S3Archive.from_url,
}


def archive_from_url(url: str) -> Archive:
    """Open the archive a URL names: ``file://PATH`` or ``s3://bucket/prefix?...``."""
    return by_scheme(url, _BACKENDS, "archive")
