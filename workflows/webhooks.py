"""Sending the webhooks outbox: lease due events, sign, POST, log, back off.

At least once: an event leaves the outbox only when its endpoint answered 2xx; anything
else (an error status, a timeout, a refused connection, the sender killed mid-batch)
leaves it ``pending`` and due again, after an exponential backoff or once the lease of a
dead sender runs out. In order per invoice: the ledger only leases an event whose
predecessors with the same order key reached that endpoint (:meth:`WebhookStore.lease`).
Any number of senders may run at once (CLI, workers): leases keep them apart.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from invoicer.delivery.errors import DeliveryError
from invoicer.delivery.webhooks import WebhookPoster, signed_headers
from invoicer.ledger import Ledger
from invoicer.metrics import WEBHOOK_ATTEMPTS, WEBHOOK_SECONDS

__all__ = ["Backoff", "SendReport", "retry_delay", "send_due"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff between attempts at one event: ``base * 2**(n-1)`` seconds
    after the n-th failure, at most ``cap``, scaled by a random factor in
    ``[1 - jitter, 1]`` so that events failed together spread out."""

    base: float = 10.0
    cap: float = 3600.0
    jitter: float = 0.2


def retry_delay(backoff: Backoff, failures: int, rand: Callable[[], float] = random.random
                ) -> float:
    """Seconds to wait after the ``failures``-th failed attempt."""
    delay = min(backoff.cap, backoff.base * 2 ** max(0, failures - 1))
    return delay * (1 - backoff.jitter * rand())


@dataclass
class SendReport:
    """What one :func:`send_due` call did."""

    delivered: int = 0
    failed: int = 0
    deferred: int = 0
    """Leased but not attempted: their endpoint had just failed in this pass."""
    by_status: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, int]:
        return {"delivered": self.delivered, "failed": self.failed,
                "deferred": self.deferred}


def send_due(ledger: Ledger, poster: WebhookPoster, *, batch: int = 100,
             lease: timedelta = timedelta(seconds=60), backoff: Backoff = Backoff(),
             deadline: float | None = None,
             on_attempt: Callable[[str, bool, float], None] | None = None) -> SendReport:
    """Send every due event, batch after batch, until none is due (or ``deadline``, a
    ``time.monotonic()`` value, passes). An endpoint that fails is not tried again in
    this call (the next call, after the backoff, is its retry): its other leased events
    go back, due with the failed one.

    ``lease`` must outlast a batch's POSTs (``batch`` times the poster's timeout, at
    worst) or another sender may send the same events meanwhile (harmless: same ids).
    ``on_attempt(event_type, ok, seconds)`` is told of every POST (metrics).
    """
    report = SendReport()
    failing: dict[int, datetime] = {}  # endpoint -> when its failed event is due again
    while deadline is None or time.monotonic() < deadline:
        due = ledger.webhooks.lease(batch, lease, skip_endpoints=failing)
        if not due:
            break
        for item in due:
            if item.endpoint_id in failing:
                ledger.webhooks.release(item.delivery_id, failing[item.endpoint_id])
                report.deferred += 1
                continue
            body = item.body.encode("utf-8")
            headers = signed_headers(item.secret, body, event_id=item.event_id,
                                     event_type=item.type)
            started = time.monotonic()
            status: int | None = None
            error: str | None = None
            try:
                status = poster.post(item.url, body, headers)
            except DeliveryError as exc:
                error = str(exc)
            elapsed = time.monotonic() - started
            ok = status is not None and 200 <= status < 300
            if not ok and error is None:
                error = f"HTTP {status}"
            retry_at = None
            if not ok:
                retry_at = ledger.clock() + timedelta(
                    seconds=retry_delay(backoff, item.attempts + 1))
                failing[item.endpoint_id] = retry_at
                log.warning("webhook %s (%s) to endpoint %s failed (attempt %s): %s",
                            item.event_id, item.type, item.endpoint_id, item.attempts + 1,
                            error)
            ledger.webhooks.record_attempt(item.delivery_id, ok=ok, status_code=status,
                                           error=error, duration_ms=int(elapsed * 1000),
                                           retry_at=retry_at)
            key = str(status) if status is not None else "no answer"
            report.by_status[key] = report.by_status.get(key, 0) + 1
            if ok:
                report.delivered += 1
            else:
                report.failed += 1
            WEBHOOK_ATTEMPTS.labels(item.type, "delivered" if ok else "failed").inc()
            WEBHOOK_SECONDS.observe(elapsed)
            if on_attempt is not None:
                on_attempt(item.type, ok, elapsed)
    return report
