"""Print batches: the batches paper invoices are printed in, and who is in which.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24

Two new tables; nothing existing changes.

- ``print_batches``: one row per batch of one operator, ``open`` (taking invoices) ->
  ``closing`` (membership frozen, the PDF being made) -> ``closed`` (PDF and manifests
  archived, handed to the print shop) -> ``printed`` (acknowledged). A partial unique
  index keeps at most one ``open`` batch per operator, so two processes that both find
  none and create one end up sharing the same.
- ``print_batch_items``: membership. Its primary key is the invoice: an invoice is in
  at most one batch, enforced by the database (``INSERT ... ON CONFLICT DO NOTHING``).
  A table of its own rather than a ``batch_id`` on ``deliveries``: deliveries are shared
  by every channel (e-mail and SMS rows would carry an always-empty column), and the
  membership has facts of its own (sequence, first page, sheets) fixed when the batch
  is sealed.

Types are spelled out as in 0001 (64-bit ids on PostgreSQL, the rowid on SQLite).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
INSTANT = sa.DateTime(timezone=True)
OPEN = sa.text("state = 'open'")


def upgrade() -> None:
    op.create_table(
        "print_batches",
        sa.Column("id", ID, primary_key=True, autoincrement=True),
        sa.Column("operator_id", sa.String(64), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        # The size at which the batch seals itself, fixed when it is created so that
        # every process joining it applies the same limits.
        sa.Column("max_documents", sa.Integer, nullable=False),
        sa.Column("max_sheets", sa.Integer, nullable=False),
        sa.Column("documents", sa.Integer, nullable=False),
        sa.Column("sheets", sa.Integer, nullable=False),
        sa.Column("created_at", INSTANT, nullable=False),
        sa.Column("sealed_at", INSTANT),
        sa.Column("closed_at", INSTANT),
        sa.Column("printed_at", INSTANT),
        # Who is making the PDF, and since when: a lease another process may take over
        # once it is stale (the output is deterministic, so a redo is harmless).
        sa.Column("closer", sa.String(64)),
        sa.Column("closer_since", INSTANT),
        sa.Column("last_error", sa.Text),
        sa.Column("pdf_key", sa.String(512)),
        sa.Column("pdf_sha256", sa.String(64)),
        sa.Column("pdf_size", sa.BigInteger),
        sa.Column("csv_key", sa.String(512)),
        sa.Column("json_key", sa.String(512)),
        sa.Column("printed_documents", sa.Integer),
        sa.Column("printed_sheets", sa.Integer),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_print_batches")),
        sa.CheckConstraint("state IN ('open', 'closing', 'closed', 'printed')",
                           name=op.f("ck_print_batches_state")),
        sa.CheckConstraint("max_documents > 0 AND max_sheets > 0",
                           name=op.f("ck_print_batches_limits")),
    )
    # At most one open batch per operator: the joiners' meeting point.
    op.create_index(op.f("ix_print_batches_operator_id"), "print_batches", ["operator_id"],
                    unique=True, sqlite_where=OPEN, postgresql_where=OPEN)
    # The print shop's and the closer's lists.
    op.create_index(op.f("ix_print_batches_state_operator_id"), "print_batches",
                    ["state", "operator_id"])

    op.create_table(
        "print_batch_items",
        sa.Column("invoice_id", ID, nullable=False),
        sa.Column("batch_id", ID, nullable=False),
        sa.Column("delivery_id", ID, nullable=False),
        sa.Column("pages", sa.Integer, nullable=False),
        sa.Column("sheets", sa.Integer, nullable=False),
        # Set when the batch is sealed (postal code, then account): a sealed batch's
        # order never changes.
        sa.Column("seq", sa.Integer),
        sa.Column("first_page", sa.Integer),
        sa.Column("joined_at", INSTANT, nullable=False),
        sa.PrimaryKeyConstraint("invoice_id", name=op.f("pk_print_batch_items")),
        sa.UniqueConstraint("batch_id", "seq", name=op.f("uq_print_batch_items_batch_id_seq")),
        sa.ForeignKeyConstraint(["invoice_id"], ["invoices.id"],
                                name=op.f("fk_print_batch_items_invoice_id_invoices")),
        sa.ForeignKeyConstraint(["batch_id"], ["print_batches.id"],
                                name=op.f("fk_print_batch_items_batch_id_print_batches")),
        sa.ForeignKeyConstraint(["delivery_id"], ["deliveries.id"],
                                name=op.f("fk_print_batch_items_delivery_id_deliveries")),
    )


def downgrade() -> None:
    op.drop_table("print_batch_items")
    op.drop_index(op.f("ix_print_batches_state_operator_id"), table_name="print_batches")
    op.drop_index(op.f("ix_print_batches_operator_id"), table_name="print_batches")
    op.drop_table("print_batches")
