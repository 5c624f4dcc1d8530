"""The reconciler: what dead workers and lost messages left behind, handed out again.

Brokers deliver at least once, but a worker killed mid-task, a broker restarted without
persistence or a task whose retries ran out can still leave work undone. The ledger
knows what is undone; this finds it and sends it again, safe to run anywhere, any
number of times at once (every step is a compare-and-set in the ledger). Celery beat
runs it every ``INVOICER_RECONCILE_EVERY`` seconds; ``invoicer reconcile`` by hand.
Runs executed by the CLI are not its business: they name their source by path, not
URL, and the CLI finishes or abandons its own chunks.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from invoicer.ledger import Ledger
from invoicer.runs.broker import TASK_BILL_RUN, TASK_CHUNK, Send
from invoicer.settings import Settings

__all__ = ["reconcile"]

log = logging.getLogger(__name__)

#: Rows looked at per pass, per kind.
PASS_LIMIT = 10_000


def reconcile(ledger: Ledger, settings: Settings, send: Send, *,
              waiting: int | Callable[[], int], now: datetime | None = None
              ) -> dict[str, int]:
    """Re-enqueue what dead workers and lost messages left behind; returns what it did.

    - chunks not terminal and untouched for ``stale_after`` (their task died with its
      worker, its message was lost in a broker restart, or its retries ran out);
    - runs whose coordinator never finished splitting the source;
    - e-mails and SMS stuck in ``sending`` for ``stale_after``: their sender is dead
      (every sender runs inside a task with a hard time limit). Those it had not handed
      to the server yet go back to ``pending`` and the chunk's next attempt sends them
      with the same Message-ID / reference; an e-mail whose data had gone out
      (``handed_off_at``) may have been delivered: it becomes ``unknown`` for a person
      (``invoicer deliveries``, ``invoicer resend``), never sent twice blindly.

    ``waiting`` is the number of messages in the queue (or how to read it).
    """
    now = now or datetime.now(UTC)
    cutoff = now - timedelta(seconds=settings.effective_stale_after())
    stats = Counter[str]()
    # A ``queued`` chunk may simply be waiting its turn behind a long run (a bill run of
    # millions enqueues far more than workers take in an hour): while messages wait in
    # the queue, only chunks whose task died (``running``) or was never sent
    # (``planned``) are re-enqueued; a lost ``queued`` message is found once the queue
    # has drained. Re-enqueueing everything stale would flood the queue with copies.
    waiting = waiting() if callable(waiting) else waiting
    for d in ledger.deliveries.stuck("sending", cutoff, channels=("email", "sms"),
                                     limit=PASS_LIMIT):
        if d.handed_off_at is not None:
            if ledger.deliveries.transition(
                    d.id, "sending", "unknown",
                    error="the worker died after handing the message to the server: it "
                          "may have been delivered, so it is not sent again automatically"):
                log.warning("delivery %s (%s of invoice id %s): sender died after the "
                            "hand-off: outcome unknown", d.id, d.channel, d.invoice_id)
                stats["deliveries_unknown"] += 1
            continue
        if ledger.deliveries.transition(
                d.id, "sending", "pending",
                error="the worker sending it died; sent again with the same identifier"):
            log.warning("delivery %s (%s of invoice id %s) was stuck in sending: re-queued",
                        d.id, d.channel, d.invoice_id)
            stats["deliveries_requeued"] += 1
    for chunk in ledger.runs.stale_chunks(cutoff, limit=PASS_LIMIT):
        if chunk.state == "queued" and waiting:
            stats["queued_chunks_left_waiting"] += 1
            continue
        if ledger.runs.requeue_stale_chunk(chunk.run_id, chunk.seq, cutoff):
            send(TASK_CHUNK, (chunk.run_id, chunk.seq))
            stats["chunks_requeued"] += 1
    for run in ledger.runs.unplanned(cutoff):
        send(TASK_BILL_RUN, (run.source, run.id))
        stats["runs_replanned"] += 1
    if stats:
        log.warning("reconciler: %s", dict(stats))
    return dict(stats)
