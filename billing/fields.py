"""Field types of the billing-record contract, as pydantic ``Annotated`` types.

Each type parses exactly what the contract allows and fails with a
``PydanticCustomError`` whose type names the rule (``money``, ``identifier``...) and
whose message is meant for the billing engineer who produced the record.
"""

from __future__ import annotations

import re
import sys
import unicodedata
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from functools import lru_cache
from typing import Annotated, Any

from babel.core import Locale
from babel.numbers import get_currency_precision, list_currencies
from email_validator import EmailNotValidError, validate_email
from pydantic import PlainSerializer, PlainValidator, ValidationInfo, WithJsonSchema
from pydantic_core import PydanticCustomError

# --- money and decimals -------------------------------------------------------------

# Plain decimal notation only: no exponent, no sign other than a leading minus, a point
# as the separator. "1e3", "12,30", "+5", ".5", "NaN" and "Infinity" all fail here.
_DECIMAL_RE = re.compile(r"-?[0-9]{1,18}(?:\.[0-9]{1,18})?")
_CURRENCIES = frozenset(list_currencies())


def currency_minor_units(code: str) -> int | None:
    """ISO 4217 minor-unit digits of ``code`` (CLDR data via Babel), None if unknown."""
    return get_currency_precision(code) if code in _CURRENCIES else None


def _parse_decimal(value: Any, what: str) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, str):
        if isinstance(value, int | float):
            raise PydanticCustomError(
                "money_not_string",
                "{what} must be a JSON string such as \"12.30\", not a JSON number "
                "(binary numbers lose cents)",
                {"what": what},
            )
        raise PydanticCustomError(
            "decimal_type", "{what} must be a string such as \"12.30\"", {"what": what}
        )
    if not _DECIMAL_RE.fullmatch(value):
        raise PydanticCustomError(
            "decimal_format",
            "{what} {value} is not a plain decimal number: use digits, an optional "
            "leading minus and a point, e.g. \"-5.00\" (no exponent, comma, spaces or NaN)",
            {"what": what, "value": repr(value[:40])},
        )
    return _shared_decimal(value)


@lru_cache(maxsize=8192)
def _shared_decimal(text: str) -> Decimal:
    # CDR amounts repeat ("0.00" most of all): one shared immutable Decimal per text.
    return Decimal(text)


def precision_error(amount: Decimal, digits: int, currency: str) -> str | None:
    """Why ``amount`` is too precise for a currency with ``digits`` minor units, or None."""
    exponent = amount.as_tuple().exponent
    if isinstance(exponent, int) and -exponent > digits:
        return (f"{str(amount)!r} has {-exponent} decimal places but {currency} has "
                f"{digits}")
    return None


def _money(value: Any, info: ValidationInfo) -> Decimal:
    amount = _parse_decimal(value, "an amount")
    context = info.context or {}
    digits = context.get("minor_units")
    if digits is not None:
        problem = precision_error(amount, digits, context.get("currency", "the currency"))
        if problem:
            raise PydanticCustomError("money_precision", "{why}", {"why": problem})
    return amount


def _decimal_or_int(value: Any) -> Decimal:
    # Quantities and rates are not money, but they are still exact: a JSON integer is
    # exact so it is allowed; a JSON float is not.
    if isinstance(value, int) and not isinstance(value, bool):
        if abs(value) >= _MAX_WHOLE:
            raise PydanticCustomError("decimal_format", "{value} has more than 18 digits",
                                      {"value": _short_int(value)})
        return Decimal(value)
    return _parse_decimal(value, "a decimal")


_DECIMAL_SCHEMA = {"type": "string", "pattern": "^" + _DECIMAL_RE.pattern + "$"}

# Back to JSON exactly as the contract writes them (plain notation, trailing zeros kept,
# offsets kept), so a dumped record parses again to the same record. Explicit, because
# pydantic's default for a PlainValidator type re-serializes through the inner type.
_AS_DECIMAL_TEXT = PlainSerializer(lambda d: format(d, "f"), return_type=str, when_used="json")
_AS_ISO = PlainSerializer(lambda d: d.isoformat(), return_type=str, when_used="json")

Money = Annotated[
    Decimal,
    PlainValidator(_money),
    _AS_DECIMAL_TEXT,
    WithJsonSchema({**_DECIMAL_SCHEMA, "description": "Decimal amount as a string, at "
                    "most the currency's minor-unit digits, e.g. \"12.30\""}),
]
"""An amount of money: a JSON string in plain decimal notation, within the currency's
minor-unit precision (the record's currency is passed in the validation context)."""

DecimalText = Annotated[
    Decimal,
    PlainValidator(_decimal_or_int),
    _AS_DECIMAL_TEXT,
    WithJsonSchema({"anyOf": [_DECIMAL_SCHEMA, {"type": "integer"}]}),
]
"""A quantity or a rate: a decimal string (or a JSON integer), never a float."""


def _currency(value: Any) -> str:
    if not isinstance(value, str) or value not in _CURRENCIES:
        raise PydanticCustomError(
            "currency",
            "{value} is not an ISO 4217 currency code (e.g. \"BRL\", \"EUR\")",
            {"value": repr(_short(value))},
        )
    return value


Currency = Annotated[
    str,
    PlainValidator(_currency),
    WithJsonSchema({"type": "string", "pattern": "^[A-Z]{3}$"}),
]

# --- whole numbers --------------------------------------------------------------------


def _count(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise PydanticCustomError(
            "whole_number", "must be a whole number (JSON integer), got {value}",
            {"value": repr(_short(value))},
        )
    if value < 0:
        raise PydanticCustomError("negative", "must not be negative, got {value}",
                                  {"value": _short_int(value)})
    if value >= _MAX_WHOLE:
        # Seconds and kilobytes beyond 10^18 are a broken producer; unbounded, a
        # 5,000-digit number would reach the renderer.
        raise PydanticCustomError("too_large", "{value} is too large (at most 18 digits)",
                                  {"value": _short_int(value)})
    return value


#: Whole numbers have at most 18 digits, like the decimals of the contract.
_MAX_WHOLE = 10**18


def _short_int(value: int) -> str:
    text = str(value)
    return text if len(text) <= 24 else f"{text[:12]}…({len(text)} digits)"


Count = Annotated[int, PlainValidator(_count),
                  WithJsonSchema({"type": "integer", "minimum": 0,
                                  "maximum": 999_999_999_999_999_999})]
"""A non-negative whole number (seconds, kilobytes)."""

# --- text -----------------------------------------------------------------------------

# Bidi embeddings/overrides/isolates can make "Total 100" display as "001 latoT" or hide
# part of a name; C0/C1 controls break terminals, PDFs and headers. Everything else,
# including markup-looking text, stays as data and is escaped where it is printed.
_BIDI_CONTROLS = "\u202a-\u202e\u2066-\u2069"
_STRIP_ML = re.compile(f"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f{_BIDI_CONTROLS}]")
_STRIP_SL = re.compile(f"[\x00-\x08\x0e-\x1f\x7f-\x9f{_BIDI_CONTROLS}]")
_BREAKS = re.compile(r"[\t\n\v\f\r]+")


def clean_text(value: str, *, multiline: bool = False) -> str:
    """Remove bidi controls and control characters; NFC-normalise.

    In single-line text, line breaks and tabs become a space (not nothing, so words
    stay apart). In multi-line text, CR LF and CR become LF and tabs a space.
    """
    value = unicodedata.normalize("NFC", value)
    if multiline:
        value = value.replace("\r\n", "\n").replace("\r", "\n").replace("\t", " ")
        return _STRIP_ML.sub("", value).strip()
    return _BREAKS.sub(" ", _STRIP_SL.sub("", value)).strip()


# A lone surrogate (JSON "\ud800" without its pair) is not a Unicode scalar value: it
# cannot be written as UTF-8, so it would pass here and fail when the record is archived.
_SURROGATE = re.compile("[\ud800-\udfff]")


def check_scalar_values(value: str) -> str:
    """``value`` if it holds Unicode scalar values only; a ``text`` error otherwise."""
    if not value.isascii():
        found = _SURROGATE.search(value)
        if found:
            raise PydanticCustomError(
                "text", "holds a lone surrogate (U+{code:04X} at position {pos}): text must "
                "be Unicode scalar values", {"code": ord(found[0]), "pos": found.start()})
    return value


def _text_validator(multiline: bool, required: bool):
    def validate(value: Any) -> str:
        if not isinstance(value, str):
            raise PydanticCustomError("string_type", "must be a string")
        check_scalar_values(value)
        cleaned = clean_text(value, multiline=multiline)
        if required and not cleaned:
            raise PydanticCustomError("empty", "must not be empty")
        # Destinations and descriptions repeat across thousands of CDRs; interning
        # keeps one copy of each instead of one per row.
        return sys.intern(cleaned) if len(cleaned) <= 64 else cleaned

    return validate


Text = Annotated[str, PlainValidator(_text_validator(False, True)),
                 WithJsonSchema({"type": "string", "minLength": 1})]
"""Single-line free text; must not be empty once cleaned."""
OptionalText = Annotated[str, PlainValidator(_text_validator(False, False)),
                         WithJsonSchema({"type": "string"})]
"""Single-line free text that may be empty (e.g. a postal code where there is none)."""
MultilineText = Annotated[str, PlainValidator(_text_validator(True, True)),
                          WithJsonSchema({"type": "string", "minLength": 1})]
"""Free text where line breaks carry meaning."""



def _payment_text(value: Any) -> str:
    if not isinstance(value, str):
        raise PydanticCustomError("string_type", "must be a string")
    return check_scalar_values(value)


PaymentText = Annotated[str, PlainValidator(_payment_text), WithJsonSchema({"type": "string"})]
"""Text kept verbatim (payment codes and their fields), Unicode scalar values only."""

# --- e-invoicing codes (version 1.1) ----------------------------------------------------


def _pattern_type(name: str, pattern: str, what: str):
    regex = re.compile(pattern)

    def validate(value: Any) -> str:
        if isinstance(value, str) and regex.fullmatch(value):
            return value
        raise PydanticCustomError(name, "{value} is not " + what, {"value": repr(_short(value))})

    return Annotated[str, PlainValidator(validate),
                     WithJsonSchema({"type": "string", "pattern": f"^{pattern}$"})]


EasCode = _pattern_type("eas", r"[0-9]{4}|EM|AN|AQ|AS|AU",
                        "an EAS code of an electronic address (e.g. \"0088\", \"9930\", \"EM\")")
"""Electronic Address Scheme code (CEF EAS list) of an ``endpoint``."""
VatId = _pattern_type("vat_id", r"[A-Z]{2}[0-9A-Za-z+*.]{2,13}",
                      "a VAT identifier with its country prefix (e.g. \"DE123456789\")")
"""A VAT identification number, prefixed with its ISO 3166 country (Greece: ``EL``)."""
VatexCode = _pattern_type("vatex", r"VATEX-[A-Z]{2}(-[A-Z0-9]+)+",
                          "a VATEX exemption code (e.g. \"VATEX-EU-AE\")")
"""A VAT exemption reason code of the CEF VATEX list."""

# --- identifiers ----------------------------------------------------------------------

IDENTIFIER_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
_IDENTIFIER_RE = re.compile(IDENTIFIER_PATTERN)


def _identifier(value: Any) -> str:
    if not isinstance(value, str):
        raise PydanticCustomError("string_type", "must be a string")
    if not _IDENTIFIER_RE.match(value) or value.endswith("\n") or ".." in value:
        raise PydanticCustomError(
            "identifier",
            "{value} is not a safe identifier: 1 to 64 of A-Z a-z 0-9 . _ -, starting "
            "with a letter or digit, without '..' (it names stored objects)",
            {"value": repr(value[:80])},
        )
    return value


Identifier = Annotated[
    str, PlainValidator(_identifier),
    WithJsonSchema({"type": "string", "pattern": IDENTIFIER_PATTERN,
                    "not": {"pattern": r"\.\."}}),
]
"""A name used in storage keys: invoice number, account number, operator id."""

# --- dates and instants ---------------------------------------------------------------

_DATE_RE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_INSTANT_RE = re.compile(
    r"([0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,6})?)"
    r"(Z|[+-][0-9]{2}:[0-9]{2})"
)
_MONTH_RE = re.compile(r"[0-9]{4}-(0[1-9]|1[0-2])")


def _date(value: Any) -> date:
    if isinstance(value, str) and _DATE_RE.fullmatch(value):
        try:
            return date.fromisoformat(value)
        except ValueError:
            pass
    raise PydanticCustomError(
        "date", "{value} is not an ISO 8601 date (YYYY-MM-DD)", {"value": repr(_short(value))}
    )


@lru_cache(maxsize=256)
def _offset(text: str) -> timezone:
    # One tzinfo per distinct offset, shared by every instant that carries it.
    if text == "Z":
        return UTC
    sign = -1 if text[0] == "-" else 1
    return timezone(sign * timedelta(hours=int(text[1:3]), minutes=int(text[4:6])))


def _instant(value: Any) -> datetime:
    match = _INSTANT_RE.fullmatch(value) if isinstance(value, str) else None
    if match:
        try:
            return datetime.fromisoformat(match[1]).replace(tzinfo=_offset(match[2]))
        except ValueError:
            pass
    raise PydanticCustomError(
        "instant",
        "{value} is not an ISO 8601 instant with an offset "
        "(e.g. 2026-10-03T14:22:05-03:00)",
        {"value": repr(_short(value))},
    )


def _month(value: Any) -> str:
    if isinstance(value, str) and _MONTH_RE.fullmatch(value):
        return value
    raise PydanticCustomError(
        "month", "{value} is not a month in the form YYYY-MM", {"value": repr(_short(value))}
    )


IsoDate = Annotated[date, PlainValidator(_date), _AS_ISO,
                    WithJsonSchema({"type": "string", "format": "date"})]
Instant = Annotated[datetime, PlainValidator(_instant), _AS_ISO,
                    WithJsonSchema({"type": "string", "format": "date-time"})]
Month = Annotated[str, PlainValidator(_month),
                  WithJsonSchema({"type": "string", "pattern": _MONTH_RE.pattern})]

# --- phones, e-mail, places -----------------------------------------------------------

_E164_RE = re.compile(r"\+[1-9][0-9]{1,14}")


def _phone(value: Any) -> str:
    if isinstance(value, str) and _E164_RE.fullmatch(value):
        return value
    raise PydanticCustomError(
        "phone",
        "{value} is not an E.164 phone number ('+', country code, up to 15 digits, "
        "e.g. +5521987654321)",
        {"value": repr(_short(value))},
    )


Phone = Annotated[str, PlainValidator(_phone),
                  WithJsonSchema({"type": "string", "pattern": "^" + _E164_RE.pattern + "$"})]


def _email(value: Any) -> str:
    if not isinstance(value, str):
        raise PydanticCustomError("email", "must be a string")
    check_scalar_values(value)
    if any(c in value for c in "\r\n\x00"):
        # A line break in an address is a header injection attempt, not a typo.
        raise PydanticCustomError("email", "an e-mail address must not contain line breaks")
    try:
        return validate_email(value, check_deliverability=False).normalized
    except EmailNotValidError as exc:
        raise PydanticCustomError(
            "email", "{value} is not a valid e-mail address: {why}",
            {"value": repr(_short(value)), "why": str(exc)},
        ) from None


Email = Annotated[str, PlainValidator(_email),
                  WithJsonSchema({"type": "string", "format": "email"})]

_TERRITORIES = frozenset(k for k in Locale("en").territories if len(k) == 2 and k.isalpha())


def _country(value: Any) -> str:
    if isinstance(value, str) and value in _TERRITORIES:
        return value
    raise PydanticCustomError(
        "country", "{value} is not an ISO 3166-1 alpha-2 country code (e.g. \"BR\")",
        {"value": repr(_short(value))},
    )


Country = Annotated[str, PlainValidator(_country),
                    WithJsonSchema({"type": "string", "pattern": "^[A-Z]{2}$"})]

_LOCALE_RE = re.compile(r"[a-z]{2,3}(?:[_-][A-Z][a-z]{3})?(?:[_-](?:[A-Z]{2}|[0-9]{3}))?")


def _locale(value: Any) -> str:
    # Syntax only: an unknown but well-formed locale renders with English labels and a
    # warning (spec), so it must pass here.
    if isinstance(value, str) and _LOCALE_RE.fullmatch(value):
        return value.replace("-", "_")
    raise PydanticCustomError(
        "locale", "{value} is not a CLDR locale id (e.g. \"pt_BR\", \"en\")",
        {"value": repr(_short(value))},
    )


LocaleId = Annotated[str, PlainValidator(_locale),
                     WithJsonSchema({"type": "string", "pattern": "^" + _LOCALE_RE.pattern + "$"})]


def _short(value: Any) -> Any:
    """Keep error messages readable when the offending value is huge or not a string."""
    if isinstance(value, str):
        return value if len(value) <= 60 else value[:57] + "..."
    if isinstance(value, int | float | bool) or value is None:
        return value
    return type(value).__name__
