"""An archive in a dict: the fake for tests of the archive's callers.

It keeps every promise of the Protocol that the contract suite checks (create-only,
checksummed, keys and metadata checked before anything is touched, bounded chunks),
and can be taken down on purpose (:attr:`MemoryArchive.outage`) to see what a caller
does while the store is away.
"""

from __future__ import annotations

import base64
import os
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from invoicer.delivery.archive.base import CHUNK_SIZE, MAX_URL_EXPIRES, ObjectInfo, PutResult
from invoicer.delivery.archive.keys import (
    check_expires,
    check_key,
    check_metadata,
    check_prefix,
    check_range,
    content_type_for,
    hashed,
)
from invoicer.delivery.errors import (
    ArchiveConflictError,
    ArchiveNotFoundError,
    DeliveryError,
    os_errors,
)

__all__ = ["MemoryArchive", "StoredObject"]


@dataclass(frozen=True, slots=True)
class StoredObject:
    """One archived object: its bytes and what ``stat`` tells about it."""

    data: bytes
    info: ObjectInfo


class MemoryArchive:
    """Objects in :attr:`objects` (key -> :class:`StoredObject`), for one process.

    ``outage``: when set to a :class:`~invoicer.delivery.errors.DeliveryError`, every
    call that would touch the store raises it (after the arguments are checked, as a
    real backend would); ``None`` brings the store back.
    """

    def __init__(self) -> None:
        self.objects: dict[str, StoredObject] = {}
        self.outage: DeliveryError | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"MemoryArchive({len(self.objects)} objects)"

    def _reach(self) -> None:
        if self.outage is not None:
            raise self.outage

    def put(
        self,
        key: str,
        data: bytes,
        *,
        sha256: str | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> PutResult:
        """Keep ``data`` under ``key`` unless the key is taken (same bytes: a no-op)."""
        check_key(key)
        meta = check_metadata(metadata)
        data, digest = hashed(data, sha256)
        self._reach()
        info = ObjectInfo(key, len(data), digest, content_type_for(key), meta)
        with self._lock:
            stored = self.objects.get(key)
            if stored is None:
                self.objects[key] = StoredObject(data, info)
                return PutResult(key, digest, len(data), created=True)
        if stored.info.sha256 != digest:
            raise ArchiveConflictError(key, stored.info.sha256, digest)
        return PutResult(key, digest, len(data), created=False)

    def put_file(
        self,
        key: str,
        path: str | os.PathLike[str],
        *,
        sha256: str | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> PutResult:
        """:meth:`put` of a file's bytes (read whole: a fake holds them anyway)."""
        check_key(key)
        check_metadata(metadata)
        with os_errors(f"archiving {key} from {path}"):
            data = Path(path).read_bytes()
        actual = hashed(data, None)[1]
        if sha256 is not None and sha256.lower() != actual:
            raise ValueError(f"sha256 {sha256} does not match the file {path} "
                             f"(sha256 {actual})")
        return self.put(key, data, sha256=actual, metadata=metadata)

    def _get(self, key: str) -> StoredObject:
        check_key(key)
        self._reach()
        try:
            return self.objects[key]
        except KeyError:
            raise ArchiveNotFoundError(key) from None

    def get(self, key: str) -> bytes:
        """The object's bytes, or ``ArchiveNotFoundError``."""
        return self._get(key).data

    def open_range(self, key: str, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        """Slices of at most :data:`CHUNK_SIZE` bytes; a missing key raises here."""
        check_range(start, end)
        data = self._get(key).data[start:end]
        return (data[i:i + CHUNK_SIZE] for i in range(0, len(data), CHUNK_SIZE))

    def exists(self, key: str) -> bool:
        """Tell whether ``key`` holds an object."""
        check_key(key)
        self._reach()
        return key in self.objects

    def stat(self, key: str) -> ObjectInfo:
        """Size, SHA-256, content type and metadata as they were put."""
        return self._get(key).info

    def url(self, key: str, expires: int = MAX_URL_EXPIRES) -> str:
        """A ``data:`` URL of the object's bytes as they are now.

        A fake has no server to answer a link later, so the link carries the bytes: it
        never expires, and a missing key raises ``ArchiveNotFoundError`` here instead
        of answering "not found" when fetched.
        """
        check_expires(expires)
        stored = self._get(key)
        return (f"data:{stored.info.content_type};base64,"
                f"{base64.b64encode(stored.data).decode('ascii')}")

    def list(self, prefix: str = "") -> list[str]:
        """The sorted keys under a folder-like prefix."""
        folder = check_prefix(prefix)
        self._reach()
        with self._lock:
            return sorted(k for k in self.objects if k.startswith(folder))
