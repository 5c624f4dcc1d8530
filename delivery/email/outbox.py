"""``file://PATH``: the mail outbox, one ``.eml`` file per Message-ID (the default)."""

from __future__ import annotations

import concurrent.futures
import contextlib
import hashlib
import os
import re
import time
from collections.abc import Callable
from email.message import EmailMessage
from pathlib import Path

from invoicer.delivery.email.mailer import BatchSending, SendResult, done_now
from invoicer.delivery.email.wire import envelope, message_id_of, serialize
from invoicer.delivery.errors import error_for_os_error
from invoicer.delivery.fileurl import fsync_dir, left_by_a_dead_writer, local_path, temp_tail

__all__ = ["DEFAULT_MAIL_URL", "FileMailer", "outbox_name", "sweep_temporaries"]

DEFAULT_MAIL_URL = "file://var/outbox"
"""Where e-mails go when nothing is configured: ``.eml`` files in ``./var/outbox``."""

_FILENAME_SAFE = re.compile(r"[^A-Za-z0-9._@+=-]")


def outbox_name(message_id: str) -> str:
    """The outbox file name of a Message-ID: readable, reversible, and never hidden.

    Characters outside ``[A-Za-z0-9._@+=-]`` (``/`` above all) are percent-encoded; a
    leading dot too, so no name can clash with a temp file. Very long IDs are cut and
    end with their SHA-256, keeping names unique and under filesystem limits.
    """
    core = message_id.strip().removeprefix("<").removesuffix(">")
    name = _FILENAME_SAFE.sub(
        lambda m: "".join(f"%{b:02X}" for b in m.group().encode("utf-8")), core)
    if name.startswith("."):
        name = "%2E" + name[1:]
    if len(name) > 200:
        name = name[:136] + "~" + hashlib.sha256(core.encode("utf-8")).hexdigest()
    return name + ".eml"


# Temp names: ``.{pid}.{token}.{n}.tmp`` (``fileurl.temp_tail``); the leading dot keeps
# them clear of outbox names (outbox_name never starts with one).
_OUR_TMP = re.compile(r"\.(\d+)\.([0-9a-f]{8})\.\d+\.tmp")
# What tempfile.mkstemp(prefix=".", suffix=".tmp") named them before: no pid to judge
# by, so only those older than any write takes are a killed writer's.
_MKSTEMP_TMP = re.compile(r"\.[a-z0-9_]{8}\.tmp")
_MKSTEMP_STALE_SECONDS = 3600


def sweep_temporaries(root: str) -> int:
    """Remove the temp files that writers killed mid-send left in the outbox ``root``
    (of a process that is gone, or of an earlier process that had this one's pid).
    Returns how many. Temp names are hidden and never linked once their writer is
    dead, so removing them changes nothing else."""
    removed, now = 0, time.time()
    try:
        with os.scandir(root) as entries:
            names = [e.name for e in entries if e.name[0] == "." and e.name.endswith(".tmp")]
    except FileNotFoundError:
        return 0
    for name in names:
        path = os.path.join(root, name)
        ours = _OUR_TMP.fullmatch(name)
        if ours is not None:
            stale = left_by_a_dead_writer(int(ours[1]), ours[2])
        elif _MKSTEMP_TMP.fullmatch(name):
            try:
                stale = now - os.lstat(path).st_mtime > _MKSTEMP_STALE_SECONDS
            except OSError:
                continue
        else:
            continue
        if stale:
            with contextlib.suppress(OSError):  # gone meanwhile, or not ours to remove
                os.unlink(path)
                removed += 1
    return removed


class FileMailer(BatchSending):
    """The outbox folder: one ``<Message-ID>.eml`` file per message (RFC 5322 bytes,
    CRLF, exactly what SMTP would carry).

    Writes go to a temp file, are fsynced, then hard-linked to the final name: ``link``
    fails when the name exists, so the first copy of a Message-ID wins, a re-send of
    the same ID writes nothing (``created=False``), two racing writers leave one file,
    and a reader never sees half a message. The temp files of a writer killed
    mid-send are removed by the next mailer on the folder, before its first write.
    """

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(os.path.abspath(os.fspath(root)))
        self._root = str(self.root)  # the per-send paths are joined as strings
        self._swept = False

    @classmethod
    def from_url(cls, url: str) -> FileMailer:
        """``file:///abs/path``, ``file://relative/path`` (to the working directory)."""
        return cls(local_path(url, "file outbox"))

    def __repr__(self) -> str:
        return f"FileMailer({str(self.root)!r})"

    def path_for(self, message_id: str) -> Path:
        """Where the message with this Message-ID is (or would be) in the outbox."""
        return self.root / outbox_name(message_id)

    def send(self, message: EmailMessage, *,
             before_data: Callable[[], None] | None = None,
             return_path: str | None = None) -> SendResult:
        """Write the message unless its Message-ID is already in the outbox.

        ``before_data`` is not called: writing the same Message-ID again is a no-op,
        so a crash mid-write is safely repeated. ``return_path`` is not kept: a file
        has no envelope, and nothing bounces from the outbox."""
        mid = message_id_of(message)
        recipients = tuple(envelope(message)[1])
        path = os.path.join(self._root, outbox_name(mid))
        try:
            # A re-sent Message-ID answers without serializing or writing a temp file.
            if os.path.exists(path):
                return SendResult(mid, recipients, path, created=False)
            data = serialize(message)
            if not self._swept:
                self._swept = True
                # Housekeeping: a folder that cannot be listed fails the write below
                # with its own error, not this.
                with contextlib.suppress(OSError):
                    sweep_temporaries(self._root)
            tmp = os.path.join(self._root, f".{temp_tail()}")
            fd = self._create(tmp)
            try:
                try:
                    view = memoryview(data)
                    while view:  # os.write may write less than asked
                        view = view[os.write(fd, view):]
                    os.fsync(fd)
                finally:
                    os.close(fd)
                try:
                    os.link(tmp, path)
                except FileExistsError:
                    return SendResult(mid, recipients, path, created=False)
            finally:
                os.unlink(tmp)
            fsync_dir(self.root)
        except OSError as exc:
            raise error_for_os_error(exc, f"writing {mid} to the outbox {self.root}") from exc
        return SendResult(mid, recipients, path, created=True)

    def _create(self, tmp: str) -> int:
        """Open a new temp file (mode 0600, as mkstemp made them); the outbox folder is
        made when the create says it is missing, not checked before every send."""
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
        try:
            return os.open(tmp, flags, 0o600)
        except FileNotFoundError:
            self.root.mkdir(parents=True, exist_ok=True)
            # The new folder's own name made durable too, as its files will be.
            fsync_dir(self.root.parent)
            return os.open(tmp, flags, 0o600)

    def _submit(self, message: EmailMessage) -> concurrent.futures.Future[SendResult]:
        # Local disk writes: nothing to overlap, so "submitting" is doing.
        return done_now(lambda: self.send(message))

    def close(self) -> None:
        """Nothing to release."""
