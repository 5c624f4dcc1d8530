"""What the ledger shows people: read-only queries for the CLI and the operations API.

``invoicer runs`` and ``invoicer runs show`` (a run's progress, from its chunks, and its
invoices' deliveries), ``invoicer deliveries`` and ``GET /v1/operations/deliveries``
(deliveries that need a person), ``invoicer print list`` and the print-batch listings
of the API. Nothing here writes; the stores (``ledger.runs``, ...) own every change.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from datetime import datetime, timedelta

import sqlalchemy as sa

from invoicer.ledger.db import Database
from invoicer.ledger.deliveries import Delivery
from invoicer.ledger.invoices import Invoice
from invoicer.ledger.print_batches import PrintBatch
from invoicer.ledger.runs import Reject, Run
from invoicer.ledger.schema import (
    TERMINAL_CHUNK_STATES,
    deliveries,
    invoices,
    print_batches,
    rejects,
    run_chunks,
    runs,
    webhook_events,
)

__all__ = ["ATTENTION", "Reports", "RunProgress"]

#: Delivery states that need a person (or at least a look) whatever their age: failed
#: for good, outcome unknown, bounced (with the fallback that replaced it, if any).
ATTENTION = ("failed_permanent", "unknown", "bounced")


@dataclass(frozen=True, slots=True)
class RunProgress:
    """Where a bill run stands, from its chunk rows: chunks and lines by state, and
    record outcomes summed over finished chunks."""

    run: Run
    chunks: Mapping[str, int]
    lines: Mapping[str, int]
    outcomes: Mapping[str, int]
    last_change: datetime | None

    @property
    def planned(self) -> bool:
        """The whole source is split into chunks (``expected`` is set)."""
        return self.run.expected is not None

    @property
    def total_chunks(self) -> int:
        return sum(self.chunks.values())

    @property
    def records_done(self) -> int:
        """Records of finished chunks (``done`` or ``failed``)."""
        return sum(n for s, n in self.lines.items() if s in TERMINAL_CHUNK_STATES)

    @property
    def finished(self) -> bool:
        """Planned and every chunk terminal."""
        return self.planned and all(
            s in TERMINAL_CHUNK_STATES for s, n in self.chunks.items() if n)


class Reports:
    """Read-only views over the whole ledger."""

    def __init__(self, db: Database) -> None:
        self._db = db

    # ---------------------------------------------------------------- runs

    def run_progress(self, run_id: int) -> RunProgress | None:
        """Chunks and lines by state, and the outcomes of finished chunks."""
        with self._db.read() as conn:
            run = conn.execute(sa.select(runs).where(runs.c.id == run_id)).one_or_none()
            if run is None:
                return None
            by_state = conn.execute(
                sa.select(run_chunks.c.state, sa.func.count(),
                          sa.func.coalesce(sa.func.sum(run_chunks.c.lines), 0),
                          sa.func.max(run_chunks.c.updated_at))
                .where(run_chunks.c.run_id == run_id).group_by(run_chunks.c.state)).all()
            finished = conn.execute(
                sa.select(run_chunks.c.outcomes)
                .where(run_chunks.c.run_id == run_id,
                       run_chunks.c.state.in_(TERMINAL_CHUNK_STATES))
            ).scalars().all()
        outcomes: dict[str, int] = {}
        for counts in finished:
            for k, n in (counts or {}).items():
                outcomes[k] = outcomes.get(k, 0) + int(n)
        changes = [r[3] for r in by_state if r[3] is not None]
        return RunProgress(
            run=Run(**run._mapping),
            chunks={r[0]: int(r[1]) for r in by_state},
            lines={r[0]: int(r[2]) for r in by_state},
            outcomes=outcomes,
            last_change=max(changes) if changes else None,
        )

    def recent_runs(self, limit: int = 20) -> list[RunProgress]:
        """The newest runs with their progress."""
        with self._db.read() as conn:
            ids = conn.execute(sa.select(runs.c.id).order_by(runs.c.id.desc())
                               .limit(limit)).scalars().all()
        return [p for p in (self.run_progress(i) for i in ids) if p is not None]

    def run_deliveries(self, run_id: int) -> list[tuple[str, str, int]]:
        """``(channel, state, invoices)`` of the invoices this run issued."""
        with self._db.read() as conn:
            rows = conn.execute(
                sa.select(deliveries.c.channel, deliveries.c.state, sa.func.count())
                .join(invoices, invoices.c.id == deliveries.c.invoice_id)
                .where(invoices.c.run_id == run_id)
                .group_by(deliveries.c.channel, deliveries.c.state)
                .order_by(deliveries.c.channel, deliveries.c.state)).all()
        return [(channel, state, int(n)) for channel, state, n in rows]

    def run_einvoices(self, run_id: int) -> list[tuple[str, int, int]]:
        """``(format, invoices, with XML archived beside the PDF)`` of the e-invoices
        this run issued (Factur-X counts 0 beside: its XML is inside the PDF)."""
        with self._db.read() as conn:
            rows = conn.execute(
                sa.select(invoices.c.einvoice_format, sa.func.count(),
                          sa.func.count(invoices.c.einvoice_sha256))
                .where(invoices.c.run_id == run_id, invoices.c.status == "archived",
                       invoices.c.einvoice_format.is_not(None))
                .group_by(invoices.c.einvoice_format)
                .order_by(invoices.c.einvoice_format)).all()
        return [(fmt, int(n), int(beside)) for fmt, n, beside in rows]

    # ---------------------------------------------------------------- deliveries

    def deliveries(self, states: Iterable[str], *, older_than: datetime | None = None,
                   limit: int = 1000, operators: Iterable[str] | None = None,
                   channels: Iterable[str] | None = None
                   ) -> list[tuple[Delivery, Invoice]]:
        """Deliveries in ``states`` (oldest change first) with their invoices.

        ``older_than`` keeps those not touched since then; ``operators`` keeps those of
        these operators' invoices.
        """
        where = [deliveries.c.state.in_(sorted(states))]
        if operators is not None:
            where.append(invoices.c.operator_id.in_(sorted(operators)))
        if older_than is not None:
            where.append(deliveries.c.updated_at < older_than)
        if channels is not None:
            where.append(deliveries.c.channel.in_(sorted(channels)))
        stmt = (sa.select(deliveries, invoices)
                .join(invoices, invoices.c.id == deliveries.c.invoice_id)
                .where(*where).order_by(deliveries.c.updated_at).limit(limit))
        with self._db.read() as conn:
            rows = conn.execute(stmt).all()
        n = len(deliveries.c)
        return [(Delivery(*row[:n]), Invoice(*row[n:])) for row in rows]

    def needing_attention(self, stale: timedelta, *, limit: int = 200,
                          operators: Iterable[str] | None = None
                          ) -> list[tuple[Delivery, Invoice]]:
        """Deliveries not in a final state, or that need a person: failed for good,
        outcome unknown, bounced (up to ``limit``); e-mails and SMS still queued
        (``pending``: a dead server, a retry to come; up to ``limit``); those stuck in
        ``sending`` for ``stale`` (up to ``limit``). A paper invoice in the print queue
        is not listed: waiting for its batch is its normal state."""
        ops = None if operators is None else list(operators)
        rows = self.deliveries(ATTENTION, limit=limit, operators=ops)
        rows += self.deliveries(["pending"], limit=limit, operators=ops,
                                channels=("email", "sms"))
        rows += self.deliveries(["sending"], older_than=self._db.now() - stale, limit=limit,
                                operators=ops)
        return rows

    def replacements(self, delivery_ids: Iterable[int]) -> dict[int, Delivery]:
        """The fallback that replaced each of ``delivery_ids`` (those that have one)."""
        ids = sorted(set(delivery_ids))
        if not ids:
            return {}
        with self._db.read() as conn:
            rows = conn.execute(sa.select(deliveries)
                                .where(deliveries.c.replaces_id.in_(ids))).all()
        return {r.replaces_id: Delivery(**r._mapping) for r in rows}

    def invoice_deliveries(self, invoice_id: int) -> list[Delivery]:
        """Every delivery of one invoice, fallbacks included, in the order they were
        made."""
        with self._db.read() as conn:
            rows = conn.execute(sa.select(deliveries)
                                .where(deliveries.c.invoice_id == invoice_id)
                                .order_by(deliveries.c.id)).all()
        return [Delivery(**r._mapping) for r in rows]

    # ---------------------------------------------------------------- conflicts

    def conflicts(self, operators: Iterable[str], *, limit: int = 200) -> list[Reject]:
        """Lines dead-lettered as ``conflict`` (an invoice number sent again with other
        content) for these operators, newest first."""
        ops = set(operators)
        found: list[Reject] = []
        with self._db.read() as conn:
            rows = conn.execute(
                sa.select(*(rejects.c[f.name] for f in fields(Reject)))
                .join(invoices, invoices.c.number == rejects.c.invoice_number)
                .where(rejects.c.reason == "conflict", invoices.c.operator_id.in_(ops))
                .order_by(rejects.c.id.desc())
                .limit(limit * 2)).all()
        seen = set()
        for row in rows:
            # Numbers are unique per operator only: the line itself says whose it is.
            reject = Reject(**row._mapping)
            if reject.id in seen or _operator_of(reject.raw) not in ops:
                continue
            seen.add(reject.id)
            found.append(reject)
        return found[:limit]

    # ---------------------------------------------------------------- print batches

    def print_batches(self, operators: Iterable[str] | None = None, *,
                      states: Iterable[str] | None = None,
                      limit: int | None = None) -> list[PrintBatch]:
        """Batches, newest first, optionally of some operators and in some states."""
        query = sa.select(print_batches).order_by(print_batches.c.id.desc())
        if operators is not None:
            query = query.where(print_batches.c.operator_id.in_(sorted(operators)))
        if states is not None:
            query = query.where(print_batches.c.state.in_(sorted(states)))
        if limit is not None:
            query = query.limit(limit)
        with self._db.read() as conn:
            rows = conn.execute(query).all()
        return [PrintBatch(**r._mapping) for r in rows]

    # ---------------------------------------------------------------- metrics

    def counts(self) -> LedgerCounts:
        """What the ledger holds, counted: the gauges of ``/metrics``. One grouped scan
        per table; the caller decides how often (a scrape every 15 s is the norm)."""
        with self._db.read() as conn:
            by_delivery = conn.execute(
                sa.select(deliveries.c.channel, deliveries.c.state, sa.func.count())
                .group_by(deliveries.c.channel, deliveries.c.state)).all()
            by_invoice = conn.execute(
                sa.select(invoices.c.status, sa.func.count())
                .group_by(invoices.c.status)).all()
            by_batch = conn.execute(
                sa.select(print_batches.c.state, sa.func.count())
                .group_by(print_batches.c.state)).all()
            rejected = conn.execute(sa.select(sa.func.count()).select_from(rejects)).scalar()
            by_event = conn.execute(
                sa.select(webhook_events.c.type, sa.func.count())
                .group_by(webhook_events.c.type)).all()
        return LedgerCounts(
            deliveries={(c, s): int(n) for c, s, n in by_delivery},
            invoices={s: int(n) for s, n in by_invoice},
            print_batches={s: int(n) for s, n in by_batch},
            rejected=int(rejected or 0),
            events={t: int(n) for t, n in by_event})


@dataclass(frozen=True)
class LedgerCounts:
    """Rows of the ledger by state (see :meth:`Reports.counts`)."""

    deliveries: Mapping[tuple[str, str], int]
    """``(channel, state)`` -> deliveries."""
    invoices: Mapping[str, int]
    """``claimed``/``archived`` -> invoices."""
    print_batches: Mapping[str, int]
    """batch state -> batches."""
    rejected: int
    """Dead-lettered records."""
    events: Mapping[str, int] = field(default_factory=dict)
    """Event type -> events recorded (every bounce and fallback ever announced)."""


def _operator_of(raw: bytes) -> str | None:
    try:
        return json.loads(raw)["operator"]["id"]
    except (ValueError, KeyError, TypeError):
        return None
