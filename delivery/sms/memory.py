"""``memory://``: SMS kept in a list, the fake for tests of the gateway's callers."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import datetime
from urllib.parse import urlsplit

from invoicer.delivery.sms.gateway import (
    SmsMessage,
    SmsResult,
    check_message,
    new_message,
    utc_now,
)

__all__ = ["MemorySmsGateway"]


class MemorySmsGateway:
    """Keeps sent messages in a list: a fake that keeps the real promises."""

    def __init__(self, *, clock: Callable[[], datetime] = utc_now) -> None:
        self.messages: list[SmsMessage] = []
        self._by_reference: dict[str, SmsMessage] = {}
        self._clock = clock
        self._lock = threading.Lock()

    @classmethod
    def from_url(cls, url: str) -> MemorySmsGateway:
        """``memory://`` (nothing else in the URL)."""
        parts = urlsplit(url)
        if parts.scheme != "memory" or parts.netloc or parts.path or parts.query:
            raise ValueError(f"not a memory SMS URL: {url!r} (use memory://)")
        return cls()

    def send(self, to: str, text: str, *, reference: str) -> SmsResult:
        """Append to :attr:`messages` unless ``reference`` is there already."""
        described = check_message(to, text, reference)
        with self._lock:
            seen = self._by_reference.get(reference)
            if seen is not None:
                return seen.result(already_sent=True)
            message = new_message(to, text, reference, described, self._clock())
            self.messages.append(message)
            self._by_reference[reference] = message
            return message.result()

    def __repr__(self) -> str:
        return f"MemorySmsGateway({len(self.messages)} messages)"
