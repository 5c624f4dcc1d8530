"""Archive keys: where an invoice goes, and identifiers that must not get anywhere else."""

from __future__ import annotations

from datetime import date

import pytest

from invoicer.delivery.archive import (
    account_prefix,
    invoice_key,
)


def test_invoice_key_is_operator_account_month_invoice():
    KEY = invoice_key("oi", "1234567890", date(2026, 10, 1), "OI-2026-11-0000123", "pdf")
    assert KEY == "oi/1234567890/2026-10/OI-2026-11-0000123.pdf"
    assert invoice_key("vodafone.ro", "RO_77-1", date(2026, 1, 31), "F.1", ".json") == (
        "vodafone.ro/RO_77-1/2026-01/F.1.json")
    assert account_prefix("oi", "1234567890") == "oi/1234567890/"
    assert KEY.startswith(account_prefix("oi", "1234567890"))


UNSAFE = ["..", "../x", "x/..", "a/b", "/abs", "a..b", "", ".hidden", "-x", "_x", "x\n",
          "a b", "a\\b", "ä", "x" * 65, "a\x00b", None, 42]


@pytest.mark.parametrize("bad", UNSAFE, ids=repr)
@pytest.mark.parametrize("position", ["operator", "account", "invoice_number"])
def test_invoice_key_rejects_unsafe_identifiers(position, bad):
    parts = {"operator": "oi", "account": "1234567890", "invoice_number": "OI-1"}
    parts[position] = bad
    with pytest.raises(ValueError, match=position):
        invoice_key(parts["operator"], parts["account"], date(2026, 10, 1),
                    parts["invoice_number"], "pdf")


@pytest.mark.parametrize("ext", ["exe", "pdf/../x", "", "PDF"])
def test_invoice_key_names_only_pdf_and_json(ext):
    with pytest.raises(ValueError, match="ext"):
        invoice_key("oi", "1", date(2026, 10, 1), "OI-1", ext)
