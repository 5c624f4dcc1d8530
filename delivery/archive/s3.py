"""The invoice archive: immutable, checksummed objects behind one small Protocol.

Two backends, picked by URL (:func:`archive_from_url`):

- ``file://PATH`` -> :class:`FileArchive`, a local folder (the embedded default);
- ``s3://bucket/prefix?endpoint=...&region=...`` -> :class:`S3Archive`, AWS S3 or any
  S3-compatible store through boto3.

Both keep the same promises, checked by one contract test suite:

- **create-only**: the first ``put`` of a key wins; putting the same bytes again is a
  no-op success (``created=False``), putting different bytes raises
  :class:`~delivery.errors.ArchiveConflictError`; nothing is ever overwritten;
- **checksummed**: the SHA-256 of every object is stored with it (with the caller's
  metadata, e.g. ``renderer-version``) and can be read back with ``stat``;
- **contained**: keys are made only of safe segments (see :func:`invoice_key`), checked
  before any I/O, so no identifier can reach outside its account's prefix;
- **translated errors**: vendor errors leave as ``TransientDeliveryError`` (retry) or
  ``PermanentDeliveryError`` (report);
- **streamed when large**: ``put_file`` uploads a file and ``open_range`` reads a byte
  range chunk by chunk, so a print batch of hundreds of megabytes never sits in memory.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import errno
import functools
import hashlib
import itertools
import json
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, BinaryIO, Literal, Protocol, runtime_checkable
from urllib.parse import parse_qs, unquote, urlsplit

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    FlexibleChecksumError,
    HTTPClientError,
    IncompleteReadError,
)
from botocore.exceptions import ConnectionError as BotoConnectionError

from invoicer.billing.fields import IDENTIFIER_PATTERN
from invoicer.delivery.errors import (
    ArchiveConflictError,
    ArchiveNotFoundError,
    DeliveryError,
    PermanentDeliveryError,
    TransientDeliveryError,
    is_transient_status,
)
from invoicer.delivery.fileurl import local_path

__all__ = [
    "CHUNK_SIZE",
    "DEFAULT_ARCHIVE_URL",
    "MAX_URL_EXPIRES",
    "Archive",
    "FileArchive",
    "ObjectInfo",
    "PutResult",
    "S3Archive",
    "account_prefix",
    "archive_from_url",
    "check_key",
    "invoice_key",
]

log = logging.getLogger(__name__)

DEFAULT_ARCHIVE_URL = "file://var/archive"
"""Where invoices go when nothing is configured: ``./var/archive``."""

MAX_URL_EXPIRES = 900
"""Download links live at most 15 minutes: long enough to click, short enough to leak."""

CHUNK_SIZE = 1 << 20
"""Bytes per chunk when a file is hashed, copied or streamed (1 MiB)."""

CONTENT_TYPES: Mapping[str, str] = {"pdf": "application/pdf", "json": "application/json"}
"""The object kinds an invoice key may name (the PDF and its canonical record)."""


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

    Keys are ``/``-separated safe segments (build them with :func:`invoice_key`);
    every method checks a key before any I/O and raises ``ValueError`` for a bad one.
    Failures of the store raise :class:`~delivery.errors.DeliveryError` subclasses.
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


# --- keys ------------------------------------------------------------------------------

_IDENTIFIER_RE = re.compile(IDENTIFIER_PATTERN)
# A stored segment may be a bit longer than an identifier: an invoice number (64) plus
# its extension. It starts with a letter or digit, so never "." / ".." / a dotfile —
# which is also what keeps temp files and sidecars out of the key space.
_SEGMENT_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
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
        if not _SEGMENT_RE.fullmatch(segment) or ".." in segment:
            raise ValueError(
                f"{what} {value!r} has an unsafe segment {segment!r} (segments are "
                "A-Z a-z 0-9 . _ -, start with a letter or digit, no '..', no empty ones)"
            )
    return segments


def check_key(key: str) -> str:
    """Return ``key`` if it is made of safe segments, else raise ``ValueError``."""
    _check_segments("key", key, allow_empty=False)
    return key


def _check_prefix(prefix: str) -> str:
    """Normalise a folder-like prefix to ``""`` or ``"a/b/"`` (trailing slash optional)."""
    if isinstance(prefix, str) and prefix.endswith("/"):
        prefix = prefix[:-1]
    segments = _check_segments("prefix", prefix, allow_empty=True)
    return "".join(f"{segment}/" for segment in segments)


def invoice_key(
    operator: str, account: str, period_start_date: date, invoice_number: str, ext: str
) -> str:
    """Build ``{operator}/{account}/{YYYY-MM}/{invoice_number}.{pdf|json}``.

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
    """``application/pdf`` for ``.pdf``, ``application/json`` for ``.json``."""
    return CONTENT_TYPES.get(key.rpartition(".")[2], "application/octet-stream")


_META_KEY_RE = re.compile(r"[a-z0-9][a-z0-9-]{0,63}")
_META_VALUE_RE = re.compile(r"[\x20-\x7e]{0,256}")


def _check_metadata(metadata: Mapping[str, str] | None) -> dict[str, str]:
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


def _digest(data: bytes, sha256: str | None) -> tuple[bytes, str]:
    data = bytes(data)
    actual = hashlib.sha256(data).hexdigest()
    if sha256 is not None and sha256.lower() != actual:
        # The caller hashed other bytes than it hands over: a bug upstream, and the
        # ledger would record a checksum the archive does not hold.
        raise ValueError(f"sha256 {sha256} does not match the data (sha256 {actual})")
    return data, actual


def _check_expires(expires: int) -> int:
    if isinstance(expires, bool) or not isinstance(expires, int) or expires <= 0:
        raise ValueError(f"expires must be a positive number of seconds, not {expires!r}")
    return min(expires, MAX_URL_EXPIRES)


# --- file:// ---------------------------------------------------------------------------

# Errors of a local disk that an operator (or time) can clear: retry them.
_TRANSIENT_ERRNOS = frozenset(
    {errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EAGAIN, errno.EBUSY, errno.EINTR,
     errno.ETIMEDOUT, errno.ESTALE, errno.ENOLCK}
)


@contextlib.contextmanager
def _os_errors(what: str) -> Iterator[None]:
    try:
        yield
    except DeliveryError:
        raise
    except OSError as exc:
        cls = TransientDeliveryError if exc.errno in _TRANSIENT_ERRNOS else (
            PermanentDeliveryError)
        raise cls(f"{what}: {exc}") from exc


def _fsync_dir(path: Path) -> None:
    # The link is only durable once the directory entry is: a crash right after a
    # "created" must not lose the invoice the ledger is about to record.
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _make_folders(folder: Path) -> list[Path]:
    """Create ``folder`` and its missing parents; return the ones that were missing.

    Only those need their entries synced: folders that existed are already durable,
    and syncing every level up to the root for every invoice cost more than the
    invoice's own write.
    """
    missing = []
    while not folder.is_dir():
        missing.append(folder)
        folder = folder.parent
    for new in reversed(missing):
        with contextlib.suppress(FileExistsError):  # a concurrent writer made it
            new.mkdir()
    return missing


# Temp names: unique per process and call without tempfile's random-name loop (a third
# of a small put's time). The token tells apart a reused pid after a crash.
_TMP_TOKEN = os.urandom(4).hex()
_SIDECAR_FIELDS = frozenset({"sha256", "size", "content_type", "metadata"})
_tmp_counter = itertools.count()


#: The extended attribute holding an object's SHA-256, size, content type and metadata.
META_XATTR = "user.invoicer.meta"
# The file system cannot hold that attribute (or not that large a one): use a sidecar.
_NO_XATTR_ERRNOS = frozenset({errno.ENOTSUP, errno.EOPNOTSUPP, errno.E2BIG, errno.ENOSPC,
                              errno.ERANGE})


def _write_new(path: Path, fill: Callable[[BinaryIO], object], *, mode: int, sync: bool,
               xattr: bytes | None = None) -> int | None:
    """Create a file that must not exist yet (``O_EXCL``) and write it with ``fill(f)``.

    With ``xattr``, also set it as :data:`META_XATTR` before the data is synced, so the
    metadata is as durable as the bytes. Returns the errno with which the file system
    refused the attribute, or ``None``.
    """
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode)
    refused = None
    with os.fdopen(fd, "wb") as f:
        fill(f)
        f.flush()
        if xattr is not None:
            try:
                os.setxattr(fd, META_XATTR, xattr)
            except OSError as exc:
                if exc.errno not in _NO_XATTR_ERRNOS:
                    raise
                refused = exc.errno
        if sync:
            os.fsync(fd)
    return refused


def _meta_body(info: ObjectInfo) -> bytes:
    return json.dumps(
        {"sha256": info.sha256, "size": info.size, "content_type": info.content_type,
         "metadata": dict(info.metadata)},
        sort_keys=True,
    ).encode()


def _parse_meta(raw: bytes) -> dict[str, Any] | None:
    try:
        meta = json.loads(raw)
    except ValueError:
        return None
    return meta if isinstance(meta, dict) and meta.keys() >= _SIDECAR_FIELDS else None


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(CHUNK_SIZE):
            digest.update(chunk)
    return digest.hexdigest()


def _check_file_digest(path: Path, sha256: str) -> None:
    actual = _file_sha256(path)
    if actual != sha256:
        raise ValueError(f"sha256 {sha256} does not match the file {path} (sha256 {actual})")


def _check_range(start: int, end: int | None) -> None:
    if isinstance(start, bool) or not isinstance(start, int) or start < 0 or (
            end is not None and (isinstance(end, bool) or not isinstance(end, int)
                                 or end < start)):
        raise ValueError(f"not a byte range: start={start!r}, end={end!r}")


def _file_chunks(f: BinaryIO, key: str, start: int, end: int | None) -> Iterator[bytes]:
    """Chunks of an open file from ``start`` to ``end``; closes it however it ends."""
    with f, _os_errors(f"reading {key}"):
        f.seek(start)
        left = None if end is None else end - start
        while left is None or left > 0:
            chunk = f.read(CHUNK_SIZE if left is None else min(CHUNK_SIZE, left))
            if not chunk:
                return
            if left is not None:
                left -= len(chunk)
            yield chunk


class FileArchive:
    """Objects as files under ``root``; their SHA-256, size, content type and
    metadata in the ``user.invoicer.meta`` extended attribute.

    A write goes to a temp file in the target folder, is fsynced, then hard-linked to
    its final name: ``link`` fails when the name exists, so of two concurrent writers
    exactly one wins and nobody can replace an existing invoice (``rename`` would
    silently replace it). Readers never see a partial file. Objects are made
    read-only. The attribute is set on the temp file, so an object never appears
    without it. Where the file system has no user extended attributes (or a copy
    dropped them: copy with ``cp -a`` / ``rsync -X``), a hidden ``.NAME.meta.json``
    sidecar holds the same, written after the link; when neither is there, ``stat``
    hashes the file and the next same-bytes ``put`` writes the sidecar. Hidden names
    can never be keys (segments start with a letter or digit), so temp files and
    sidecars stay out of ``list``.
    """

    def __init__(self, root: str | os.PathLike[str], *, xattrs: bool = True) -> None:
        # Absolute now, so a later chdir cannot move the archive and url() is a real URI.
        self.root = Path(os.path.abspath(os.fspath(root)))
        # One inode per object instead of two (object + sidecar): a sixth of the bill
        # run's archive cost. Turned off by the first file system that refuses it.
        self.xattrs = xattrs

    @classmethod
    def from_url(cls, url: str) -> FileArchive:
        """``file:///abs/path``, ``file://relative/path`` or ``file:relative`` (to cwd)."""
        return cls(local_path(url, "file archive"))

    def __repr__(self) -> str:
        return f"FileArchive({str(self.root)!r})"

    def _path(self, key: str) -> Path:
        return self.root.joinpath(*check_key(key).split("/"))

    @staticmethod
    def _sidecar(path: Path) -> Path:
        return path.with_name(f".{path.name}.meta.json")

    def put(
        self,
        key: str,
        data: bytes,
        *,
        sha256: str | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> PutResult:
        """Create ``key`` atomically; same bytes again is a no-op, others conflict."""
        path = self._path(key)
        meta = _check_metadata(metadata)
        data, digest = _digest(data, sha256)
        info = ObjectInfo(key, len(data), digest, content_type_for(key), meta)

        def fill(f: BinaryIO) -> None:
            f.write(data)

        return self._create(path, info, fill)

    def put_file(
        self,
        key: str,
        path: str | os.PathLike[str],
        *,
        sha256: str | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> PutResult:
        """Create ``key`` from a file, copied in chunks and hashed on the way."""
        target = self._path(key)
        meta = _check_metadata(metadata)
        source = Path(path)
        with _os_errors(f"archiving {key} from {source}"):
            digest = sha256.lower() if sha256 is not None else _file_sha256(source)
            info = ObjectInfo(key, source.stat().st_size, digest, content_type_for(key), meta)
            if target.exists():
                # A re-run: the caller's digest must still be the file's, or a wrong
                # checksum would be "confirmed" by the object already there.
                _check_file_digest(source, digest)
                return self._existing(target, info)

            def fill(f: BinaryIO) -> None:
                copied = hashlib.sha256()
                with source.open("rb") as src:
                    while chunk := src.read(CHUNK_SIZE):
                        copied.update(chunk)
                        f.write(chunk)
                if copied.hexdigest() != digest:
                    raise ValueError(f"sha256 {digest} does not match the file {source} "
                                     f"(sha256 {copied.hexdigest()})")

            return self._create(target, info, fill)

    def _create(self, path: Path, info: ObjectInfo,
                fill: Callable[[BinaryIO], object]) -> PutResult:
        """Write through ``fill(file)`` into a temp file, then link it to ``path``."""
        with _os_errors(f"archiving {info.key}"):
            if path.exists():  # a re-run: answer without writing a temp file
                return self._existing(path, info)
            new_folders = _make_folders(path.parent)
            tmp = path.with_name(f".{path.name}.{os.getpid()}.{_TMP_TOKEN}."
                                 f"{next(_tmp_counter)}.tmp")
            try:
                # Created read-only: the open descriptor may still write it.
                tagged = self.xattrs
                refused = _write_new(tmp, fill, mode=0o444, sync=True,
                                     xattr=_meta_body(info) if tagged else None)
                try:
                    os.link(tmp, path)
                except FileExistsError:
                    return self._existing(path, info)
            finally:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp)
            # Durable once its entry is, and each new folder's entry in its parent.
            for folder in {path.parent, *(new.parent for new in new_folders)}:
                _fsync_dir(folder)
            if refused in (errno.ENOTSUP, errno.EOPNOTSUPP):
                self.xattrs = False  # this file system has none: stop asking
            if not tagged or refused is not None:
                self._write_sidecar(path, info)
        return PutResult(info.key, info.sha256, info.size, created=True)

    def _existing(self, path: Path, info: ObjectInfo) -> PutResult:
        # Hash the bytes, not the sidecar: the object is the truth.
        stored = _file_sha256(path)
        if stored != info.sha256:
            raise ArchiveConflictError(info.key, stored, info.sha256)
        if self._read_meta(path) is None:  # lost (a copy, a crash): keep it in a sidecar
            self._write_sidecar(path, info, replace=True)
        return PutResult(info.key, info.sha256, info.size, created=False)

    def _read_meta(self, path: Path) -> dict[str, Any] | None:
        """The object's metadata from its extended attribute, else from its sidecar."""
        try:
            return _parse_meta(os.getxattr(path, META_XATTR))
        except OSError:  # no such attribute, or no attributes on this file system
            pass
        try:
            return _parse_meta(self._sidecar(path).read_bytes())
        except FileNotFoundError:
            return None

    def _write_sidecar(self, path: Path, info: ObjectInfo, *, replace: bool = False) -> None:
        body = _meta_body(info)
        # No fsync: the sidecar is derived from the object (hash) and the put
        # (metadata); a reader that finds it missing or torn hashes the object, and the
        # next same-bytes put writes it again. Syncing it would double every
        # invoice's disk waits for nothing.
        sidecar = self._sidecar(path)
        if not replace:
            with contextlib.suppress(FileExistsError):  # a racing same-bytes put wrote it
                _write_new(sidecar, lambda f: f.write(body), mode=0o644, sync=False)
            return
        tmp = sidecar.with_name(f"{sidecar.name}.{os.getpid()}.{_TMP_TOKEN}."
                                f"{next(_tmp_counter)}.tmp")
        try:
            _write_new(tmp, lambda f: f.write(body), mode=0o644, sync=False)
            os.replace(tmp, sidecar)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise

    def get(self, key: str) -> bytes:
        """Return the file's bytes."""
        path = self._path(key)
        with _os_errors(f"reading {key}"):
            try:
                return path.read_bytes()
            except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
                raise ArchiveNotFoundError(key) from None

    def open_range(self, key: str, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        """Open the file now; read ``[start, end)`` as it is iterated."""
        _check_range(start, end)
        path = self._path(key)
        with _os_errors(f"reading {key}"):
            try:
                f = path.open("rb")
            except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
                raise ArchiveNotFoundError(key) from None
        return _file_chunks(f, key, start, end)

    def exists(self, key: str) -> bool:
        """Tell whether the file exists."""
        path = self._path(key)
        with _os_errors(f"checking {key}"):
            return path.is_file()

    def stat(self, key: str) -> ObjectInfo:
        """Read the stored metadata (attribute or sidecar); without it, hash the file."""
        path = self._path(key)
        with _os_errors(f"reading {key}"):
            try:
                size = path.stat().st_size
            except (FileNotFoundError, NotADirectoryError):
                raise ArchiveNotFoundError(key) from None
            if not path.is_file():
                raise ArchiveNotFoundError(key)
            side = self._read_meta(path)
            if side is None or side.get("size") != size:
                return ObjectInfo(key, size, _file_sha256(path), content_type_for(key), {})
            return ObjectInfo(key, size, side["sha256"], side["content_type"],
                              dict(side["metadata"]))

    def url(self, key: str, expires: int = MAX_URL_EXPIRES) -> str:
        """A ``file://`` URI; it does not expire (the folder's permissions guard it)."""
        _check_expires(expires)
        return self._path(key).as_uri()

    def list(self, prefix: str = "") -> list[str]:
        """Walk the folder under ``prefix``, skipping hidden temp files and sidecars."""
        prefix = _check_prefix(prefix)
        base = self.root.joinpath(*prefix.split("/")[:-1]) if prefix else self.root
        keys = []
        with _os_errors(f"listing {prefix or '/'}"):
            for dirpath, dirnames, filenames in os.walk(base):
                dirnames[:] = [d for d in dirnames if _SEGMENT_RE.fullmatch(d)]
                rel = Path(dirpath).relative_to(self.root).as_posix()
                for name in filenames:
                    if _SEGMENT_RE.fullmatch(name):
                        keys.append(name if rel == "." else f"{rel}/{name}")
        return sorted(keys)


# --- s3:// -----------------------------------------------------------------------------

# S3 error codes worth retrying whatever their status: throttling, server trouble,
# timeouts, and a concurrent conditional write that has not finished yet.
_TRANSIENT_S3_CODES = frozenset({
    "SlowDown", "RequestTimeout", "InternalError", "ServiceUnavailable", "Throttling",
    "ThrottlingException", "RequestThrottled", "TooManyRequestsException",
    "RequestLimitExceeded", "BandwidthLimitExceeded", "OperationAborted",
    "ConditionalRequestConflict",
    # We compute the checksum from the bytes we send, so a mismatch at S3 means the
    # bytes changed on the way: sending them again is the cure.
    "BadDigest", "XAmzContentSHA256Mismatch",
})
_NOT_FOUND_CODES = frozenset({"NoSuchKey", "404", "NotFound"})
_PRECONDITION_CODES = frozenset({"PreconditionFailed", "412"})
_TRANSIENT_BOTO_ERRORS = (
    BotoConnectionError,  # refused, connect timeout, DNS, TLS hiccups
    HTTPClientError,  # read timeout, connection closed, response streaming cut
    IncompleteReadError,
    FlexibleChecksumError,  # the downloaded bytes do not match: fetch them again
)

CreateOnly = Literal["if-none-match", "head-then-put"]


def _status(exc: ClientError) -> int:
    return int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _client_error(exc: ClientError, what: str, key: str | None) -> DeliveryError:
    code, status = _code(exc), _status(exc)
    if key is not None and (code in _NOT_FOUND_CODES or (status == 404 and code != "NoSuchBucket")):
        return ArchiveNotFoundError(key)
    message = f"{what}: S3 {code or status}: {exc.response.get('Error', {}).get('Message', exc)}"
    if code in _TRANSIENT_S3_CODES or is_transient_status(status):
        return TransientDeliveryError(message)
    return PermanentDeliveryError(message)


@contextlib.contextmanager
def _s3_errors(what: str, key: str | None = None) -> Iterator[None]:
    """Translate botocore's errors (after its own retries) into delivery errors."""
    try:
        yield
    except DeliveryError:
        raise
    except ClientError as exc:
        raise _client_error(exc, what, key) from exc
    except _TRANSIENT_BOTO_ERRORS as exc:
        raise TransientDeliveryError(f"{what}: {exc}") from exc
    except BotoCoreError as exc:  # no credentials, bad parameters, bad config
        raise PermanentDeliveryError(f"{what}: {exc}") from exc


_SESSION_LOCK = threading.Lock()


@functools.cache
def _boto_session() -> Any:
    # One boto3 session per process: it loads the S3 service model once (a fresh
    # session costs ~0.1 s per client). Used only under _SESSION_LOCK.
    import boto3

    return boto3.session.Session()


_BUCKET_RE = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_S3_QUERY = frozenset(
    {"endpoint", "region", "connect_timeout", "read_timeout", "max_attempts", "addressing",
     "create_only"}
)


class S3Archive:
    """Objects in an S3 bucket under ``prefix``, written create-only and checksummed.

    ``create_only`` says how "never overwrite" is enforced:

    - ``"if-none-match"`` (default; AWS S3, MinIO, moto): ``PutObject`` with
      ``If-None-Match: *``, atomic in the store. A 412 means the key exists: its
      SHA-256 is compared with ours (same: ``created=False``; different: conflict).
      A store that answers 501 to the header switches this archive to the mode below.
    - ``"head-then-put"``, for stores that ignore the header (they would silently
      overwrite): ``HeadObject`` first, compare if present, ``PutObject`` if not.
      Two writers racing between the HEAD and the PUT can both write; with the same
      bytes that is harmless, with different bytes the later one stands.

    Every upload carries ``x-amz-checksum-sha256`` (S3 rejects bytes that do not
    match), the hex SHA-256 in metadata ``sha256`` plus the caller's metadata, and
    ``Content-Type`` from the extension. Downloads ask for the stored checksum so
    botocore verifies what arrives.
    """

    #: Keys per ListObjectsV2 page (S3's maximum); a test lowers it to see paging work.
    list_page_size = 1000

    def __init__(
        self,
        client: Any,
        bucket: str,
        prefix: str = "",
        *,
        create_only: CreateOnly = "if-none-match",
    ) -> None:
        if create_only not in ("if-none-match", "head-then-put"):
            raise ValueError(f"create_only must be 'if-none-match' or 'head-then-put': "
                             f"{create_only!r}")
        self.client = client
        self.bucket = bucket
        self.prefix = _check_prefix(prefix)
        self.create_only: CreateOnly = create_only
        self._mode_lock = threading.Lock()

    @classmethod
    def from_url(cls, url: str) -> S3Archive:
        """Build the boto3 client from ``s3://bucket[/prefix][?options]``.

        Options: ``endpoint`` (an S3-compatible store; implies path-style addressing),
        ``region``, ``connect_timeout`` (s, default 5), ``read_timeout`` (s, default 30),
        ``max_attempts`` (tries in all, the first included; default 5; botocore
        ``standard`` retry mode), ``addressing`` (``path``/``virtual``), ``create_only``
        (see the class). Credentials come from boto3's usual chain (environment, shared
        files, instance role), never from the URL.
        """
        from botocore.config import Config

        parts = urlsplit(url)
        if parts.scheme != "s3" or parts.fragment or parts.username or parts.password:
            raise ValueError("not an s3 archive URL (credentials never go in it): "
                             f"{parts.scheme}://{parts.hostname}{parts.path}")
        bucket = parts.netloc
        if not _BUCKET_RE.fullmatch(bucket) or ".." in bucket:
            raise ValueError(f"not a valid bucket name: {bucket!r}")
        query = parse_qs(parts.query, keep_blank_values=True)
        unknown = set(query) - _S3_QUERY
        if unknown:
            raise ValueError(f"unknown s3 archive option(s) {sorted(unknown)}; "
                             f"known: {sorted(_S3_QUERY)}")
        opt = {name: values[-1] for name, values in query.items()}
        endpoint = opt.get("endpoint") or None
        if endpoint is not None and urlsplit(endpoint).scheme not in ("http", "https"):
            raise ValueError(f"endpoint must be an http(s) URL: {endpoint!r}")
        addressing = opt.get("addressing", "path" if endpoint else "virtual")
        if addressing not in ("path", "virtual", "auto"):
            raise ValueError(f"addressing must be path, virtual or auto: {addressing!r}")
        config = Config(
            signature_version="s3v4",
            # "standard" retries 500/502/503/504, throttling (SlowDown), RequestTimeout
            # and connection/read errors with jittered exponential backoff (at most
            # 1+2+4+8 s over 5 attempts); whatever is left becomes a
            # TransientDeliveryError for the task queue's slower retry.
            # total_max_attempts counts the first try (Config's "max_attempts" would
            # count retries only, one more than it reads).
            retries={"mode": "standard",
                     "total_max_attempts": int(opt.get("max_attempts", 5))},
            # Explicit, short of botocore's 60 s: a connect to a healthy store takes
            # milliseconds, and a stuck worker costs a whole bill run's throughput.
            connect_timeout=float(opt.get("connect_timeout", 5)),
            read_timeout=float(opt.get("read_timeout", 30)),
            s3={"addressing_style": addressing},
        )
        with _SESSION_LOCK:  # creating clients from one session is not thread-safe
            client = _boto_session().client(
                "s3", endpoint_url=endpoint, region_name=opt.get("region") or None,
                config=config,
            )
        create_only = opt.get("create_only", "if-none-match")
        return cls(client, bucket, unquote(parts.path).strip("/"),
                   create_only=create_only)  # type: ignore[arg-type]  # checked there

    def __repr__(self) -> str:
        return (f"S3Archive(bucket={self.bucket!r}, prefix={self.prefix!r}, "
                f"create_only={self.create_only!r})")

    def _key(self, key: str) -> str:
        return self.prefix + check_key(key)

    # -- put --

    def put(
        self,
        key: str,
        data: bytes,
        *,
        sha256: str | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> PutResult:
        """Create the object unless it exists (see the class for how)."""
        full = self._key(key)
        meta = _check_metadata(metadata)
        data, digest = _digest(data, sha256)
        info = ObjectInfo(key, len(data), digest, content_type_for(key), meta)
        if self.create_only == "head-then-put":
            return self._head_then_put(full, data, info)
        return self._conditional_put(full, data, info)

    def put_file(
        self,
        key: str,
        path: str | os.PathLike[str],
        *,
        sha256: str | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> PutResult:
        """Create the object from a file: one ``PutObject`` whose body is read from disk
        as it is sent (up to S3's 5 GB single-upload limit; a batch PDF is far below).

        The file is hashed first, locally: a wrong ``sha256`` is the caller's bug
        (``ValueError``), and must not reach S3 as a "BadDigest" that looks retryable.
        """
        full = self._key(key)
        meta = _check_metadata(metadata)
        source = Path(path)
        with _os_errors(f"archiving {key} from {source}"):
            actual = _file_sha256(source)
            size = source.stat().st_size
            if sha256 is not None and sha256.lower() != actual:
                raise ValueError(f"sha256 {sha256} does not match the file {source} "
                                 f"(sha256 {actual})")
            info = ObjectInfo(key, size, actual, content_type_for(key), meta)
            with source.open("rb") as body:
                if self.create_only == "head-then-put":
                    return self._head_then_put(full, body, info)
                return self._conditional_put(full, body, info)

    def _put_object(self, full: str, data: bytes | BinaryIO, info: ObjectInfo,
                    **extra: Any) -> None:
        if not isinstance(data, bytes):
            data.seek(0)  # a file body: every attempt sends it from the start
        self.client.put_object(
            Bucket=self.bucket,
            Key=full,
            Body=data,
            ContentType=info.content_type,
            ChecksumAlgorithm="SHA256",
            ChecksumSHA256=base64.b64encode(bytes.fromhex(info.sha256)).decode(),
            Metadata={"sha256": info.sha256, **info.metadata},
            **extra,
        )

    def _conditional_put(self, full: str, data: bytes | BinaryIO, info: ObjectInfo) -> PutResult:
        what = f"archiving {info.key} to s3://{self.bucket}/{full}"
        # AWS answers 409 ConditionalRequestConflict while another conditional write of
        # the key is in flight; once it lands we get 412 and compare. botocore does not
        # retry 409, so a short loop here does.
        for attempt in range(4):
            with _s3_errors(what):
                try:
                    self._put_object(full, data, info, IfNoneMatch="*")
                except ClientError as exc:
                    code, status = _code(exc), _status(exc)
                    if code in _PRECONDITION_CODES or status == 412:
                        outcome = "exists"
                    elif status == 501 or code == "NotImplemented":
                        outcome = "unsupported"
                    elif code == "ConditionalRequestConflict" and attempt < 3:
                        outcome = "busy"
                    else:
                        raise
                else:
                    return PutResult(info.key, info.sha256, info.size, created=True)
            # Acted on outside the except block, so that a conflict raised from here
            # does not carry the 412 along as its context.
            if outcome == "exists":
                return self._compare_existing(full, info, what)
            if outcome == "unsupported":
                return self._fall_back(full, data, info)
            time.sleep(0.05 * 2**attempt)
        raise AssertionError("unreachable")  # pragma: no cover

    def _fall_back(self, full: str, data: bytes | BinaryIO, info: ObjectInfo) -> PutResult:
        with self._mode_lock:
            if self.create_only != "head-then-put":
                log.warning("s3://%s does not implement If-None-Match on PutObject; "
                            "falling back to head-then-put (not atomic)", self.bucket)
                self.create_only = "head-then-put"
        return self._head_then_put(full, data, info)

    def _head_then_put(self, full: str, data: bytes | BinaryIO, info: ObjectInfo) -> PutResult:
        what = f"archiving {info.key} to s3://{self.bucket}/{full}"
        with _s3_errors(what):
            if self._head(full) is not None:
                return self._compare_existing(full, info, what)
            self._put_object(full, data, info)
        return PutResult(info.key, info.sha256, info.size, created=True)

    def _head(self, full: str) -> dict[str, Any] | None:
        try:
            return self.client.head_object(Bucket=self.bucket, Key=full, ChecksumMode="ENABLED")
        except ClientError as exc:
            if _status(exc) == 404:
                return None
            raise

    def _compare_existing(self, full: str, info: ObjectInfo, what: str) -> PutResult:
        with _s3_errors(what):
            head = self._head(full)
            if head is None:
                # 412 said it exists, HEAD says it does not: someone deleted it in
                # between (archives are not meant to be). Let the caller try again.
                raise TransientDeliveryError(f"{what}: object vanished after 412")
            stored = self._stored_sha256(full, head)
        if stored != info.sha256:
            raise ArchiveConflictError(info.key, stored, info.sha256)
        return PutResult(info.key, info.sha256, info.size, created=False)

    def _stored_sha256(self, full: str, head: Mapping[str, Any]) -> str:
        sha = head.get("Metadata", {}).get("sha256")
        if sha:
            return str(sha).lower()
        checksum = head.get("ChecksumSHA256")
        # "xxx-3" is a checksum of part checksums (multipart), not of the object.
        if checksum and "-" not in checksum:
            with contextlib.suppress(binascii.Error, ValueError):
                return base64.b64decode(checksum, validate=True).hex()
        # Written by something else: the bytes decide.
        body = self.client.get_object(Bucket=self.bucket, Key=full)["Body"]
        return hashlib.sha256(body.read()).hexdigest()

    # -- reads --

    def get(self, key: str) -> bytes:
        """Download the object; botocore checks it against the stored checksum."""
        full = self._key(key)
        with _s3_errors(f"reading s3://{self.bucket}/{full}", key):
            response = self.client.get_object(
                Bucket=self.bucket, Key=full, ChecksumMode="ENABLED"
            )
            return response["Body"].read()

    def open_range(self, key: str, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        """One ``GetObject`` (with ``Range`` unless the whole object is asked for), its
        body read in chunks as it is iterated. A whole-object read asks for the stored
        checksum, so botocore verifies the bytes once the last chunk is in."""
        _check_range(start, end)
        if end == start:
            return iter(())  # S3 cannot express an empty range; nothing to fetch
        full = self._key(key)
        what = f"reading s3://{self.bucket}/{full}"
        request: dict[str, Any] = {"Bucket": self.bucket, "Key": full}
        if start or end is not None:
            request["Range"] = f"bytes={start}-{'' if end is None else end - 1}"
        else:
            request["ChecksumMode"] = "ENABLED"
        with _s3_errors(what, key):
            try:
                body = self.client.get_object(**request)["Body"]
            except ClientError as exc:
                if _code(exc) == "InvalidRange":  # start at or past the end: no bytes
                    return iter(())
                raise
        return _s3_chunks(body, what, key)

    def exists(self, key: str) -> bool:
        """One HEAD request."""
        full = self._key(key)
        with _s3_errors(f"checking s3://{self.bucket}/{full}"):
            return self._head(full) is not None

    def stat(self, key: str) -> ObjectInfo:
        """One HEAD request: size, metadata ``sha256`` (or the S3 checksum), type."""
        full = self._key(key)
        what = f"reading s3://{self.bucket}/{full}"
        with _s3_errors(what, key):
            head = self._head(full)
            if head is None:
                raise ArchiveNotFoundError(key)
            sha = self._stored_sha256(full, head)
        metadata = {k: v for k, v in head.get("Metadata", {}).items() if k != "sha256"}
        return ObjectInfo(key, int(head["ContentLength"]), sha,
                          head.get("ContentType", "application/octet-stream"), metadata)

    def url(self, key: str, expires: int = MAX_URL_EXPIRES) -> str:
        """A SigV4 presigned GET, valid ``min(expires, 900)`` seconds. No request."""
        full = self._key(key)
        seconds = _check_expires(expires)
        with _s3_errors(f"signing s3://{self.bucket}/{full}"):
            return self.client.generate_presigned_url(
                "get_object", Params={"Bucket": self.bucket, "Key": full}, ExpiresIn=seconds
            )

    def list(self, prefix: str = "") -> list[str]:
        """``ListObjectsV2`` under ``prefix``, every page."""
        full = self.prefix + _check_prefix(prefix)
        keys = []
        with _s3_errors(f"listing s3://{self.bucket}/{full}"):
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=full,
                PaginationConfig={"PageSize": self.list_page_size},
            )
            for page in pages:
                keys.extend(obj["Key"][len(self.prefix):] for obj in page.get("Contents", ()))
        return sorted(keys)


def _s3_chunks(body: Any, what: str, key: str) -> Iterator[bytes]:
    """A ``StreamingBody`` in chunks, errors translated; the connection is released
    however the iteration ends."""
    try:
        with _s3_errors(what, key):
            yield from body.iter_chunks(CHUNK_SIZE)
    finally:
        body.close()


# --- by URL ----------------------------------------------------------------------------

# Scheme -> class; configuration names a URL, never a class path.
_BACKENDS: Mapping[str, type[FileArchive] | type[S3Archive]] = {
    "file": FileArchive,
    "s3": S3Archive,
}


def archive_from_url(url: str) -> Archive:
    """Open the archive a URL names: ``file://PATH`` or ``s3://bucket/prefix?...``."""
    scheme = urlsplit(url).scheme
    try:
        backend = _BACKENDS[scheme]
    except KeyError:
        raise ValueError(
            f"unknown archive scheme {scheme!r} in {url!r}; known: {sorted(_BACKENDS)}"
        ) from None
    return backend.from_url(url)
