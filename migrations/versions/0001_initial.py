"""Initial ledger: runs, run counters, invoices, rejects, deliveries.

Revision ID: 0001
Revises:
Create Date: 2026-11-24

Names are final (``op.f``), not derived from ledger.py's naming convention, and types
are spelled out here rather than imported from ledger.py, so this file keeps
describing the schema as it was when later revisions change the code:
- money is NUMERIC on PostgreSQL and decimal text on SQLite (whose NUMERIC keeps only
  15 significant digits);
- ids are 64-bit on PostgreSQL and INTEGER (the rowid) on SQLite.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
MONEY = sa.Numeric().with_variant(sa.String(40), "sqlite")
INSTANT = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "runs",
        sa.Column("id", ID, primary_key=True, autoincrement=True),
        sa.Column("source", sa.Text, nullable=False),
        sa.Column("source_sha256", sa.String(64)),
        sa.Column("expected", sa.Integer),
        sa.Column("started_at", INSTANT, nullable=False),
        sa.Column("finished_at", INSTANT),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_runs")),
    )
    op.create_table(
        "run_counters",
        sa.Column("run_id", ID, nullable=False),
        sa.Column("outcome", sa.String(64), nullable=False),
        sa.Column("n", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("run_id", "outcome", name=op.f("pk_run_counters")),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], name=op.f("fk_run_counters_run_id_runs")),
    )
    op.create_table(
        "invoices",
        sa.Column("id", ID, primary_key=True, autoincrement=True),
        sa.Column("operator_id", sa.String(64), nullable=False),
        sa.Column("number", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("account", sa.String(64), nullable=False),
        sa.Column("period_start", sa.Date, nullable=False),
        sa.Column("period_end", sa.Date, nullable=False),
        sa.Column("issue_date", sa.Date, nullable=False),
        sa.Column("due_date", sa.Date, nullable=False),
        sa.Column("total", MONEY, nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("locale", sa.String(35), nullable=False),
        sa.Column("delivery_mode", sa.String(16), nullable=False),
        sa.Column("postal_code", sa.String(32)),
        sa.Column("country", sa.String(2)),
        sa.Column("phone", sa.String(16)),
        sa.Column("record_sha256", sa.String(64)),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("sha256", sa.String(64)),
        sa.Column("archive_key", sa.String(512)),
        sa.Column("renderer_version", sa.String(64)),
        sa.Column("pages", sa.Integer),
        sa.Column("size", sa.BigInteger),
        sa.Column("payment_status", sa.String(16), nullable=False),
        sa.Column("paid_amount", MONEY),
        sa.Column("paid_on", sa.Date),
        sa.Column("run_id", ID),
        sa.Column("source_line", sa.Integer),
        sa.Column("created_at", INSTANT, nullable=False),
        sa.Column("updated_at", INSTANT, nullable=False),
        sa.Column("archived_at", INSTANT),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_invoices")),
        # The pipeline's idempotency: one invoice per number per operator, enforced here.
        sa.UniqueConstraint("operator_id", "number", name=op.f("uq_invoices_operator_id_number")),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], name=op.f("fk_invoices_run_id_runs")),
        sa.CheckConstraint("status IN ('claimed', 'archived')", name=op.f("ck_invoices_status")),
        sa.CheckConstraint(
            "payment_status IN ('unpaid', 'paid', 'overdue', 'partially_paid')",
            name=op.f("ck_invoices_payment_status"),
        ),
        sa.CheckConstraint(
            "delivery_mode IN ('electronic', 'paper', 'both')",
            name=op.f("ck_invoices_delivery_mode"),
        ),
        sa.CheckConstraint("kind IN ('original', 'duplicate')", name=op.f("ck_invoices_kind")),
    )
    # The subscriber history (last 13 of an account), the SMS-code lookup by phone, and
    # the per-run counts.
    op.create_index(op.f("ix_invoices_operator_id_account_issue_date"), "invoices",
                    ["operator_id", "account", "issue_date"])
    op.create_index(op.f("ix_invoices_phone"), "invoices", ["phone"])
    op.create_index(op.f("ix_invoices_run_id_status"), "invoices", ["run_id", "status"])

    op.create_table(
        "rejects",
        sa.Column("id", ID, primary_key=True, autoincrement=True),
        sa.Column("run_id", ID, nullable=False),
        sa.Column("source_key", sa.String(80), nullable=False),
        sa.Column("line", sa.Integer, nullable=False),
        sa.Column("invoice_number", sa.Text),
        sa.Column("reason", sa.String(64), nullable=False),
        sa.Column("path", sa.Text, nullable=False),
        sa.Column("message", sa.Text, nullable=False),
        sa.Column("issues", sa.JSON, nullable=False),
        sa.Column("raw", sa.LargeBinary, nullable=False),
        sa.Column("created_at", INSTANT, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rejects")),
        # A line of a source is dead-lettered once, however many runs read it.
        sa.UniqueConstraint("source_key", "line", name=op.f("uq_rejects_source_key_line")),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], name=op.f("fk_rejects_run_id_runs")),
    )
    op.create_index(op.f("ix_rejects_run_id_reason"), "rejects", ["run_id", "reason"])

    op.create_table(
        "deliveries",
        sa.Column("id", ID, primary_key=True, autoincrement=True),
        sa.Column("invoice_id", ID, nullable=False),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("last_error", sa.Text),
        sa.Column("message_id", sa.String(255)),
        sa.Column("created_at", INSTANT, nullable=False),
        sa.Column("updated_at", INSTANT, nullable=False),
        sa.Column("sent_at", INSTANT),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_deliveries")),
        # One row per (invoice, channel): a second dispatch finds it instead of sending.
        sa.UniqueConstraint("invoice_id", "channel", name=op.f("uq_deliveries_invoice_id_channel")),
        sa.ForeignKeyConstraint(["invoice_id"], ["invoices.id"],
                                name=op.f("fk_deliveries_invoice_id_invoices")),
        sa.CheckConstraint(
            "channel IN ('email', 'sms', 'print')", name=op.f("ck_deliveries_channel")
        ),
        sa.CheckConstraint(
            "state IN ('pending', 'sending', 'sent', 'failed_permanent', 'unknown')",
            name=op.f("ck_deliveries_state"),
        ),
    )
    op.create_index(op.f("ix_deliveries_state_updated_at"), "deliveries", ["state", "updated_at"])


def downgrade() -> None:
    op.drop_table("deliveries")
    op.drop_table("rejects")
    op.drop_table("invoices")
    op.drop_table("run_counters")
    op.drop_table("runs")
