"""Bounces kept in a mailbox, read over IMAP (``imap://`` or ``imaps://``).

For operators whose MTA keeps the bounce domain's mail: ``invoicer bounces fetch``
reads the unseen messages of one mailbox with the standard library's ``imaplib``,
hands each to a callback and then deletes what the callback handled (a bounce or a
complaint recorded); the rest (an out-of-office reply, a message we cannot read) is
left in the mailbox, marked seen, for a person. A message is deleted only after the
callback returned, so an interrupted fetch reads it again next time (recording is
idempotent).
"""

from __future__ import annotations

import contextlib
import imaplib
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from invoicer.delivery.errors import PermanentDeliveryError, TransientDeliveryError

__all__ = ["ImapMailbox"]


@dataclass(frozen=True)
class ImapMailbox:
    """One mailbox on an IMAP server (``imap://user:pass@host:143/INBOX``)."""

    host: str
    port: int
    username: str
    password: str
    mailbox: str = "INBOX"
    tls: bool = False
    timeout: float = 30.0

    @classmethod
    def from_url(cls, url: str) -> ImapMailbox:
        """``imap://user:pass@host[:port][/mailbox]``, ``imaps://`` for TLS (993)."""
        parts = urlsplit(url)
        if parts.scheme not in ("imap", "imaps") or not parts.hostname:
            raise ValueError("not an imap:// or imaps:// URL with a host")
        if parts.username is None or parts.password is None:
            raise ValueError("the IMAP URL needs user:password@")
        tls = parts.scheme == "imaps"
        return cls(parts.hostname, parts.port or (993 if tls else 143),
                   unquote(parts.username), unquote(parts.password),
                   unquote(parts.path.lstrip("/")) or "INBOX", tls)

    def fetch(self, take: Callable[[bytes], bool], *, limit: int = 1000) -> tuple[int, int]:
        """Read up to ``limit`` unseen messages; ``take(raw)`` returns True when it
        handled one (it is then deleted). Returns (read, deleted)."""
        try:
            client = (imaplib.IMAP4_SSL(self.host, self.port, timeout=self.timeout,
                                        ssl_context=ssl.create_default_context())
                      if self.tls else imaplib.IMAP4(self.host, self.port,
                                                     timeout=self.timeout))
        except OSError as exc:
            raise TransientDeliveryError(f"IMAP {self.host}:{self.port}: {exc}") from exc
        read = deleted = 0
        try:
            try:
                client.login(self.username, self.password)
            except imaplib.IMAP4.error as exc:
                raise PermanentDeliveryError(f"IMAP login refused: {exc}") from None
            status, _ = client.select(_quote(self.mailbox))
            if status != "OK":
                raise PermanentDeliveryError(f"IMAP mailbox {self.mailbox!r} not found")
            status, data = client.uid("SEARCH", None, "UNSEEN")
            uids = data[0].split()[:limit] if status == "OK" and data and data[0] else []
            for uid in uids:
                status, parts = client.uid("FETCH", uid, "(BODY.PEEK[])")
                raw = next((p[1] for p in parts or () if isinstance(p, tuple)), None)
                if status != "OK" or raw is None:
                    continue
                read += 1
                if take(raw):
                    client.uid("STORE", uid, "+FLAGS", "(\\Deleted)")
                    deleted += 1
                else:
                    client.uid("STORE", uid, "+FLAGS", "(\\Seen)")
            if deleted:
                client.expunge()
        except (imaplib.IMAP4.abort, OSError) as exc:
            raise TransientDeliveryError(f"IMAP {self.host}:{self.port}: {exc}") from exc
        finally:
            with contextlib.suppress(Exception):  # the connection may already be gone
                client.logout()
        return read, deleted


def _quote(mailbox: str) -> str:
    return '"' + mailbox.replace("\\", "\\\\").replace('"', '\\"') + '"'
