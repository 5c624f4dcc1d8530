"""Russian payment QR codes (GOST R 56042-2014): build, parse and verify.

The payload is a header and ``Key=Value`` requisites joined by a separator::

    ST00012|Name=ООО «Ромашка»|PersonalAcc=40702810138250123017|BankName=ПАО Сбербанк|
    BIC=044525225|CorrespAcc=30101810400000000225|Sum=10475|Purpose=...

- header ``ST`` (format), ``0001`` (version), one digit for the character set
  (1 windows-1251, 2 UTF-8, 3 KOI8-R), then the separator: a character that occurs in no
  value, ``|`` in practice;
- mandatory requisites, first and in this order: ``Name`` (payee, at most 160
  characters), ``PersonalAcc`` (payee account, 20 digits), ``BankName`` (at most 45),
  ``BIC`` (9 digits), ``CorrespAcc`` (the bank's correspondent account, 20 digits, or
  ``0`` when the payee's bank has none, as for Federal Treasury accounts);
- optional requisites named by the standard (``Sum`` in kopecks, ``Purpose``,
  ``PayeeINN``, ``KPP``, ``PersAcc`` ...).

The record's ``payment.fields`` holds the same requisites, and ``code`` must carry exactly
them; billing-record/1 also requires ``Sum``, equal to ``total_due`` in kopecks.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from decimal import Decimal

from invoicer.billing.paycodes import PaymentCodeError, _minor_units, _unsafe_char

FORMAT = "ST"
VERSION = "0001"
ENCODINGS = {"1": "windows-1251", "2": "utf-8", "3": "koi8-r"}
SEPARATOR = "|"
MANDATORY = ("Name", "PersonalAcc", "BankName", "BIC", "CorrespAcc")

# key -> (pattern of a valid value, what it should be, in words)
_FORMATS = {
    "Name": (re.compile(r".{1,160}", re.S), "1 to 160 characters"),
    "PersonalAcc": (re.compile(r"[0-9]{20}"), "20 digits"),
    "BankName": (re.compile(r".{1,45}", re.S), "1 to 45 characters"),
    "BIC": (re.compile(r"[0-9]{9}"), "9 digits"),
    "CorrespAcc": (re.compile(r"[0-9]{20}|0"), "20 digits, or 0 when the bank has none"),
    "Sum": (re.compile(r"[0-9]{1,18}"), "the amount in kopecks, 1 to 18 digits"),
}
_KEY = re.compile(r"[A-Za-z][A-Za-z0-9]*")


def parse(code: str) -> dict[str, str]:
    """The requisites of a GOST R 56042-2014 payload, in payload order.

    Checks the header, the separator and the ``Key=Value`` shape; raises
    :class:`PaymentCodeError` on ``"code"``. Values are not checked here (see
    :func:`validate`).
    """
    if not isinstance(code, str) or len(code) < 8 or not code.startswith(FORMAT + VERSION):
        raise PaymentCodeError(
            "code",
            f"a GOST R 56042 payload starts with ST0001, a character-set digit and the "
            f"separator (e.g. ST00012|), found {str(code)[:8]!r}",
        )
    if code[6] not in ENCODINGS:
        raise PaymentCodeError(
            "code",
            f"the 7th character (character set) must be 1 (windows-1251), 2 (UTF-8) or "
            f"3 (KOI8-R), found {code[6]!r}",
        )
    separator = code[7]
    if not _is_separator(separator):
        raise PaymentCodeError(
            "code", f"the 8th character must be the separator (normally |), found {separator!r}"
        )
    parts = code[8:].split(separator)
    if parts and parts[-1] == "":
        parts.pop()  # a separator after the last requisite is harmless
    requisites: dict[str, str] = {}
    for number, part in enumerate(parts, start=1):
        key, eq, value = part.partition("=")
        if not eq or not _KEY.fullmatch(key):
            raise PaymentCodeError(
                "code", f"requisite {number} must look like Key=Value, found {part[:40]!r}"
            )
        if key in requisites:
            raise PaymentCodeError("code", f"requisite {key} appears twice")
        if bad := _unsafe_char(value):
            raise PaymentCodeError("code", f"requisite {key} contains the control character {bad}")
        requisites[key] = value
    return requisites


def validate(code: str, fields: Mapping[str, str], total_due: Decimal, currency: str) -> None:
    """Check ``fields``, that ``code`` carries exactly them, and that ``Sum`` is ``total_due``."""
    if currency != "RUB":
        raise PaymentCodeError(
            "scheme",
            f"GOST R 56042 payment codes pay in roubles (RUB), but the invoice currency is "
            f"{currency}",
        )
    # The code's own separator, so a value holding it is named before the code is split.
    declared = code[7] if isinstance(code, str) and len(code) > 7 else SEPARATOR
    _check_fields(fields, declared if _is_separator(declared) else SEPARATOR)
    if "Sum" not in fields:
        raise PaymentCodeError("fields.Sum", "is required: the amount to pay, in kopecks")
    due = _minor_units(total_due, "fields.Sum")
    if int(fields["Sum"]) != due:
        raise PaymentCodeError(
            "fields.Sum",
            f"is {fields['Sum']} kopecks, but total_due is {total_due} (Sum={due})",
        )

    requisites = parse(code)
    for key, value in fields.items():
        if key not in requisites:
            raise PaymentCodeError(f"fields.{key}", "is in fields but not in the code")
        if requisites[key] != value:
            raise PaymentCodeError(
                f"fields.{key}",
                f"the code and fields disagree: the code has {key}={requisites[key]!r}, "
                f"fields has {value!r}",
            )
    extra = [key for key in requisites if key not in fields]
    if extra:
        raise PaymentCodeError("code", f"the code has {extra[0]}, which fields does not")

    encoding = ENCODINGS[code[6]]
    try:
        code.encode(encoding)
    except UnicodeEncodeError as exc:
        raise PaymentCodeError(
            "code",
            f"the header declares character set {code[6]} ({encoding}), which cannot encode "
            f"{exc.object[exc.start]!r}; use ST00012 (UTF-8)",
        ) from None


def build(fields: Mapping[str, str]) -> str:
    """The UTF-8 payload (``ST00012|...``) for ``fields``: mandatory requisites first.

    The mandatory ones come in the standard's order, the rest in the order given.
    Raises :class:`PaymentCodeError` naming the field that cannot go into a payload.
    """
    _check_fields(fields, SEPARATOR)
    keys = [*MANDATORY, *(key for key in fields if key not in MANDATORY)]
    return FORMAT + VERSION + "2" + SEPARATOR + SEPARATOR.join(f"{k}={fields[k]}" for k in keys)


def _check_fields(fields: Mapping[str, str], separator: str) -> None:
    """Mandatory requisites present and well formed; no key or value breaks the payload."""
    for key in MANDATORY:
        if key not in fields:
            raise PaymentCodeError(
                f"fields.{key}",
                f"is required: GOST R 56042 needs {', '.join(MANDATORY)}",
            )
    for key, value in fields.items():
        if not _KEY.fullmatch(key):
            raise PaymentCodeError(
                f"fields.{key}", "is not a requisite name (letters and digits, letter first)"
            )
        if not isinstance(value, str):
            raise PaymentCodeError(f"fields.{key}", f"must be text, found {type(value).__name__}")
        if separator in value:
            raise PaymentCodeError(
                f"fields.{key}",
                f"contains the separator {separator!r}, which would split it in the payload",
            )
        if bad := _unsafe_char(value):
            raise PaymentCodeError(f"fields.{key}", f"contains the control character {bad}")
        if key in _FORMATS:
            pattern, expected = _FORMATS[key]
            if not pattern.fullmatch(value):
                raise PaymentCodeError(
                    f"fields.{key}", f"must be {expected}, found {_preview(value)}"
                )


def _is_separator(ch: str) -> bool:
    """Any printable ASCII punctuation can separate requisites; ``|`` is the usual one."""
    return ch.isascii() and ch.isprintable() and not (ch.isalnum() or ch.isspace() or ch == "=")


def _preview(value: str) -> str:
    return f"{value!r}" if len(value) <= 40 else f"{len(value)} characters"
