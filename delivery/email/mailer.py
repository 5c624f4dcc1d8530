"""The mailer's Protocol, what sending returns, and sending many messages at once."""

from __future__ import annotations

import concurrent.futures
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Protocol, TypeVar, runtime_checkable

from invoicer.delivery.errors import DeliveryError

__all__ = ["BatchSending", "Mailer", "Outcome", "SendResult", "done_now"]

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class SendResult:
    """A message handed over: to an SMTP server (its final reply) or to the outbox."""

    message_id: str
    recipients: tuple[str, ...]
    reply: str
    """The server's final reply (``250 2.0.0 Ok: queued as ...``) or the outbox file."""
    created: bool = True
    """False when the file outbox already held this Message-ID and wrote nothing."""


Outcome = SendResult | DeliveryError


@runtime_checkable
class Mailer(Protocol):
    """Hands finished messages to someone who delivers them. One verb: ``send``.

    ``send`` returns once the message is accepted (SMTP 250, or durably in the outbox)
    and raises :class:`~invoicer.delivery.errors.DeliveryError` subclasses otherwise.
    It never retries on its own (see :mod:`invoicer.delivery.retry`); sending the same
    Message-ID twice is the caller's decision. ``send_many`` is the same verb for
    throughput: it sends concurrently and returns one outcome per message, in order,
    with failures as values. Implementations are safe to share between threads.

    Backends: :class:`~invoicer.delivery.email.outbox.FileMailer` (``file://``),
    :class:`~invoicer.delivery.email.smtp.SmtpMailer` (``smtp://``, ``smtps://``),
    :class:`~invoicer.delivery.email.memory.MemoryMailer` (a list, for tests).
    """

    def send(self, message: EmailMessage, *,
             before_data: Callable[[], None] | None = None,
             return_path: str | None = None) -> SendResult:
        """Deliver one message or raise a ``DeliveryError``.

        ``return_path``: the envelope sender (``MAIL FROM``) of this message, where
        bounces go (a VERP address per delivery); default: the mailer's own, or the
        message's Sender/From.

        ``before_data`` is called once the server has taken the envelope, right before
        the message data goes out: the point after which a crash or a lost connection
        leaves the outcome unknown. The caller records that there (the ledger's
        ``unknown``), so that a process killed mid-send is never sent again blindly.
        If it raises, nothing is sent. A backend without such a point (the file
        outbox, idempotent by Message-ID) does not call it.
        """
        ...

    def send_many(self, messages: Iterable[EmailMessage]) -> list[Outcome]:
        """Deliver many; one ``SendResult`` or ``DeliveryError`` per message, in order."""
        ...

    def close(self) -> None:
        """Release connections and threads; the mailer may be used again afterwards."""
        ...


class BatchSending:
    """``send_many`` / ``iter_send`` for every mailer, on top of its ``_submit``, which
    starts sending one message and returns a future of its result."""

    #: Messages in flight at once in ``iter_send`` (set per instance by SMTP).
    window: int = 1

    def _submit(self, message: EmailMessage) -> concurrent.futures.Future[SendResult]:
        raise NotImplementedError

    def iter_send(self, messages: Iterable[EmailMessage]
                  ) -> Iterator[tuple[EmailMessage, Outcome]]:
        """Send ``messages`` (consumed lazily), yielding ``(message, outcome)`` as each
        finishes, in completion order.

        At most ``window`` messages are in flight, so a generator that builds messages
        overlaps building with sending and memory stays bounded. Outcomes are
        ``SendResult`` or ``DeliveryError`` values; anything else (a bug, a malformed
        message) is raised. This is where the caller records each outcome (the ledger)
        in its own thread, as soon as it is known.
        """
        for _, message, outcome in self._iter_indexed(messages):
            yield message, outcome

    def send_many(self, messages: Iterable[EmailMessage]) -> list[Outcome]:
        """Send all; one ``SendResult`` or ``DeliveryError`` per message, in order."""
        results: dict[int, Outcome] = {}
        for index, _, outcome in self._iter_indexed(messages):
            results[index] = outcome
        return [results[i] for i in range(len(results))]

    def _iter_indexed(self, messages: Iterable[EmailMessage]
                      ) -> Iterator[tuple[int, EmailMessage, Outcome]]:
        pending: dict[concurrent.futures.Future[SendResult], tuple[int, EmailMessage]] = {}
        source = enumerate(messages)
        exhausted = False
        while True:
            while not exhausted and len(pending) < self.window:
                item = next(source, None)
                if item is None:
                    exhausted = True
                    break
                pending[self._submit(item[1])] = item
            if not pending:
                return
            done, _ = concurrent.futures.wait(
                pending, return_when=concurrent.futures.FIRST_COMPLETED)
            for future in done:
                index, message = pending.pop(future)
                try:
                    outcome: Outcome = future.result()
                except DeliveryError as exc:
                    outcome = exc
                yield index, message, outcome


def done_now(call: Callable[[], T]) -> concurrent.futures.Future[T]:
    """Run ``call`` now and return its outcome as a finished future (for backends with
    nothing to overlap): its result, or the ``DeliveryError`` it raised. Anything else
    it raises is raised here, as a bug."""
    future: concurrent.futures.Future[T] = concurrent.futures.Future()
    try:
        future.set_result(call())
    except DeliveryError as exc:
        future.set_exception(exc)
    return future
