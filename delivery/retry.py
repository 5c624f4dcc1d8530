"""Retrying a transport call in-process: one backoff and one loop for every channel.

A transport never retries on its own; the caller decides how hard to try (the bill
run's few quick tries, a test's none). Only :class:`~delivery.errors.TransientDeliveryError`
is retried: a permanent refusal meets the same answer again, and an unknown outcome
(the message may already be delivered) is for a person, never for a loop.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from invoicer.delivery.errors import DeliveryError, TransientDeliveryError

__all__ = ["Backoff", "retry", "retry_transient"]

log = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Backoff:
    """Exponential backoff with "equal jitter": retry ``n`` (0-based) waits between
    half and all of ``min(cap, base * factor**n)`` seconds.

    Half the wait is random, so a thousand workers that failed together do not return
    together; with ``factor >= 2`` each wait is still at least the previous one (the
    lower bound of a step is the upper bound of the one before), so a struggling
    server gets more room every time until ``cap``.
    """

    attempts: int = 5
    base: float = 2.0
    factor: float = 2.0
    cap: float = 300.0

    def delay(self, retry_number: int, rand: float) -> float:
        """The wait before retry ``retry_number`` (0 = first retry); ``rand`` in [0, 1)."""
        ceiling = min(self.cap, self.base * self.factor ** retry_number)
        return ceiling / 2 + ceiling / 2 * rand


def retry(call: Callable[[], T], *, backoff: Backoff = Backoff(),
          sleep: Callable[[float], Any] = time.sleep,
          rand: Callable[[], float] = random.random,
          on_retry: Callable[[int, DeliveryError, float], Any] | None = None) -> T:
    """Call ``call()`` until it returns, retrying only ``TransientDeliveryError``.

    At most ``backoff.attempts`` calls; the last transient error is raised when they
    are used up. Permanent and unknown outcomes are raised at once: retrying a 550
    cannot help, and retrying an unknown one might deliver twice. ``sleep`` and
    ``rand`` are injectable for tests; ``on_retry(attempt, error, delay)`` is told
    before each wait (for logs and metrics; raising there ends the retries with that
    exception).
    """
    if backoff.attempts < 1:
        raise ValueError("backoff.attempts must be at least 1")
    for attempt in range(1, backoff.attempts + 1):
        try:
            return call()
        except TransientDeliveryError as exc:
            if attempt >= backoff.attempts:
                raise
            delay = backoff.delay(attempt - 1, rand())
            log.info("attempt %d failed (%s); retrying in %.1f s", attempt, exc, delay)
            if on_retry is not None:
                on_retry(attempt, exc, delay)
            sleep(delay)
    raise AssertionError("unreachable")  # pragma: no cover


def retry_transient(call: Callable[[], T], *, attempts: int = 4, base_delay: float = 0.5,
                    max_delay: float = 30.0, sleep: Callable[[float], None] = time.sleep,
                    rand: Callable[[], float] = random.random) -> T:
    """:func:`retry` that also honours a server's ``Retry-After``.

    Waits grow exponentially from ``base_delay``, half of each random, capped at
    ``max_delay``; ``attempts`` calls in all. An error's ``retry_after`` (seconds, set
    by the HTTP SMS gateway from ``Retry-After``) is waited when it is longer than the
    backoff, and one beyond ``max_delay`` is not waited in-process at all: the error is
    raised at once, for a queue to retry later. Permanent errors are raised at once.

    ``retry_transient(lambda: gateway.send(to, text, reference=ref))`` is safe with any
    SMS backend because every one is idempotent per reference.
    """
    if attempts < 1:
        raise ValueError("attempts must be at least 1")
    asked: list[float | None] = [None]

    def note(attempt: int, error: DeliveryError, delay: float) -> None:
        # ``retry`` tells this before each wait, with the error that caused it.
        wanted = getattr(error, "retry_after", None)
        if wanted is not None and wanted > max_delay:
            raise error
        asked[0] = wanted

    def wait(delay: float) -> None:
        sleep(delay if asked[0] is None else max(delay, asked[0]))

    backoff = Backoff(attempts=attempts, base=base_delay, factor=2.0, cap=max_delay)
    return retry(call, backoff=backoff, sleep=wait, rand=rand, on_retry=note)
