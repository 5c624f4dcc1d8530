"""Print batches in the ledger: which paper invoice is printed in which batch, and when.

A paper invoice is in the print queue while its ``print`` delivery is ``pending``.
Joining puts it into its operator's open batch (the delivery stays ``pending``);
sealing freezes a batch's membership and order (by size while joining, or on demand);
closing records the archived PDF and manifests and moves the batch's deliveries to
``sending``; the print shop's acknowledgement moves them to ``sent``. Every step is one
transaction that first locks the batch row (SELECT ... FOR UPDATE on PostgreSQL, BEGIN
IMMEDIATE on SQLite), so a joiner and a sealer never interleave: an invoice either made
it into the batch before the seal or goes to the next one. The workflow around these
statements (making the PDF, pulling, the CLI and API) is ``invoicer.workflows.printing``.

The batch rules live here, once: a document takes ``sheets_for(pages)`` duplex sheets;
a batch seals itself when it reaches :class:`BatchLimits`; its documents are printed in
:func:`print_sort_key` order.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from invoicer.ledger.db import Database, LedgerConflict
from invoicer.ledger.deliveries import announce, entering
from invoicer.ledger.invoices import Invoice
from invoicer.ledger.schema import deliveries, invoices, print_batch_items, print_batches
from invoicer.ledger.webhooks import emit

__all__ = ["BatchLimits", "PrintBatch", "PrintBatchItem", "PrintBatchStore",
           "PrintCountMismatch", "print_sort_key", "sheets_for"]

# Seven values a row: ~700 bound parameters a statement, under SQLite's old limit of 999.
_ROWS_PER_INSERT = 100
# A literal, not a bound parameter: PostgreSQL matches ON CONFLICT to a partial index only
# when it can prove the predicate at planning time.
_OPEN_BATCH = sa.text("state = 'open'")


class PrintCountMismatch(ValueError):
    """A print shop acknowledged other counts than the batch's manifest holds."""


@dataclass(frozen=True, slots=True)
class BatchLimits:
    """The size at which a batch seals itself: documents or duplex sheets, first hit."""

    max_documents: int = 10_000
    max_sheets: int = 20_000

    def __post_init__(self) -> None:
        if self.max_documents < 1 or self.max_sheets < 1:
            raise ValueError(f"batch limits must be positive: {self}")


def sheets_for(pages: int) -> int:
    """Sheets a document takes printed duplex: two pages a sheet."""
    return (pages + 1) // 2


def print_sort_key(postal_code: str | None, account: str, number: str) -> tuple[Any, ...]:
    """The print order: postal code (upper-case, spaces and hyphens ignored, so the same
    code typed two ways sorts together; none last), then account, then invoice number."""
    code = "".join((postal_code or "").upper().split()).replace("-", "")
    return (not code, code, account, number)


@dataclass(frozen=True, slots=True)
class PrintBatch:
    """One ``print_batches`` row (see ``ledger.schema.PRINT_BATCH_STATES``)."""

    id: int
    operator_id: str
    state: str
    max_documents: int
    max_sheets: int
    documents: int
    sheets: int
    created_at: datetime
    sealed_at: datetime | None
    closed_at: datetime | None
    printed_at: datetime | None
    closer: str | None
    closer_since: datetime | None
    last_error: str | None
    pdf_key: str | None
    pdf_sha256: str | None
    pdf_size: int | None
    csv_key: str | None
    json_key: str | None
    printed_documents: int | None
    printed_sheets: int | None

    @property
    def pages(self) -> int:
        """Pages of the batch PDF: every document is padded to whole duplex sheets."""
        return 2 * self.sheets


@dataclass(frozen=True, slots=True)
class PrintBatchItem:
    """One invoice's place in a batch. ``seq`` and ``first_page`` (1-based, in the batch
    PDF) are ``None`` until the batch is sealed; ``pages`` are the invoice's own."""

    invoice_id: int
    batch_id: int
    delivery_id: int
    pages: int
    sheets: int
    seq: int | None
    first_page: int | None
    joined_at: datetime


class PrintBatchStore:
    """The ``print_batches`` and ``print_batch_items`` tables (and the print queue:
    ``print`` deliveries in ``pending``)."""

    def __init__(self, db: Database) -> None:
        self._db = db

    # ---------------------------------------------------------------- joining

    def join(self, invoice_id: int, limits: BatchLimits) -> PrintBatchItem | None:
        """Put one paper invoice into its operator's open batch; idempotent.

        The invoice must be archived with a ``print`` delivery in ``pending``. Returns its
        membership (the existing one when it is already in a batch, whoever put it
        there), or ``None`` when it is in no batch and not in the print queue. A batch
        that reaches its limits is sealed on the spot; ``limits`` apply to batches
        created by this call (an open batch keeps its own).
        """
        with self._db.write() as conn:
            row = conn.execute(
                _print_queue().where(deliveries.c.invoice_id == invoice_id)
            ).one_or_none()
            if row is not None:
                self._join(conn, row.operator_id, [row], limits)
            item = conn.execute(
                sa.select(print_batch_items).where(print_batch_items.c.invoice_id == invoice_id)
            ).one_or_none()
        return PrintBatchItem(**item._mapping) if item else None

    def join_queue(self, operator_id: str | None, limits: BatchLimits, *,
                   chunk: int = 500) -> int:
        """Put every paper invoice of the print queue into its operator's open batch.

        Returns how many joined. Works in transactions of ``chunk`` invoices, oldest
        delivery first; safe to run in several processes at once (each invoice lands
        in exactly one batch, and batches fill up to their limits, then seal).
        """
        joined, after = 0, 0
        while True:
            with self._db.write() as conn:
                query = _print_queue().where(deliveries.c.id > after)
                if operator_id is not None:
                    query = query.where(invoices.c.operator_id == operator_id)
                rows = conn.execute(query.order_by(deliveries.c.id).limit(chunk)).all()
                if not rows:
                    return joined
                after = rows[-1].delivery_id
                by_operator: dict[str, list[Any]] = {}
                for row in rows:
                    by_operator.setdefault(row.operator_id, []).append(row)
                # Operators in one order everywhere: batch rows are locked in that order.
                for op in sorted(by_operator):
                    joined += self._join(conn, op, by_operator[op], limits)

    def _join(self, conn: Connection, operator_id: str, rows: list[Any],
              limits: BatchLimits) -> int:
        """Add queue rows (``invoice_id``, ``delivery_id``, ``pages``) to open batches."""
        now = self._db.now()
        joined = i = 0
        while i < len(rows):
            batch = self._lock_open_batch(conn, operator_id, limits, now)
            documents, sheets = batch.documents, batch.sheets
            take: list[dict[str, Any]] = []
            overflow = False
            while i < len(rows):
                row = rows[i]
                need = sheets_for(row.pages)
                if documents and (documents + 1 > batch.max_documents
                                  or sheets + need > batch.max_sheets):
                    overflow = True  # the next invoice does not fit: this batch is done
                    break
                take.append({"invoice_id": row.invoice_id, "batch_id": batch.id,
                             "delivery_id": row.delivery_id, "pages": row.pages,
                             "sheets": need, "joined_at": now})
                documents, sheets, i = documents + 1, sheets + need, i + 1
                if documents >= batch.max_documents or sheets >= batch.max_sheets:
                    break
            landed = []
            for k in range(0, len(take), _ROWS_PER_INSERT):
                landed += conn.execute(
                    self._db.insert(print_batch_items)
                    .values(take[k : k + _ROWS_PER_INSERT])
                    # Already in a batch (a racing joiner won): not ours to count.
                    .on_conflict_do_nothing(index_elements=[print_batch_items.c.invoice_id])
                    .returning(print_batch_items.c.sheets)
                ).scalars().all()
            documents, sheets = batch.documents + len(landed), batch.sheets + sum(landed)
            conn.execute(print_batches.update().where(print_batches.c.id == batch.id)
                         .values(documents=documents, sheets=sheets))
            joined += len(landed)
            if overflow or documents >= batch.max_documents or sheets >= batch.max_sheets:
                self._seal(conn, batch.id, now)
        return joined

    def _lock_open_batch(self, conn: Connection, operator_id: str, limits: BatchLimits,
                         now: datetime) -> PrintBatch:
        """The operator's open batch, created if missing, locked until the commit."""
        while True:
            # The partial unique index makes this a no-op when an open batch exists (or
            # is being created by a racing transaction, which this one then waits for).
            conn.execute(
                self._db.insert(print_batches)
                .values(operator_id=operator_id, state="open",
                        max_documents=limits.max_documents, max_sheets=limits.max_sheets,
                        documents=0, sheets=0, created_at=now)
                .on_conflict_do_nothing(index_elements=[print_batches.c.operator_id],
                                        index_where=_OPEN_BATCH)
            )
            row = conn.execute(
                sa.select(print_batches)
                .where(print_batches.c.operator_id == operator_id,
                       print_batches.c.state == "open")
                .with_for_update()
            ).one_or_none()
            if row is not None:
                return PrintBatch(**row._mapping)
            # Sealed between the two statements: make the next one.

    # ---------------------------------------------------------------- sealing

    def _seal(self, conn: Connection, batch_id: int, now: datetime) -> None:
        """Freeze the batch: number its documents in print order, then ``closing``.

        The order is computed here, in Python, rather than by ``ORDER BY``: SQLite and
        PostgreSQL collations disagree on punctuation and case, and a batch must print
        in the same order whichever database holds it.
        """
        rows = conn.execute(
            sa.select(print_batch_items.c.invoice_id, print_batch_items.c.sheets,
                      invoices.c.postal_code, invoices.c.account, invoices.c.number)
            .join(invoices, invoices.c.id == print_batch_items.c.invoice_id)
            .where(print_batch_items.c.batch_id == batch_id)
        ).all()
        rows.sort(key=lambda r: (*print_sort_key(r.postal_code, r.account, r.number),
                                 r.invoice_id))
        params, page = [], 1
        for seq, row in enumerate(rows, start=1):
            params.append({"b_invoice": row.invoice_id, "b_seq": seq, "b_first": page})
            page += 2 * row.sheets
        if params:
            conn.execute(
                print_batch_items.update()
                .where(print_batch_items.c.invoice_id == sa.bindparam("b_invoice"))
                .values(seq=sa.bindparam("b_seq"), first_page=sa.bindparam("b_first")),
                params,
            )
        conn.execute(
            print_batches.update()
            .where(print_batches.c.id == batch_id, print_batches.c.state == "open")
            .values(state="closing", sealed_at=now)
        )

    def seal(self, operator_id: str) -> PrintBatch | None:
        """Seal the operator's open batch now (closing on demand); ``None`` if it has none.

        An empty open batch is left open: there is nothing to print.
        """
        with self._db.write() as conn:
            row = conn.execute(
                sa.select(print_batches)
                .where(print_batches.c.operator_id == operator_id,
                       print_batches.c.state == "open")
                .with_for_update()
            ).one_or_none()
            if row is None or row.documents == 0:
                return None
            self._seal(conn, row.id, self._db.now())
        return self.get(row.id)

    # ---------------------------------------------------------------- closing

    def claim(self, batch_id: int, closer: str, *,
              lease: timedelta = timedelta(minutes=15)) -> bool:
        """Become the one process making a sealed batch's PDF; compare-and-set.

        True for exactly one caller while the batch is ``closing`` and nobody holds it,
        or its holder has not finished within ``lease`` (a crashed process: making the
        PDF again yields the same bytes, so taking over is safe).
        """
        now = self._db.now()
        with self._db.write() as conn:
            claimed = conn.execute(
                print_batches.update()
                .where(print_batches.c.id == batch_id, print_batches.c.state == "closing",
                       sa.or_(print_batches.c.closer.is_(None),
                              print_batches.c.closer_since < now - lease))
                .values(closer=closer, closer_since=now)
            ).rowcount
        return claimed == 1

    def release(self, batch_id: int, closer: str, *, error: str | None = None) -> bool:
        """Give a claimed batch back after a failed attempt, recording ``error`` for ops."""
        with self._db.write() as conn:
            released = conn.execute(
                print_batches.update()
                .where(print_batches.c.id == batch_id, print_batches.c.state == "closing",
                       print_batches.c.closer == closer)
                .values(closer=None, closer_since=None, last_error=error)
            ).rowcount
        return released == 1

    def mark_closed(self, batch_id: int, closer: str, *, pdf_key: str, pdf_sha256: str,
                    pdf_size: int, csv_key: str, json_key: str) -> bool:
        """Record the archived batch and hand its invoices to the print shop; atomic.

        Only the claim's holder can do it (``closer``), once: the batch becomes
        ``closed`` and its ``pending`` print deliveries ``sending`` (an attempt counted,
        ``message_id`` = ``B<batch id>``) in the same transaction. False when the claim
        was lost (taken over after the lease ran out, or already closed).
        """
        now = self._db.now()
        with self._db.write() as conn:
            closed = conn.execute(
                print_batches.update()
                .where(print_batches.c.id == batch_id, print_batches.c.state == "closing",
                       print_batches.c.closer == closer)
                .values(state="closed", closed_at=now, pdf_key=pdf_key,
                        pdf_sha256=pdf_sha256, pdf_size=pdf_size, csv_key=csv_key,
                        json_key=json_key, last_error=None)
            ).rowcount
            if closed:
                conn.execute(
                    deliveries.update()
                    .where(deliveries.c.id.in_(_batch_deliveries(batch_id)),
                           deliveries.c.state == "pending")
                    .values(**entering("sending", now), message_id=f"B{batch_id}")
                )
        return closed == 1

    def acknowledge(self, batch_id: int, printed_documents: int, printed_sheets: int) -> bool:
        """The print shop printed the batch: its deliveries become ``sent``; atomic.

        The counts must be the batch's own (else :class:`PrintCountMismatch`, nothing
        changes). True when this call acknowledged it, False when it already was (a
        repeated acknowledgement is a no-op). A batch not yet closed raises
        :class:`~ledger.db.LedgerConflict`; an unknown one ``LookupError``.
        """
        now = self._db.now()
        with self._db.write() as conn:
            row = conn.execute(
                sa.select(print_batches).where(print_batches.c.id == batch_id)
                .with_for_update()
            ).one_or_none()
            if row is None:
                raise LookupError(f"no print batch with id {batch_id}")
            if (printed_documents, printed_sheets) != (row.documents, row.sheets):
                raise PrintCountMismatch(
                    f"batch {batch_id} has {row.documents} documents on {row.sheets} "
                    f"sheets, not {printed_documents} on {printed_sheets}"
                )
            if row.state == "printed":
                return False
            if row.state != "closed":
                raise LedgerConflict(f"batch {batch_id} is {row.state}, not closed")
            conn.execute(
                print_batches.update()
                .where(print_batches.c.id == batch_id, print_batches.c.state == "closed")
                .values(state="printed", printed_at=now,
                        printed_documents=printed_documents, printed_sheets=printed_sheets)
            )
            sent = conn.execute(
                deliveries.update()
                .where(deliveries.c.id.in_(_batch_deliveries(batch_id)),
                       deliveries.c.state == "sending")
                .values(entering("sent", now))
                .returning(deliveries.c.id)
            ).scalars().all()
            emit(self._db, conn, "print.acknowledged", row.operator_id,
                 {"batch": {"id": batch_id, "documents": printed_documents,
                            "sheets": printed_sheets}},
                 order_key=f"print_batch:{batch_id}")
            announce(self._db, conn, sent, "sent")
        return True

    # ---------------------------------------------------------------- lookups

    def get(self, batch_id: int) -> PrintBatch | None:
        """The batch, or ``None``."""
        with self._db.read() as conn:
            row = conn.execute(
                sa.select(print_batches).where(print_batches.c.id == batch_id)
            ).one_or_none()
        return PrintBatch(**row._mapping) if row else None

    def in_states(self, states: Iterable[str], operator_id: str | None = None
                  ) -> list[PrintBatch]:
        """Batches in ``states`` (of one operator if given), oldest first."""
        query = (sa.select(print_batches)
                 .where(print_batches.c.state.in_(sorted(states)))
                 .order_by(print_batches.c.id))
        if operator_id is not None:
            query = query.where(print_batches.c.operator_id == operator_id)
        with self._db.read() as conn:
            rows = conn.execute(query).all()
        return [PrintBatch(**r._mapping) for r in rows]

    def documents(self, batch_id: int) -> list[tuple[PrintBatchItem, Invoice]]:
        """A batch's documents with their invoices, in print order once it is sealed."""
        query = (sa.select(print_batch_items, invoices)
                 .join(invoices, invoices.c.id == print_batch_items.c.invoice_id)
                 .where(print_batch_items.c.batch_id == batch_id)
                 .order_by(print_batch_items.c.seq, print_batch_items.c.invoice_id))
        with self._db.read() as conn:
            rows = conn.execute(query).all()
        n = len(print_batch_items.c)
        return [(PrintBatchItem(*row[:n]), Invoice(*row[n:])) for row in rows]

    def item(self, invoice_id: int) -> PrintBatchItem | None:
        """Which batch an invoice is in (and where), or ``None``."""
        with self._db.read() as conn:
            row = conn.execute(
                sa.select(print_batch_items).where(print_batch_items.c.invoice_id == invoice_id)
            ).one_or_none()
        return PrintBatchItem(**row._mapping) if row else None


def _print_queue() -> sa.Select[Any]:
    """Paper invoices waiting for a batch: archived, print delivery pending, in none."""
    return (
        sa.select(invoices.c.operator_id, deliveries.c.invoice_id,
                  deliveries.c.id.label("delivery_id"), invoices.c.pages)
        .select_from(
            deliveries.join(invoices, invoices.c.id == deliveries.c.invoice_id)
            .outerjoin(print_batch_items,
                       print_batch_items.c.invoice_id == deliveries.c.invoice_id)
        )
        .where(deliveries.c.channel == "print", deliveries.c.state == "pending",
               invoices.c.status == "archived", invoices.c.pages > 0,
               print_batch_items.c.invoice_id.is_(None))
    )


def _batch_deliveries(batch_id: int) -> sa.Select[Any]:
    return sa.select(print_batch_items.c.delivery_id).where(
        print_batch_items.c.batch_id == batch_id)
