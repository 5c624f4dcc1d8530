"""Dead letters keep at most 64 KiB of their line in the row.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07

- ``rejects.raw_size``: the dead-lettered line's whole length in bytes;
- ``rejects.raw_file``: where the whole line is (a file under ``INVOICER_REJECTS_DIR``)
  when the row's ``raw`` holds only its first 64 KiB. A 50 MB line no longer sits in a
  database row.

Two nullable columns: an ``ALTER TABLE ... ADD COLUMN`` on both databases, no rebuild.
Rows written before keep their whole line in ``raw`` and ``raw_size`` NULL.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("rejects", sa.Column("raw_size", sa.BigInteger))
    op.add_column("rejects", sa.Column("raw_file", sa.Text))


def downgrade() -> None:
    with op.batch_alter_table("rejects") as batch:
        batch.drop_column("raw_file")
        batch.drop_column("raw_size")
