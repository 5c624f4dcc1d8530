"""Payment codes printed on invoices, checked before anything is rendered.

A payable code that does not match the invoice sends a customer's money to the wrong
place or for the wrong amount, and it is printed on paper we cannot recall. So every
``payment`` object of a billing record is verified here, by scheme:

- ``febraban``: Brazilian utility/telecom collection barcode (:mod:`.febraban`),
- ``epc_qr``: SEPA credit-transfer QR, EPC069-12 (:mod:`.epc`),
- ``gost_qr``: Russian GOST R 56042-2014 payment QR (:mod:`.gost`),
- ``code128``: a generic printable reference (:mod:`.code128`).

Every failure is a :class:`PaymentCodeError` whose ``field`` is a path relative to the
record's ``payment`` object (``code``, ``fields.IBAN``, ``scheme`` ...), so the caller
only has to prefix ``payment.``.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping
from decimal import Decimal

__all__ = ["PaymentCodeError", "validate_payment"]


class PaymentCodeError(ValueError):
    """A payment code or its fields are wrong.

    ``field`` is the path inside ``payment`` (``"code"``, ``"fields.Sum"``); ``message``
    is one sentence for a billing engineer, naming what was expected and what was found.
    """

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


SCHEMES = ("febraban", "gost_qr", "epc_qr", "code128")


def validate_payment(
    scheme: str,
    code: str,
    fields: Mapping[str, str] | None,
    total_due: Decimal,
    currency: str,
) -> None:
    """Verify one ``payment`` object of a billing record; raise :class:`PaymentCodeError`.

    ``total_due`` is the record's ``totals.total_due`` and ``currency`` its
    ``invoice.currency``; each scheme checks that its code pays exactly that.
    """
    # Imported here because the scheme modules import PaymentCodeError from this module.
    from invoicer.billing.paycodes import code128, epc, febraban, gost

    if scheme in ("febraban", "code128"):
        if fields:
            raise PaymentCodeError(
                "fields", f"scheme {scheme} takes no fields, only a code; found {sorted(fields)}"
            )
        if scheme == "febraban":
            febraban.validate(code, total_due, currency)
        else:
            code128.validate(code)
    elif scheme in ("gost_qr", "epc_qr"):
        if fields is None:
            raise PaymentCodeError("fields", f"scheme {scheme} needs fields beside the code")
        module = epc if scheme == "epc_qr" else gost
        module.validate(code, fields, total_due, currency)
    else:
        raise PaymentCodeError(
            "scheme", f"unknown payment scheme {scheme!r}; expected one of {', '.join(SCHEMES)}"
        )


def _minor_units(amount: Decimal, field: str = "code") -> int:
    """``total_due`` in hundredths (centavos, cents, kopecks), refusing anything inexact.

    All three currencies with payable codes here (BRL, EUR, RUB) have two decimals; an
    error names ``field``, the part of ``payment`` that has to carry the amount.
    """
    if not amount.is_finite():
        raise PaymentCodeError(field, f"total_due is {amount}, which no payment code can carry")
    hundredths = amount * 100
    if hundredths != hundredths.to_integral_value():
        raise PaymentCodeError(
            field, f"total_due {amount} has more than two decimals, so no code can carry it"
        )
    return int(hundredths)


# Bidi embeddings, overrides and isolates: a QR value lands verbatim in the payer's
# banking app, where these can make a beneficiary name read as someone else's.
_BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def _unsafe_char(value: str) -> str | None:
    """The first control or bidi-override character of ``value``, described, or None."""
    for ch in value:
        if ch in _BIDI_CONTROLS or unicodedata.category(ch) == "Cc":
            return f"U+{ord(ch):04X} ({unicodedata.name(ch, 'control character')})"
    return None
