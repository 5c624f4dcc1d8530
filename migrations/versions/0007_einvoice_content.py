"""Invoices remember their content, the previous invoice they compared with, and their
e-invoice XML.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07

- ``invoices.content_sha256``: SHA-256 of the record's canonical content (every field
  but ``delivery``, see ``billing.content``). An invoice number is issued once with one
  content (contract 1.1): the same number with another content is a ``conflict``.
- ``invoices.previous_number``: the account's previous invoice whose figures the
  bill-shock sentence compared with, fixed when the number is claimed so that a retry,
  a resumed run and a second copy render the same sentence.
- ``invoices.shock_share``: the bill-shock share (``INVOICER_SHOCK_SHARE``) the invoice
  was rendered with, so its retries and second copies keep the sentence after a change
  of the setting.
- ``invoices.charges_by_category``: the invoice's charges summed per category (JSON,
  decimal strings): the figures the *next* invoice's bill-shock sentence compares with,
  read from the ledger instead of re-reading an archived record that may hold 100,000
  CDRs.
- ``invoices.einvoice_format``, ``einvoice_sha256``, ``einvoice_size``: the structured
  invoice archived beside the PDF (``….xml``; XRechnung, Peppol BIS 3, RO_CIUS), for
  downloads and run summaries. Factur-X is inside the PDF: format only, no XML object.

Nullable columns only: ``ALTER TABLE ... ADD COLUMN`` on both databases, no rebuild.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_COLUMNS = (
    ("content_sha256", sa.String(64)),
    ("previous_number", sa.String(64)),
    ("shock_share", sa.String(16)),
    ("charges_by_category", sa.JSON),
    ("einvoice_format", sa.String(16)),
    ("einvoice_sha256", sa.String(64)),
    ("einvoice_size", sa.BigInteger),
)


def upgrade() -> None:
    for name, type_ in _COLUMNS:
        op.add_column("invoices", sa.Column(name, type_))


def downgrade() -> None:
    with op.batch_alter_table("invoices") as batch:
        for name, _ in reversed(_COLUMNS):
            batch.drop_column(name)
