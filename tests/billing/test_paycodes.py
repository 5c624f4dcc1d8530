"""Payment codes: every rule from the accepting and the rejecting side, public vectors,
round trips and properties."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from invoicer.billing.paycodes import (
    PaymentCodeError,
    code128,
    epc,
    febraban,
    gost,
    validate_payment,
)

SPEC_CODE = "84680000001047501080000001234567890202611200"


def error(call, *args) -> PaymentCodeError:
    with pytest.raises(PaymentCodeError) as info:
        call(*args)
    return info.value


# --------------------------------------------------------------------------- dispatch


def test_payment_code_error_is_a_value_error_with_field_and_message():
    exc = PaymentCodeError("fields.IBAN", "wrong check digits")
    assert isinstance(exc, ValueError)
    assert (exc.field, exc.message) == ("fields.IBAN", "wrong check digits")
    assert str(exc) == "fields.IBAN: wrong check digits"


def test_validate_payment_accepts_the_spec_example():
    validate_payment("febraban", SPEC_CODE, None, Decimal("104.75"), "BRL")


def test_validate_payment_dispatches_every_scheme():
    validate_payment("code128", "OI-2026-11-0000123", None, Decimal("1.00"), "USD")
    fields = dict(EPC_FIELDS)
    validate_payment("epc_qr", epc.build(fields, Decimal("12.30")), fields, Decimal("12.30"), "EUR")
    validate_payment("gost_qr", GOST_EXAMPLE, GOST_FIELDS, Decimal("1000.00"), "RUB")


def test_validate_payment_rejects_an_unknown_scheme():
    exc = error(validate_payment, "pix", "x", None, Decimal(1), "BRL")
    assert exc.field == "scheme" and "pix" in exc.message


@pytest.mark.parametrize("scheme", ["febraban", "code128"])
def test_schemes_without_fields_reject_fields(scheme):
    exc = error(validate_payment, scheme, SPEC_CODE, {"x": "1"}, Decimal("104.75"), "BRL")
    assert exc.field == "fields"


@pytest.mark.parametrize("scheme", ["epc_qr", "gost_qr"])
def test_qr_schemes_need_fields(scheme):
    assert error(validate_payment, scheme, "x", None, Decimal(1), "EUR").field == "fields"


# --------------------------------------------------------------------------- febraban

# Real collection codes with their typeable lines, as published in the test suites of
# boleto-utils (mrmgomes/boleto-utils: an energy bill, a DARF-like guide, a telecom bill)
# and febraban_barcode (WilliamSampaio/febraban_barcode).
FEBRABAN_VECTORS = [
    ("83860000005096000190000008017823000034306271",
     "838600000050096000190009000801782309000343062712"),
    ("85820000000572503282035607082021053959190446",
     "858200000007572503282030560708202107539591904460"),
    ("84630000000299902962020041013600000200644114",
     "846300000003299902962024004101360008002006441147"),
    ("84670000000109910422023123100000000000054321",
     "846700000009109910422020312310000004000000543215"),
]  # fmt: skip


@pytest.mark.parametrize(("code", "line"), FEBRABAN_VECTORS)
def test_febraban_public_vectors_parse_with_their_typeable_line(code, line):
    parsed = febraban.parse(code)
    assert parsed.typeable_line == line
    assert "".join(parsed.typeable_blocks) == line
    assert [len(block) for block in parsed.typeable_blocks] == [12] * 4


def test_febraban_check_digits_match_the_layouts_worked_examples():
    # The FEBRABAN layout computes both moduli over 01230067896: 3 (mod 10), 0 (mod 11).
    assert febraban.modulo10("01230067896") == 3
    assert febraban.modulo11("01230067896") == 0


def test_febraban_modulo11_maps_remainders_0_and_1_to_0_and_10_to_1():
    # Single digits d at weight 2: remainder 2d mod 11.
    assert febraban.modulo11("0") == 0  # remainder 0
    assert febraban.modulo11("6") == 0  # 12 -> remainder 1
    assert febraban.modulo11("5") == 1  # 10 -> remainder 10
    assert febraban.modulo11("1") == 9  # remainder 2


def test_febraban_spec_example_is_valid_and_formats_like_a_bill():
    parsed = febraban.validate(SPEC_CODE, Decimal("104.75"), "BRL")
    assert (parsed.segment, parsed.value_type, parsed.amount_cents) == (4, 6, 10475)
    assert parsed.formatted == "84680000001-6 04750108000-7 00012345678-2 90202611200-0"


def test_febraban_amount_must_equal_total_due_for_value_type_6():
    exc = error(febraban.validate, SPEC_CODE, Decimal("104.70"), "BRL")
    assert exc.field == "code"
    assert "00000010475" in exc.message and "00000010470" in exc.message


def test_febraban_amount_is_checked_for_value_type_7_too():
    code = febraban.build(4, 7, 10475, "0108", "0" * 25)
    febraban.validate(code, Decimal("104.75"), "BRL")
    assert error(febraban.validate, code, Decimal("1.00"), "BRL").field == "code"


@pytest.mark.parametrize("value_type", [8, 9])
def test_febraban_amount_is_not_checked_for_value_types_8_and_9(value_type):
    code = febraban.build(3, value_type, 50960, "0019", "0" * 25)
    febraban.validate(code, Decimal("1.00"), "BRL")


def test_febraban_total_due_with_more_than_two_decimals_is_rejected():
    assert error(febraban.validate, SPEC_CODE, Decimal("104.751"), "BRL").field == "code"


def test_febraban_needs_brl():
    exc = error(febraban.validate, SPEC_CODE, Decimal("104.75"), "EUR")
    assert exc.field == "scheme" and "BRL" in exc.message and "EUR" in exc.message


@pytest.mark.parametrize(
    ("code", "words"),
    [
        (SPEC_CODE[:-1], "has 43"),
        (SPEC_CODE + "0", "has 45"),
        ("846800000016047501080007000123456782902026112000", "typeable line"),
        (SPEC_CODE[:10] + "x" + SPEC_CODE[11:], "character 11"),
        (SPEC_CODE[:10] + "\u0664" + SPEC_CODE[11:], "character 11"),  # Arabic-Indic 4
        ("", "has 0"),
    ],
)
def test_febraban_rejects_anything_but_44_ascii_digits(code, words):
    exc = error(febraban.parse, code)
    assert exc.field == "code" and words in exc.message


def test_febraban_rejects_a_bank_boleto():
    # A bank boleto barcode (Caixa, 104) from the boleto-utils test suite.
    exc = error(febraban.parse, "10499898100000214032006561000100040099726390")
    assert "starts with 1" in exc.message and "boleto" in exc.message


@pytest.mark.parametrize("value_type", [0, 5])
def test_febraban_rejects_a_value_type_outside_6_to_9(value_type):
    code = SPEC_CODE[:2] + str(value_type) + SPEC_CODE[3:]
    assert "value type" in error(febraban.parse, code).message


@pytest.mark.parametrize("segment", [0, 8])
def test_febraban_rejects_an_unassigned_segment(segment):
    code = SPEC_CODE[:1] + str(segment) + SPEC_CODE[2:]
    assert "segment" in error(febraban.parse, code).message


@pytest.mark.parametrize("segment", [1, 2, 3, 4, 5, 6, 7, 9])
def test_febraban_accepts_every_assigned_segment(segment):
    company = "12345678" if segment == 6 else "0108"
    code = febraban.build(segment, 6, 10475, company, "7" * (29 - len(company)))
    assert febraban.parse(code).segment == segment


def test_febraban_wrong_general_check_digit_names_the_right_one():
    exc = error(febraban.parse, SPEC_CODE[:3] + "7" + SPEC_CODE[4:])
    assert "is 7" in exc.message and "modulo-10" in exc.message and "is 8" in exc.message


@pytest.mark.parametrize(
    "args",
    [
        (8, 6, 1, "0108", "0" * 25),  # segment 8 is unassigned
        (4, 5, 1, "0108", "0" * 25),  # value type
        (4, 6, -1, "0108", "0" * 25),  # negative amount
        (4, 6, 10**11, "0108", "0" * 25),  # 12 digits
        (4, 6, 1, "108", "0" * 25),  # company id too short
        (6, 6, 1, "0108", "0" * 25),  # segment 6 takes an 8-digit CNPJ root
        (4, 6, 1, "0108", "0" * 24),  # free field too short
        (4, 6, 1, "0108", "x" * 25),
    ],
)
def test_febraban_build_rejects_arguments_that_make_no_valid_code(args):
    with pytest.raises(ValueError):
        febraban.build(*args)


febraban_codes = st.builds(
    lambda segment, value_type, cents, digits: febraban.build(
        segment,
        value_type,
        cents,
        digits[:8] if segment == 6 else digits[:4],
        digits[8:] if segment == 6 else digits[4:],
    ),
    st.sampled_from(sorted(febraban.SEGMENTS)),
    st.sampled_from(febraban.VALUE_TYPES),
    st.integers(0, 10**11 - 1),
    st.text("0123456789", min_size=29, max_size=29),
)


@given(febraban_codes)
def test_febraban_build_output_always_validates(code):
    parsed = febraban.parse(code)
    due = Decimal(parsed.amount_cents).scaleb(-2)
    assert febraban.validate(code, due, "BRL") == parsed
    # Every block of the typeable line carries its own check digit, same modulo.
    for block in parsed.typeable_blocks:
        assert int(block[11]) == febraban.check_digit(parsed.value_type, block[:11])


def _weighted_remainder(code: str) -> int:
    digits = code[:3] + code[4:]
    return sum(int(ch) * (2 + i % 8) for i, ch in enumerate(reversed(digits))) % 11


@given(febraban_codes, st.integers(0, 43), st.integers(1, 9))
def test_febraban_single_digit_changes_are_caught_except_mod11_0_1(code, position, shift):
    new = (int(code[position]) + shift) % 10
    changed = code[:position] + str(new) + code[position + 1 :]
    value_type = int(code[2])
    modulo10 = value_type in febraban.MODULO10_VALUE_TYPES
    if position == 2 and new in febraban.VALUE_TYPES and modulo10 != (new in (6, 7)):
        return  # a switch of modulo family re-decides everything: no promise either way
    structurally_wrong = (
        position in (0, 3)  # product must be 8; the check digit itself was changed
        or (position == 1 and new not in febraban.SEGMENTS)
        or (position == 2 and new not in febraban.VALUE_TYPES)
    )
    # Modulo 10 catches every single-digit change (doubling with digit sums permutes 0-9).
    # Modulo 11 always changes the remainder, but remainders 0 and 1 share check digit 0.
    remainders = {_weighted_remainder(code), _weighted_remainder(changed)}
    undetectable = not modulo10 and remainders == {0, 1}
    if structurally_wrong or not undetectable:
        with pytest.raises(PaymentCodeError):
            febraban.parse(changed)
    else:
        assert febraban.parse(changed).code == changed


def test_febraban_modulo11_misses_a_change_between_remainders_0_and_1():
    # A type-8 code whose weighted sum leaves remainder 0 or 1 (check digit 0) ...
    code = next(
        candidate
        for n in range(100)
        if _weighted_remainder(candidate := febraban.build(4, 8, 10475, "0108", f"{n:025d}"))
        in (0, 1)
    )
    # ... has single-digit changes to the other of the two, which still check out.
    misses = [
        changed
        for position in range(4, 44)
        for digit in "0123456789"
        if {
            _weighted_remainder(code),
            _weighted_remainder(changed := code[:position] + digit + code[position + 1 :]),
        }
        == {0, 1}
    ]
    assert misses
    for changed in misses:
        assert febraban.parse(changed).code == changed


# --------------------------------------------------------------------------- epc

EPC_FIELDS = {
    "IBAN": "DE89 3704 0044 0532 0130 00",
    "BIC": "COBADEFFXXX",
    "beneficiary": "Franz Mustermänn",
    "remittance_reference": "RF18 5390 0754 7034",
}


@pytest.mark.parametrize(
    "iban",
    [
        "GB82WEST12345698765432",
        "DE89370400440532013000",
        "NL91ABNA0417164300",
        "FR1420041010050500013M02606",
        "NO9386011117947",
        "AT611904300234573201",
        "CH9300762011623852957",
        "GB82 WEST 1234 5698 7654 32",
        "gb82west12345698765432",
    ],
)
def test_iban_public_examples_are_valid(iban):
    assert epc.iban_is_valid(iban)


@pytest.mark.parametrize(
    "iban",
    [
        "GB82WEST12345698765433",  # checksum
        "GB28WEST12345698765432",  # swapped check digits
        "GB82WEST1234569876543",  # GB IBANs have 22 characters
        "XX82WEST12345698765432",  # no such country
        "GB8XWEST12345698765432",
        "GB82WEST1234569876543!",
        "",
    ],
)
def test_iban_invalid_examples_are_rejected(iban):
    assert not epc.iban_is_valid(iban)


def test_iban_check_digits_00_01_99_are_rejected_even_if_mod97_fits():
    # 01 = 98, 00 = 97 and 99 = 02 modulo 97: find IBANs with those check digits.
    aliases = {"98": "01", "97": "00", "02": "99"}
    found = set()
    for n in range(100000):
        iban = epc.make_iban("DE", f"{n:018d}")
        if iban[2:4] in aliases and iban[2:4] not in found:
            found.add(iban[2:4])
            alias = iban[:2] + aliases[iban[2:4]] + iban[4:]
            assert epc._mod97(alias[4:] + alias[:4]) == 1  # passes the remainder test ...
            assert not epc.iban_is_valid(alias)  # ... but not ours
        if len(found) == 3:
            break
    assert len(found) == 3


def test_make_iban_reproduces_public_examples():
    assert epc.make_iban("GB", "WEST12345698765432") == "GB82WEST12345698765432"
    assert epc.make_iban("de", "3704 0044 0532 0130 00") == "DE89370400440532013000"
    with pytest.raises(ValueError):
        epc.make_iban("DE", "12345")
    with pytest.raises(ValueError):
        epc.make_iban("XX", "12345")


def test_rf_references():
    assert epc.rf_is_valid("RF18539007547034")
    assert epc.rf_is_valid("RF18 5390 0754 7034")
    assert epc.rf_is_valid("RF712348231")
    assert not epc.rf_is_valid("RF19539007547034")
    assert not epc.rf_is_valid("RF18")
    assert not epc.rf_is_valid("RF18" + "1" * 22)  # more than 25 characters
    assert epc.make_rf("539007547034") == "RF18539007547034"
    with pytest.raises(ValueError):
        epc.make_rf("")


# The sample of the EPC guidelines (Belgian Red Cross), with purpose and information.
EPC_SAMPLE = (
    "BCD\n001\n1\nSCT\nBPOTBEB1\nRed Cross of Belgium\nBE72000000001616\nEUR1\nCHAR\n\n"
    "Urgency fund\nSample EPC QR code"
)


def test_epc_parses_the_guidelines_sample():
    payload = epc.parse(EPC_SAMPLE)
    assert payload.version == "001" and payload.bic == "BPOTBEB1"
    assert payload.amount == Decimal("1") and payload.purpose == "CHAR"
    assert payload.remittance_text == "Urgency fund"
    assert payload.information == "Sample EPC QR code"


def test_epc_accepts_crlf_and_omitted_trailing_lines():
    code = epc.build(EPC_FIELDS, Decimal("12.30"))
    assert code.split("\n")[-1] == "RF18539007547034"  # lines 11-12 left out
    assert epc.parse(code.replace("\n", "\r\n")) == epc.parse(code)
    assert epc.parse("BCD\n002\n1\nSCT\n\nName\nDE89370400440532013000").amount is None


def _epc_lines(**changes: str) -> str:
    lines = [*epc.build(EPC_FIELDS, Decimal("12.30")).split("\n"), "", ""]
    names = ["tag", "version", "charset", "ident", "bic", "name", "iban", "amount"]
    names += ["purpose", "ref", "text", "info"]
    for name, value in changes.items():
        lines[names.index(name)] = value
    return "\n".join(lines).rstrip("\n")


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({"tag": "BCE"}, "service tag"),
        ({"version": "003"}, "version"),
        ({"charset": "9"}, "character set"),
        ({"ident": "INST"}, "identification"),
        ({"version": "001", "bic": ""}, "required in version 001"),
        ({"bic": "COBADEF"}, "BIC"),
        ({"bic": "COBA1EFF"}, "BIC"),
        ({"name": ""}, "beneficiary name"),
        ({"name": "x" * 71}, "beneficiary name"),
        ({"iban": "DE89370400440532013001"}, "IBAN"),
        ({"iban": "DE89 3704 0044 0532 0130 00"}, "IBAN"),
        ({"amount": "EUR12.345"}, "amount"),
        ({"amount": "EUR12,30"}, "amount"),
        ({"amount": "EUR 12.30"}, "amount"),
        ({"amount": "USD12.30"}, "amount"),
        ({"amount": "EUR0"}, "0.01"),
        ({"amount": "EUR0.00"}, "0.01"),
        ({"amount": "EUR1000000000"}, "amount"),
        ({"purpose": "CHARITY"}, "purpose"),
        ({"ref": "RF" + "1" * 34}, "structured reference"),
        ({"ref": "", "text": "x" * 141}, "remittance text"),
        ({"text": "also text"}, "cannot both"),
        ({"info": "x" * 71}, "information"),
        ({"name": "Evil\u202eCorp"}, "U+202E"),
        ({"name": "Tab\there"}, "U+0009"),
        ({"charset": "2", "name": "Societatea Română de Științe"}, "cannot encode"),
    ],
)
def test_epc_parse_rejects_each_broken_element(changes, words):
    exc = error(epc.parse, _epc_lines(**changes))
    assert exc.field == "code" and words in exc.message


def test_epc_parse_rejects_wrong_line_counts_and_oversize():
    assert "at most 12" in error(epc.parse, EPC_SAMPLE + "\n").message
    assert "at least 7" in error(epc.parse, "BCD\n002\n1\nSCT\n\nName").message
    big = _epc_lines(name="Ж" * 70, ref="", text="Ж" * 140, info="Ж" * 20)
    assert "331" in error(epc.parse, big).message


def test_epc_version_002_may_leave_out_the_bic():
    assert epc.parse(_epc_lines(bic="")).bic == ""


def test_epc_validate_accepts_a_matching_code():
    code = epc.build(EPC_FIELDS, Decimal("104.75"))
    payload = epc.validate(code, EPC_FIELDS, Decimal("104.75"), "EUR")
    assert payload.iban == "DE89370400440532013000"


def test_epc_validate_compares_iban_without_spaces_and_case():
    fields = dict(EPC_FIELDS, IBAN="de89370400440532013000", BIC="cobadeffxxx")
    epc.validate(epc.build(EPC_FIELDS, Decimal("5")), fields, Decimal("5"), "EUR")


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"iban": "GB82WEST12345698765432"}, "fields.IBAN"),
        ({"bic": "DEUTDEFF"}, "fields.BIC"),
        ({"bic": ""}, "fields.BIC"),
        ({"name": "Franz Mustermann"}, "fields.beneficiary"),
        ({"ref": "RF712348231"}, "fields.remittance_reference"),
        ({"ref": "", "text": "Invoice 123"}, "fields.remittance_reference"),
        ({"amount": "EUR12.31"}, "code"),
        ({"amount": ""}, "code"),
        ({"purpose": "CHAR"}, "code"),
        ({"info": "Thanks"}, "code"),
    ],
)
def test_epc_validate_needs_code_and_fields_to_agree(changes, field):
    exc = error(epc.validate, _epc_lines(**changes), EPC_FIELDS, Decimal("12.30"), "EUR")
    assert exc.field == field


def test_epc_validate_compares_remittance_text_exactly():
    fields = {k: v for k, v in EPC_FIELDS.items() if k != "remittance_reference"}
    fields["remittance_text"] = "Invoice OI-2026-11-0000123"
    code = epc.build(fields, Decimal("12.30"))
    epc.validate(code, fields, Decimal("12.30"), "EUR")
    other = dict(fields, remittance_text="Invoice OI-2026-11-0000124")
    assert error(epc.validate, code, other, Decimal("12.30"), "EUR").field == (
        "fields.remittance_text"
    )


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"IBAN": "DE89370400440532013001"}, "fields.IBAN"),
        ({"IBAN": "DE8937040044053201300"}, "fields.IBAN"),
        ({"IBAN": "XX89370400440532013000"}, "fields.IBAN"),
        ({"IBAN": "not an iban"}, "fields.IBAN"),
        ({"IBAN": ""}, "fields.IBAN"),
        ({"BIC": "COBADEFFXX"}, "fields.BIC"),
        ({"BIC": "C0BADEFF"}, "fields.BIC"),
        ({"beneficiary": ""}, "fields.beneficiary"),
        ({"beneficiary": "x" * 71}, "fields.beneficiary"),
        ({"beneficiary": "a\nb"}, "fields.beneficiary"),
        ({"remittance_reference": "RF19539007547034"}, "fields.remittance_reference"),
        ({"remittance_reference": "INV-123"}, "fields.remittance_reference"),
        ({"remittance_text": "also"}, "fields"),
        ({"purpose": "CHAR"}, "fields.purpose"),
    ],
)
def test_epc_rejects_bad_fields(fields, field):
    merged = {**EPC_FIELDS, **fields}
    code = epc.build(EPC_FIELDS, Decimal("12.30"))
    assert error(epc.validate, code, merged, Decimal("12.30"), "EUR").field == field


def test_epc_fields_need_a_reference_or_a_text():
    fields = {k: v for k, v in EPC_FIELDS.items() if k != "remittance_reference"}
    exc = error(epc.build, fields, Decimal("1"))
    assert exc.field == "fields" and "neither" in exc.message


def test_epc_wrong_iban_check_digits_names_the_right_ones():
    fields = dict(EPC_FIELDS, IBAN="DE88370400440532013000")
    exc = error(epc.build, fields, Decimal("1"))
    assert "89" in exc.message and "88" in exc.message


@pytest.mark.parametrize("due", ["12.31", "0", "-12.30", "1000000000.00", "12.301"])
def test_epc_amount_must_be_total_due(due):
    code = epc.build(EPC_FIELDS, Decimal("12.30"))
    assert error(epc.validate, code, EPC_FIELDS, Decimal(due), "EUR").field == "code"


def test_epc_needs_eur():
    code = epc.build(EPC_FIELDS, Decimal("12.30"))
    assert error(epc.validate, code, EPC_FIELDS, Decimal("12.30"), "BRL").field == "scheme"


def test_epc_build_rejects_bad_amounts_and_versions():
    for amount in ("0", "0.001", "1000000000"):
        with pytest.raises(PaymentCodeError):
            epc.build(EPC_FIELDS, Decimal(amount))
    with pytest.raises(ValueError):
        epc.build(EPC_FIELDS, Decimal("1"), version="003")
    assert epc.parse(epc.build(EPC_FIELDS, Decimal("1"), version="001")).version == "001"


def test_epc_build_refuses_a_payload_over_331_bytes():
    fields = {k: v for k, v in EPC_FIELDS.items() if k != "remittance_reference"}
    fields.update(beneficiary="Ж" * 70, remittance_text="Ж" * 140)
    assert "331" in error(epc.build, fields, Decimal("1")).message


_BIDI = set("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
safe_text = st.text(
    st.characters(max_codepoint=0xFFFF, exclude_categories=("Cc", "Cs")).filter(
        lambda ch: ch not in _BIDI
    ),
    min_size=1,
    max_size=30,
)
sepa_ibans = st.builds(
    lambda country, digits: epc.make_iban(country, digits[: epc.IBAN_LENGTHS[country] - 4]),
    st.sampled_from(["AT", "BE", "DE", "ES", "FR", "IT", "NL", "PT", "RO", "SE", "GB"]),
    st.text("0123456789", min_size=30, max_size=30),
)
bics = st.from_regex(r"\A[A-Z]{6}[A-Z0-9]{2}([A-Z0-9]{3})?\Z")
euros = st.integers(1, 99_999_999_999).map(lambda cents: Decimal(cents).scaleb(-2))


@settings(max_examples=200)
@given(
    iban=sepa_ibans,
    bic=bics,
    name=safe_text,
    remittance=st.one_of(
        st.from_regex(r"\A[A-Z0-9]{1,21}\Z").map(
            lambda b: ("remittance_reference", epc.make_rf(b))
        ),
        safe_text.map(lambda text: ("remittance_text", text)),
    ),
    amount=euros,
    version=st.sampled_from(epc.VERSIONS),
)
def test_epc_build_output_always_validates(iban, bic, name, remittance, amount, version):
    fields = {"IBAN": iban, "BIC": bic, "beneficiary": name, remittance[0]: remittance[1]}
    code = epc.build(fields, amount, version)
    payload = epc.validate(code, fields, amount, "EUR")
    assert (payload.iban, payload.bic, payload.beneficiary) == (iban, bic, name)
    assert payload.amount == amount


# --------------------------------------------------------------------------- gost

# The example payload of GOST R 56042-2014 (ООО «Три кита»).
GOST_EXAMPLE = (
    'ST00012|Name=ООО «Три кита»|PersonalAcc=40702810138250123017|BankName=ОАО "БАНК"'
    "|BIC=044525225|CorrespAcc=30101810400000000225|PayeeINN=6200098765|LastName=Иванов"
    "|FirstName=Иван|MiddleName=Иванович|Purpose=Оплата членского взноса"
    "|PayerAddress=г.Рязань ул.Ленина д.10 кв.15|Sum=100000"
)
GOST_FIELDS = gost.parse(GOST_EXAMPLE)


def test_gost_parses_the_standards_example():
    assert list(GOST_FIELDS)[:5] == list(gost.MANDATORY)
    assert GOST_FIELDS["Name"] == "ООО «Три кита»" and GOST_FIELDS["Sum"] == "100000"
    gost.validate(GOST_EXAMPLE, GOST_FIELDS, Decimal("1000.00"), "RUB")


def test_gost_build_puts_mandatory_requisites_first_in_order():
    shuffled = dict(reversed(list(GOST_FIELDS.items())))
    code = gost.build(shuffled)
    assert code.startswith("ST00012|Name=ООО «Три кита»|PersonalAcc=")
    assert list(gost.parse(code))[:5] == list(gost.MANDATORY)
    assert gost.parse(code) == GOST_FIELDS


def test_gost_parse_accepts_other_charsets_separators_and_a_trailing_separator():
    assert gost.parse("ST00011#Name=A#BIC=1")["BIC"] == "1"
    assert gost.parse("ST00013|Name=A|") == {"Name": "A"}
    assert gost.parse("ST00012|Purpose=a=b") == {"Purpose": "a=b"}


@pytest.mark.parametrize(
    ("code", "words"),
    [
        ("ST00022|Name=A", "ST0001"),
        ("XX00012|Name=A", "ST0001"),
        ("ST0001", "ST0001"),
        ("ST00014|Name=A", "character set"),
        ("ST00012AName=A", "separator"),
        ("ST00012=Name=A", "separator"),
        ("ST00012|Name=A|Purpose", "Key=Value"),
        ("ST00012|Name=A||BIC=1", "Key=Value"),
        ("ST00012|1Name=A", "Key=Value"),
        ("ST00012|Name=A|Name=B", "twice"),
        ("ST00012|Name=A\nB", "U+000A"),
    ],
)
def test_gost_parse_rejects_malformed_payloads(code, words):
    exc = error(gost.parse, code)
    assert exc.field == "code" and words in exc.message


def test_gost_validate_needs_rub():
    exc = error(gost.validate, GOST_EXAMPLE, GOST_FIELDS, Decimal("1000.00"), "EUR")
    assert exc.field == "scheme"


@pytest.mark.parametrize("key", gost.MANDATORY)
def test_gost_mandatory_requisites_must_be_in_fields(key):
    fields = {k: v for k, v in GOST_FIELDS.items() if k != key}
    exc = error(gost.validate, GOST_EXAMPLE, fields, Decimal("1000.00"), "RUB")
    assert exc.field == f"fields.{key}" and "required" in exc.message


@pytest.mark.parametrize(
    ("key", "value", "ok"),
    [
        ("Name", "Я" * 160, True),
        ("Name", "Я" * 161, False),
        ("PersonalAcc", "4070281013825012301", False),
        ("PersonalAcc", "4070281013825012301X", False),
        ("BankName", "Б" * 45, True),
        ("BankName", "Б" * 46, False),
        ("BIC", "04452522", False),
        ("BIC", "04452522A", False),
        ("CorrespAcc", "0", True),
        ("CorrespAcc", "00", False),
        ("CorrespAcc", "3010181040000000022", False),
        ("Sum", "10000.00", False),
        ("Sum", "", False),
        ("Purpose", "a|b", False),
        ("Purpose", "a\tb", False),
    ],
)
def test_gost_field_formats(key, value, ok):
    fields = dict(GOST_FIELDS, **{key: value})
    code = "ST00012|" + "|".join(f"{k}={v}" for k, v in fields.items())
    if ok:
        gost.validate(code, fields, Decimal("1000.00"), "RUB")
    else:
        assert (
            error(gost.validate, code, fields, Decimal("1000.00"), "RUB").field == f"fields.{key}"
        )


def test_gost_the_codes_own_separator_must_not_be_in_a_value():
    def with_hash(fields):
        return "ST00012#" + "#".join(f"{k}={v}" for k, v in fields.items())

    fields = dict(GOST_FIELDS, Purpose="a|b")  # fine when # separates
    gost.validate(with_hash(fields), fields, Decimal("1000.00"), "RUB")
    fields = dict(GOST_FIELDS, Purpose="a#b")
    exc = error(gost.validate, with_hash(fields), fields, Decimal("1000.00"), "RUB")
    assert exc.field == "fields.Purpose" and "separator" in exc.message


def test_gost_sum_must_be_present_and_equal_total_due():
    fields = {k: v for k, v in GOST_FIELDS.items() if k != "Sum"}
    code = gost.build(fields)
    assert error(gost.validate, code, fields, Decimal("1000.00"), "RUB").field == "fields.Sum"
    exc = error(gost.validate, GOST_EXAMPLE, GOST_FIELDS, Decimal("999.99"), "RUB")
    assert exc.field == "fields.Sum" and "99999" in exc.message
    exc = error(gost.validate, GOST_EXAMPLE, GOST_FIELDS, Decimal("1000.001"), "RUB")
    assert exc.field == "fields.Sum"


def test_gost_code_and_fields_must_agree():
    changed = dict(GOST_FIELDS, Purpose="Другое")
    exc = error(gost.validate, GOST_EXAMPLE, changed, Decimal("1000.00"), "RUB")
    assert exc.field == "fields.Purpose" and "Другое" in exc.message
    more = dict(GOST_FIELDS, KPP="620001001")
    assert error(gost.validate, GOST_EXAMPLE, more, Decimal("1000.00"), "RUB").field == "fields.KPP"
    fewer = {k: v for k, v in GOST_FIELDS.items() if k != "LastName"}
    exc = error(gost.validate, GOST_EXAMPLE, fewer, Decimal("1000.00"), "RUB")
    assert exc.field == "code" and "LastName" in exc.message


def test_gost_declared_charset_must_encode_the_payload():
    gost.validate("ST00011" + GOST_EXAMPLE[7:], GOST_FIELDS, Decimal("1000.00"), "RUB")
    plain = dict(GOST_FIELDS, Name="ООО Три кита")  # KOI8-R has no « »
    gost.validate("ST00013" + gost.build(plain)[7:], plain, Decimal("1000.00"), "RUB")
    exc = error(gost.validate, "ST00013" + GOST_EXAMPLE[7:], GOST_FIELDS, Decimal("1000"), "RUB")
    assert "koi8-r" in exc.message and "«" in exc.message
    fields = dict(GOST_FIELDS, Purpose="Plată în lei")
    code = "ST00011" + gost.build(fields)[7:]
    exc = error(gost.validate, code, fields, Decimal("1000.00"), "RUB")
    assert exc.field == "code" and "windows-1251" in exc.message


@given(
    name=safe_text.filter(lambda s: "|" not in s),
    purpose=safe_text.filter(lambda s: "|" not in s),
    account=st.text("0123456789", min_size=20, max_size=20),
    bic=st.text("0123456789", min_size=9, max_size=9),
    corresp=st.one_of(st.just("0"), st.text("0123456789", min_size=20, max_size=20)),
    kopecks=st.integers(0, 10**12),
)
def test_gost_build_output_always_validates(name, purpose, account, bic, corresp, kopecks):
    fields = {
        "Purpose": purpose,
        "Sum": str(kopecks),
        "Name": name,
        "PersonalAcc": account,
        "BankName": "ПАО Сбербанк",
        "BIC": bic,
        "CorrespAcc": corresp,
    }
    code = gost.build(fields)
    assert gost.parse(code) == fields
    gost.validate(code, fields, Decimal(kopecks).scaleb(-2), "RUB")


def test_gost_a_broken_separator_is_blamed_on_the_code_not_the_fields():
    code = "ST00012A" + GOST_EXAMPLE[8:]
    exc = error(gost.validate, code, GOST_FIELDS, Decimal("1000.00"), "RUB")
    assert exc.field == "code" and "separator" in exc.message


# --------------------------------------------------------------------------- code128


@pytest.mark.parametrize("code", ["OI-2026-11-0000123", "A", "x" * 48, " !~ ref/2026 #7"])
def test_code128_accepts_printable_ascii_up_to_48(code):
    code128.validate(code)


@pytest.mark.parametrize(
    ("code", "words"),
    [
        ("", "empty"),
        ("x" * 49, "at most 48"),
        ("Conceição", "character 7"),
        ("ref\t1", "U+0009"),
        ("ref\x7f", "U+007F"),
    ],
)
def test_code128_rejects(code, words):
    exc = error(code128.validate, code)
    assert exc.field == "code" and words in exc.message


@given(st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), min_size=1, max_size=48))
def test_code128_any_printable_ascii_reference_validates(code):
    code128.validate(code)
