"""FEBRABAN "arrecadação" barcodes: the collection slips of Brazilian utilities and telcos.

Source: FEBRABAN, *Layout Padrão de Arrecadação/Recebimento com Utilização do Código de
Barras* (version 4 of 2004 through version 7 of 2023 agree on everything used here).
The 44 digits, numbered from 1 as the layout does:

======  =====================================================================
1       product: 8 = arrecadação (a bank boleto starts with its bank number)
2       segment: 1 prefeituras, 2 saneamento, 3 energia elétrica e gás,
        4 telecomunicações, 5 órgãos governamentais, 6 carnês e assemelhados /
        empresas identificadas pelo CNPJ, 7 multas de trânsito, 9 uso exclusivo
        do banco (0 and 8 are not assigned)
3       value type: 6 amount in reais, 7 reference quantity (or zeros), both
        with a modulo-10 check digit; 8 amount in reais, 9 reference quantity,
        both modulo 11
4       general check digit, over the other 43 digits
5-15    value (11 digits; centavos for types 6 and 8)
16-19   company/agency id (FEBRABAN code); 16-23 (CNPJ root) in segment 6
20-44   free field of the company (24-44 in segment 6)
======  =====================================================================

The *typeable line* (linha digitável) printed above the bars splits the 44 digits into
four blocks of 11 and follows each with its own check digit, computed with the same
modulo as the general one: 48 digits, shown as ``84680000001-6 04750108000-7 ...``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal

from invoicer.billing.paycodes import PaymentCodeError, _minor_units

PRODUCT_ARRECADACAO = 8
SEGMENTS = {
    1: "prefeituras",
    2: "saneamento",
    3: "energia elétrica e gás",
    4: "telecomunicações",
    5: "órgãos governamentais",
    6: "carnês e assemelhados / empresas identificadas pelo CNPJ",
    7: "multas de trânsito",
    9: "uso exclusivo do banco",
}
VALUE_TYPES = (6, 7, 8, 9)
MODULO10_VALUE_TYPES = (6, 7)

# billing-record/1 says: for value types 6 and 7 the amount must equal total_due. Note that
# FEBRABAN itself puts an amount in reais in types 6 and 8, while 7 and 9 carry a reference
# quantity (an index, or zeros); this set follows the contract and is the one place to
# change if the contract is corrected.
AMOUNT_CHECKED_VALUE_TYPES = frozenset({6, 7})

_DIGITS_44 = re.compile(r"[0-9]{44}")
_MAX_AMOUNT_CENTS = 10**11 - 1  # positions 5-15


def modulo10(digits: str) -> int:
    """FEBRABAN modulo-10 check digit of ``digits``.

    Weights 2, 1, 2, 1, ... from the rightmost digit; the digits of each product are
    added (12 counts as 1 + 2); the check digit is 10 minus the remainder of the sum by
    10, and 0 when that remainder is 0.
    """
    total = 0
    for i, ch in enumerate(reversed(digits)):
        product = int(ch) * (2 if i % 2 == 0 else 1)
        total += product // 10 + product % 10
    remainder = total % 10
    return 0 if remainder == 0 else 10 - remainder


def modulo11(digits: str) -> int:
    """FEBRABAN (arrecadação) modulo-11 check digit of ``digits``.

    Weights 2, 3, ..., 9, 2, 3, ... from the rightmost digit; the check digit is 11 minus
    the remainder of the sum by 11, except that remainders 0 and 1 give 0 (and 10 gives
    1). This differs from the bank boleto's modulo 11, where 0, 1 and 10 all give 1.
    """
    total = sum(int(ch) * (2 + i % 8) for i, ch in enumerate(reversed(digits)))
    remainder = total % 11
    return 0 if remainder in (0, 1) else 11 - remainder


def check_digit(value_type: int, digits: str) -> int:
    """The check digit of ``digits`` with the modulo that ``value_type`` selects."""
    return modulo10(digits) if value_type in MODULO10_VALUE_TYPES else modulo11(digits)


@dataclass(frozen=True, slots=True)
class Arrecadacao:
    """A verified 44-digit collection code, with the typeable line printed above it."""

    code: str
    segment: int
    value_type: int
    amount_cents: int  # positions 5-15 as a number, whatever the value type means by it
    typeable_line: str  # 48 digits
    typeable_blocks: tuple[str, ...]  # 4 x 12 digits, block check digit last

    @property
    def formatted(self) -> str:
        """The typeable line as printed on Brazilian bills: ``84680000001-6 04750108000-7 ...``."""
        return " ".join(f"{block[:11]}-{block[11]}" for block in self.typeable_blocks)


def parse(code: str) -> Arrecadacao:
    """Check the structure and general check digit of ``code`` and split it up.

    Raises :class:`PaymentCodeError` on ``"code"`` for anything but 44 digits (0-9), a
    first digit other than 8, an unassigned segment, a value type outside 6-9, or a wrong
    general check digit.
    """
    if not isinstance(code, str) or not _DIGITS_44.fullmatch(code):
        raise PaymentCodeError("code", _shape_problem(code))
    if int(code[0]) != PRODUCT_ARRECADACAO:
        raise PaymentCodeError(
            "code",
            f"a FEBRABAN collection code starts with 8 (arrecadação), but this one starts with "
            f"{code[0]}; a code starting with a bank number is a bank boleto, not a utility code",
        )
    value_type = int(code[2])
    if value_type not in VALUE_TYPES:
        raise PaymentCodeError(
            "code",
            f"the third digit (value type) must be 6, 7, 8 or 9, but it is {value_type}",
        )
    segment = int(code[1])
    if segment not in SEGMENTS:
        raise PaymentCodeError(
            "code",
            f"the second digit (segment) must be 1 to 7 or 9, but it is {segment}",
        )
    expected = check_digit(value_type, code[:3] + code[4:])
    if int(code[3]) != expected:
        modulo = 10 if value_type in MODULO10_VALUE_TYPES else 11
        raise PaymentCodeError(
            "code",
            f"wrong general check digit: the 4th digit is {code[3]}, but the modulo-{modulo} "
            f"check digit of the other 43 digits is {expected}",
        )
    blocks = tuple(
        block + str(check_digit(value_type, block))
        for block in (code[i : i + 11] for i in range(0, 44, 11))
    )
    return Arrecadacao(
        code=code,
        segment=segment,
        value_type=value_type,
        amount_cents=int(code[4:15]),
        typeable_line="".join(blocks),
        typeable_blocks=blocks,
    )


def validate(code: str, total_due: Decimal, currency: str) -> Arrecadacao:
    """:func:`parse` ``code`` and check it pays ``total_due`` in reais.

    The amount in positions 5-15 is compared only for the value types in
    :data:`AMOUNT_CHECKED_VALUE_TYPES` (6 and 7, as billing-record/1 says).
    """
    if currency != "BRL":
        raise PaymentCodeError(
            "scheme",
            f"FEBRABAN collection codes pay in Brazilian reais (BRL), "
            f"but the invoice currency is {currency}",
        )
    parsed = parse(code)
    if parsed.value_type in AMOUNT_CHECKED_VALUE_TYPES:
        due_cents = _minor_units(total_due)
        if due_cents != parsed.amount_cents:
            raise PaymentCodeError(
                "code",
                f"the amount in positions 5-15 is {code[4:15]} (R$ "
                f"{_reais(parsed.amount_cents)}), but total_due is {total_due} "
                f"(expected {due_cents:011d})",
            )
    return parsed


def build(
    segment: int, value_type: int, amount_cents: int, company_id: str, free_field: str
) -> str:
    """A valid 44-digit collection code (for sample data and tests).

    ``company_id`` is the 4-digit FEBRABAN company code, or the 8-digit CNPJ root in
    segment 6; ``free_field`` fills the rest exactly: 25 digits, or 21 in segment 6.
    Raises :class:`ValueError` on arguments that cannot make a valid code.
    """
    if segment not in SEGMENTS:
        raise ValueError(f"segment must be one of {sorted(SEGMENTS)}, got {segment}")
    if value_type not in VALUE_TYPES:
        raise ValueError(f"value_type must be 6, 7, 8 or 9, got {value_type}")
    if not 0 <= amount_cents <= _MAX_AMOUNT_CENTS:
        raise ValueError(f"amount_cents must fit 11 digits (0 to {_MAX_AMOUNT_CENTS})")
    id_len = 8 if segment == 6 else 4
    if not re.fullmatch(rf"[0-9]{{{id_len}}}", company_id):
        raise ValueError(f"company_id must be {id_len} digits in segment {segment}")
    free_len = 29 - id_len
    if not re.fullmatch(rf"[0-9]{{{free_len}}}", free_field):
        raise ValueError(f"free_field must be {free_len} digits in segment {segment}")
    body = f"{PRODUCT_ARRECADACAO}{segment}{value_type}{amount_cents:011d}{company_id}{free_field}"
    return body[:3] + str(check_digit(value_type, body)) + body[3:]


def _shape_problem(code: object) -> str:
    if not isinstance(code, str):
        return f"expected the 44 digits as text, found {type(code).__name__}"
    for i, ch in enumerate(code):
        if ch not in "0123456789":
            return (
                f"a FEBRABAN collection code is 44 digits (0-9) only, but character "
                f"{i + 1} is {ch!r}"
            )
    hint = " (48 digits is the typeable line; give the 44-digit barcode)" if len(code) == 48 else ""
    return f"a FEBRABAN collection code is exactly 44 digits, but this one has {len(code)}{hint}"


def _reais(cents: int) -> str:
    return f"{Decimal(cents).scaleb(-2):.2f}"
