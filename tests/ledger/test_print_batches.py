"""The print-batch store's own rules; joining, sealing, closing and acknowledging under
races are tested through the workflow (``tests/workflows/test_printing.py``), on
SQLite and PostgreSQL."""

from __future__ import annotations

import dataclasses

import pytest

from invoicer.ledger import BatchLimits, PrintBatch, PrintBatchItem, print_sort_key, sheets_for
from invoicer.ledger.schema import print_batch_items, print_batches


def test_sheets_limits_and_print_order():
    assert [sheets_for(p) for p in (1, 2, 3, 4, 5)] == [1, 1, 2, 2, 3]
    with pytest.raises(ValueError):
        BatchLimits(max_documents=0)
    with pytest.raises(ValueError):
        BatchLimits(max_sheets=-1)
    # One postal code typed two ways sorts together; no postal code last.
    codes = ["22021-001", "22021 001", None, "01310-100", "22021001"]
    ordered = sorted(((c, "A", "N") for c in codes), key=lambda t: print_sort_key(*t))
    assert [c for c, _, _ in ordered][:1] == ["01310-100"] and ordered[-1][0] is None
    assert len({print_sort_key(c, "A", "N")[1] for c in codes if c and c.startswith("22")}) == 1


def test_row_dataclasses_follow_their_tables_column_order():
    # documents() builds rows positionally from a join; that relies on this.
    for cls, table in ((PrintBatch, print_batches), (PrintBatchItem, print_batch_items)):
        assert [f.name for f in dataclasses.fields(cls)] == list(table.c.keys())
