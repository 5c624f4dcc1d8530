"""renderer.shock: when the explainer speaks, and what it names."""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal

from invoicer.billing import parse_record
from invoicer.renderer.shock import PreviousInvoice, by_category, explain
from tests.renderer.conftest import sample


def _with_previous_amount(amount: str):
    record = sample("OI-2026-11-0000123")  # charges 83.00 + taxes 20.75 = 103.75
    data = json.loads(record.model_dump_json(by_alias=True))
    data["history"][-1]["amount"] = amount
    return parse_record(json.dumps(data))


def test_the_share_is_a_strict_threshold():
    assert explain(_with_previous_amount("86.46"), None) is None  # +20.0 %: not beyond
    found = explain(_with_previous_amount("86.45"), None)
    assert found is not None and found.change == Decimal("17.30")
    assert found.compared_with == date(2026, 10, 15) and found.movers == ()
    assert explain(_with_previous_amount("86.45"), None, Decimal("0.25")) is None


def test_a_drop_counts_as_much_as_a_rise():
    found = explain(_with_previous_amount("200.00"), None)
    assert found is not None and found.change == Decimal("-96.25") and found.share < 0


def test_no_previous_amount_no_sentence():
    assert explain(_with_previous_amount("0.00"), None) is None


def test_movers_are_the_largest_changes_first_at_most_three():
    record = _with_previous_amount("50.00")
    assert by_category(record) == {"subscription": Decimal("59.90"),
                                   "international": Decimal("23.10")}
    previous = PreviousInvoice(date(2026, 9, 1), date(2026, 9, 30), "BRL", {
        "subscription": Decimal("59.90"), "roaming": Decimal("40.00"),
        "sms": Decimal("1.00"), "data": Decimal("2.00"), "tv": Decimal("3.00")})
    found = explain(record, previous)
    assert found.movers == (("roaming", Decimal("-40.00")),
                            ("international", Decimal("23.10")),
                            ("tv", Decimal("-3.00")))


def test_figures_in_another_currency_are_not_compared():
    previous = PreviousInvoice(date(2026, 9, 1), date(2026, 9, 30), "EUR",
                               {"roaming": Decimal("40.00")})
    assert explain(_with_previous_amount("50.00"), previous).movers == ()
