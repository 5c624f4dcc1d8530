"""Property-based tests for money parsing and reconciliation."""

from __future__ import annotations

import copy
import json
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from invoicer.billing import RecordError, parse_record
from tests.conftest import SPEC_EXAMPLE


def _with_history_amount(value) -> dict:
    rec = copy.deepcopy(SPEC_EXAMPLE)
    rec["history"][0]["amount"] = value
    return rec


cents = st.integers(min_value=-(10**12), max_value=10**12)


def _fmt(minor: int, digits: int = 2) -> str:
    return format(Decimal(minor).scaleb(-digits).quantize(Decimal(1).scaleb(-digits)), "f")


@given(cents)
def test_money_round_trips_exactly(minor):
    text = _fmt(minor)
    parsed = parse_record(json.dumps(_with_history_amount(text))).history[0].amount
    assert parsed == Decimal(minor) / 100 and str(parsed) == text


@given(st.floats(allow_nan=False, allow_infinity=False) | st.integers())
def test_json_numbers_are_never_money(value):
    with pytest.raises(RecordError) as info:
        parse_record(json.dumps(_with_history_amount(value)))
    assert info.value.path == "history[0].amount"


@given(cents, st.integers(min_value=3, max_value=8))
def test_more_digits_than_the_currency_has_are_rejected(minor, digits):
    text = _fmt(minor * 10 + 1, digits)  # last digit non-zero beyond the cent
    with pytest.raises(RecordError) as info:
        parse_record(json.dumps(_with_history_amount(text)))
    assert info.value.reason == "money_precision"


@given(st.text(max_size=12))
def test_arbitrary_text_is_money_only_in_plain_notation(text):
    import re

    plain = re.fullmatch(r"-?[0-9]{1,18}(\.[0-9]{1,2})?", text) is not None
    try:
        parse_record(json.dumps(_with_history_amount(text)))
        accepted = True
    except RecordError:
        accepted = False
    assert accepted == plain


amounts = st.lists(st.integers(min_value=-50_000, max_value=500_000), min_size=1, max_size=6)


@settings(max_examples=150, deadline=None)
@given(charges=amounts, taxes=amounts, payments=amounts, adjustments=amounts,
       previous=cents, which=st.sampled_from(["charges", "taxes", "adjustments", "total_due"]),
       delta=st.sampled_from([-100, -1, 1, 7]))
def test_reconciliation(charges, taxes, payments, adjustments, previous, which, delta):
    rec = copy.deepcopy(SPEC_EXAMPLE)
    rec["payment"] = {"method": "direct_debit"}
    service = rec["services"][0]
    service["charges"] = [dict(service["charges"][0], amount=_fmt(c)) for c in charges]
    # Tax lines add up on their own (rate 1, named by no charge): this test is about totals.
    rec["taxes"] = [{"code": f"T{i}", "rate": "1", "base": _fmt(t), "amount": _fmt(t)}
                    for i, t in enumerate(taxes)]
    rec["balance"]["payments"] = [dict(rec["balance"]["payments"][0], amount=_fmt(p))
                                  for p in payments]
    rec["balance"]["adjustments"] = [dict(rec["balance"]["adjustments"][0], amount=_fmt(a))
                                     for a in adjustments]
    rec["balance"]["previous"] = _fmt(previous)
    totals = {
        "charges": sum(charges), "taxes": sum(taxes), "adjustments": sum(adjustments),
        "total_due": previous - sum(payments) + sum(adjustments) + sum(charges) + sum(taxes),
    }
    rec["totals"] = {k: _fmt(v) for k, v in totals.items()}
    assert parse_record(json.dumps(rec)).totals.total_due == Decimal(totals["total_due"]) / 100

    # One figure off by any amount: rejected, naming exactly that figure.
    rec["totals"][which] = _fmt(totals[which] + delta)
    with pytest.raises(RecordError) as info:
        parse_record(json.dumps(rec))
    assert [i.path for i in info.value.issues] == [f"totals.{which}"]
    assert info.value.reason == "reconciliation"
    assert rec["totals"][which] in info.value.message
