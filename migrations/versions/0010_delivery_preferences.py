"""Subscribers choose e-invoice, paper or both: ``delivery_preferences``.

Revision ID: 0010
Revises: 0009 (re-chained at merges: 0006 -> 0007 -> 0008 -> 0009 -> 0010, one head)
Create Date: 2026-12-07

One new table; nothing existing changes. One row per choice a subscriber made on the
page or through the API after an SMS-code login (``workflows.preferences``):

- ``mode``, and ``email`` for an electronic choice (confirmed by a signed, expiring,
  single-use link sent to it before it counts);
- when and how: ``requested_at``, ``requested_via`` (``page`` / ``api``),
  ``requested_from`` (the client's address), ``confirmed_at`` / ``confirmed_via``;
- ``state``: ``unconfirmed`` (waiting for the e-mail link), ``confirmed`` (the account's
  choice), ``superseded`` (a later choice replaced it);
- ``applied_at`` / ``applied_invoice``: the first invoice issued under it (until then
  the page shows it as pending).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
INSTANT = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "delivery_preferences",
        sa.Column("id", ID, primary_key=True, autoincrement=True),
        sa.Column("operator_id", sa.String(64), nullable=False),
        sa.Column("account", sa.String(64), nullable=False),
        sa.Column("mode", sa.String(16), nullable=False),
        sa.Column("email", sa.String(320)),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("requested_at", INSTANT, nullable=False),
        sa.Column("requested_via", sa.String(16), nullable=False),
        sa.Column("requested_from", sa.String(64)),
        sa.Column("confirmed_at", INSTANT),
        sa.Column("confirmed_via", sa.String(32)),
        sa.Column("superseded_at", INSTANT),
        sa.Column("applied_at", INSTANT),
        sa.Column("applied_invoice", sa.String(64)),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_delivery_preferences")),
        sa.CheckConstraint("mode IN ('electronic', 'paper', 'both')",
                           name=op.f("ck_delivery_preferences_mode")),
        sa.CheckConstraint("state IN ('unconfirmed', 'confirmed', 'superseded')",
                           name=op.f("ck_delivery_preferences_state")),
        sa.CheckConstraint("mode = 'paper' OR email IS NOT NULL",
                           name=op.f("ck_delivery_preferences_email")),
    )
    op.create_index(op.f("ix_delivery_preferences_operator_id_account_confirmed_at"),
                    "delivery_preferences", ["operator_id", "account", "confirmed_at"])


def downgrade() -> None:
    op.drop_index(op.f("ix_delivery_preferences_operator_id_account_confirmed_at"),
                  table_name="delivery_preferences")
    op.drop_table("delivery_preferences")
