"""``file://PATH``: SMS as JSON Lines in ``PATH/outbox.jsonl`` (the embedded default)."""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import threading
from collections.abc import Callable, Iterator
from dataclasses import asdict
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


class FileSmsOutbox:
    """A JSON Lines outbox: ``root/outbox.jsonl``, one line per message sent.

    Idempotent per reference across threads and processes: an exclusive ``flock`` on
    the file covers "is this reference there?" and the append, so two workers sending
    the same reference write one line. Each line is written with one ``write`` and
    fsynced before ``send`` returns (the ledger records "sent" right after). The
    references already in the file are indexed in memory as the file is read, so each
    send reads only what other processes appended since.
    """

    FILENAME = "outbox.jsonl"

    def __init__(self, root: str | os.PathLike[str], *,
                 clock: Callable[[], datetime] = utc_now, fsync: bool = True) -> None:
        self.root = Path(root)
        self.path = self.root / self.FILENAME
        self._clock = clock
        self._fsync = fsync
        self._lock = threading.Lock()
        self._index: dict[str, SmsResult] = {}
        self._offset = 0  # bytes of the file already indexed
        self._inode: tuple[int, int] | None = None

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
            seen = self._index.get(reference)
            if seen is not None:
                return SmsResult(seen.message_id, seen.segments, already_sent=True)
            message = new_message(to, text, reference, described, self._clock())
            line = json.dumps(asdict(message), ensure_ascii=False, separators=(",", ":"))
            data = line.encode() + b"\n"
            size = os.fstat(f.fileno()).st_size
            if size and self._last_byte(f, size) != b"\n":
                # A line torn by a crash: start on a fresh line, the torn one is skipped.
                data = b"\n" + data
            try:
                f.seek(0, os.SEEK_END)
                f.write(data)
                f.flush()
                if self._fsync:
                    os.fsync(f.fileno())
            except OSError as exc:
                raise error_for_os_error(exc, f"writing {self.path}") from exc
            self._offset = size + len(data)
            result = message.result()
            self._index[reference] = result
            return result

    def messages(self) -> list[SmsMessage]:
        """Every message in the outbox, oldest first (torn lines skipped)."""
        try:
            with open(self.path, "rb") as f:
                return [SmsMessage(**doc) for doc in _read_lines(f.read(), self.path)]
        except FileNotFoundError:
            return []

    @contextlib.contextmanager
    def _locked_file(self) -> Iterator[Any]:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            f = open(self.path, "a+b")  # noqa: SIM115 - closed below, after the unlock
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
        for doc in _read_lines(complete, self.path):
            self._index[doc["reference"]] = SmsResult(doc["message_id"], doc["segments"])
        self._offset += len(complete)

    @staticmethod
    def _last_byte(f: Any, size: int) -> bytes:
        f.seek(size - 1)
        return f.read(1)


def _read_lines(data: bytes, path: Path) -> Iterator[dict[str, Any]]:
    # JSON Lines split on "\n" only: str.splitlines() would also split at U+2028 in text.
    for number, raw in enumerate(data.split(b"\n"), 1):
        if not raw.strip():
            continue
        try:
            doc = json.loads(raw)
            if not isinstance(doc, dict) or not isinstance(doc.get("reference"), str):
                raise ValueError("not an outbox message")
        except ValueError:
            log.warning("%s: skipping unreadable line %d", path, number)
            continue
        yield doc
