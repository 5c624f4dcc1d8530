"""Detailed bills in the ledger: the call-details annex of an invoice, archived as a
PDF of its own, recorded once per (invoice, line) whoever asks and however often."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa

from invoicer.ledger.db import Database
from invoicer.ledger.schema import detailed_bills

__all__ = ["DetailedBill", "DetailedBillStore"]


@dataclass(frozen=True, slots=True)
class DetailedBill:
    """One ``detailed_bills`` row; ``line`` is "" for the whole account."""

    invoice_id: int
    line: str
    archive_key: str
    sha256: str
    size: int
    pages: int | None
    renderer_version: str
    created_at: datetime


class DetailedBillStore:
    """The ``detailed_bills`` table."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def get(self, invoice_id: int, line: str = "") -> DetailedBill | None:
        """The invoice's detailed bill (of one line, or "" for all), if one was made."""
        with self._db.read() as conn:
            row = conn.execute(sa.select(detailed_bills).where(
                detailed_bills.c.invoice_id == invoice_id,
                detailed_bills.c.line == line)).one_or_none()
        return DetailedBill(**row._mapping) if row else None

    def record(self, invoice_id: int, line: str, *, archive_key: str, sha256: str,
               size: int, pages: int | None, renderer_version: str) -> DetailedBill:
        """Record an archived detailed bill; if one is recorded already (a racing
        request), that one is returned and this call changes nothing."""
        stmt = (
            self._db.insert(detailed_bills)
            .values(invoice_id=invoice_id, line=line, archive_key=archive_key,
                    sha256=sha256, size=size, pages=pages,
                    renderer_version=renderer_version, created_at=self._db.now())
            .on_conflict_do_nothing(index_elements=["invoice_id", "line"])
            .returning(*detailed_bills.c)
        )
        with self._db.write() as conn:
            row = conn.execute(stmt).one_or_none()
            if row is None:
                row = conn.execute(sa.select(detailed_bills).where(
                    detailed_bills.c.invoice_id == invoice_id,
                    detailed_bills.c.line == line)).one()
        return DetailedBill(**row._mapping)
