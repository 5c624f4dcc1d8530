"""Deliveries in the ledger: one row per (invoice, channel), a small state machine.

    pending -> sending -> sent | failed_permanent | unknown
                  '-> pending   (a transient failure, put back for a retry)

Only the caller whose compare-and-set moves a row from ``pending`` to ``sending`` sends,
so a second dispatch (a retry, a redelivered task, fifty racing processes) is a no-op.
Leaving ``sent``, ``failed_permanent`` or ``unknown`` is a deliberate re-send by an
operator (a new attempt), never an automatic one. A ``print`` delivery in ``pending``
is the print queue (:mod:`ledger.print_batches` moves those of a batch as a whole,
with :func:`entering`'s rules).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from invoicer.ledger.db import Database
from invoicer.ledger.schema import CHANNELS, deliveries, invoices
from invoicer.ledger.webhooks import emit

__all__ = ["DELIVERY_EVENTS", "TRANSITIONS", "Delivery", "DeliveryStore", "announce",
           "entering"]

#: The delivery state machine. ``sending -> pending`` is a transient failure put back for
#: a retry; leaving ``sent``, ``failed_permanent`` or ``unknown`` is a deliberate re-send
#: by an operator (a new attempt), never an automatic one.
TRANSITIONS: Mapping[str, frozenset[str]] = {
    "pending": frozenset({"sending"}),
    "sending": frozenset({"sent", "failed_permanent", "unknown", "pending"}),
    "sent": frozenset({"sending"}),
    "failed_permanent": frozenset({"sending"}),
    "unknown": frozenset({"sending"}),
}

#: The webhook event a delivery entering a state announces (states absent here announce
#: nothing: ``pending`` and ``sending`` are steps, ``unknown`` waits for a person). A new
#: state gets its event by a line here; :func:`announce` is called wherever a delivery
#: changes state, in that change's transaction.
DELIVERY_EVENTS: Mapping[str, str] = {
    "sent": "delivery.sent",
    "failed_permanent": "delivery.failed",
    "bounced": "delivery.bounced",
    "fell_back": "delivery.fell_back",
}


def announce(db: Database, conn: Connection, delivery_ids: Iterable[int], state: str) -> int:
    """Emit the :data:`DELIVERY_EVENTS` event of ``state`` for each delivery just moved
    into it, on ``conn`` (the transaction that moved them). Returns how many."""
    event = DELIVERY_EVENTS.get(state)
    ids = sorted(delivery_ids)
    if event is None or not ids:
        return 0
    rows = conn.execute(
        sa.select(deliveries, invoices.c.operator_id, invoices.c.number,
                  invoices.c.account)
        .join(invoices, invoices.c.id == deliveries.c.invoice_id)
        .where(deliveries.c.id.in_(ids)).order_by(deliveries.c.id)).all()
    for r in rows:
        emit(db, conn, event, r.operator_id, {
            "invoice": {"number": r.number, "account": r.account},
            "delivery": {"id": r.id, "channel": r.channel, "state": r.state,
                         "attempts": r.attempts, "error": r.last_error,
                         "message_id": r.message_id},
        }, invoice_id=r.invoice_id)
    return len(rows)


@dataclass(frozen=True, slots=True)
class Delivery:
    """One ``deliveries`` row: an (invoice, channel) and where it stands."""

    id: int
    invoice_id: int
    channel: str
    state: str
    attempts: int
    last_error: str | None
    message_id: str | None
    created_at: datetime
    updated_at: datetime
    sent_at: datetime | None
    handed_off_at: datetime | None = None
    """When this attempt's message data went to the server (see
    :meth:`DeliveryStore.hand_off`)."""


def entering(state: str, now: datetime) -> dict[str, Any]:
    """The column values a delivery takes when it enters ``state`` at ``now``: entering
    ``sending`` counts an attempt (and nothing is handed over yet), entering ``sent``
    stamps ``sent_at``. For statements that move one row or a whole print batch."""
    values: dict[str, Any] = {"state": state, "updated_at": now}
    if state == "sending":
        values["attempts"] = deliveries.c.attempts + 1
        values["handed_off_at"] = None
    if state == "sent":
        values["sent_at"] = now
    return values


class DeliveryStore:
    """The ``deliveries`` table."""

    def __init__(self, db: Database) -> None:
        self._db = db
        # Statements built once, values bound per call: building and hashing a new
        # statement cost SQLAlchemy more than SQLite's whole write (a bill run makes
        # three to four of these per invoice).
        self._statements: dict[Any, Any] = {}

    def ensure(self, invoice_id: int, channel: str) -> Delivery:
        """The (invoice, channel) delivery row, created ``pending`` if missing."""
        if channel not in CHANNELS:
            raise ValueError(f"unknown channel {channel!r}")
        insert, select = self._statements.get("ensure") or self._statements.setdefault(
            "ensure", (
                self._db.insert(deliveries)
                .values(invoice_id=sa.bindparam("invoice_id"), channel=sa.bindparam("channel"),
                        state="pending", attempts=0, created_at=sa.bindparam("now"),
                        updated_at=sa.bindparam("now"))
                .on_conflict_do_nothing(
                    index_elements=[deliveries.c.invoice_id, deliveries.c.channel])
                .returning(*deliveries.c),
                sa.select(deliveries).where(deliveries.c.invoice_id == sa.bindparam("invoice_id"),
                                            deliveries.c.channel == sa.bindparam("channel"))))
        params = {"invoice_id": invoice_id, "channel": channel, "now": self._db.now()}
        with self._db.write() as conn:
            row = conn.execute(insert, params).one_or_none()
            if row is None:
                row = conn.execute(select, params).one()
        return Delivery(**row._mapping)

    def start(self, invoice_id: int, channel: str, *, message_id: str) -> Delivery | None:
        """Create the (invoice, channel) delivery already ``sending`` with ``message_id``
        (its first attempt), or None if the row exists (then :meth:`ensure` and
        :meth:`transition` decide, as for any later dispatch).

        One statement for what a first dispatch does in two (create ``pending``, then
        compare-and-set to ``sending``): nobody can have seen the row in between, so
        inserting it as ``sending`` hands it to this caller exactly as the
        compare-and-set would. A bill run's deliveries are nearly all first ones.
        """
        if channel not in CHANNELS:
            raise ValueError(f"unknown channel {channel!r}")
        now = self._db.now()
        stmt = self._statements.get("start")
        if stmt is None:
            stmt = self._statements["start"] = (
                self._db.insert(deliveries)
                .values(invoice_id=sa.bindparam("invoice_id"), channel=sa.bindparam("channel"),
                        state="sending", attempts=1, message_id=sa.bindparam("message_id"),
                        created_at=sa.bindparam("now"), updated_at=sa.bindparam("now"))
                .on_conflict_do_nothing(
                    index_elements=[deliveries.c.invoice_id, deliveries.c.channel])
                .returning(*deliveries.c))
        with self._db.write() as conn:
            row = conn.execute(stmt, {"invoice_id": invoice_id, "channel": channel,
                                      "message_id": message_id, "now": now}).one_or_none()
        return Delivery(**row._mapping) if row is not None else None

    def get(self, delivery_id: int) -> Delivery | None:
        """The delivery, or ``None``."""
        with self._db.read() as conn:
            row = conn.execute(
                sa.select(deliveries).where(deliveries.c.id == delivery_id)
            ).one_or_none()
        return Delivery(**row._mapping) if row else None

    def for_invoice(self, invoice_id: int) -> list[Delivery]:
        """Every channel's delivery of one invoice."""
        with self._db.read() as conn:
            rows = conn.execute(
                sa.select(deliveries).where(deliveries.c.invoice_id == invoice_id)
                .order_by(deliveries.c.channel)
            ).all()
        return [Delivery(**r._mapping) for r in rows]

    def stuck(self, state: str, older_than: datetime, *, channels: Iterable[str] = CHANNELS,
              limit: int = 1000) -> list[Delivery]:
        """Deliveries in ``state`` on ``channels`` untouched since ``older_than``, oldest
        first: a ``sending`` row nobody has touched for a while belongs to a process
        that died mid-send."""
        with self._db.read() as conn:
            rows = conn.execute(
                sa.select(deliveries)
                .where(deliveries.c.state == state, deliveries.c.updated_at < older_than,
                       deliveries.c.channel.in_(sorted(channels)))
                .order_by(deliveries.c.updated_at).limit(limit)).all()
        return [Delivery(**r._mapping) for r in rows]

    def transition(
        self,
        delivery_id: int,
        from_states: str | Iterable[str],
        to_state: str,
        *,
        error: str | None = None,
        message_id: str | None = None,
    ) -> bool:
        """Move a delivery from one of ``from_states`` to ``to_state``; compare-and-set.

        One ``UPDATE ... WHERE id = ? AND state IN (...)``: True if this caller moved it,
        False if it was in another state (another process won, or it is done). Entering
        ``sending`` counts an attempt; ``error`` and ``message_id`` are stored when given.
        Transitions outside :data:`TRANSITIONS` are a programming error (``ValueError``).
        """
        sources = {from_states} if isinstance(from_states, str) else set(from_states)
        bad = sorted(s for s in sources if to_state not in TRANSITIONS.get(s, ()))
        if not sources or bad:
            raise ValueError(f"no transition {bad or sources} -> {to_state!r}")
        key = ("transition", to_state, error is not None, message_id is not None)
        stmt = self._statements.get(key)
        if stmt is None:
            stamp = self._db.now()  # stands for the time of each execution
            values = {k: sa.bindparam("now") if v is stamp else v
                      for k, v in entering(to_state, stamp).items()}
            if error is not None:
                values["last_error"] = sa.bindparam("error")
            if message_id is not None:
                values["message_id"] = sa.bindparam("message_id")
            stmt = self._statements[key] = (
                deliveries.update()
                .where(deliveries.c.id == sa.bindparam("delivery_id"),
                       deliveries.c.state.in_(sa.bindparam("sources", expanding=True)))
                .values(values))
        params = {"delivery_id": delivery_id, "sources": sorted(sources),
                  "now": self._db.now(), "error": error, "message_id": message_id}
        with self._db.write() as conn:
            moved = conn.execute(stmt, params).rowcount
            if moved:
                announce(self._db, conn, [delivery_id], to_state)
        return moved == 1

    def hand_off(self, delivery_id: int) -> bool:
        """Record that a ``sending`` delivery's message is going to the server now.

        From here a crash may leave it delivered or not: the reconciler turns a stale
        ``sending`` row with this mark into ``unknown`` instead of sending it again.
        False if the row is not ``sending`` (it is not this caller's to send).
        """
        stmt = self._statements.get("hand_off")
        if stmt is None:
            stmt = self._statements["hand_off"] = (
                deliveries.update()
                .where(deliveries.c.id == sa.bindparam("delivery_id"),
                       deliveries.c.state == "sending")
                .values(handed_off_at=sa.bindparam("now"), updated_at=sa.bindparam("now")))
        with self._db.write() as conn:
            moved = conn.execute(stmt, {"delivery_id": delivery_id,
                                        "now": self._db.now()}).rowcount
        return moved == 1
