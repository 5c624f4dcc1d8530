"""Subscribers' e-invoice/paper choices in the ledger: ``delivery_preferences``.

A choice is a row, never an update of an earlier one, so "when and how" stays on
record. An electronic choice counts only once its e-mail address is confirmed
(compare-and-set ``unconfirmed`` -> ``confirmed``: a link works once); a paper choice
is confirmed when made (the postal address is the one on file). A newer choice
supersedes the account's earlier unconfirmed ones at once, and its earlier confirmed
one when it is itself confirmed. Which choice an invoice follows is a function of the
time its number was claimed (:meth:`PreferenceStore.effective`), so dispatching the
same invoice again always takes the same route.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from invoicer.ledger.db import Database
from invoicer.ledger.schema import DELIVERY_MODES
from invoicer.ledger.schema import delivery_preferences as prefs
from invoicer.ledger.webhooks import emit

__all__ = ["Preference", "PreferenceStore"]


@dataclass(frozen=True, slots=True)
class Preference:
    """One ``delivery_preferences`` row: a subscriber's choice and its history."""

    id: int
    operator_id: str
    account: str
    mode: str
    email: str | None
    state: str
    requested_at: datetime
    requested_via: str
    requested_from: str | None
    confirmed_at: datetime | None
    confirmed_via: str | None
    superseded_at: datetime | None
    applied_at: datetime | None
    applied_invoice: str | None


def _row(row) -> Preference:
    return Preference(**row._mapping)


class PreferenceStore:
    """The ``delivery_preferences`` table."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def add(self, operator_id: str, account: str, *, mode: str, email: str | None,
            via: str, client: str | None, confirmed_via: str | None = None) -> Preference:
        """Record a choice. ``confirmed_via`` set: it counts from now (a paper choice);
        else it waits for :meth:`confirm`. Either way the account's earlier unconfirmed
        choices stop waiting (their links no longer work)."""
        if mode not in DELIVERY_MODES:
            raise ValueError(f"unknown delivery mode {mode!r}")
        if mode != "paper" and not email:
            raise ValueError(f"a {mode} choice needs an e-mail address")
        now = self._db.now()
        mine = (prefs.c.operator_id == operator_id, prefs.c.account == account)
        with self._db.write() as conn:
            previous = _in_force(conn, operator_id, account) if confirmed_via else None
            states = ("unconfirmed", "confirmed") if confirmed_via else ("unconfirmed",)
            conn.execute(prefs.update().where(*mine, prefs.c.state.in_(states))
                         .values(state="superseded", superseded_at=now))
            row = conn.execute(
                prefs.insert().values(
                    operator_id=operator_id, account=account, mode=mode, email=email,
                    state="confirmed" if confirmed_via else "unconfirmed",
                    requested_at=now, requested_via=via, requested_from=client,
                    confirmed_at=now if confirmed_via else None,
                    confirmed_via=confirmed_via)
                .returning(*prefs.c)).one()
            if confirmed_via:
                self._announce(conn, row, previous)
        return _row(row)

    def confirm(self, pref_id: int, *, via: str) -> Preference | None:
        """Confirm a waiting choice: the row for exactly one caller, ``None`` for every
        other (already confirmed, superseded, unknown). The account's previous
        confirmed choice is superseded in the same transaction."""
        now = self._db.now()
        with self._db.write() as conn:
            row = conn.execute(
                prefs.update().where(prefs.c.id == pref_id, prefs.c.state == "unconfirmed")
                .values(state="confirmed", confirmed_at=now, confirmed_via=via)
                .returning(*prefs.c)).one_or_none()
            if row is None:
                return None
            previous = _in_force(conn, row.operator_id, row.account, excluding=row.id)
            conn.execute(prefs.update().where(
                prefs.c.operator_id == row.operator_id, prefs.c.account == row.account,
                prefs.c.id != row.id, prefs.c.state.in_(("unconfirmed", "confirmed")))
                .values(state="superseded", superseded_at=now))
            self._announce(conn, row, previous)
        return _row(row)

    def _announce(self, conn: Connection, row: Any, previous: str | None) -> None:
        # ``subscriber.preference_changed``, in the transaction that made the choice
        # count; the mode only, never the e-mail address (personal data).
        emit(self._db, conn, "subscriber.preference_changed", row.operator_id, {
            "account": row.account,
            "changes": {"delivery_mode": {"from": previous, "to": row.mode}},
            "source": row.confirmed_via, "preference_id": row.id,
        }, order_key=f"account:{row.operator_id}:{row.account}")

    def get(self, pref_id: int) -> Preference | None:
        """One choice by id."""
        with self._db.read() as conn:
            row = conn.execute(sa.select(prefs).where(prefs.c.id == pref_id)).one_or_none()
        return _row(row) if row else None

    def current(self, operator_id: str, account: str) -> list[Preference]:
        """The account's live choices, newest first: at most one ``unconfirmed`` and
        one ``confirmed``."""
        with self._db.read() as conn:
            rows = conn.execute(
                sa.select(prefs).where(prefs.c.operator_id == operator_id,
                                       prefs.c.account == account,
                                       prefs.c.state != "superseded")
                .order_by(prefs.c.id.desc())).all()
        return [_row(r) for r in rows]

    def effective(self, operator_id: str, account: str, at: datetime) -> Preference | None:
        """The choice in force at ``at``: the last one confirmed at or before it
        (superseded since or not: what counted then counts for what was claimed then)."""
        with self._db.read() as conn:
            row = conn.execute(_EFFECTIVE, {"operator_id": operator_id, "account": account,
                                            "at": at}).one_or_none()
        return _row(row) if row else None

    def mark_applied(self, pref_id: int, invoice_number: str) -> bool:
        """Note the first invoice issued under a choice (True for the one caller that
        did; later invoices change nothing)."""
        with self._db.write() as conn:
            return conn.execute(
                prefs.update().where(prefs.c.id == pref_id, prefs.c.applied_at.is_(None))
                .values(applied_at=self._db.now(), applied_invoice=invoice_number)
            ).rowcount == 1


#: :meth:`PreferenceStore.effective`'s query, built once: every invoice a bill run
#: delivers asks it.
_EFFECTIVE = (
    sa.select(prefs).where(prefs.c.operator_id == sa.bindparam("operator_id"),
                           prefs.c.account == sa.bindparam("account"),
                           prefs.c.confirmed_at.is_not(None),
                           prefs.c.confirmed_at <= sa.bindparam("at"))
    .order_by(prefs.c.confirmed_at.desc(), prefs.c.id.desc()).limit(1))


def _in_force(conn: Connection, operator_id: str, account: str, *,
              excluding: int | None = None) -> str | None:
    """The mode of the account's confirmed choice, if any (before a new one counts)."""
    return conn.execute(
        sa.select(prefs.c.mode).where(prefs.c.operator_id == operator_id,
                                      prefs.c.account == account,
                                      prefs.c.state == "confirmed",
                                      prefs.c.id != (excluding or -1))
        .order_by(prefs.c.id.desc()).limit(1)).scalar_one_or_none()
