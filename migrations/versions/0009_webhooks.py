"""Webhooks to the billing system: endpoints, the events outbox, deliveries, attempts.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07

Four new tables; nothing existing changes. (Made after 0006 on its branch; chained
0007 -> 0008 -> 0009 -> 0010 when merged.)

- ``webhook_endpoints``: where an operator's events go (``*``: every operator's), with
  the secret that signs them (kept as is: signing needs it).
- ``webhook_events``: the outbox. One row per event, written in the same transaction as
  the state change it announces, with the exact body every attempt sends.
- ``webhook_deliveries``: one row per (event, endpoint), ``pending`` until the endpoint
  answers 2xx; ``next_attempt_at`` is both the backoff and a sender's lease.
- ``webhook_attempts``: every POST, its status code or error and how long it took.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
INSTANT = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "webhook_endpoints",
        sa.Column("id", ID, primary_key=True, autoincrement=True),
        sa.Column("operator_id", sa.String(64), nullable=False),
        sa.Column("url", sa.Text, nullable=False),
        sa.Column("secret", sa.Text, nullable=False),
        sa.Column("created_at", INSTANT, nullable=False),
        sa.Column("removed_at", INSTANT),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_endpoints")),
    )
    op.create_index(op.f("ix_webhook_endpoints_operator_id"), "webhook_endpoints",
                    ["operator_id"])
    op.create_table(
        "webhook_events",
        sa.Column("id", ID, primary_key=True, autoincrement=True),
        sa.Column("event_id", sa.String(40), nullable=False),
        sa.Column("type", sa.String(64), nullable=False),
        sa.Column("operator_id", sa.String(64)),
        sa.Column("invoice_id", ID),
        sa.Column("order_key", sa.String(128), nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("created_at", INSTANT, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_events")),
        sa.UniqueConstraint("event_id", name=op.f("uq_webhook_events_event_id")),
    )
    op.create_index(op.f("ix_webhook_events_created_at"), "webhook_events", ["created_at"])
    op.create_index(op.f("ix_webhook_events_invoice_id"), "webhook_events", ["invoice_id"])
    op.create_index(op.f("ix_webhook_events_type"), "webhook_events", ["type"])
    op.create_table(
        "webhook_deliveries",
        sa.Column("id", ID, primary_key=True, autoincrement=True),
        sa.Column("event_pk", ID, nullable=False),
        sa.Column("endpoint_id", ID, nullable=False),
        sa.Column("order_key", sa.String(128), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("next_attempt_at", INSTANT, nullable=False),
        sa.Column("last_error", sa.Text),
        sa.Column("delivered_at", INSTANT),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_deliveries")),
        sa.ForeignKeyConstraint(["event_pk"], ["webhook_events.id"],
                                name=op.f("fk_webhook_deliveries_event_pk_webhook_events")),
        sa.ForeignKeyConstraint(
            ["endpoint_id"], ["webhook_endpoints.id"],
            name=op.f("fk_webhook_deliveries_endpoint_id_webhook_endpoints")),
        sa.UniqueConstraint("event_pk", "endpoint_id",
                            name=op.f("uq_webhook_deliveries_event_pk_endpoint_id")),
        sa.CheckConstraint("state IN ('pending', 'delivered')",
                           name=op.f("ck_webhook_deliveries_state")),
    )
    op.create_index(op.f("ix_webhook_deliveries_state_next_attempt_at"),
                    "webhook_deliveries", ["state", "next_attempt_at"])
    op.create_index(op.f("ix_webhook_deliveries_endpoint_id_order_key_state_event_pk"),
                    "webhook_deliveries", ["endpoint_id", "order_key", "state", "event_pk"])
    op.create_table(
        "webhook_attempts",
        sa.Column("id", ID, primary_key=True, autoincrement=True),
        sa.Column("delivery_id", ID, nullable=False),
        sa.Column("attempted_at", INSTANT, nullable=False),
        sa.Column("status_code", sa.Integer),
        sa.Column("error", sa.Text),
        sa.Column("duration_ms", sa.Integer, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_attempts")),
        sa.ForeignKeyConstraint(
            ["delivery_id"], ["webhook_deliveries.id"],
            name=op.f("fk_webhook_attempts_delivery_id_webhook_deliveries")),
    )
    op.create_index(op.f("ix_webhook_attempts_delivery_id_id"), "webhook_attempts",
                    ["delivery_id", "id"])


def downgrade() -> None:
    op.drop_table("webhook_attempts")
    op.drop_table("webhook_deliveries")
    op.drop_table("webhook_events")
    op.drop_table("webhook_endpoints")
