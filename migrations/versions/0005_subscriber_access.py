"""Subscriber access: SMS codes, rate-limit counters, second copies, payment history.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-24

Four new tables; nothing existing changes. (0005 follows 0003 on the branch that made
it; 0004 is another branch's, and the merge re-chains whichever lands second.)

- ``sms_codes``: one row per code sent. The code is never stored: a salted HMAC of it
  (keyed with the service's secret, so the table alone cannot be brute-forced over the
  million six-digit codes). ``attempts`` counts wrong tries; a code dies at five, when
  used, when superseded by a newer code for the phone, or when it expires.
- ``rate_limits``: fixed-window counters per hashed bucket (a phone, a client address).
- ``second_copies``: the duplicate of an invoice, one per invoice, as archived.
- ``payment_events``: every payment status change the billing system reported.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
MONEY = sa.Numeric().with_variant(sa.String(40), "sqlite")
INSTANT = sa.DateTime(timezone=True)
PAYMENT_STATUSES = "'unpaid', 'paid', 'overdue', 'partially_paid'"


def upgrade() -> None:
    op.create_table(
        "sms_codes",
        sa.Column("id", ID, primary_key=True, autoincrement=True),
        sa.Column("phone", sa.String(16), nullable=False),
        sa.Column("operator_id", sa.String(64), nullable=False),
        sa.Column("account", sa.String(64), nullable=False),
        sa.Column("salt", sa.String(32), nullable=False),
        sa.Column("code_hash", sa.String(64), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("created_at", INSTANT, nullable=False),
        sa.Column("expires_at", INSTANT, nullable=False),
        sa.Column("used_at", INSTANT),
        sa.Column("superseded_at", INSTANT),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sms_codes")),
    )
    op.create_index(op.f("ix_sms_codes_phone_created_at"), "sms_codes",
                    ["phone", "created_at"])
    op.create_table(
        "rate_limits",
        sa.Column("bucket", sa.String(64), nullable=False),
        sa.Column("window_start", INSTANT, nullable=False),
        sa.Column("hits", sa.Integer, nullable=False),
        sa.PrimaryKeyConstraint("bucket", "window_start", name=op.f("pk_rate_limits")),
    )
    op.create_index(op.f("ix_rate_limits_window_start"), "rate_limits", ["window_start"])
    op.create_table(
        "second_copies",
        sa.Column("invoice_id", ID, nullable=False),
        sa.Column("archive_key", sa.String(512), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("pages", sa.Integer),
        sa.Column("renderer_version", sa.String(64), nullable=False),
        sa.Column("created_at", INSTANT, nullable=False),
        sa.PrimaryKeyConstraint("invoice_id", name=op.f("pk_second_copies")),
        sa.ForeignKeyConstraint(["invoice_id"], ["invoices.id"],
                                name=op.f("fk_second_copies_invoice_id_invoices")),
    )
    op.create_table(
        "payment_events",
        sa.Column("id", ID, primary_key=True, autoincrement=True),
        sa.Column("invoice_id", ID, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("amount", MONEY),
        sa.Column("paid_on", sa.Date),
        sa.Column("source", sa.String(128), nullable=False),
        sa.Column("recorded_at", INSTANT, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payment_events")),
        sa.ForeignKeyConstraint(["invoice_id"], ["invoices.id"],
                                name=op.f("fk_payment_events_invoice_id_invoices")),
        sa.CheckConstraint(f"status IN ({PAYMENT_STATUSES})",
                           name=op.f("ck_payment_events_status")),
    )
    op.create_index(op.f("ix_payment_events_invoice_id_id"), "payment_events",
                    ["invoice_id", "id"])


def downgrade() -> None:
    op.drop_table("payment_events")
    op.drop_table("second_copies")
    op.drop_table("rate_limits")
    op.drop_table("sms_codes")
