"""Business accounts in the ledger: fleet managers, and the lines of each invoice.

The billing system registers, per business account, the phones (and optionally e-mail
addresses) of the people who manage it (:meth:`FleetStore.set_managers`: the list it
sends is the list, so sending it twice changes nothing). The pipeline records which line
phones each business invoice covers (:meth:`FleetStore.record_lines`), which is how a
line's own phone is told apart from the account's contact and from its managers.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa

from invoicer.ledger.db import Database
from invoicer.ledger.invoices import Invoice
from invoicer.ledger.schema import fleet_managers, invoice_lines, invoices

__all__ = ["FleetStore", "Manager"]


@dataclass(frozen=True, slots=True)
class Manager:
    """One ``fleet_managers`` row."""

    operator_id: str
    account: str
    phone: str
    email: str | None
    created_at: datetime


class FleetStore:
    """The ``fleet_managers`` and ``invoice_lines`` tables."""

    def __init__(self, db: Database) -> None:
        self._db = db

    # ---------------------------------------------------------------- managers

    def set_managers(self, operator_id: str, account: str,
                     managers: Iterable[tuple[str, str | None]]) -> list[Manager]:
        """Make ``managers`` ((phone, e-mail or None) pairs) the account's fleet
        managers, in one transaction: phones not listed lose access, listed ones keep
        their registration date. Returns the account's managers, by phone."""
        wanted = dict(managers)
        now = self._db.now()
        where = (fleet_managers.c.operator_id == operator_id) & \
                (fleet_managers.c.account == account)
        with self._db.write() as conn:
            current = {r.phone: r for r in conn.execute(sa.select(fleet_managers)
                                                        .where(where)).all()}
            gone = set(current) - set(wanted)
            if gone:
                conn.execute(fleet_managers.delete().where(
                    where & fleet_managers.c.phone.in_(sorted(gone))))
            for phone, email in wanted.items():
                if phone not in current:
                    conn.execute(fleet_managers.insert().values(
                        operator_id=operator_id, account=account, phone=phone, email=email,
                        created_at=now))
                elif current[phone].email != email:
                    conn.execute(fleet_managers.update().where(
                        where & (fleet_managers.c.phone == phone)).values(email=email))
        return self.managers(operator_id, account)

    def managers(self, operator_id: str, account: str) -> list[Manager]:
        """The account's fleet managers, by phone."""
        with self._db.read() as conn:
            rows = conn.execute(sa.select(fleet_managers).where(
                fleet_managers.c.operator_id == operator_id,
                fleet_managers.c.account == account).order_by(fleet_managers.c.phone)).all()
        return [Manager(**r._mapping) for r in rows]

    def managed_by(self, phone: str) -> Manager | None:
        """The account ``phone`` manages (the latest registered, if several)."""
        with self._db.read() as conn:
            row = conn.execute(sa.select(fleet_managers)
                               .where(fleet_managers.c.phone == phone)
                               .order_by(fleet_managers.c.created_at.desc(),
                                         fleet_managers.c.account)
                               .limit(1)).one_or_none()
        return Manager(**row._mapping) if row else None

    def is_manager(self, operator_id: str, account: str, phone: str) -> bool:
        """Whether ``phone`` is one of the account's fleet managers now."""
        with self._db.read() as conn:
            return conn.execute(sa.select(fleet_managers.c.phone).where(
                fleet_managers.c.operator_id == operator_id,
                fleet_managers.c.account == account,
                fleet_managers.c.phone == phone)).first() is not None

    # ---------------------------------------------------------------- lines

    def record_lines(self, invoice_id: int, phones: Iterable[str]) -> None:
        """Record the line phones an invoice covers (again: no change)."""
        wanted = sorted(set(phones))
        if not wanted:
            return
        # One statement for all the lines (a business invoice of a bill run has dozens).
        with self._db.write() as conn:
            conn.execute(self._db.insert(invoice_lines)
                         .on_conflict_do_nothing(index_elements=["invoice_id", "phone"]),
                         [{"invoice_id": invoice_id, "phone": phone} for phone in wanted])

    def latest_for_line(self, phone: str) -> Invoice | None:
        """The newest archived invoice that covers the line ``phone``."""
        with self._db.read() as conn:
            row = conn.execute(
                sa.select(invoices)
                .join(invoice_lines, invoice_lines.c.invoice_id == invoices.c.id)
                .where(invoice_lines.c.phone == phone, invoices.c.status == "archived")
                .order_by(invoices.c.issue_date.desc(), invoices.c.id.desc())
                .limit(1)).one_or_none()
        return Invoice(**row._mapping) if row else None

    def line_invoices(self, operator_id: str, account: str, phone: str,
                      limit: int = 13) -> list[Invoice]:
        """The account's latest archived invoices that cover the line ``phone``."""
        with self._db.read() as conn:
            rows = conn.execute(
                sa.select(invoices)
                .join(invoice_lines, invoice_lines.c.invoice_id == invoices.c.id)
                .where(invoice_lines.c.phone == phone, invoices.c.operator_id == operator_id,
                       invoices.c.account == account, invoices.c.status == "archived")
                .order_by(invoices.c.issue_date.desc(), invoices.c.number.desc())
                .limit(limit)).all()
        return [Invoice(**r._mapping) for r in rows]

    def covers(self, invoice_id: int, phone: str) -> bool:
        """Whether the invoice covers the line ``phone``."""
        with self._db.read() as conn:
            return conn.execute(sa.select(invoice_lines.c.phone).where(
                invoice_lines.c.invoice_id == invoice_id,
                invoice_lines.c.phone == phone)).first() is not None
