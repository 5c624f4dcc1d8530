"""Invoices in the ledger: claimed once, archived once, and their payment status.

One row per (operator, invoice number) holds the facts the API, the print batches and
the subscriber pages need without opening the archive. A number is *claimed* by exactly
one caller however many race (the unique key decides), and *archived* once: the first
archived bytes are the invoice, for good. The billing system's payment updates change
the row's payment status and leave one history row per change.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, fields
from datetime import date, datetime
from decimal import Decimal
from typing import Any, NamedTuple

import sqlalchemy as sa

from invoicer.ledger.db import IN_CHUNK, Database, LedgerConflict
from invoicer.ledger.schema import PAYMENT_STATUSES, invoices, payment_events
from invoicer.ledger.webhooks import emit

__all__ = ["Claim", "Invoice", "InvoiceStore", "LinkedDocument", "ListedInvoice",
           "PaymentEvent"]


@dataclass(frozen=True, slots=True)
class Invoice:
    """One ``invoices`` row. Money is ``Decimal``; instants are UTC-aware."""

    id: int
    operator_id: str
    number: str
    kind: str
    account: str
    period_start: date
    period_end: date
    issue_date: date
    due_date: date
    total: Decimal
    currency: str
    locale: str
    delivery_mode: str
    postal_code: str | None
    country: str | None
    phone: str | None
    record_sha256: str | None
    status: str
    sha256: str | None
    archive_key: str | None
    renderer_version: str | None
    pages: int | None
    size: int | None
    payment_status: str
    paid_amount: Decimal | None
    paid_on: date | None
    run_id: int | None
    source_line: int | None
    created_at: datetime
    updated_at: datetime
    archived_at: datetime | None
    content_sha256: str | None = None
    previous_number: str | None = None
    shock_share: str | None = None
    charges_by_category: dict[str, str] | None = None
    einvoice_format: str | None = None
    einvoice_sha256: str | None = None
    einvoice_size: int | None = None

    @property
    def einvoice_key(self) -> str | None:
        """Where the e-invoice XML is archived (beside the PDF, ``….xml``), or None when
        the invoice has none apart from its PDF (none at all, or Factur-X inside it)."""
        return _einvoice_key(self.archive_key, self.einvoice_sha256)


def _einvoice_key(archive_key: str | None, einvoice_sha256: str | None) -> str | None:
    if not einvoice_sha256 or not archive_key:
        return None
    return archive_key.removesuffix(".pdf") + ".xml"


class ListedInvoice(NamedTuple):
    """An archived invoice as a subscriber's history lists it: the columns of
    :class:`Invoice` the list shows (and signs its links with), the same names.

    A history reads 13 rows on every request: the other twenty columns (three
    instants, the charges' JSON, hashes) cost more CPU to fetch and convert than the
    query itself (:meth:`InvoiceStore.listed`). A named tuple rather than a frozen
    dataclass, as immutable: one is made in 0.3 us against 1.9 us (a frozen
    dataclass sets each of its 18 fields through ``object.__setattr__``)."""

    operator_id: str
    number: str
    kind: str
    account: str
    period_start: date
    period_end: date
    issue_date: date
    due_date: date
    total: Decimal
    currency: str
    locale: str
    pages: int | None
    payment_status: str
    paid_amount: Decimal | None
    paid_on: date | None
    archive_key: str | None
    einvoice_format: str | None
    einvoice_sha256: str | None

    @property
    def einvoice_key(self) -> str | None:
        """As :attr:`Invoice.einvoice_key`."""
        return _einvoice_key(self.archive_key, self.einvoice_sha256)


@dataclass(frozen=True, slots=True)
class LinkedDocument:
    """An archived invoice as a download by its link needs it: the columns of
    :class:`Invoice` that say which archived object to send (the same names).

    A download reads one row on every request: the whole row's other 31 columns (three
    instants, the charges' JSON) cost more to fetch and convert than what is used
    (:meth:`InvoiceStore.linked_document_async`)."""

    id: int
    number: str
    sha256: str | None
    archive_key: str | None
    size: int | None
    einvoice_sha256: str | None
    einvoice_size: int | None

    @property
    def einvoice_key(self) -> str | None:
        """As :attr:`Invoice.einvoice_key`."""
        return _einvoice_key(self.archive_key, self.einvoice_sha256)


@dataclass(frozen=True, slots=True)
class Claim:
    """The answer to :meth:`InvoiceStore.claim`.

    ``created`` is true for exactly one caller per (operator, number), however many race.
    When it is false, ``invoice`` is the row that was already there: ``status`` says
    whether it is done (``archived``) or still ``claimed`` (in progress, or abandoned by
    a crashed worker: rendering is deterministic and archiving create-only, so redoing
    it is safe), and ``run_id``/``source_line`` tell a repeat within the same file
    (same run, other line) from a redelivery (same run, same line).
    """

    created: bool
    invoice: Invoice

    @property
    def status(self) -> str:
        return self.invoice.status

    @property
    def done(self) -> bool:
        return self.invoice.status == "archived"


@dataclass(frozen=True, slots=True)
class PaymentEvent:
    """One change of an invoice's payment status, as the billing system reported it."""

    id: int
    invoice_id: int
    status: str
    amount: Decimal | None
    paid_on: date | None
    source: str
    recorded_at: datetime


# The subscriber API's two reads (its history, and the invoice a link opens), built once
# with bound parameters: building and hashing a new SELECT of 38 columns cost more CPU
# than PostgreSQL's answer to it. Columns in the order of :class:`Invoice`'s fields, so
# that a row is the dataclass's arguments as they come.
_COLUMNS = [invoices.c[f.name] for f in fields(Invoice)]


def _account_rows(*columns: sa.ColumnElement[Any]) -> sa.Select:
    """An account's archived invoices, newest first, at most ``limit``."""
    return (
        sa.select(*columns)
        .where(invoices.c.operator_id == sa.bindparam("operator_id"),
               invoices.c.account == sa.bindparam("account"),
               invoices.c.status == "archived")
        .order_by(invoices.c.issue_date.desc(), invoices.c.number.desc())
        .limit(sa.bindparam("limit", type_=sa.Integer))
    )


def _account_invoice(*columns: sa.ColumnElement[Any]) -> sa.Select:
    """One archived invoice, by operator and number, if it is the account's."""
    return sa.select(*columns).where(
        invoices.c.operator_id == sa.bindparam("operator_id"),
        invoices.c.number == sa.bindparam("number"),
        invoices.c.account == sa.bindparam("account"), invoices.c.status == "archived")


_FOR_ACCOUNT = _account_rows(*_COLUMNS)
# A history's rows (ListedInvoice): the same query, fewer columns.
_LISTED = _account_rows(*(invoices.c[name] for name in ListedInvoice._fields))
_ACCOUNT_INVOICE = _account_invoice(*_COLUMNS)
# The invoice a link downloads (LinkedDocument): the same condition, fewer columns.
_LINKED_DOCUMENT = _account_invoice(*(invoices.c[f.name] for f in fields(LinkedDocument)))


class InvoiceStore:
    """The ``invoices`` and ``payment_events`` tables."""

    def __init__(self, db: Database) -> None:
        self._db = db
        # The two statements every invoice of a bill run executes, built once: building
        # and coercing a statement per call cost as much as running it on SQLite.
        self._claim_stmt = (
            db.insert(invoices)
            .on_conflict_do_nothing(index_elements=[invoices.c.operator_id, invoices.c.number])
            .returning(*invoices.c)
        )
        self._mark_archived_stmt = (
            invoices.update()
            .where(invoices.c.id == sa.bindparam("invoice_id"),
                   invoices.c.status == "claimed")
            .values(status="archived", sha256=sa.bindparam("sha256"),
                    archive_key=sa.bindparam("archive_key"),
                    renderer_version=sa.bindparam("renderer_version"),
                    pages=sa.bindparam("pages"), size=sa.bindparam("size"),
                    einvoice_format=sa.bindparam("einvoice_format", type_=sa.String),
                    einvoice_sha256=sa.bindparam("einvoice_sha256", type_=sa.String),
                    einvoice_size=sa.bindparam("einvoice_size", type_=sa.BigInteger),
                    run_id=sa.func.coalesce(sa.bindparam("run_id", type_=sa.BigInteger),
                                            invoices.c.run_id),
                    source_line=sa.func.coalesce(
                        sa.bindparam("source_line", type_=sa.Integer),
                        invoices.c.source_line),
                    archived_at=sa.bindparam("now"), updated_at=sa.bindparam("now"))
            .returning(*invoices.c)
        )
        # The claim of a bill run: the previous invoice the bill-shock sentence compares
        # with (see :meth:`previous`) found by the insert itself, one statement instead
        # of a read and then the insert (which keeps the first claim's anyway).
        earlier = invoices.alias("earlier")
        self._claim_finding_previous_stmt = (
            db.insert(invoices)
            .values(previous_number=(
                sa.select(earlier.c.number)
                .where(earlier.c.operator_id == sa.bindparam("previous_operator"),
                       earlier.c.account == sa.bindparam("previous_account"),
                       earlier.c.status == "archived", earlier.c.kind == "original",
                       earlier.c.period_end < sa.bindparam("previous_before"))
                .order_by(earlier.c.period_end.desc(), earlier.c.number.desc())
                .limit(1).scalar_subquery()))
            .on_conflict_do_nothing(index_elements=[invoices.c.operator_id, invoices.c.number])
            .returning(*invoices.c)
        )
        # Asked before every claim (the bill-shock comparison), so built once as well.
        self._previous_stmt = (
            sa.select(invoices)
            .where(invoices.c.operator_id == sa.bindparam("operator_id"),
                   invoices.c.account == sa.bindparam("account"),
                   invoices.c.status == "archived", invoices.c.kind == "original",
                   invoices.c.period_end < sa.bindparam("before"))
            .order_by(invoices.c.period_end.desc(), invoices.c.number.desc())
            .limit(1)
        )

    # ---------------------------------------------------------------- claim, archive

    def claim(
        self,
        operator_id: str,
        number: str,
        *,
        account: str,
        period_start: date,
        period_end: date,
        issue_date: date,
        due_date: date,
        total: Decimal,
        currency: str,
        locale: str,
        delivery_mode: str,
        kind: str = "original",
        postal_code: str | None = None,
        country: str | None = None,
        phone: str | None = None,
        record_sha256: str | None = None,
        content_sha256: str | None = None,
        previous_number: str | None = None,
        shock_share: str | None = None,
        charges_by_category: dict[str, str] | None = None,
        run_id: int | None = None,
        source_line: int | None = None,
        previous_before: date | None = None,
    ) -> Claim:
        """Take an invoice number, or find who already has it; atomic under any race.

        ``INSERT ... ON CONFLICT (operator_id, number) DO NOTHING RETURNING``: the one
        caller whose insert lands gets ``created=True``; every other gets the existing
        row. On PostgreSQL a racing insert waits for the winner's commit, so the row is
        always there to read; on SQLite the write lock serializes the two statements.

        ``content_sha256`` (the record's content, :func:`billing.content_sha256`) and
        ``previous_number`` (the invoice the bill-shock sentence compares with) are
        fixed by the first claim: a caller that finds the row compares its content with
        it (``conflict``) and renders with the same previous invoice.
        ``shock_share`` (a decimal string) is the bill-shock share it is rendered with;
        ``charges_by_category`` (category -> decimal string) is what a later invoice of
        the account compares with. ``previous_before`` (instead of ``previous_number``):
        the insert itself finds the previous invoice, :meth:`previous` of the account
        before that date, in the same statement.
        """
        if previous_before is not None and previous_number is not None:
            raise ValueError("previous_number or previous_before, not both")
        now = self._db.now()
        values = {
            "operator_id": operator_id, "number": number, "kind": kind, "account": account,
            "period_start": period_start, "period_end": period_end,
            "issue_date": issue_date, "due_date": due_date, "total": total,
            "currency": currency, "locale": locale, "delivery_mode": delivery_mode,
            "postal_code": postal_code, "country": country, "phone": phone,
            "record_sha256": record_sha256, "content_sha256": content_sha256,
            "previous_number": previous_number, "shock_share": shock_share,
            "charges_by_category": charges_by_category, "status": "claimed",
            "payment_status": "unpaid", "run_id": run_id, "source_line": source_line,
            "created_at": now, "updated_at": now,
        }
        stmt = self._claim_stmt
        if previous_before is not None:
            del values["previous_number"]
            values.update(previous_operator=operator_id, previous_account=account,
                          previous_before=previous_before)
            stmt = self._claim_finding_previous_stmt
        with self._db.write() as conn:
            row = conn.execute(stmt, values).one_or_none()
            if row is not None:
                return Claim(True, Invoice(**row._mapping))
            row = conn.execute(
                sa.select(invoices).where(
                    invoices.c.operator_id == operator_id, invoices.c.number == number
                )
            ).one()
        return Claim(False, Invoice(**row._mapping))

    def mark_archived(
        self,
        invoice_id: int,
        *,
        sha256: str,
        archive_key: str,
        renderer_version: str,
        pages: int | None = None,
        size: int | None = None,
        einvoice: tuple[str, str | None, int | None] | None = None,
        run_id: int | None = None,
        source_line: int | None = None,
    ) -> bool:
        """Record that the invoice's PDF is in the archive: the invoice is done.

        Returns True if this call did it, False if it was already archived with the same
        checksum (a retry or a racing worker: fine). A different checksum raises
        :class:`LedgerConflict`; the first archived bytes are the invoice, for good.
        ``run_id`` and ``source_line`` (when given) name the line that archived it: the
        invoice is counted there, whichever run claimed it first. ``einvoice`` is
        ``(format, sha256, size)`` of the XML archived beside the PDF (sha256 and size
        None for Factur-X, whose XML is inside the PDF).
        """
        fmt, xml_sha, xml_size = einvoice or (None, None, None)
        now = self._db.now()
        with self._db.write() as conn:
            done = conn.execute(self._mark_archived_stmt, {
                "invoice_id": invoice_id, "sha256": sha256, "archive_key": archive_key,
                "renderer_version": renderer_version, "pages": pages, "size": size,
                "einvoice_format": fmt, "einvoice_sha256": xml_sha, "einvoice_size": xml_size,
                "run_id": run_id, "source_line": source_line, "now": now}).one_or_none()
            if done is not None:
                row = done
                emit(self._db, conn, "invoice.issued", row.operator_id,
                     {"invoice": _invoice_data(row)}, invoice_id=invoice_id)
                return True
            row = conn.execute(
                sa.select(invoices.c.status, invoices.c.sha256).where(invoices.c.id == invoice_id)
            ).one_or_none()
        if row is None:
            raise LookupError(f"no invoice with id {invoice_id}")
        if row.sha256 != sha256:
            raise LedgerConflict(
                f"invoice {invoice_id} is archived with sha256 {row.sha256}, not {sha256}"
            )
        return False

    # ---------------------------------------------------------------- lookups

    def get(self, operator_id: str, number: str) -> Invoice | None:
        """The invoice with that number at that operator, or ``None``."""
        return self._one((invoices.c.operator_id == operator_id) & (invoices.c.number == number))

    def get_by_id(self, invoice_id: int) -> Invoice | None:
        """The invoice with that id, or ``None`` (tasks carry ids, not data)."""
        return self._one(invoices.c.id == invoice_id)

    def find(self, number: str, operator_id: str | None = None) -> list[Invoice]:
        """Invoices with this number (at one operator if given; numbers are unique only
        per operator)."""
        where = invoices.c.number == number
        if operator_id is not None:
            where &= invoices.c.operator_id == operator_id
        with self._db.read() as conn:
            rows = conn.execute(sa.select(invoices).where(where)).all()
        return [Invoice(**r._mapping) for r in rows]

    def _one(self, where: sa.ColumnElement[bool]) -> Invoice | None:
        with self._db.read() as conn:
            row = conn.execute(sa.select(invoices).where(where)).one_or_none()
        return Invoice(**row._mapping) if row else None

    def for_account(self, operator_id: str, account: str, limit: int = 13) -> list[Invoice]:
        """The account's latest archived invoices, newest issue date first."""
        with self._db.read() as conn:
            rows = conn.execute(_FOR_ACCOUNT, {"operator_id": operator_id,
                                               "account": account, "limit": limit}).all()
        return [Invoice(*r) for r in rows]

    def listed(self, operator_id: str, account: str, limit: int = 13) -> list[ListedInvoice]:
        """:meth:`for_account` as a history lists them (:class:`ListedInvoice`)."""
        with self._db.read() as conn:
            rows = conn.execute(_LISTED, {"operator_id": operator_id, "account": account,
                                          "limit": limit}).all()
        return [ListedInvoice(*r) for r in rows]

    async def listed_async(self, operator_id: str, account: str, limit: int = 13
                           ) -> list[ListedInvoice]:
        """:meth:`listed` for an event loop: on PostgreSQL the loop serves other
        requests while the query runs (:meth:`Database.read_async`); on SQLite it reads
        the local file inline."""
        rows = await self._rows_async(_LISTED, {"operator_id": operator_id,
                                                "account": account, "limit": limit})
        return [ListedInvoice(*r) for r in rows]

    async def _rows_async(self, stmt: sa.Select, params: dict[str, Any]) -> list[Any]:
        """The rows of one of the API's hot reads: awaited where the database reads
        asynchronously (PostgreSQL), read inline from the local file elsewhere (SQLite)."""
        if not self._db.reads_async:
            with self._db.read() as conn:
                return list(conn.execute(stmt, params).all())
        return list(await self._db.read_async(stmt, params))

    def previous(self, operator_id: str, account: str, before: date) -> Invoice | None:
        """The account's archived original invoice whose period ended last before
        ``before`` (ties: the highest number), or ``None``: the previous invoice the
        bill-shock sentence compares with."""
        with self._db.read() as conn:
            row = conn.execute(self._previous_stmt, {
                "operator_id": operator_id, "account": account, "before": before,
            }).one_or_none()
        return Invoice(**row._mapping) if row else None

    def account_invoice(self, operator_id: str, account: str, number: str) -> Invoice | None:
        """The archived invoice ``number`` if it is this account's, else ``None``."""
        with self._db.read() as conn:
            row = conn.execute(_ACCOUNT_INVOICE, {"operator_id": operator_id,
                                                  "account": account, "number": number}
                               ).one_or_none()
        return Invoice(*row) if row else None

    async def account_invoice_async(self, operator_id: str, account: str, number: str
                                    ) -> Invoice | None:
        """:meth:`account_invoice` for an event loop (see :meth:`listed_async`)."""
        rows = await self._rows_async(_ACCOUNT_INVOICE, {
            "operator_id": operator_id, "account": account, "number": number})
        return Invoice(*rows[0]) if rows else None

    async def linked_document_async(self, operator_id: str, account: str, number: str
                                    ) -> LinkedDocument | None:
        """:meth:`account_invoice_async` as a download needs it (:class:`LinkedDocument`):
        the same condition (the archived invoice ``number`` if it is this account's,
        else ``None``), fewer columns."""
        rows = await self._rows_async(_LINKED_DOCUMENT, {
            "operator_id": operator_id, "account": account, "number": number})
        return LinkedDocument(*rows[0]) if rows else None

    def latest_for_phone(self, phone: str) -> Invoice | None:
        """The newest archived invoice sent to ``phone`` (any operator), or ``None``."""
        with self._db.read() as conn:
            row = conn.execute(
                sa.select(invoices)
                .where(invoices.c.phone == phone, invoices.c.status == "archived")
                .order_by(invoices.c.issue_date.desc(), invoices.c.id.desc())
                .limit(1)
            ).one_or_none()
        return Invoice(**row._mapping) if row else None

    def already_done(self, operator_id: str, numbers: Iterable[str]) -> set[str]:
        """Which of these numbers are archived already (one query per 500 numbers).

        A resumed run asks this per chunk of records to skip finished work without
        rendering or claiming; ``claimed`` numbers are not done and get redone.
        """
        wanted = list(dict.fromkeys(numbers))
        found: set[str] = set()
        with self._db.read() as conn:
            for i in range(0, len(wanted), IN_CHUNK):
                found.update(conn.execute(
                    sa.select(invoices.c.number).where(
                        invoices.c.operator_id == operator_id,
                        invoices.c.number.in_(wanted[i : i + IN_CHUNK]),
                        invoices.c.status == "archived",
                    )
                ).scalars())
        return found

    # ---------------------------------------------------------------- payments

    def set_payment_status(self, invoice_id: int, status: str, *,
                           amount: Decimal | None = None, paid_on: date | None = None,
                           source: str) -> tuple[Invoice, bool]:
        """Set the invoice's payment status and keep the change in its history.

        Returns the updated invoice and whether anything changed (the same status,
        amount and date again is a no-op: a retried call adds no history row).
        ``LookupError`` for an unknown invoice.
        """
        if status not in PAYMENT_STATUSES:
            raise ValueError(f"unknown payment status {status!r}; known: {PAYMENT_STATUSES}")
        now = self._db.now()
        with self._db.write() as conn:
            query = sa.select(invoices).where(invoices.c.id == invoice_id)
            if self._db.dialect == "postgresql":
                query = query.with_for_update()
            row = conn.execute(query).one_or_none()
            if row is None:
                raise LookupError(f"no invoice with id {invoice_id}")
            if (row.payment_status, row.paid_amount, row.paid_on) == (status, amount, paid_on):
                return Invoice(**row._mapping), False
            conn.execute(invoices.update().where(invoices.c.id == invoice_id).values(
                payment_status=status, paid_amount=amount, paid_on=paid_on, updated_at=now))
            conn.execute(payment_events.insert().values(
                invoice_id=invoice_id, status=status, amount=amount, paid_on=paid_on,
                source=source, recorded_at=now))
            emit(self._db, conn, "payment_status.changed", row.operator_id, {
                "invoice": {"number": row.number, "account": row.account},
                "payment": {"status": status, "previous_status": row.payment_status,
                            "amount": amount, "paid_on": paid_on, "source": source},
            }, invoice_id=invoice_id)
            row = conn.execute(sa.select(invoices).where(invoices.c.id == invoice_id)).one()
        return Invoice(**row._mapping), True

    def payment_history(self, invoice_id: int) -> list[PaymentEvent]:
        """The invoice's payment status changes, oldest first."""
        with self._db.read() as conn:
            rows = conn.execute(sa.select(payment_events)
                                .where(payment_events.c.invoice_id == invoice_id)
                                .order_by(payment_events.c.id)).all()
        return [PaymentEvent(**r._mapping) for r in rows]


def _invoice_data(row: Any) -> dict[str, Any]:
    """What ``invoice.issued`` tells about an invoice: no names, addresses or phones."""
    return {"number": row.number, "kind": row.kind, "account": row.account,
            "period": {"start": row.period_start, "end": row.period_end},
            "issue_date": row.issue_date, "due_date": row.due_date, "total": row.total,
            "currency": row.currency, "delivery_mode": row.delivery_mode,
            "sha256": row.sha256, "pages": row.pages, "run_id": row.run_id,
            "einvoice_format": row.einvoice_format}
