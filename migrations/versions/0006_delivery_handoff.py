"""Deliveries remember when a message was handed over to the server.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-24

- ``deliveries.handed_off_at``: set right before an e-mail's message data goes to the
  SMTP server (the point after which it may be delivered whatever happens next), and
  cleared when an attempt starts. A ``sending`` row whose worker died without it is safe
  to send again; one with it may have been delivered, so the reconciler makes it
  ``unknown`` (a person decides, ``invoicer resend``) instead of sending it twice.

One nullable column: an ``ALTER TABLE ... ADD COLUMN`` on both databases, no rebuild.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("deliveries", sa.Column("handed_off_at", sa.DateTime(timezone=True)))


def downgrade() -> None:
    with op.batch_alter_table("deliveries") as batch:
        batch.drop_column("handed_off_at")
