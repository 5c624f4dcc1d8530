"""Run chunks: bill runs split into tasks for Celery workers, and where each stands.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-24

One new table; nothing existing changes. (Written on the ``celery`` branch after 0002;
re-chained after 0003 when the branches are merged: it touches no table 0003 does.)

- ``run_chunks``: one row per chunk of a bill run (run, sequence, the source's byte
  range, first line, number of lines and the range's SHA-256, which a worker checks so
  that a source rewritten after the split is refused), with its state ``planned`` -> ``queued`` ->
  ``running`` -> ``done`` | ``failed``, attempts, last error, the outcome counts of a
  finished chunk (JSON) and when it last changed. Unique (run, sequence): a coordinator
  that runs twice writes each chunk once. Indexed by (state, updated_at) for the
  reconciler's "not terminal and untouched for a while", and (run, state) for progress.

Types are spelled out as in 0001 (64-bit ids on PostgreSQL, the rowid on SQLite).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
INSTANT = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "run_chunks",
        sa.Column("id", ID, primary_key=True, autoincrement=True),
        sa.Column("run_id", ID, nullable=False),
        sa.Column("seq", sa.Integer, nullable=False),
        sa.Column("start_byte", sa.BigInteger, nullable=False),
        sa.Column("end_byte", sa.BigInteger, nullable=False),
        sa.Column("first_line", sa.Integer, nullable=False),
        sa.Column("lines", sa.Integer, nullable=False),
        sa.Column("sha256", sa.String(64)),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("last_error", sa.Text),
        sa.Column("outcomes", sa.JSON),
        sa.Column("created_at", INSTANT, nullable=False),
        sa.Column("updated_at", INSTANT, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_run_chunks")),
        sa.UniqueConstraint("run_id", "seq", name=op.f("uq_run_chunks_run_id_seq")),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], name=op.f("fk_run_chunks_run_id_runs")),
        sa.CheckConstraint(
            "state IN ('planned', 'queued', 'running', 'done', 'failed')",
            name=op.f("ck_run_chunks_state")),
        sa.CheckConstraint("start_byte >= 0 AND end_byte > start_byte AND lines > 0",
                           name=op.f("ck_run_chunks_range")),
    )
    op.create_index(op.f("ix_run_chunks_state_updated_at"), "run_chunks",
                    ["state", "updated_at"])
    op.create_index(op.f("ix_run_chunks_run_id_state"), "run_chunks", ["run_id", "state"])


def downgrade() -> None:
    op.drop_index(op.f("ix_run_chunks_run_id_state"), table_name="run_chunks")
    op.drop_index(op.f("ix_run_chunks_state_updated_at"), table_name="run_chunks")
    op.drop_table("run_chunks")
