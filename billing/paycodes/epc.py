"""SEPA credit-transfer QR codes (EPC069-12, "GiroCode"): build, parse and verify.

Source: European Payments Council, *Quick Response Code: Guidelines to Enable Data
Capture for the Initiation of a SEPA Credit Transfer*, EPC069-12 (v2.1 and later). The
payload is text lines separated by LF or CR LF, at most 331 bytes (QR version 13,
error correction M); trailing empty lines may be left out:

==  ====================================================================
1   service tag ``BCD``
2   version ``001`` or ``002``
3   character set 1-8 (1 UTF-8, 2-8 ISO 8859-1, -2, -4, -5, -7, -10, -15)
4   identification ``SCT``
5   BIC of the beneficiary's bank, 8 or 11 characters; required in 001,
    may be empty in 002
6   beneficiary name, 1-70 characters
7   beneficiary IBAN, at most 34 characters
8   amount: ``EUR`` and 0.01-999999999.99 with at most 2 decimals (optional)
9   purpose code, at most 4 characters (optional)
10  structured remittance (ISO 11649 ``RF`` reference), at most 35 characters
11  unstructured remittance text, at most 140 characters (not with line 10)
12  beneficiary-to-originator information, at most 70 characters (optional)
==  ====================================================================

The record's ``payment.fields`` holds ``IBAN``, ``BIC``, ``beneficiary`` and exactly one
of ``remittance_reference`` / ``remittance_text``; it has no purpose or information, so
a payload that carries either does not agree with its fields.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal

from invoicer.billing.paycodes import PaymentCodeError, _minor_units, _unsafe_char

SERVICE_TAG = "BCD"
IDENTIFICATION = "SCT"
VERSIONS = ("001", "002")
CHARSETS = {
    "1": "utf-8",
    "2": "iso-8859-1",
    "3": "iso-8859-2",
    "4": "iso-8859-4",
    "5": "iso-8859-5",
    "6": "iso-8859-7",
    "7": "iso-8859-10",
    "8": "iso-8859-15",
}
MAX_PAYLOAD_BYTES = 331
MAX_LINES = 12
MIN_AMOUNT = Decimal("0.01")
MAX_AMOUNT = Decimal("999999999.99")
MAX_NAME, MAX_REFERENCE, MAX_TEXT, MAX_INFORMATION, MAX_PURPOSE = 70, 35, 140, 70, 4

FIELD_KEYS = ("IBAN", "BIC", "beneficiary", "remittance_reference", "remittance_text")

# IBAN length by country, from the SWIFT IBAN Registry (release 101, as shipped in
# python-stdnum 2.2). A country missing here does not issue IBANs.
IBAN_LENGTHS = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22,
    "BH": 22, "BI": 27, "BR": 29, "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24,
    "DE": 22, "DJ": 27, "DK": 18, "DO": 28, "EE": 20, "EG": 29, "ES": 24, "FI": 18,
    "FK": 18, "FO": 18, "FR": 27, "GB": 22, "GE": 22, "GI": 23, "GL": 18, "GR": 27,
    "GT": 28, "HN": 28, "HR": 21, "HU": 28, "IE": 22, "IL": 23, "IQ": 23, "IS": 26,
    "IT": 27, "JO": 30, "KW": 30, "KZ": 20, "LB": 28, "LC": 32, "LI": 21, "LT": 20,
    "LU": 20, "LV": 21, "LY": 25, "MC": 27, "MD": 24, "ME": 22, "MK": 19, "MN": 20,
    "MR": 27, "MT": 31, "MU": 30, "NI": 28, "NL": 18, "NO": 15, "OM": 23, "PK": 24,
    "PL": 28, "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22, "RU": 33, "SA": 24,
    "SC": 31, "SD": 18, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "SO": 23, "ST": 25,
    "SV": 28, "TL": 23, "TN": 24, "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20,
    "YE": 30,
}  # fmt: skip

_IBAN_SHAPE = re.compile(r"[A-Z]{2}[0-9]{2}[A-Z0-9]{1,30}")
_BIC_SHAPE = re.compile(r"[A-Z]{4}[A-Z]{2}[A-Z0-9]{2}(?:[A-Z0-9]{3})?")
_RF_SHAPE = re.compile(r"RF[0-9]{2}[A-Z0-9]{1,21}")
_AMOUNT_SHAPE = re.compile(r"EUR([0-9]{1,9}(?:\.[0-9]{1,2})?)")
_PURPOSE_SHAPE = re.compile(r"[A-Z0-9]{1,4}")


def _compact(value: str) -> str:
    """IBANs and RF references are printed in groups of four; compare them without."""
    return value.replace(" ", "").upper()


def _mod97(text: str) -> int:
    """ISO 7064 MOD 97-10 over ``text`` with letters as 10 (A) to 35 (Z)."""
    return int("".join(str(int(ch, 36)) for ch in text)) % 97


def _check_pair(value: str) -> bool:
    # Check digits 00, 01 and 99 never come out of the computation, but 00 = 97,
    # 01 = 98 and 99 = 02 modulo 97, so they would pass the remainder test alone.
    return value[2:4] not in ("00", "01", "99") and _mod97(value[4:] + value[:4]) == 1


def iban_is_valid(iban: str) -> bool:
    """True for a well-formed IBAN (spaces and lower case allowed) with correct check digits.

    Checks ISO 13616: country letters, two check digits, an alphanumeric BBAN, the length
    the SWIFT registry gives for the country, and the MOD 97-10 checksum.
    """
    value = _compact(iban)
    return (
        bool(_IBAN_SHAPE.fullmatch(value))
        and IBAN_LENGTHS.get(value[:2]) == len(value)
        and _check_pair(value)
    )


def make_iban(country: str, bban: str) -> str:
    """The IBAN for ``bban`` in ``country`` (electronic form, no spaces), check digits computed."""
    country, bban = country.upper(), _compact(bban)
    if country not in IBAN_LENGTHS:
        raise ValueError(f"{country!r} is not an IBAN country in the SWIFT registry")
    if not re.fullmatch(r"[A-Z0-9]+", bban) or len(bban) + 4 != IBAN_LENGTHS[country]:
        raise ValueError(
            f"a {country} BBAN is {IBAN_LENGTHS[country] - 4} letters or digits, got {bban!r}"
        )
    return f"{country}{98 - _mod97(bban + country + '00'):02d}{bban}"


def rf_is_valid(reference: str) -> bool:
    """True for a valid ISO 11649 creditor reference (``RF`` + 2 check digits + 1-21 chars)."""
    value = _compact(reference)
    return bool(_RF_SHAPE.fullmatch(value)) and _check_pair(value)


def make_rf(body: str) -> str:
    """The ISO 11649 creditor reference for ``body`` (1-21 letters or digits)."""
    body = _compact(body)
    if not re.fullmatch(r"[A-Z0-9]{1,21}", body):
        raise ValueError(f"an RF reference body is 1 to 21 letters or digits, got {body!r}")
    return f"RF{98 - _mod97(body + 'RF00'):02d}{body}"


@dataclass(frozen=True, slots=True)
class EpcPayload:
    """The elements of an EPC QR payload; absent optional elements are ``""`` / None."""

    version: str
    charset: str
    bic: str
    beneficiary: str
    iban: str
    amount: Decimal | None
    purpose: str
    remittance_reference: str
    remittance_text: str
    information: str


def parse(code: str) -> EpcPayload:
    """Split an EPC QR payload into its elements, checking each against EPC069-12.

    Raises :class:`PaymentCodeError` on ``"code"``, naming the line that is wrong.
    """
    if not isinstance(code, str):
        raise PaymentCodeError("code", f"expected the payload as text, found {type(code).__name__}")
    lines = [line.removesuffix("\r") for line in code.split("\n")]
    if len(lines) > MAX_LINES:
        raise PaymentCodeError(
            "code",
            f"an EPC QR payload has at most {MAX_LINES} lines, found {len(lines)} "
            "(is there a line break after the last element?)",
        )
    if len(lines) < 7:
        raise PaymentCodeError(
            "code", f"an EPC QR payload has at least 7 lines (up to the IBAN), found {len(lines)}"
        )
    lines += [""] * (MAX_LINES - len(lines))  # trailing empty lines may be left out
    tag, version, charset, ident, bic, name, iban, amount, purpose, ref, text, info = lines

    for number, value in enumerate(lines, start=1):
        if bad := _unsafe_char(value):
            raise PaymentCodeError("code", f"line {number} contains the control character {bad}")
    _expect(tag == SERVICE_TAG, f"line 1 (service tag) must be BCD, found {tag!r}")
    _expect(version in VERSIONS, f"line 2 (version) must be 001 or 002, found {version!r}")
    _expect(charset in CHARSETS, f"line 3 (character set) must be 1 to 8, found {charset!r}")
    _expect(ident == IDENTIFICATION, f"line 4 (identification) must be SCT, found {ident!r}")
    if bic or version == "001":
        _expect(
            bool(_BIC_SHAPE.fullmatch(bic)),
            f"line 5 (BIC) must be 8 or 11 letters/digits (ISO 9362), found {bic!r}"
            + (" (the BIC is required in version 001)" if not bic else ""),
        )
    _expect(
        0 < len(name) <= MAX_NAME,
        f"line 6 (beneficiary name) must be 1 to {MAX_NAME} characters, found {len(name)}",
    )
    _expect(
        iban_is_valid(iban) and " " not in iban and iban == iban.upper(),
        f"line 7 must be a valid IBAN in electronic form (no spaces), found {iban!r}",
    )
    amount_value = _parse_amount(amount) if amount else None
    _expect(
        not purpose or bool(_PURPOSE_SHAPE.fullmatch(purpose)),
        f"line 9 (purpose) must be at most {MAX_PURPOSE} letters or digits, found {purpose!r}",
    )
    _expect(
        len(ref) <= MAX_REFERENCE,
        f"line 10 (structured reference) is at most {MAX_REFERENCE} characters, found {len(ref)}",
    )
    _expect(
        len(text) <= MAX_TEXT,
        f"line 11 (remittance text) is at most {MAX_TEXT} characters, found {len(text)}",
    )
    _expect(
        not (ref and text),
        "lines 10 (structured reference) and 11 (remittance text) cannot both be filled",
    )
    _expect(
        len(info) <= MAX_INFORMATION,
        f"line 12 (information) is at most {MAX_INFORMATION} characters, found {len(info)}",
    )
    _check_size(code, charset)
    return EpcPayload(
        version=version,
        charset=charset,
        bic=bic,
        beneficiary=name,
        iban=iban,
        amount=amount_value,
        purpose=purpose,
        remittance_reference=ref,
        remittance_text=text,
        information=info,
    )


def validate(code: str, fields: Mapping[str, str], total_due: Decimal, currency: str) -> EpcPayload:
    """Check ``fields``, the payload ``code``, that they agree, and that it pays ``total_due``."""
    if currency != "EUR":
        raise PaymentCodeError(
            "scheme",
            f"SEPA credit transfers (epc_qr) pay in euros (EUR), but the invoice currency is "
            f"{currency}",
        )
    _check_fields(fields)
    due = _minor_units(total_due)
    if not MIN_AMOUNT <= total_due <= MAX_AMOUNT:
        raise PaymentCodeError(
            "code",
            f"total_due {total_due} cannot be paid by SEPA QR, which carries "
            f"{MIN_AMOUNT} to {MAX_AMOUNT} euros",
        )
    payload = parse(code)

    pairs = [
        ("IBAN", payload.iban, _compact(fields["IBAN"])),
        ("BIC", payload.bic, fields["BIC"].strip().upper()),
        ("beneficiary", payload.beneficiary, fields["beneficiary"]),
    ]
    if "remittance_reference" in fields:
        pairs.append(
            (
                "remittance_reference",
                _compact(payload.remittance_reference),
                _compact(fields["remittance_reference"]),
            )
        )
    else:
        pairs.append(("remittance_text", payload.remittance_text, fields["remittance_text"]))
    for key, in_code, in_fields in pairs:
        if in_code != in_fields:
            found = f"has {in_code!r}" if in_code else "has none"
            raise PaymentCodeError(
                f"fields.{key}",
                f"the code and fields disagree: fields has {in_fields!r}, the payload {found}",
            )
    for what, value in (("purpose code", payload.purpose), ("information", payload.information)):
        if value:
            raise PaymentCodeError(
                "code", f"the payload carries a {what} {value!r} that payment.fields cannot hold"
            )

    if payload.amount is None:
        raise PaymentCodeError(
            "code", f"the payload has no amount (line 8); it must be EUR{_eur(due)}"
        )
    if _minor_units(payload.amount) != due:
        raise PaymentCodeError(
            "code",
            f"the payload amount is EUR {payload.amount}, but total_due is {total_due}",
        )
    return payload


def build(fields: Mapping[str, str], amount: Decimal, version: str = "002") -> str:
    """The EPC QR payload (UTF-8, LF-separated) for ``fields`` and ``amount`` in euros.

    Raises :class:`PaymentCodeError` naming the field that cannot go into a payload.
    """
    if version not in VERSIONS:
        raise ValueError(f"version must be 001 or 002, got {version!r}")
    _check_fields(fields)
    cents = _minor_units(amount)
    if not MIN_AMOUNT <= amount <= MAX_AMOUNT:
        raise PaymentCodeError(
            "code", f"an EPC amount is {MIN_AMOUNT} to {MAX_AMOUNT} euros, got {amount}"
        )
    lines = [
        SERVICE_TAG,
        version,
        "1",  # UTF-8: record text may be in any script
        IDENTIFICATION,
        fields["BIC"].strip().upper(),
        fields["beneficiary"],
        _compact(fields["IBAN"]),
        f"EUR{_eur(cents)}",
        "",  # purpose: not in the record
        _compact(fields.get("remittance_reference", "")),
        fields.get("remittance_text", ""),
    ]
    while not lines[-1]:
        lines.pop()
    code = "\n".join(lines)
    _check_size(code, "1")
    return code


def _check_fields(fields: Mapping[str, str]) -> None:
    """The record's fields alone: keys, lengths, IBAN and RF checksums, BIC shape."""
    unknown = sorted(set(fields) - set(FIELD_KEYS))
    if unknown:
        raise PaymentCodeError(
            f"fields.{unknown[0]}",
            f"is not an epc_qr field; the fields are {', '.join(FIELD_KEYS)}",
        )
    for key in ("IBAN", "BIC", "beneficiary"):
        if not fields.get(key):
            raise PaymentCodeError(f"fields.{key}", "is required for scheme epc_qr")
    for key, value in fields.items():
        if not isinstance(value, str):
            raise PaymentCodeError(f"fields.{key}", f"must be text, found {type(value).__name__}")
        if bad := _unsafe_char(value):
            raise PaymentCodeError(f"fields.{key}", f"contains the control character {bad}")

    iban = _compact(fields["IBAN"])
    if not _IBAN_SHAPE.fullmatch(iban) or len(iban) > 34:
        raise PaymentCodeError(
            "fields.IBAN",
            f"{fields['IBAN']!r} is not shaped like an IBAN (2 letters, 2 check digits, then "
            "up to 30 letters or digits)",
        )
    if iban[:2] not in IBAN_LENGTHS:
        raise PaymentCodeError(
            "fields.IBAN", f"{iban[:2]} is not an IBAN country in the SWIFT IBAN registry"
        )
    if len(iban) != IBAN_LENGTHS[iban[:2]]:
        raise PaymentCodeError(
            "fields.IBAN",
            f"a {iban[:2]} IBAN has {IBAN_LENGTHS[iban[:2]]} characters, this one has {len(iban)}",
        )
    if not _check_pair(iban):
        raise PaymentCodeError(
            "fields.IBAN",
            f"wrong IBAN check digits in {iban}: with this account number they would be "
            f"{98 - _mod97(iban[4:] + iban[:2] + '00'):02d}, not {iban[2:4]}",
        )
    bic = fields["BIC"].strip().upper()
    if not _BIC_SHAPE.fullmatch(bic):
        raise PaymentCodeError(
            "fields.BIC",
            f"{fields['BIC']!r} is not a BIC: ISO 9362 wants 4 letters (bank), 2 letters "
            "(country), 2 letters/digits (location) and optionally 3 more (branch)",
        )
    if len(fields["beneficiary"]) > MAX_NAME:
        raise PaymentCodeError(
            "fields.beneficiary",
            f"is {len(fields['beneficiary'])} characters; an EPC QR allows at most {MAX_NAME}",
        )

    has_ref, has_text = "remittance_reference" in fields, "remittance_text" in fields
    if has_ref == has_text:
        raise PaymentCodeError(
            "fields",
            "needs exactly one of remittance_reference and remittance_text, "
            + ("found both" if has_ref else "found neither"),
        )
    if has_ref:
        ref = _compact(fields["remittance_reference"])
        if not rf_is_valid(ref):
            raise PaymentCodeError(
                "fields.remittance_reference",
                f"{fields['remittance_reference']!r} is not a valid ISO 11649 creditor "
                "reference (RF, 2 check digits, 1 to 21 letters or digits, MOD 97-10)",
            )
    else:
        text = fields["remittance_text"]
        if not 0 < len(text) <= MAX_TEXT:
            raise PaymentCodeError(
                "fields.remittance_text",
                f"must be 1 to {MAX_TEXT} characters, found {len(text)}",
            )


def _parse_amount(amount: str) -> Decimal:
    match = _AMOUNT_SHAPE.fullmatch(amount)
    if not match:
        raise PaymentCodeError(
            "code",
            f"line 8 (amount) must be EUR and a number with at most 2 decimals, e.g. "
            f"EUR104.75, found {amount!r}",
        )
    value = Decimal(match.group(1))
    _expect(
        MIN_AMOUNT <= value <= MAX_AMOUNT,
        f"line 8 (amount) must be {MIN_AMOUNT} to {MAX_AMOUNT} euros, found {value}",
    )
    return value


def _check_size(code: str, charset: str) -> None:
    encoding = CHARSETS[charset]
    try:
        size = len(code.encode(encoding))
    except UnicodeEncodeError as exc:
        raise PaymentCodeError(
            "code",
            f"line 3 declares character set {charset} ({encoding}), which cannot encode "
            f"{exc.object[exc.start]!r}; use 1 (UTF-8)",
        ) from None
    _expect(
        size <= MAX_PAYLOAD_BYTES,
        f"the payload is {size} bytes in {encoding}; an EPC QR holds at most {MAX_PAYLOAD_BYTES}",
    )


def _expect(condition: bool, message: str) -> None:
    if not condition:
        raise PaymentCodeError("code", message)


def _eur(cents: int) -> str:
    return f"{Decimal(cents).scaleb(-2):.2f}"
