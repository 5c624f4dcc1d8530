"""A mailer that keeps what it is given: the fake for tests of the mailer's callers.

It behaves like an SMTP server that takes everything: every ``send`` delivers (twice
the same Message-ID is two deliveries, as on the wire), ``before_data`` is called at
the point SMTP would call it, and the bytes kept are exactly what SMTP would carry.
Failures are scripted (:meth:`MemoryMailer.fail_next`) to see what a caller does with
a 4xx, a 5xx or an unknown outcome.
"""

from __future__ import annotations

import concurrent.futures
import threading
from collections.abc import Callable
from dataclasses import dataclass
from email.message import EmailMessage

from invoicer.delivery.email.mailer import BatchSending, SendResult, done_now
from invoicer.delivery.email.wire import envelope, message_id_of, serialize
from invoicer.delivery.errors import DeliveryError, UnknownDeliveryError

__all__ = ["MemoryMailer", "SentMessage"]


@dataclass(frozen=True, slots=True)
class SentMessage:
    """One delivery as a server would have received it."""

    message_id: str
    sender: str
    recipients: tuple[str, ...]
    data: bytes
    """The message as serialized for the wire (CRLF, no ``Bcc``)."""


class MemoryMailer(BatchSending):
    """Delivers into :attr:`sent`, a list, in the order of the sends.

    ``fail_next(error, ...)`` queues errors for the next sends, one each, in order. An
    :class:`~invoicer.delivery.errors.UnknownDeliveryError` is raised after
    ``before_data`` was called (the data went out, the verdict was lost) and nothing is
    kept; any other error is raised before, as a refusal of the envelope would be.
    """

    def __init__(self) -> None:
        self.sent: list[SentMessage] = []
        self._failures: list[DeliveryError] = []
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"MemoryMailer({len(self.sent)} sent)"

    def fail_next(self, *errors: DeliveryError) -> None:
        """Make the next ``len(errors)`` sends raise these, in order."""
        with self._lock:
            self._failures.extend(errors)

    def send(self, message: EmailMessage, *,
             before_data: Callable[[], None] | None = None,
             return_path: str | None = None) -> SendResult:
        """Keep the message (see the class for scripted failures)."""
        mid = message_id_of(message)
        sender, recipients = envelope(message, return_path)
        data = serialize(message)
        with self._lock:
            failure = self._failures.pop(0) if self._failures else None
        if failure is not None and not isinstance(failure, UnknownDeliveryError):
            raise failure  # refused before the data: nothing delivered
        if before_data is not None:
            before_data()
        if failure is not None:
            raise failure
        with self._lock:
            self.sent.append(SentMessage(mid, sender, tuple(recipients), data))
            n = len(self.sent)
        return SendResult(mid, tuple(recipients), f"250 2.0.0 Ok: queued as M{n}")

    def _submit(self, message: EmailMessage) -> concurrent.futures.Future[SendResult]:
        return done_now(lambda: self.send(message))

    def close(self) -> None:
        """Nothing to release; the mailer stays usable."""
