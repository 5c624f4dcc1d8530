"""``file://PATH``: SMS as JSON Lines in ``PATH/outbox.jsonl`` (the embedded default)."""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import threading
from collections.abc import Callable, Iterator
from dataclasses import fields
from datetime import datetime
from pathlib import Path
from typing import Any

from invoicer.delivery.errors import error_for_os_error
from invoicer.delivery.fileurl import local_path
from invoicer.delivery.sms.gateway import (
    SmsMessage,
    SmsResult,
    check_message,
    new_message,
    utc_now,
)

__all__ = ["FileSmsOutbox"]

log = logging.getLogger(__name__)

_MESSAGE_FIELDS = tuple(f.name for f in fields(SmsMessage))


class FileSmsOutbox:
    """A JSON Lines outbox: ``root/outbox.jsonl``, one line per message sent.

    Idempotent per reference across threads and processes: an exclusive ``flock`` on
    the file covers "is this reference there?" and the append, so two workers sending
    the same reference write one line. Each line is written with one ``write`` and
    fsynced before ``send`` returns (the ledger records "sent" right after). The
    references already in the file are indexed in memory as the file is read, so each
    send reads only what other processes appended since. The index keeps a reference's
    hash and where its line starts, not the reference and its result: a bill run of
    100,000 invoices must not grow every process by its whole outbox. A hit is read
    back from the file and compared whole (a hash may collide).
    """

    FILENAME = "outbox.jsonl"

    def __init__(self, root: str | os.PathLike[str], *,
                 clock: Callable[[], datetime] = utc_now, fsync: bool = True) -> None:
        self.root = Path(root)
        self.path = self.root / self.FILENAME
        self._clock = clock
        self._fsync = fsync
        self._lock = threading.Lock()
        # hash(reference) -> offset of its line (a tuple of offsets for colliding ones)
        self._index: dict[int, int | tuple[int, ...]] = {}
        self._offset = 0  # bytes of the file already indexed
        self._inode: tuple[int, int] | None = None
        self._size = 0  # the file's size when _catch_up last looked (under the lock)

    @classmethod
    def from_url(cls, url: str) -> FileSmsOutbox:
        """``file:///abs/path``, ``file://relative/path`` or ``file:relative`` (to cwd)."""
        return cls(local_path(url, "file SMS outbox"))

    def __repr__(self) -> str:
        return f"FileSmsOutbox({str(self.root)!r})"

    def send(self, to: str, text: str, *, reference: str) -> SmsResult:
        """Append one JSON line unless ``reference`` is in the outbox already."""
        described = check_message(to, text, reference)
        with self._lock, self._locked_file() as f:
            self._catch_up(f)
            seen = self._sent(f, reference)
            if seen is not None:
                return SmsResult(seen["message_id"], seen["segments"], already_sent=True)
            message = new_message(to, text, reference, described, self._clock())
            # The fields as they are (str and int): what dataclasses.asdict gives,
            # without its deep copy of each value.
            doc = {name: getattr(message, name) for name in _MESSAGE_FIELDS}
            line = json.dumps(doc, ensure_ascii=False, separators=(",", ":"))
            data = line.encode() + b"\n"
            size = self._size
            start = size
            # Indexed up to the end: the file ends with a whole line. Otherwise its last
            # byte says whether a line was torn.
            if size and size != self._offset and self._last_byte(f, size) != b"\n":
                # A line torn by a crash: start on a fresh line, the torn one is skipped.
                data = b"\n" + data
                start += 1
            try:
                f.seek(0, os.SEEK_END)
                f.write(data)
                f.flush()
                if self._fsync:
                    os.fsync(f.fileno())
            except OSError as exc:
                raise error_for_os_error(exc, f"writing {self.path}") from exc
            self._offset = size + len(data)
            self._remember(reference, start)
            return message.result()

    def messages(self) -> list[SmsMessage]:
        """Every message in the outbox, oldest first (torn lines skipped)."""
        try:
            with open(self.path, "rb") as f:
                return [SmsMessage(**doc) for _, doc in _read_lines(f.read(), self.path)]
        except FileNotFoundError:
            return []

    @contextlib.contextmanager
    def _locked_file(self) -> Iterator[Any]:
        try:
            try:
                f = open(self.path, "a+b")  # noqa: SIM115 - closed below, after the unlock
            except FileNotFoundError:  # the folder is made when missing, not per send
                self.root.mkdir(parents=True, exist_ok=True)
                f = open(self.path, "a+b")  # noqa: SIM115
        except OSError as exc:
            raise error_for_os_error(exc, f"opening {self.path}") from exc
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX)
            try:
                yield f
            finally:
                fcntl.flock(f.fileno(), fcntl.LOCK_UN)
        finally:
            f.close()

    def _catch_up(self, f: Any) -> None:
        stat = os.fstat(f.fileno())
        self._size = stat.st_size  # the file's size under the lock, for send()
        inode = (stat.st_dev, stat.st_ino)
        if inode != self._inode or stat.st_size < self._offset:
            # Another file now (rotated, or replaced by an operator): index it afresh.
            self._index.clear()
            self._offset = 0
            self._inode = inode
        if stat.st_size == self._offset:
            return
        f.seek(self._offset)
        chunk = f.read(stat.st_size - self._offset)
        # Index whole lines only: a partial last line is a torn write, or (never under
        # the lock) one still being written.
        complete = chunk[: chunk.rfind(b"\n") + 1]
        for at, doc in _read_lines(complete, self.path, start=self._offset):
            self._remember(doc["reference"], at)
        self._offset += len(complete)

    def _remember(self, reference: str, offset: int) -> None:
        key = hash(reference)
        known = self._index.get(key)
        if known is None:
            self._index[key] = offset
        else:  # another reference with the same hash, or the same one written again
            self._index[key] = (*(known if isinstance(known, tuple) else (known,)), offset)

    def _sent(self, f: Any, reference: str) -> dict[str, Any] | None:
        """The outbox line of ``reference``, if it is in the file (read back)."""
        known = self._index.get(hash(reference))
        if known is None:
            return None
        for offset in known if isinstance(known, tuple) else (known,):
            f.seek(offset)
            for _, doc in _read_lines(f.readline(), self.path, start=offset):
                if doc["reference"] == reference:
                    return doc
        return None

    @staticmethod
    def _last_byte(f: Any, size: int) -> bytes:
        f.seek(size - 1)
        return f.read(1)


def _read_lines(data: bytes, path: Path, *, start: int = 0
                ) -> Iterator[tuple[int, dict[str, Any]]]:
    """``(offset, message)`` of each readable line of ``data`` (which begins at byte
    ``start`` of the file)."""
    # JSON Lines split on "\n" only: str.splitlines() would also split at U+2028 in text.
    at = start
    for number, raw in enumerate(data.split(b"\n"), 1):
        here, at = at, at + len(raw) + 1
        if not raw.strip():
            continue
        try:
            doc = json.loads(raw)
            if not isinstance(doc, dict) or not isinstance(doc.get("reference"), str):
                raise ValueError("not an outbox message")
        except ValueError:
            log.warning("%s: skipping unreadable line %d", path, number)
            continue
        yield here, doc
