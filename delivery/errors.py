"""The errors every delivery backend raises, whatever its vendor.

Vendor errors (botocore, aiosmtplib, HTTP gateways, the local disk) are translated at
the edge of each backend into this small tree, so callers decide about retries on the class
alone, never on a vendor's exception or string:

    DeliveryError                  anything a backend could not do
    ├── TransientDeliveryError     worth retrying later, unchanged: timeouts, refused or
    │   │                          dropped connections, HTTP 408/429/5xx, S3 SlowDown /
    │   │                          RequestTimeout / InternalError / ServiceUnavailable,
    │   │                          SMTP 4xx, a full disk
    │   └── SmtpTransientError     an SMTP 4xx reply (``code`` and ``text`` kept)
    ├── PermanentDeliveryError     retrying the same call cannot help: 4xx, bad
    │   │                          credentials, a missing bucket, a rejected address
    │   ├── ArchiveConflictError   the key already holds *different* bytes
    │   ├── ArchiveNotFoundError   no object under that key
    │   └── SmtpPermanentError     an SMTP 5xx reply (``code`` and ``text`` kept)
    └── UnknownDeliveryError       the outcome is not known: the connection was lost
                                   after the whole message went out and before the
                                   server's answer (it may have been delivered)

Celery tasks retry on ``TransientDeliveryError`` only (``autoretry_for``); everything
else is reported. ``UnknownDeliveryError`` in particular is never retried on its own:
sending again might deliver a second copy, so an operator decides. The original vendor
exception stays reachable as ``__cause__``.
"""

from __future__ import annotations

import contextlib
import errno
from collections.abc import Iterator

__all__ = [
    "ArchiveConflictError",
    "ArchiveNotFoundError",
    "DeliveryError",
    "PermanentDeliveryError",
    "SmtpPermanentError",
    "SmtpTransientError",
    "TransientDeliveryError",
    "UnknownDeliveryError",
    "error_for_os_error",
    "error_for_smtp_reply",
    "error_for_status",
    "is_transient_status",
    "os_errors",
]


class DeliveryError(Exception):
    """A delivery backend (archive, mail, SMS, print) failed to do what was asked."""

    #: Whether retrying the very same call later may succeed.
    transient: bool = False


class TransientDeliveryError(DeliveryError):
    """A failure that may go away on its own: retry later with backoff."""

    transient = True


class PermanentDeliveryError(DeliveryError):
    """A failure that the same call will meet again: report it, do not retry."""


class ArchiveConflictError(PermanentDeliveryError):
    """The archive already holds different bytes under this key.

    Archived invoices are immutable: a second, different rendering of the same invoice
    is never written over the first. It means the record or the renderer changed under
    an invoice number that was already issued, which a person has to look at.
    """

    def __init__(self, key: str, existing_sha256: str, new_sha256: str) -> None:
        super().__init__(
            f"{key!r} is already archived with different bytes "
            f"(stored sha256 {existing_sha256}, new sha256 {new_sha256})"
        )
        self.key = key
        self.existing_sha256 = existing_sha256
        self.new_sha256 = new_sha256

    # Process pools and Celery pickle errors, which rebuilds them from ``args``: give
    # the constructor's arguments, not the message.
    def __reduce__(self) -> tuple[type, tuple[str, ...]]:
        return type(self), (self.key, self.existing_sha256, self.new_sha256)


class ArchiveNotFoundError(PermanentDeliveryError):
    """No object is archived under this key."""

    def __init__(self, key: str) -> None:
        super().__init__(f"{key!r} is not in the archive")
        self.key = key

    def __reduce__(self) -> tuple[type, tuple[str, ...]]:
        return type(self), (self.key,)


# 501 (the server does not implement the request) and 505 (HTTP version) will answer
# the same way every time, unlike the rest of 5xx.
_PERMANENT_5XX = frozenset({501, 505})


def is_transient_status(status: int) -> bool:
    """Tell whether an HTTP status is worth retrying: 408, 429 and 5xx but 501/505."""
    if status in (408, 429):
        return True
    return 500 <= status <= 599 and status not in _PERMANENT_5XX


def error_for_status(status: int, message: str) -> DeliveryError:
    """Return (not raise) the delivery error matching an HTTP status.

    ``raise error_for_status(resp.status_code, text) from exc`` keeps the vendor error
    as the cause.
    """
    cls = TransientDeliveryError if is_transient_status(status) else PermanentDeliveryError
    return cls(f"HTTP {status}: {message}")


# --- the local disk (the file:// backends) ---------------------------------------------

# Errors of a local disk that an operator (or time) can clear: a full or busy disk, an
# NFS server that comes back. A path we may not write to, or that is not a folder, will
# not change by waiting.
TRANSIENT_ERRNOS = frozenset(
    {errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EAGAIN, errno.EBUSY, errno.EINTR,
     errno.ETIMEDOUT, errno.ESTALE, errno.ENOLCK}
)


def error_for_os_error(exc: OSError, what: str) -> DeliveryError:
    """Return (not raise) the delivery error matching an ``OSError`` of a local backend:
    transient for :data:`TRANSIENT_ERRNOS`, permanent otherwise; ``what`` says what was
    being done (``"writing x to the outbox /var/outbox"``)."""
    cls = TransientDeliveryError if exc.errno in TRANSIENT_ERRNOS else PermanentDeliveryError
    return cls(f"{what}: {exc}")


@contextlib.contextmanager
def os_errors(what: str) -> Iterator[None]:
    """Raise an ``OSError`` from the block as :func:`error_for_os_error` says (the
    ``OSError`` as its cause); delivery errors pass unchanged."""
    try:
        yield
    except DeliveryError:
        raise
    except OSError as exc:
        raise error_for_os_error(exc, what) from exc


# --- SMTP ------------------------------------------------------------------------------


class UnknownDeliveryError(DeliveryError):
    """Whether the message was delivered is not known, and cannot be found out here.

    Raised when the connection is lost (or times out) after the whole message was
    handed over and before the server's final reply: the server may well have queued
    it (RFC 1047). Not transient on purpose: a retry could deliver a second copy, so
    the delivery is recorded as "unknown" and a person decides whether to re-send.
    """


class SmtpTransientError(TransientDeliveryError):
    """An SMTP server answered with a 4xx reply: try again later."""

    def __init__(self, code: int, text: str, stage: str = "") -> None:
        where = f" to {stage}" if stage else ""
        super().__init__(f"SMTP {code}{where}: {text}")
        self.code = code
        self.text = text
        self.stage = stage

    def __reduce__(self) -> tuple[type, tuple[int, str, str]]:
        return type(self), (self.code, self.text, self.stage)


class SmtpPermanentError(PermanentDeliveryError):
    """An SMTP server answered with a 5xx reply: the same message will fail again."""

    def __init__(self, code: int, text: str, stage: str = "") -> None:
        where = f" to {stage}" if stage else ""
        super().__init__(f"SMTP {code}{where}: {text}")
        self.code = code
        self.text = text
        self.stage = stage

    def __reduce__(self) -> tuple[type, tuple[int, str, str]]:
        return type(self), (self.code, self.text, self.stage)


def error_for_smtp_reply(code: int, text: str, stage: str = "") -> DeliveryError:
    """Return (not raise) the delivery error matching an SMTP reply code.

    4xx is transient and 5xx permanent (RFC 5321 §4.2.1). Any other code where an
    error was seen (a 2xx/3xx out of place, or aiosmtplib's -1 for a garbled line)
    means a confused exchange rather than a verdict on the message: transient, so
    that the bounded retries decide.
    """
    if 500 <= code <= 599:
        return SmtpPermanentError(code, text, stage)
    if 400 <= code <= 499:
        return SmtpTransientError(code, text, stage)
    return TransientDeliveryError(f"SMTP unexpected reply {code} to {stage or 'command'}: "
                                  f"{text}")
