"""Retrying a transport call in-process: only transient errors, with a backoff that
grows and is jittered, and a server's Retry-After honoured (or left to the queue)."""

from __future__ import annotations

import pytest

from invoicer.delivery.errors import (
    DeliveryError,
    PermanentDeliveryError,
    TransientDeliveryError,
    UnknownDeliveryError,
)
from invoicer.delivery.retry import Backoff, retry, retry_transient


def test_retry_only_retries_transient_errors():
    calls: list[int] = []

    def failing(exc: DeliveryError):
        def call():
            calls.append(1)
            raise exc
        return call

    for exc in (PermanentDeliveryError("no"), UnknownDeliveryError("maybe")):
        calls.clear()
        with pytest.raises(type(exc)):
            retry(failing(exc), sleep=lambda d: None)
        assert len(calls) == 1
    calls.clear()
    sleeps: list[float] = []
    with pytest.raises(TransientDeliveryError):
        retry(failing(TransientDeliveryError("later")), backoff=Backoff(attempts=8, base=1),
              sleep=sleeps.append)
    assert len(calls) == 8 and len(sleeps) == 7
    assert sleeps == sorted(sleeps)  # random, yet never shorter than the one before
    capped: list[float] = []
    with pytest.raises(TransientDeliveryError):
        retry(failing(TransientDeliveryError("later")), backoff=Backoff(attempts=9, cap=10),
              sleep=capped.append)
    assert max(capped) <= 10 and min(capped[4:]) >= 5  # jittered within [cap/2, cap]
    assert Backoff(base=2).delay(0, 0.0) == 1 and Backoff(base=2).delay(3, 0.999) < 16


def test_retry_transient_only_retries_transient_errors():
    calls = []

    def flaky():
        calls.append(1)
        if len(calls) < 3:
            raise TransientDeliveryError("busy")
        return "ok"

    sleeps: list[float] = []
    assert retry_transient(flaky, sleep=sleeps.append, rand=lambda: 0.0) == "ok"
    assert sleeps == [0.25, 0.5]  # half of 0.5 * 2**n, plus no jitter

    def broken():
        raise PermanentDeliveryError("no")

    with pytest.raises(PermanentDeliveryError):
        retry_transient(broken, sleep=sleeps.append)
    with pytest.raises(ValueError):
        retry_transient(flaky, attempts=0)
