"""Deliveries that close the loop: bounces, receipts, fallbacks, suppressed addresses.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07

- ``deliveries.state`` may be ``bounced``: the message was handed over, and the far end
  said later that it could not be delivered (a DSN with ``Status: 5.x.x``, a provider's
  bounce event, an SMS gateway's "undeliverable" receipt).
- ``deliveries.replaces_id``: a fallback delivery (SMS, then paper) names the one it
  replaces; unique, so a delivery is replaced at most once however many copies of a
  bounce arrive. (The unique (invoice, channel) stays: every channel once per invoice.)
- ``deliveries.recipient``: the address or number this attempt went to (a complaint or
  a hard bounce suppresses that address).
- ``deliveries.reference``: our identifier of the attempt (the Message-ID, the SMS
  reference), kept when the gateway's own id replaces it in ``message_id``.
- ``deliveries.report_status`` / ``reported_at``: the far end's last word (DSN status
  ``5.1.1``, ``4.2.2``, SMS receipt ``delivered`` / ``failed`` / ``expired``) and when.
- ``deliveries.owner``: the process sending it (``host:pid:start``), so that the next
  run can tell a dead sender's row (finish it) from a live one's (leave it, say so).
- ``suppressions``: addresses e-mail no longer goes to, per operator, and why.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_OLD_STATES = "'pending', 'sending', 'sent', 'failed_permanent', 'unknown'"
_NEW_STATES = "'pending', 'sending', 'sent', 'failed_permanent', 'unknown', 'bounced'"


def upgrade() -> None:
    # Batch mode: SQLite rebuilds the table to change a CHECK constraint and add a
    # foreign key; PostgreSQL gets plain ALTERs.
    with op.batch_alter_table("deliveries") as batch:
        batch.add_column(sa.Column("replaces_id", sa.BigInteger().with_variant(
            sa.Integer(), "sqlite")))
        batch.add_column(sa.Column("recipient", sa.Text))
        batch.add_column(sa.Column("reference", sa.String(255)))
        batch.add_column(sa.Column("report_status", sa.String(32)))
        batch.add_column(sa.Column("reported_at", sa.DateTime(timezone=True)))
        batch.add_column(sa.Column("owner", sa.String(128)))
        batch.create_foreign_key("fk_deliveries_replaces_id_deliveries", "deliveries",
                                 ["replaces_id"], ["id"])
        batch.create_unique_constraint("uq_deliveries_replaces_id", ["replaces_id"])
        batch.drop_constraint(op.f("ck_deliveries_state"), type_="check")
        batch.create_check_constraint(op.f("ck_deliveries_state"),
                                      sa.text(f"state IN ({_NEW_STATES})"))
    op.create_table(
        "suppressions",
        sa.Column("operator_id", sa.String(64), nullable=False),
        sa.Column("address", sa.String(320), nullable=False),
        sa.Column("reason", sa.String(16), nullable=False),
        sa.Column("detail", sa.Text),
        sa.Column("delivery_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
                  sa.ForeignKey("deliveries.id",
                                name="fk_suppressions_delivery_id_deliveries")),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("operator_id", "address", name="pk_suppressions"),
        sa.CheckConstraint("reason IN ('complaint', 'bounce')",
                           name=op.f("ck_suppressions_reason")),
    )


def downgrade() -> None:
    op.drop_table("suppressions")
    op.execute("UPDATE deliveries SET state = 'failed_permanent' WHERE state = 'bounced'")
    with op.batch_alter_table("deliveries") as batch:
        batch.drop_constraint(op.f("ck_deliveries_state"), type_="check")
        batch.create_check_constraint(op.f("ck_deliveries_state"),
                                      sa.text(f"state IN ({_OLD_STATES})"))
        batch.drop_constraint("uq_deliveries_replaces_id", type_="unique")
        batch.drop_constraint("fk_deliveries_replaces_id_deliveries", type_="foreignkey")
        for column in ("owner", "reported_at", "report_status", "reference", "recipient",
                       "replaces_id"):
            batch.drop_column(column)
