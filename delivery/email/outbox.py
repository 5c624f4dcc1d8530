"""``file://PATH``: the mail outbox, one ``.eml`` file per Message-ID (the default)."""

from __future__ import annotations

import concurrent.futures
import hashlib
import os
import re
import tempfile
from collections.abc import Callable
from email.message import EmailMessage
from pathlib import Path

from invoicer.delivery.email.mailer import BatchSending, SendResult, done_now
from invoicer.delivery.email.wire import envelope, message_id_of, serialize
from invoicer.delivery.errors import error_for_os_error
from invoicer.delivery.fileurl import fsync_dir, local_path

__all__ = ["DEFAULT_MAIL_URL", "FileMailer", "outbox_name"]

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


class FileMailer(BatchSending):
    """The outbox folder: one ``<Message-ID>.eml`` file per message (RFC 5322 bytes,
    CRLF, exactly what SMTP would carry).

    Writes go to a temp file, are fsynced, then hard-linked to the final name: ``link``
    fails when the name exists, so the first copy of a Message-ID wins, a re-send of
    the same ID writes nothing (``created=False``), two racing writers leave one file,
    and a reader never sees half a message.
    """

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(os.path.abspath(os.fspath(root)))

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
        _, recipients = envelope(message)
        path = self.path_for(mid)
        what = f"writing {mid} to the outbox {self.root}"
        try:
            if path.exists():
                return SendResult(mid, tuple(recipients), str(path), created=False)
            data = serialize(message)
            self.root.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".", suffix=".tmp", dir=self.root)
            try:
                with os.fdopen(fd, "wb") as f:
                    f.write(data)
                    f.flush()
                    os.fsync(f.fileno())
                try:
                    os.link(tmp, path)
                except FileExistsError:
                    return SendResult(mid, tuple(recipients), str(path), created=False)
            finally:
                os.unlink(tmp)
            fsync_dir(self.root)
        except OSError as exc:
            raise error_for_os_error(exc, what) from exc
        return SendResult(mid, tuple(recipients), str(path), created=True)

    def _submit(self, message: EmailMessage) -> concurrent.futures.Future[SendResult]:
        # Local disk writes: nothing to overlap, so "submitting" is doing.
        return done_now(lambda: self.send(message))

    def close(self) -> None:
        """Nothing to release."""
