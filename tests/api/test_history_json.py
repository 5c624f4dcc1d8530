"""The history's JSON is made without its pydantic models (``api.subscriber.history_json``,
for speed): its bytes must stay those FastAPI made from the ``History`` model, with the
same content type, whatever text the ledger holds.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from pydantic import TypeAdapter
from pydantic_core import to_json

from invoicer.api.access import AccessService, Grant
from invoicer.api.subscriber import History, _history_fields, history
from invoicer.ledger import Ledger
from invoicer.ledger.invoices import ListedInvoice
from tests.api.conftest import SECRET
from tests.api.subscriber_client import API, BEFORE_DUE, bearer, link_token
from tests.api.world import MAIN

#: How FastAPI serialized a route's returned model (its response_model's TypeAdapter,
#: straight to JSON bytes) before the history skipped it.
_MODEL_JSON = TypeAdapter(History).dump_json


@pytest.mark.parametrize("sub", ["sqlite", "postgresql"], indirect=True)
def test_the_served_history_is_the_models_json_byte_for_byte(sub):
    sub.clock.now = BEFORE_DUE
    number = sub.issued[-4].number  # the main account's latest
    token = link_token(*MAIN[:2], number)
    got = sub.http.get(f"{API}/invoices", headers=bearer(token))
    assert got.status_code == 200
    assert got.headers["content-type"] == "application/json"
    grant = sub.access.grant(token)
    expected = _MODEL_JSON(history(sub.access, grant))
    assert got.content == expected
    assert int(got.headers["content-length"]) == len(expected)
    assert len(got.json()["invoices"]) == 13


_HOSTILE = ['"}],"account":"2222222222', "a\\b\\\"c", "</script><script>alert(1)</script>",
            "\x00\x01\x1f\x7f", "\n\r\t\b\f", "\u2028\u2029", "\u00e9\u4e2d\U0001f600",
            "' OR 1=1 --", "{{ 7*7 }}", ""]


def _row(i: int, text: str) -> ListedInvoice:
    return ListedInvoice(
        operator_id="oi", number=f"N-{i}{text}", kind="original", account="1234567890",
        period_start=date(2026, 1, 1), period_end=date(2026, 1, 31),
        issue_date=date(2026, 2, 5), due_date=date(2026, 2, 20),
        total=Decimal("104.75") if i % 2 else Decimal("-0.10"), currency=f"BRL{text}",
        locale=f"pt_BR{text}", pages=None if i % 3 else 2,
        payment_status=("unpaid", "paid", "overdue", "partially_paid")[i % 4],
        paid_amount=Decimal("1E+2") if i % 2 else None,
        paid_on=date(2026, 2, 18) if i % 2 else None,
        archive_key=f"oi/{i}.pdf", einvoice_format=text or None,
        einvoice_sha256="ab" * 32 if i % 2 else None)


@pytest.mark.parametrize("text", _HOSTILE)
def test_hostile_text_is_encoded_as_the_model_encodes_it(tmp_path, text):
    """Quotes, backslashes, control characters, separators, markup: the same bytes as
    the model's, and the text comes back as it was (data, never structure)."""
    ledger = Ledger.from_url(f"sqlite:///{tmp_path / 'ledger.db'}",
                             clock=lambda: datetime(2026, 3, 1, tzinfo=UTC))
    try:
        access = AccessService(ledger, None, SECRET)
        grant = Grant("oi", "1234567890", 1_800_000_000)
        rows = [_row(i, text) for i in range(13)]
        fields = _history_fields(access, grant, rows)
        body = to_json(fields)
        assert body == _MODEL_JSON(History.model_validate(fields))
        parsed = History.model_validate_json(body)
        assert [i.number for i in parsed.invoices] == [r.number for r in rows]
        assert parsed.invoices[0].currency == f"BRL{text}"
        assert parsed.latest == parsed.invoices[0]
        # An empty history: latest is null.
        empty = _history_fields(access, replace(grant, account="none"), [])
        assert to_json(empty) == _MODEL_JSON(History.model_validate(empty))
    finally:
        ledger.close()
