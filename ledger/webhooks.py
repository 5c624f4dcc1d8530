"""Webhooks in the ledger: the outbox of events for the billing system.

An event is written by :func:`emit` on the connection of the transaction that makes
the change it announces, so the two commit (or roll back) together: no event for a
change that did not happen, no change without its event, whatever crashes when. In the
same statement batch each endpoint that should hear of it (its operator's, and those
registered for ``*``) gets a ``webhook_deliveries`` row, ``pending``.

Senders (:mod:`workflows.webhooks`) :meth:`~WebhookStore.lease` due rows, POST them and
:meth:`~WebhookStore.record_attempt`. ``next_attempt_at`` is both the backoff and the
lease: a leased row is pushed a lease ahead, so a sender that dies mid-batch leaves
rows that simply come due again (at least once; the event id lets a receiver drop the
duplicate). Rows are leased only when no earlier event with the same ``order_key``
(by default the invoice) is still pending for that endpoint: in order per invoice.
"""

from __future__ import annotations

import json
import secrets
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from invoicer.ledger.db import Database, UTCDateTime
from invoicer.ledger.schema import (
    webhook_attempts,
    webhook_deliveries,
    webhook_endpoints,
    webhook_events,
)

__all__ = ["EVENT_TYPES", "MIN_SECRET_BYTES", "WILDCARD", "Attempt", "Due", "Endpoint",
           "Event", "WebhookStore", "emit", "new_secret"]

#: Every event type the service emits (docs/webhooks.md describes their payloads).
EVENT_TYPES = (
    "invoice.issued",
    "invoice.rejected",
    "delivery.sent",
    "delivery.bounced",
    "delivery.failed",
    "delivery.fell_back",
    "print.acknowledged",
    "payment_status.changed",
    "subscriber.preference_changed",
)
#: An endpoint registered for this operator id receives every operator's events.
WILDCARD = "*"
#: HMAC-SHA256 keys shorter than its block's half are guessable in principle; Stripe
#: and Lago hand out 32 random bytes and more.
MIN_SECRET_BYTES = 32


def new_secret() -> str:
    """A fresh signing secret: ``whsec_`` and 32 random bytes, URL-safe base64."""
    return "whsec_" + secrets.token_urlsafe(32)


@dataclass(frozen=True, slots=True)
class Endpoint:
    """A ``webhook_endpoints`` row."""

    id: int
    operator_id: str
    url: str
    secret: str
    created_at: datetime
    removed_at: datetime | None


@dataclass(frozen=True, slots=True)
class Event:
    """A ``webhook_events`` row: ``body`` is exactly what every attempt sends."""

    id: int
    event_id: str
    type: str
    operator_id: str | None
    invoice_id: int | None
    order_key: str
    body: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Due:
    """A leased (event, endpoint) delivery, with what a sender needs to POST it."""

    delivery_id: int
    attempts: int
    event_id: str
    type: str
    body: str
    endpoint_id: int
    url: str
    secret: str


@dataclass(frozen=True, slots=True)
class Attempt:
    """One POST of an event to an endpoint, as logged."""

    id: int
    delivery_id: int
    event_id: str
    type: str
    endpoint_id: int
    attempted_at: datetime
    status_code: int | None
    error: str | None
    duration_ms: int


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return format(value, "f")  # money travels as exact decimal text, never a float
    if isinstance(value, datetime | date):
        return value.isoformat()
    raise TypeError(f"not JSON serializable: {type(value).__name__}")


#: :func:`emit`'s two statements, built once with bound parameters: every archived
#: invoice and every delivery of a bill run emits an event, and building and hashing
#: the statements anew cost SQLAlchemy more than SQLite's insert.
_EMIT_STATEMENTS = (
    webhook_events.insert().values(
        event_id=sa.bindparam("event_id"), type=sa.bindparam("type"),
        operator_id=sa.bindparam("operator_id", type_=sa.String),
        invoice_id=sa.bindparam("invoice_id", type_=sa.BigInteger),
        order_key=sa.bindparam("order_key"), body=sa.bindparam("body"),
        created_at=sa.bindparam("created_at", type_=UTCDateTime))
    .returning(webhook_events.c.id),
    webhook_deliveries.insert().from_select(
        ["event_pk", "endpoint_id", "order_key", "state", "attempts", "next_attempt_at"],
        sa.select(sa.bindparam("event_pk", type_=sa.BigInteger), webhook_endpoints.c.id,
                  sa.bindparam("order_key", type_=sa.String),
                  sa.literal("pending", sa.String), sa.literal(0, sa.Integer),
                  sa.bindparam("now", type_=UTCDateTime))
        # Two fixed parameters (the operator's endpoints and the ``*`` ones; ``*`` twice
        # for an event of no operator) rather than an expanding list, which SQLAlchemy
        # re-renders into the statement's text at every execution.
        .where(webhook_endpoints.c.operator_id.in_([
                   sa.bindparam("listener", type_=sa.String),
                   sa.bindparam("wildcard", type_=sa.String)]),
               webhook_endpoints.c.removed_at.is_(None))),
)


def emit(db: Database, conn: Connection, type: str, operator_id: str | None,
         data: Mapping[str, Any], *, invoice_id: int | None = None,
         order_key: str | None = None) -> str:
    """Record an event in the outbox on ``conn`` (the caller's open transaction).

    The body is fixed now (``{"id", "type", "created_at", "operator", "data"}``, keys
    sorted, money as decimal strings) so every attempt and replay sends the same bytes.
    Events of one ``order_key`` (default: ``invoice:<id>``, else the event alone) reach
    each endpoint in the order they were recorded. Returns the event id (``evt_…``).
    """
    if type not in EVENT_TYPES:
        raise ValueError(f"unknown event type {type!r}")
    event_id = f"evt_{uuid.uuid4().hex}"
    now = db.now()
    body = json.dumps(
        {"id": event_id, "type": type, "created_at": now.isoformat().replace("+00:00", "Z"),
         "operator": operator_id, "data": dict(data)},
        # ASCII: any text (hostile, a lone surrogate) travels escaped, and the bytes
        # signed are the bytes stored.
        sort_keys=True, separators=(",", ":"), ensure_ascii=True, default=_json_default)
    key = order_key or (f"invoice:{invoice_id}" if invoice_id is not None
                        else f"event:{event_id}")
    insert_event, fan_out = _EMIT_STATEMENTS
    pk = conn.execute(insert_event, {
        "event_id": event_id, "type": type, "operator_id": operator_id,
        "invoice_id": invoice_id, "order_key": key, "body": body, "created_at": now,
    }).scalar_one()
    conn.execute(fan_out, {"event_pk": pk, "order_key": key, "now": now,
                           "listener": WILDCARD if operator_id is None else operator_id,
                           "wildcard": WILDCARD})
    return event_id


class WebhookStore:
    """The ``webhook_*`` tables: endpoints, events, deliveries, attempts."""

    def __init__(self, db: Database) -> None:
        self._db = db

    # ---------------------------------------------------------------- events

    def emit(self, type: str, operator_id: str | None, data: Mapping[str, Any], *,
             invoice_id: int | None = None, order_key: str | None = None) -> str:
        """:func:`emit` in a transaction of its own (for changes kept outside the
        ledger); a store announcing its own change calls :func:`emit` on its connection."""
        with self._db.write() as conn:
            return emit(self._db, conn, type, operator_id, data, invoice_id=invoice_id,
                        order_key=order_key)

    def preference_changed(self, operator_id: str, account: str,
                           changes: Mapping[str, Any], *, source: str,
                           conn: Connection | None = None) -> str:
        """Announce ``subscriber.preference_changed``: ``changes`` maps each changed
        preference (``delivery_mode``, ``sms_notice``, ...) to ``{"from", "to"}``.

        Pass the ``conn`` of the transaction that stores the change, when there is one,
        so that both commit together. Ordered per account.
        """
        data = {"account": account, "changes": dict(changes), "source": source}
        key = f"account:{operator_id}:{account}"
        if conn is not None:
            return emit(self._db, conn, "subscriber.preference_changed", operator_id, data,
                        order_key=key)
        return self.emit("subscriber.preference_changed", operator_id, data, order_key=key)

    def events(self, *, invoice_id: int | None = None, since: datetime | None = None,
               types: Iterable[str] | None = None, event_ids: Iterable[str] | None = None,
               limit: int = 1000, newest: bool = False) -> list[Event]:
        """Recorded events, oldest first, filtered by invoice, time, type or id: the
        first ``limit`` of them (``newest``: the last ``limit``)."""
        order = webhook_events.c.id.desc() if newest else webhook_events.c.id
        query = sa.select(webhook_events).order_by(order).limit(limit)
        if invoice_id is not None:
            query = query.where(webhook_events.c.invoice_id == invoice_id)
        if since is not None:
            query = query.where(webhook_events.c.created_at >= since)
        if types is not None:
            query = query.where(webhook_events.c.type.in_(sorted(types)))
        if event_ids is not None:
            query = query.where(webhook_events.c.event_id.in_(sorted(event_ids)))
        with self._db.read() as conn:
            found = [Event(**r._mapping) for r in conn.execute(query).all()]
        return found[::-1] if newest else found

    # ---------------------------------------------------------------- endpoints

    def add_endpoint(self, operator_id: str, url: str, secret: str) -> Endpoint:
        """Register ``url`` for ``operator_id``'s events (``*``: every operator's) from
        now on; ``secret`` must be at least 32 bytes."""
        if len(secret.encode("utf-8")) < MIN_SECRET_BYTES:
            raise ValueError(f"a webhook secret needs at least {MIN_SECRET_BYTES} bytes")
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"not an http(s) URL: {url!r}")
        with self._db.write() as conn:
            row = conn.execute(
                webhook_endpoints.insert().values(
                    operator_id=operator_id, url=url, secret=secret,
                    created_at=self._db.now())
                .returning(*webhook_endpoints.c)).one()
        return Endpoint(**row._mapping)

    def endpoints(self, *, include_removed: bool = False) -> list[Endpoint]:
        """Registered endpoints, oldest first."""
        query = sa.select(webhook_endpoints).order_by(webhook_endpoints.c.id)
        if not include_removed:
            query = query.where(webhook_endpoints.c.removed_at.is_(None))
        with self._db.read() as conn:
            return [Endpoint(**r._mapping) for r in conn.execute(query).all()]

    def remove_endpoint(self, endpoint_id: int) -> bool:
        """Stop sending to an endpoint (its log stays); False if unknown or removed."""
        with self._db.write() as conn:
            return conn.execute(
                webhook_endpoints.update()
                .where(webhook_endpoints.c.id == endpoint_id,
                       webhook_endpoints.c.removed_at.is_(None))
                .values(removed_at=self._db.now())).rowcount == 1

    # ---------------------------------------------------------------- sending

    def lease(self, limit: int, lease: timedelta, *,
              skip_endpoints: Iterable[int] = ()) -> list[Due]:
        """Take up to ``limit`` due deliveries for ``lease``, oldest event first.

        Due: ``pending``, ``next_attempt_at`` passed, endpoint not removed, and no
        earlier event with the same order key pending for that endpoint. One
        compare-and-set ``UPDATE`` pushes them a lease ahead; only the rows this call
        moved are returned, so racing senders never share a row while its lease runs.
        ``skip_endpoints``: endpoints the caller gave up on for now.
        """
        now = self._db.now()
        d, e, p = webhook_deliveries, webhook_events, webhook_endpoints
        earlier = webhook_deliveries.alias("earlier")
        blocked = sa.exists().where(earlier.c.endpoint_id == d.c.endpoint_id,
                                    earlier.c.order_key == d.c.order_key,
                                    earlier.c.state == "pending",
                                    earlier.c.event_pk < d.c.event_pk)
        candidates = (
            sa.select(d.c.id)
            .join(p, p.c.id == d.c.endpoint_id)
            .where(d.c.state == "pending", d.c.next_attempt_at <= now,
                   p.c.removed_at.is_(None), ~blocked)
            .order_by(d.c.event_pk, d.c.id).limit(limit))
        skip = sorted(set(skip_endpoints))
        if skip:
            candidates = candidates.where(d.c.endpoint_id.not_in(skip))
        with self._db.write() as conn:
            ids = list(conn.execute(candidates).scalars())
            if not ids:
                return []
            taken = set(conn.execute(
                d.update()
                .where(d.c.id.in_(ids), d.c.state == "pending", d.c.next_attempt_at <= now)
                .values(next_attempt_at=now + lease)
                .returning(d.c.id)).scalars())
            rows = conn.execute(
                sa.select(d.c.id, d.c.attempts, e.c.event_id, e.c.type, e.c.body,
                          p.c.id.label("endpoint_id"), p.c.url, p.c.secret)
                .join(e, e.c.id == d.c.event_pk).join(p, p.c.id == d.c.endpoint_id)
                .where(d.c.id.in_(sorted(taken)))
                .order_by(d.c.event_pk, d.c.id)).all()
        return [Due(r.id, r.attempts, r.event_id, r.type, r.body, r.endpoint_id, r.url,
                    r.secret) for r in rows]

    def record_attempt(self, delivery_id: int, *, ok: bool, status_code: int | None,
                       error: str | None, duration_ms: int,
                       retry_at: datetime | None = None) -> None:
        """Log one POST; ``ok`` marks the delivery ``delivered``, else it is due again
        at ``retry_at``. A delivery already delivered (a duplicate after a lost lease)
        stays delivered; the attempt is logged all the same."""
        now = self._db.now()
        d = webhook_deliveries
        values: dict[str, Any] = {"attempts": d.c.attempts + 1}
        if ok:
            values.update(state="delivered", delivered_at=now, last_error=None)
        else:
            values.update(last_error=error or f"HTTP {status_code}",
                          next_attempt_at=retry_at or now)
        with self._db.write() as conn:
            conn.execute(d.update().where(d.c.id == delivery_id, d.c.state == "pending")
                         .values(values))
            conn.execute(webhook_attempts.insert().values(
                delivery_id=delivery_id, attempted_at=now, status_code=status_code,
                error=error, duration_ms=duration_ms))

    def release(self, delivery_id: int, at: datetime) -> None:
        """Give a leased delivery back unattempted, due at ``at`` (its endpoint just
        failed: no point knocking again in this pass)."""
        d = webhook_deliveries
        with self._db.write() as conn:
            conn.execute(d.update().where(d.c.id == delivery_id, d.c.state == "pending")
                         .values(next_attempt_at=at))

    def replay(self, event_ids: Iterable[str] | None = None, *,
               since: datetime | None = None, endpoint_id: int | None = None) -> int:
        """Send events again: every delivery of the events named (or recorded since
        ``since``) becomes ``pending`` and due now, for ``endpoint_id`` or every
        endpoint that listens to them (one added since gets its row now). Same event
        ids, same bodies. Returns how many deliveries were (re)queued."""
        if event_ids is None and since is None:
            raise ValueError("replay what? name events or a start time")
        e, p, d = webhook_events, webhook_endpoints, webhook_deliveries
        now = self._db.now()
        chosen = sa.select(e.c.id, e.c.operator_id, e.c.order_key)
        if event_ids is not None:
            chosen = chosen.where(e.c.event_id.in_(sorted(set(event_ids))))
        if since is not None:
            chosen = chosen.where(e.c.created_at >= since)
        count = 0
        with self._db.write() as conn:
            for pk, operator_id, key in conn.execute(chosen.order_by(e.c.id)).all():
                listeners = [WILDCARD] if operator_id is None else [operator_id, WILDCARD]
                targets = sa.select(p.c.id).where(p.c.removed_at.is_(None),
                                                  p.c.operator_id.in_(listeners))
                if endpoint_id is not None:
                    targets = targets.where(p.c.id == endpoint_id)
                for target in conn.execute(targets).scalars():
                    inserted = conn.execute(
                        self._db.insert(d).values(
                            event_pk=pk, endpoint_id=target, order_key=key, state="pending",
                            attempts=0, next_attempt_at=now)
                        .on_conflict_do_nothing(index_elements=[d.c.event_pk, d.c.endpoint_id])
                        .returning(d.c.id)
                    ).one_or_none()
                    if inserted is None:
                        conn.execute(d.update()
                                     .where(d.c.event_pk == pk, d.c.endpoint_id == target)
                                     .values(state="pending", next_attempt_at=now,
                                             delivered_at=None))
                    count += 1
        return count

    # ---------------------------------------------------------------- reading

    def attempts(self, *, event_id: str | None = None, limit: int = 100) -> list[Attempt]:
        """The attempts log, newest first (of one event if given)."""
        a, d, e = webhook_attempts, webhook_deliveries, webhook_events
        query = (sa.select(a.c.id, a.c.delivery_id, e.c.event_id, e.c.type, d.c.endpoint_id,
                           a.c.attempted_at, a.c.status_code, a.c.error, a.c.duration_ms)
                 .join(d, d.c.id == a.c.delivery_id).join(e, e.c.id == d.c.event_pk)
                 .order_by(a.c.id.desc()).limit(limit))
        if event_id is not None:
            query = query.where(e.c.event_id == event_id)
        with self._db.read() as conn:
            return [Attempt(**r._mapping) for r in conn.execute(query).all()]

    def backlog(self) -> dict[int, int]:
        """Pending deliveries per live endpoint (the ``invoicer_webhook_backlog``)."""
        d, p = webhook_deliveries, webhook_endpoints
        with self._db.read() as conn:
            rows = conn.execute(
                sa.select(d.c.endpoint_id, sa.func.count())
                .join(p, p.c.id == d.c.endpoint_id)
                .where(d.c.state == "pending", p.c.removed_at.is_(None))
                .group_by(d.c.endpoint_id)).all()
        return {endpoint: n for endpoint, n in rows}
