"""Deliveries in the ledger: one row per (invoice, channel), a small state machine.

    pending -> sending -> sent | failed_permanent | unknown
                  '-> pending   (a transient failure, put back for a retry)
    sent | unknown -> bounced   (the far end said later it could not be delivered)

A bounced or permanently failed delivery may be replaced by a fallback on another
channel (:meth:`DeliveryStore.fall_back`): a new row naming the one it replaces, at most
one per replaced delivery and one per (invoice, channel), whoever races.

Only the caller whose compare-and-set moves a row from ``pending`` to ``sending`` sends,
so a second dispatch (a retry, a redelivered task, fifty racing processes) is a no-op.
Leaving ``sent``, ``failed_permanent`` or ``unknown`` is a deliberate re-send by an
operator (a new attempt), never an automatic one. A ``print`` delivery in ``pending``
is the print queue (:mod:`ledger.print_batches` moves those of a batch as a whole,
with :func:`entering`'s rules).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from invoicer.ledger.db import Database
from invoicer.ledger.schema import (
    CHANNELS,
    SUPPRESSION_REASONS,
    deliveries,
    invoices,
    suppressions,
)
from invoicer.ledger.webhooks import emit

__all__ = ["DELIVERY_EVENTS", "TRANSITIONS", "Delivery", "DeliveryEvent", "DeliveryStore",
           "announce", "announce_event", "entering"]

#: The delivery state machine. ``sending -> pending`` is a transient failure put back for
#: a retry; leaving ``sent``, ``failed_permanent`` or ``unknown`` is a deliberate re-send
#: by an operator (a new attempt), never an automatic one.
TRANSITIONS: Mapping[str, frozenset[str]] = {
    "pending": frozenset({"sending"}),
    "sending": frozenset({"sent", "failed_permanent", "unknown", "pending"}),
    "sent": frozenset({"sending", "bounced"}),
    "failed_permanent": frozenset({"sending"}),
    "unknown": frozenset({"sending", "bounced"}),
    "bounced": frozenset({"sending"}),
}

#: The webhook event a delivery entering a state announces (states absent here announce
#: nothing: ``pending`` and ``sending`` are steps, ``unknown`` waits for a person;
#: ``delivery.fell_back`` is announced by the new row :meth:`DeliveryStore.fall_back`
#: makes). Every announcement is written to the webhooks outbox in the transaction of
#: the change, through :func:`announce_event`.
DELIVERY_EVENTS: Mapping[str, str] = {
    "sent": "delivery.sent",
    "failed_permanent": "delivery.failed",
    "bounced": "delivery.bounced",
}


def announce(db: Database, conn: Connection, delivery_ids: Iterable[int], state: str) -> int:
    """Emit the :data:`DELIVERY_EVENTS` event of ``state`` for each delivery just moved
    into it, on ``conn`` (the transaction that moved them). Returns how many."""
    event = DELIVERY_EVENTS.get(state)
    if event is None:
        return 0
    return announce_event(db, conn, event, delivery_ids)


#: The rows an announcement describes (built once: a bill run announces every sent
#: e-mail and SMS).
_ANNOUNCED = (
    sa.select(deliveries, invoices.c.operator_id, invoices.c.number, invoices.c.account)
    .join(invoices, invoices.c.id == deliveries.c.invoice_id)
    .where(deliveries.c.id.in_(sa.bindparam("ids", expanding=True)))
    .order_by(deliveries.c.id))
#: The same for one delivery (nearly every announcement): no expanding list for
#: SQLAlchemy to render into the statement's text at each execution.
_ANNOUNCED_ONE = (
    sa.select(deliveries, invoices.c.operator_id, invoices.c.number, invoices.c.account)
    .join(invoices, invoices.c.id == deliveries.c.invoice_id)
    .where(deliveries.c.id == sa.bindparam("id")))


def announce_event(db: Database, conn: Connection, event: str, delivery_ids: Iterable[int],
                   ) -> int:
    """Write ``event`` (``delivery.*``) to the webhooks outbox for each delivery, on
    ``conn``, with the rows as they are now. Returns how many."""
    ids = sorted(delivery_ids)
    if not ids:
        return 0
    rows = (conn.execute(_ANNOUNCED_ONE, {"id": ids[0]}) if len(ids) == 1
            else conn.execute(_ANNOUNCED, {"ids": ids})).all()
    return _announce_rows(db, conn, event, rows)


#: What an announcement says of the invoice, read by the statement that moves a
#: delivery (``RETURNING``): the row the event describes without reading it again.
_INVOICE_OF_DELIVERY = tuple(
    sa.select(column).where(invoices.c.id == deliveries.c.invoice_id)
    .scalar_subquery().label(column.name)
    for column in (invoices.c.operator_id, invoices.c.number, invoices.c.account))


def _announce_rows(db: Database, conn: Connection, event: str, rows: Iterable[Any]) -> int:
    """:func:`announce_event` of rows already read (a delivery's columns, and its
    invoice's ``operator_id``, ``number`` and ``account``)."""
    rows = list(rows)
    for r in rows:
        emit(db, conn, event, r.operator_id, {
            "invoice": {"number": r.number, "account": r.account},
            "delivery": {"id": r.id, "channel": r.channel, "state": r.state,
                         "attempts": r.attempts, "error": r.last_error,
                         "message_id": r.message_id, "replaces": r.replaces_id,
                         "report_status": r.report_status},
        }, invoice_id=r.invoice_id)
    return len(rows)


#: Changes of a delivery that the rest of the world hears of (:class:`DeliveryEvent`).
EVENTS = ("delivery.bounced", "delivery.failed", "delivery.fell_back")


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
    replaces_id: int | None = None
    """The delivery this one is the fallback of."""
    recipient: str | None = None
    """The address or number the last attempt went to."""
    reference: str | None = None
    """Our identifier of the attempt (Message-ID, SMS reference)."""
    report_status: str | None = None
    """The far end's last word: a DSN status (``5.1.1``) or an SMS receipt status."""
    reported_at: datetime | None = None
    owner: str | None = None
    """The process sending it, while ``sending`` (``host:pid:start``)."""


@dataclass(frozen=True, slots=True)
class DeliveryEvent:
    """A change the billing system hears of: ``kind`` is one of :data:`EVENTS`.

    ``delivery`` is the row after the change (for ``delivery.fell_back``, the new
    fallback row; its ``replaces_id`` names the one it replaces)."""

    kind: str
    delivery: Delivery
    detail: str | None = None


#: ``listener(conn, event)``, called inside the transaction that made the change.
Listener = Callable[[Connection, DeliveryEvent], None]


def entering(state: str, now: datetime) -> dict[str, Any]:
    """The column values a delivery takes when it enters ``state`` at ``now``: entering
    ``sending`` counts an attempt (and nothing is handed over yet), entering ``sent``
    stamps ``sent_at``. For statements that move one row or a whole print batch."""
    values: dict[str, Any] = {"state": state, "updated_at": now}
    if state == "sending":
        values["attempts"] = deliveries.c.attempts + 1
        values["handed_off_at"] = None
    else:
        values["owner"] = None  # only a sending row has a sender
    if state == "sent":
        values["sent_at"] = now
    return values


class DeliveryStore:
    """The ``deliveries`` and ``suppressions`` tables.

    Every change the billing system must hear of (a bounce, a permanent failure, a
    fallback: :data:`EVENTS`) goes through :meth:`_changed`, inside the transaction
    that makes it: append a :data:`Listener` to :attr:`listeners` to record them (a
    webhook outbox row written there is committed, or not, with the change itself).
    """

    def __init__(self, db: Database) -> None:
        self._db = db
        self.listeners: list[Listener] = []
        # Statements built once, values bound per call: building and hashing a new
        # statement cost SQLAlchemy more than SQLite's whole write (a bill run makes
        # three to four of these per invoice).
        self._statements: dict[Any, Any] = {}

    def _changed(self, conn: Connection, kind: str, delivery_id: int,
                 detail: str | None = None) -> None:
        """The one place the changes in :data:`EVENTS` pass: tell the listeners."""
        if kind not in EVENTS:
            raise ValueError(f"unknown delivery event {kind!r}")
        announce_event(self._db, conn, kind, [delivery_id])  # the webhooks outbox
        if not self.listeners:
            return
        row = conn.execute(sa.select(deliveries).where(deliveries.c.id == delivery_id)).one()
        event = DeliveryEvent(kind, Delivery(**row._mapping), detail)
        for listener in self.listeners:
            listener(conn, event)

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

    def start(self, invoice_id: int, channel: str, *, message_id: str,
              owner: str | None = None, recipient: str | None = None) -> Delivery | None:
        """Create the (invoice, channel) delivery already ``sending`` with ``message_id``
        (its first attempt), or None if the row exists (then :meth:`ensure` and
        :meth:`transition` decide, as for any later dispatch).

        One statement for what a first dispatch does in two (create ``pending``, then
        compare-and-set to ``sending``): nobody can have seen the row in between, so
        inserting it as ``sending`` hands it to this caller exactly as the
        compare-and-set would. A bill run's deliveries are nearly all first ones.
        ``owner`` is the sending process (``host:pid:start``) and ``recipient`` where it
        goes; ``message_id`` is also kept as the attempt's ``reference``.
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
                        reference=sa.bindparam("message_id"), owner=sa.bindparam("owner"),
                        recipient=sa.bindparam("recipient"),
                        created_at=sa.bindparam("now"), updated_at=sa.bindparam("now"))
                .on_conflict_do_nothing(
                    index_elements=[deliveries.c.invoice_id, deliveries.c.channel])
                .returning(*deliveries.c))
        with self._db.write() as conn:
            row = conn.execute(stmt, {"invoice_id": invoice_id, "channel": channel,
                                      "message_id": message_id, "now": now, "owner": owner,
                                      "recipient": recipient}).one_or_none()
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
        owner: str | None = None,
        owned_by: str | None = None,
        recipient: str | None = None,
        reference: str | None = None,
    ) -> bool:
        """Move a delivery from one of ``from_states`` to ``to_state``; compare-and-set.

        One ``UPDATE ... WHERE id = ? AND state IN (...)``: True if this caller moved it,
        False if it was in another state (another process won, or it is done). Entering
        ``sending`` counts an attempt; ``error``, ``message_id``, ``owner`` (the sending
        process, ``host:pid:start``),
        ``recipient`` and ``reference`` are stored when given. ``owned_by``: move it only
        if that process is its sender (taking a dead sender's row back). Entering
        ``failed_permanent`` is a ``delivery.failed`` event (:meth:`_changed`).
        Transitions outside :data:`TRANSITIONS` are a programming error (``ValueError``).
        """
        sources = {from_states} if isinstance(from_states, str) else set(from_states)
        bad = sorted(s for s in sources if to_state not in TRANSITIONS.get(s, ()))
        if not sources or bad:
            raise ValueError(f"no transition {bad or sources} -> {to_state!r}")
        # One source state (nearly every call) is compared with ``=``: an expanding
        # list is rendered into the statement's text by SQLAlchemy at each execution.
        one = len(sources) == 1
        key = ("transition", to_state, error is not None, message_id is not None,
               owner is not None, recipient is not None, reference is not None,
               owned_by is not None, one)
        stmt = self._statements.get(key)
        if stmt is None:
            stamp = self._db.now()  # stands for the time of each execution
            values = {k: sa.bindparam("now") if v is stamp else v
                      for k, v in entering(to_state, stamp).items()}
            for name, given in (("last_error", error), ("message_id", message_id),
                                ("owner", owner), ("recipient", recipient),
                                ("reference", reference)):
                if given is not None:
                    values[name] = sa.bindparam(f"v_{name}")
            where = [deliveries.c.id == sa.bindparam("delivery_id"),
                     deliveries.c.state == sa.bindparam("source") if one else
                     deliveries.c.state.in_(sa.bindparam("sources", expanding=True))]
            if owned_by is not None:
                where.append(deliveries.c.owner == sa.bindparam("owned_by"))
            stmt = deliveries.update().where(*where).values(values)
            if DELIVERY_EVENTS.get(to_state) is not None and to_state != "failed_permanent":
                # The moved row comes back with what its announcement needs.
                stmt = stmt.returning(*deliveries.c, *_INVOICE_OF_DELIVERY)
            self._statements[key] = stmt
        params = {"delivery_id": delivery_id, "sources": sorted(sources),
                  "source": next(iter(sources)),
                  "now": self._db.now(), "v_last_error": error, "v_message_id": message_id,
                  "v_owner": owner, "v_recipient": recipient, "v_reference": reference,
                  "owned_by": owned_by}
        with self._db.write() as conn:
            result = conn.execute(stmt, params)
            if not result.returns_rows:
                moved = result.rowcount
                if moved == 1 and to_state == "failed_permanent":
                    self._changed(conn, "delivery.failed", delivery_id, error)
                return moved == 1
            rows = result.all()  # moved into a state the billing system hears of
            _announce_rows(self._db, conn, DELIVERY_EVENTS[to_state], rows)  # delivery.sent
        return len(rows) == 1

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

    # ---------------------------------------------------------------- the far end's word

    def find(self, channel: str, identifier: str) -> Delivery | None:
        """The ``channel`` delivery whose Message-ID, SMS reference or gateway id is
        ``identifier`` (the newest, if several)."""
        with self._db.read() as conn:
            row = conn.execute(
                sa.select(deliveries)
                .where(deliveries.c.channel == channel,
                       sa.or_(deliveries.c.message_id == identifier,
                              deliveries.c.reference == identifier))
                .order_by(deliveries.c.id.desc()).limit(1)).one_or_none()
        return Delivery(**row._mapping) if row else None

    def report(self, delivery_id: int, status: str, *, hard: bool,
               diagnostic: str | None = None) -> bool:
        """Record the far end's word on a handed-over delivery.

        ``hard`` (a DSN ``5.x.x``, an undeliverable SMS): ``sent`` or ``unknown`` ->
        ``bounced`` with ``status`` and ``diagnostic`` (a ``delivery.bounced`` event);
        True if this call moved it. Otherwise (``4.x.x``, a delivery receipt) the status
        is only recorded, on a row that is not bounced already; False. A second copy of
        the same bounce changes nothing.
        """
        now = self._db.now()
        values: dict[str, Any] = {"report_status": status[:32], "reported_at": now}
        if diagnostic:
            values["last_error"] = diagnostic
        with self._db.write() as conn:
            if not hard:
                conn.execute(deliveries.update()
                             .where(deliveries.c.id == delivery_id,
                                    deliveries.c.state != "bounced").values(values))
                return False
            moved = conn.execute(
                deliveries.update()
                .where(deliveries.c.id == delivery_id,
                       deliveries.c.state.in_(("sent", "unknown")))
                .values(state="bounced", updated_at=now, **values)).rowcount
            if moved == 1:
                self._changed(conn, "delivery.bounced", delivery_id, diagnostic)
        return moved == 1

    # ---------------------------------------------------------------- fallback

    def fall_back(self, replaced: Delivery, channel: str, reason: str) -> Delivery | None:
        """A new ``pending`` delivery on ``channel`` replacing ``replaced``; ``None`` if
        ``replaced`` already has a replacement or the invoice already has a ``channel``
        delivery (every channel once per invoice). A ``delivery.fell_back`` event."""
        if channel not in CHANNELS:
            raise ValueError(f"unknown channel {channel!r}")
        now = self._db.now()
        stmt = (
            self._db.insert(deliveries)
            .values(invoice_id=replaced.invoice_id, channel=channel, state="pending",
                    attempts=0, created_at=now, updated_at=now, replaces_id=replaced.id,
                    last_error=reason)
            .on_conflict_do_nothing()
            .returning(deliveries.c.id)
        )
        with self._db.write() as conn:
            new_id = conn.execute(stmt).scalar_one_or_none()
            if new_id is None:
                return None
            self._changed(conn, "delivery.fell_back", new_id, reason)
            row = conn.execute(sa.select(deliveries).where(deliveries.c.id == new_id)).one()
        return Delivery(**row._mapping)

    def replacement(self, delivery_id: int) -> Delivery | None:
        """The fallback that replaced ``delivery_id``, if any."""
        with self._db.read() as conn:
            row = conn.execute(sa.select(deliveries)
                               .where(deliveries.c.replaces_id == delivery_id)).one_or_none()
        return Delivery(**row._mapping) if row else None

    def waiting_fallbacks(self, limit: int = 1000) -> list[Delivery]:
        """Fallback SMS still ``pending`` (paper needs no sender: it is the print queue)."""
        with self._db.read() as conn:
            rows = conn.execute(
                sa.select(deliveries)
                .where(deliveries.c.replaces_id.is_not(None), deliveries.c.channel == "sms",
                       deliveries.c.state == "pending")
                .order_by(deliveries.c.id).limit(limit)).all()
        return [Delivery(**r._mapping) for r in rows]

    # ---------------------------------------------------------------- suppressions

    def suppress(self, operator_id: str, address: str, reason: str, *,
                 detail: str | None = None, delivery_id: int | None = None) -> bool:
        """Stop e-mail to ``address`` for ``operator_id``; False if it already was."""
        if reason not in SUPPRESSION_REASONS:
            raise ValueError(f"unknown suppression reason {reason!r}")
        stmt = (self._db.insert(suppressions)
                .values(operator_id=operator_id, address=address.strip().lower(),
                        reason=reason, detail=detail, delivery_id=delivery_id,
                        created_at=self._db.now())
                .on_conflict_do_nothing())
        with self._db.write() as conn:
            return conn.execute(stmt).rowcount == 1

    def suppressed(self, operator_id: str, address: str) -> str | None:
        """Why e-mail no longer goes to ``address`` (``complaint``, ``bounce``), or None."""
        stmt = self._statements.get("suppressed")
        if stmt is None:  # asked before every e-mail of a bill run: built once
            stmt = self._statements["suppressed"] = (
                sa.select(suppressions.c.reason)
                .where(suppressions.c.operator_id == sa.bindparam("operator_id"),
                       suppressions.c.address == sa.bindparam("address")))
        with self._db.read() as conn:
            return conn.execute(stmt, {"operator_id": operator_id,
                                       "address": address.strip().lower()}).scalar_one_or_none()
