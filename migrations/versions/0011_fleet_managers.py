"""Detailed bills on demand, fleet managers, and the lines of business invoices.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07

Three new tables; nothing existing changes.

- ``detailed_bills``: the call-details annex of an invoice rendered as a PDF of its
  own, once per (invoice, line); ``line`` is "" for the whole account.
- ``fleet_managers``: per business account, the phones (and optionally e-mail
  addresses) the billing system registered as its fleet managers.
- ``invoice_lines``: the line phones each business invoice covers, recorded when it is
  archived (which account a line's phone belongs to, and in which invoices).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
INSTANT = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "detailed_bills",
        sa.Column("invoice_id", ID, nullable=False),
        sa.Column("line", sa.String(64), nullable=False),
        sa.Column("archive_key", sa.String(512), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("pages", sa.Integer),
        sa.Column("renderer_version", sa.String(64), nullable=False),
        sa.Column("created_at", INSTANT, nullable=False),
        sa.PrimaryKeyConstraint("invoice_id", "line", name=op.f("pk_detailed_bills")),
        sa.ForeignKeyConstraint(["invoice_id"], ["invoices.id"],
                                name=op.f("fk_detailed_bills_invoice_id_invoices")),
    )
    op.create_table(
        "fleet_managers",
        sa.Column("operator_id", sa.String(64), nullable=False),
        sa.Column("account", sa.String(64), nullable=False),
        sa.Column("phone", sa.String(16), nullable=False),
        sa.Column("email", sa.String(254)),
        sa.Column("created_at", INSTANT, nullable=False),
        sa.PrimaryKeyConstraint("operator_id", "account", "phone",
                                name=op.f("pk_fleet_managers")),
    )
    op.create_index(op.f("ix_fleet_managers_phone"), "fleet_managers", ["phone"])
    op.create_table(
        "invoice_lines",
        sa.Column("invoice_id", ID, nullable=False),
        sa.Column("phone", sa.String(16), nullable=False),
        sa.PrimaryKeyConstraint("invoice_id", "phone", name=op.f("pk_invoice_lines")),
        sa.ForeignKeyConstraint(["invoice_id"], ["invoices.id"],
                                name=op.f("fk_invoice_lines_invoice_id_invoices")),
    )
    op.create_index(op.f("ix_invoice_lines_phone"), "invoice_lines", ["phone"])


def downgrade() -> None:
    op.drop_table("invoice_lines")
    op.drop_table("fleet_managers")
    op.drop_table("detailed_bills")
