"""The SMS gateway's Protocol, what sending returns, and the checks before any I/O."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol, runtime_checkable

from invoicer.delivery.sms import gsm

__all__ = [
    "DEFAULT_SMS_URL",
    "MAX_SEGMENTS",
    "REFERENCE_RE",
    "SmsGateway",
    "SmsMessage",
    "SmsResult",
    "check_message",
    "new_message",
    "utc_now",
]

DEFAULT_SMS_URL = "file://var/sms"
"""Where SMS go when nothing is configured: ``./var/sms/outbox.jsonl``."""

MAX_SEGMENTS = 10
"""The longest SMS any backend sends. Our notices take 1 to 3 parts; a text beyond 10
is a template or data bug, and most gateways refuse it anyway."""


@dataclass(frozen=True, slots=True)
class SmsResult:
    """What ``send`` did: the gateway's message id and the parts billed.

    ``already_sent`` is True when the reference had been sent before and nothing was
    sent this time (the first send's id and count are returned).
    """

    message_id: str
    segments: int
    already_sent: bool = False


@runtime_checkable
class SmsGateway(Protocol):
    """Sends SMS. Implementations are safe to share between threads.

    ``send`` raises ``ValueError`` for arguments no gateway could take (checked before
    any I/O): ``to`` not E.164, an empty text or one beyond :data:`MAX_SEGMENTS`
    parts, a reference that is not 1 to 128 of ``A-Z a-z 0-9 . _ : / -``.
    """

    def send(self, to: str, text: str, *, reference: str) -> SmsResult:
        """Send ``text`` to ``to`` (E.164) once per ``reference``.

        A reference already sent returns the first result and sends nothing. Raises
        ``TransientDeliveryError`` (retry later, same reference) or
        ``PermanentDeliveryError``.
        """
        ...


@dataclass(frozen=True, slots=True)
class SmsMessage:
    """One message as the outbox backends keep it (one JSON line in the file outbox)."""

    message_id: str
    reference: str
    to: str
    text: str
    encoding: gsm.Encoding
    segments: int
    at: str  # ISO 8601, UTC

    def result(self, *, already_sent: bool = False) -> SmsResult:
        """What ``send`` returns for this message."""
        return SmsResult(self.message_id, self.segments, already_sent)


# Same pattern as the billing contract's Phone; repeated because this is the edge where
# a number leaves the service, whoever called.
E164_RE = re.compile(r"\+[1-9][0-9]{1,14}")
# References travel as an HTTP header and a JSON field: no spaces, no line breaks.
REFERENCE_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/-]{0,127}")


def check_message(to: str, text: str, reference: str) -> gsm.Segmentation:
    """How ``text`` is encoded and split; ``ValueError`` for arguments no gateway could
    take (see :class:`SmsGateway`), before any I/O."""
    if not isinstance(to, str) or not E164_RE.fullmatch(to):
        raise ValueError(f"to must be an E.164 number (+ and up to 15 digits), not {to!r}")
    if not isinstance(reference, str) or not REFERENCE_RE.fullmatch(reference):
        raise ValueError(f"reference must be 1 to 128 of A-Z a-z 0-9 . _ : / - "
                         f"(starting with a letter or digit), not {reference!r}")
    if not isinstance(text, str) or not text.strip():
        raise ValueError("an SMS text cannot be empty")
    described = gsm.describe(text)
    if described.count > MAX_SEGMENTS:
        raise ValueError(f"the text takes {described.count} SMS parts, more than "
                         f"{MAX_SEGMENTS}")
    return described


def new_message(to: str, text: str, reference: str, described: gsm.Segmentation,
                at: datetime) -> SmsMessage:
    """The message the outbox backends keep for a checked send."""
    # The id is derived from the reference, so that a retried send reports the same id.
    message_id = "sms-" + hashlib.sha256(reference.encode()).hexdigest()[:24]
    when = at.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    return SmsMessage(message_id, reference, to, text, described.encoding, described.count,
                      when)


def utc_now() -> datetime:
    """The default clock of the outbox backends."""
    return datetime.now(UTC)
