"""``file://PATH``: the archive as a local folder, the embedded default."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, BinaryIO

from invoicer.delivery.archive.base import CHUNK_SIZE, MAX_URL_EXPIRES, ObjectInfo, PutResult
from invoicer.delivery.archive.keys import (
    SEGMENT_RE,
    check_expires,
    check_key,
    check_metadata,
    check_prefix,
    check_range,
    content_type_for,
    file_sha256,
    hashed,
)
from invoicer.delivery.errors import (
    ArchiveConflictError,
    ArchiveNotFoundError,
    os_errors,
)
from invoicer.delivery.fileurl import fsync_dir, left_by_a_dead_writer, local_path, temp_tail

__all__ = ["META_XATTR", "FileArchive"]


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


_SIDECAR_FIELDS = frozenset({"sha256", "size", "content_type", "metadata"})


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

    The file is created owner-writable and given ``mode`` only once its bytes and its
    attribute are written: the kernel checks write permission on the file itself (not
    the open descriptor) before setting a ``user.`` attribute, so on a file already
    read-only it refuses every process but root's (EACCES), and with it every record of
    a service that, as it should, does not run as root.
    """
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
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
        os.fchmod(fd, mode & ~_UMASK)  # read-only from here on (for 0o444 objects)
        if sync:
            os.fsync(fd)
    return refused


def _read_umask() -> int:
    # os.umask can only be read by setting it: once, at import, before any thread
    # writes. Modes were always subject to it (os.open applies it, fchmod does not).
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_UMASK = _read_umask()


def _sync_folders(folders: set[Path]) -> None:
    """Sync each folder's entries, the deepest first (a new folder before the one that
    holds its name)."""
    for folder in sorted(folders, key=lambda f: len(f.parts), reverse=True):
        fsync_dir(folder)


def sweep_temporaries(path: Path) -> int:
    """Remove the temporary files a killed process left while writing ``path``
    (``.{name}.{pid}.{token}.{n}.tmp``): those of a process that is gone, or of an
    earlier process that had this one's pid. Returns how many. Called before ``path``
    is written again, so a killed run's leftovers go with the next run's put of the
    same object, at the cost of one small directory listing."""
    removed = 0
    # A plain listing, not ``Path.glob``: the pattern is new for every object, and
    # compiling it cost more than the listing of the object's folder.
    head = f".{path.name}."
    try:
        names = [e.name for e in os.scandir(path.parent)
                 if e.name.startswith(head) and e.name.endswith(".tmp")]
    except FileNotFoundError:
        return 0
    for name in names:
        tmp = path.parent / name
        parts = name[len(head):].split(".")
        if len(parts) != 4 or not parts[0].isdigit():
            continue
        if left_by_a_dead_writer(int(parts[0]), parts[1]):
            with contextlib.suppress(OSError):  # gone meanwhile, or not ours to remove
                tmp.unlink()
                removed += 1
    return removed


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


def _check_file_digest(path: Path, sha256: str) -> None:
    actual = file_sha256(path)
    if actual != sha256:
        raise ValueError(f"sha256 {sha256} does not match the file {path} (sha256 {actual})")


def _file_chunks(f: BinaryIO, key: str, start: int, end: int | None) -> Iterator[bytes]:
    """Chunks of an open file from ``start`` to ``end``; closes it however it ends."""
    with f, os_errors(f"reading {key}"):
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
        # Folders whose entries a :meth:`together` block syncs when it ends (None:
        # outside such a block, every put syncs its own before it returns).
        self._unsynced: set[Path] | None = None

    @contextlib.contextmanager
    def together(self) -> Iterator[None]:
        """Puts in this block are durable together, when it ends, rather than each as
        it returns: every object's bytes are synced as always, but the entries of the
        folders they were linked into are synced once each, at the end (an invoice's
        record, XML and PDF share one folder: one folder sync instead of one per
        object). Nothing may count on an object of the block, nor say it is stored,
        before the block has ended without an error. Not for use from several threads
        at once (a bill run's process archives one invoice at a time)."""
        if self._unsynced is not None:  # nested: the outer block syncs
            yield
            return
        self._unsynced = folders = set()
        try:
            yield
        except BaseException:
            self._unsynced = None
            with contextlib.suppress(OSError):  # the block's own error is the one to see
                _sync_folders(folders)
            raise
        self._unsynced = None
        with os_errors("syncing the archive's folders"):
            _sync_folders(folders)

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
        meta = check_metadata(metadata)
        data, digest = hashed(data, sha256)
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
        meta = check_metadata(metadata)
        source = Path(path)
        with os_errors(f"archiving {key} from {source}"):
            digest = sha256.lower() if sha256 is not None else file_sha256(source)
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
        with os_errors(f"archiving {info.key}"):
            if path.exists():  # a re-run: answer without writing a temp file
                return self._existing(path, info)
            new_folders = _make_folders(path.parent)
            if not new_folders:
                sweep_temporaries(path)  # a killed attempt's leftovers, if any
            tmp = path.with_name(f".{path.name}.{temp_tail()}")
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
            folders = {path.parent, *(new.parent for new in new_folders)}
            if self._unsynced is not None:
                self._unsynced |= folders  # when the caller's block ends (together())
            else:
                for folder in folders:
                    fsync_dir(folder)
            if refused in (errno.ENOTSUP, errno.EOPNOTSUPP):
                self.xattrs = False  # this file system has none: stop asking
            if not tagged or refused is not None:
                self._write_sidecar(path, info)
        return PutResult(info.key, info.sha256, info.size, created=True)

    def _existing(self, path: Path, info: ObjectInfo) -> PutResult:
        # Hash the bytes, not the sidecar: the object is the truth.
        stored = file_sha256(path)
        if stored != info.sha256:
            raise ArchiveConflictError(info.key, stored, info.sha256)
        if self._unsynced is not None:
            # Left by an attempt that was stopped before its block synced it, maybe:
            # synced with the block's own, before anyone counts on it.
            self._unsynced.add(path.parent)
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
        tmp = sidecar.with_name(f"{sidecar.name}.{temp_tail()}")
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
        with os_errors(f"reading {key}"):
            try:
                return path.read_bytes()
            except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
                raise ArchiveNotFoundError(key) from None

    def open_range(self, key: str, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        """Open the file now; read ``[start, end)`` as it is iterated."""
        check_range(start, end)
        path = self._path(key)
        with os_errors(f"reading {key}"):
            try:
                f = path.open("rb")
            except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
                raise ArchiveNotFoundError(key) from None
        return _file_chunks(f, key, start, end)

    def exists(self, key: str) -> bool:
        """Tell whether the file exists."""
        path = self._path(key)
        with os_errors(f"checking {key}"):
            return path.is_file()

    def stat(self, key: str) -> ObjectInfo:
        """Read the stored metadata (attribute or sidecar); without it, hash the file."""
        path = self._path(key)
        with os_errors(f"reading {key}"):
            try:
                size = path.stat().st_size
            except (FileNotFoundError, NotADirectoryError):
                raise ArchiveNotFoundError(key) from None
            if not path.is_file():
                raise ArchiveNotFoundError(key)
            side = self._read_meta(path)
            if side is None or side.get("size") != size:
                return ObjectInfo(key, size, file_sha256(path), content_type_for(key), {})
            return ObjectInfo(key, size, side["sha256"], side["content_type"],
                              dict(side["metadata"]))

    def url(self, key: str, expires: int = MAX_URL_EXPIRES) -> str:
        """A ``file://`` URI; it does not expire (the folder's permissions guard it)."""
        check_expires(expires)
        return self._path(key).as_uri()

    def list(self, prefix: str = "") -> list[str]:
        """Walk the folder under ``prefix``, skipping hidden temp files and sidecars."""
        prefix = check_prefix(prefix)
        base = self.root.joinpath(*prefix.split("/")[:-1]) if prefix else self.root
        keys = []
        with os_errors(f"listing {prefix or '/'}"):
            for dirpath, dirnames, filenames in os.walk(base):
                dirnames[:] = [d for d in dirnames if SEGMENT_RE.fullmatch(d)]
                rel = Path(dirpath).relative_to(self.root).as_posix()
                for name in filenames:
                    if SEGMENT_RE.fullmatch(name):
                        keys.append(name if rel == "." else f"{rel}/{name}")
        return sorted(keys)
