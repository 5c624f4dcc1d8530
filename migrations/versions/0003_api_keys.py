"""API keys: who may call the HTTP API, in which role, for which operators.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26

One new table; nothing existing changes.

- ``api_keys``: one row per key. The token itself is never stored: only its SHA-256
  (a token is 256 random bits, so a plain hash is enough: nothing to brute-force, and
  no per-key salt or slow hash to pay for on every request) and a short public
  ``prefix`` that is part of the token and finds the row without scanning.
  ``operators`` is the JSON list of operator ids the key may act for. A key is revoked
  by setting ``revoked_at``; rows are never deleted, so the ledger keeps who had access.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
INSTANT = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "api_keys",
        sa.Column("id", ID, primary_key=True, autoincrement=True),
        sa.Column("prefix", sa.String(16), nullable=False),
        sa.Column("secret_sha256", sa.String(64), nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("operators", sa.JSON, nullable=False),
        sa.Column("created_at", INSTANT, nullable=False),
        sa.Column("revoked_at", INSTANT),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_keys")),
        sa.UniqueConstraint("prefix", name=op.f("uq_api_keys_prefix")),
        sa.CheckConstraint("role IN ('billing', 'print_shop', 'operations')",
                           name=op.f("ck_api_keys_role")),
    )


def downgrade() -> None:
    op.drop_table("api_keys")
