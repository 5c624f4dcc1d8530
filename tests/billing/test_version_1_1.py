"""billing-record/1.1: accepted beside 1, a 1.0 record keeps its meaning, and the two rules
made explicit for every record (tax lines add up, text is Unicode scalar values)."""

from __future__ import annotations

import copy
import json
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from invoicer.billing import RecordError, parse_record
from tests.conftest import SPEC_EXAMPLE

EINVOICE = {"format": "peppol-bis3", "buyer_reference": "PO-1",
            "endpoint": {"scheme": "0208", "id": "0123456749"}}


def spec(**top) -> dict:
    rec = copy.deepcopy(SPEC_EXAMPLE)
    rec.update(top)
    return rec


def rejected(rec: dict) -> RecordError:
    with pytest.raises(RecordError) as info:
        parse_record(json.dumps(rec))
    return info.value


@pytest.mark.parametrize("version", ["billing-record/1", "billing-record/1.1"])
def test_both_versions_are_accepted(version):
    assert parse_record(json.dumps(spec(schema=version))).schema_version == version


@pytest.mark.parametrize("version", ["billing-record/1.2", "billing-record/2", "1.1", ""])
def test_other_versions_are_rejected(version):
    err = rejected(spec(schema=version))
    assert err.path == "schema" and err.reason == "schema_version"
    assert "billing-record/1.1" in err.message


def test_a_1_0_record_ignores_the_1_1_fields_as_unknown_extras():
    rec = spec()
    rec["delivery"]["einvoice"] = EINVOICE
    rec["operator"]["vat_id"] = "not even valid"
    rec["taxes"][0]["category"] = "nonsense"
    rec["payment"]["debit"] = {"mandate": 1}
    before = copy.deepcopy(rec)
    parsed = parse_record(rec)
    assert parsed.delivery.einvoice is None and parsed.operator.vat_id is None
    assert parsed.taxes[0].category is None and parsed.payment.debit is None
    assert rec == before, "the caller's object is not modified"
    assert parsed == parse_record(json.dumps(spec()))


def test_the_same_fields_in_1_1_are_read_and_checked():
    rec = spec(schema="billing-record/1.1")
    rec["operator"]["vat_id"] = "not even valid"
    assert rejected(rec).path == "operator.vat_id"


def test_an_einvoice_record_missing_what_its_format_needs_names_each_field():
    rec = spec(schema="billing-record/1.1")
    rec["delivery"]["einvoice"] = {"format": "xrechnung-ubl"}
    paths = {i.path for i in rejected(rec).issues}
    assert paths >= {"operator.vat_id", "taxes[0].category",
                     "delivery.einvoice.buyer_reference", "delivery.einvoice.endpoint",
                     "operator.endpoint"}


def test_lone_surrogates_are_rejected_everywhere_text_goes():
    for path in (("account", "customer", "name"), ("services", 0, "label"),
                 ("balance", "adjustments", 0, "description")):
        rec = spec()
        node = rec
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = "ok \ud83d then"  # half of an emoji's surrogate pair
        err = rejected(rec)
        assert err.reason == "text", err
        assert err.path == ".".join(str(p) for p in path).replace(".0", "[0]")
    text = json.dumps(spec(), ensure_ascii=True).replace("Oi S.A.", "Oi \\udfff")
    assert rejected(json.loads(text)).reason == "text"
    # A proper pair (an emoji) is a scalar value and fine.
    rec = spec()
    rec["account"]["customer"]["name"] = "Maria \U0001f600"
    parse_record(json.dumps(rec))


def test_surrogates_in_verbatim_payment_text_are_rejected():
    rec = spec()
    rec["payment"] = {"method": "barcode", "scheme": "code128", "code": "REF\udc00"}
    err = rejected(rec)
    assert (err.path, err.reason) == ("payment.code", "text")


def _taxed(base: int, rate: str, amount: int, charges: int) -> dict:
    """The spec example with ``charges`` charges naming one tax line (minor units)."""
    rec = spec()
    rec["payment"] = {"method": "direct_debit"}
    each, rest = divmod(base, charges)
    amounts = [each + (1 if i < rest else 0) for i in range(charges)]
    service = rec["services"][0]
    service["charges"] = [dict(service["charges"][0], amount=f"{a / 100:.2f}")
                          for a in amounts]
    rec["taxes"] = [{"code": "ICMS", "rate": rate, "base": f"{base / 100:.2f}",
                     "amount": f"{amount / 100:.2f}"}]
    due = Decimal(rec["balance"]["previous"]) - Decimal("120.50") + 1 + Decimal(
        base + amount) / 100
    rec["totals"] = {"charges": f"{base / 100:.2f}", "taxes": f"{amount / 100:.2f}",
                     "adjustments": "1.00", "total_due": f"{due:.2f}"}
    return rec


@settings(max_examples=120, deadline=None)
@given(base=st.integers(1, 10**7), rate=st.sampled_from(["0.25", "0.19", "0.081", "0.1025"]),
       charges=st.integers(1, 5), off=st.integers(-8, 8))
def test_tax_lines_add_up_within_one_minor_unit_per_charge(base, rate, charges, off):
    exact = Decimal(base) * Decimal(rate)  # in minor units
    amount = int(exact.to_integral_value()) + off
    rec = _taxed(base, rate, amount, charges)
    allowed = abs(Decimal(amount) - exact) <= Decimal("0.5") + charges
    if allowed:
        parse_record(json.dumps(rec))
    else:
        err = rejected(rec)
        assert (err.path, err.reason) == ("taxes[0].amount", "tax_mismatch")
        assert rec["taxes"][0]["amount"] in err.message


def test_tax_base_must_be_the_sum_of_the_charges_naming_it():
    rec = _taxed(8300, "0.25", 2075, 2)
    rec["taxes"][0]["base"] = "84.00"
    rec["taxes"][0]["amount"] = "21.00"
    rec["totals"]["taxes"] = "21.00"
    rec["totals"]["total_due"] = "105.00"
    err = rejected(rec)
    assert (err.path, err.reason) == ("taxes[0].base", "tax_mismatch")
    assert "84.00" in err.message and "83.00" in err.message
