"""What an EN 16931 invoice states, derived once from a validated billing record.

Both syntaxes (:mod:`.cii`, :mod:`.ubl`) write the same :class:`Document`, so a CII and
a UBL invoice of one record can never disagree. The document is the invoice of this
period, as the contract says: its lines are the charges, its VAT breakdown the taxes,
its amount due this period's charges plus taxes. A carried balance, payments received and
adjustments are not EN 16931 concepts; they go in a note (BT-22) with their amounts, and
the PDF keeps showing the full ``total_due``.

Every text value here is already XML-escaped (:func:`esc`), every number already
formatted as EN 16931 wants it: the writers only place strings.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal

from invoicer.billing.einvoice import ZERO_RATED
from invoicer.billing.models import BillingRecord, PaymentMethod, PaymentScheme, VatCategory

# --- text and numbers ---------------------------------------------------------------

# Characters XML 1.0 cannot carry at all (not even escaped). Records are cleaned of
# controls already; U+FFFE/U+FFFF and verbatim payment text may still hold some.
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def esc(text: str) -> str:
    """``text`` as XML character data or attribute value: escaped, never markup."""
    if _NOT_XML.search(text):
        text = _NOT_XML.sub("", text)
    return (text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            .replace('"', "&quot;"))


def dec(value: Decimal) -> str:
    """A decimal in plain notation (no exponent), as the XML Schema decimal type wants."""
    text = format(value, "f")
    return "0" if text in ("-0", "-0.0") else text


def amount(value: Decimal) -> str:
    """An amount with at least two decimals (EN 16931 BR-DEC: at most two; the record's
    currency has at most two, checked by :mod:`billing.einvoice`)."""
    if value.as_tuple().exponent > -2:  # type: ignore[operator]
        value = value.quantize(Decimal("0.01"))
    text = format(value, "f")
    return text[1:] if text.startswith("-") and not value else text


def percent(rate: Decimal) -> str:
    """A VAT rate given as a fraction (``0.21``) as the percentage EN 16931 wants (``21``)."""
    return dec((rate * 100).normalize())


def date(value) -> str:
    """ISO 8601 calendar date (UBL)."""
    return value.isoformat()


def date102(value) -> str:
    """UN/EDIFACT format 102, ``CCYYMMDD`` (CII)."""
    return f"{value:%Y%m%d}"


# --- units ----------------------------------------------------------------------------

#: The record's unit words (lower case, trailing dot dropped) to UN/ECE Recommendation 20
#: codes. Anything else is "one" (C62), which EN 16931 accepts for any countable item.
UNIT_CODES: dict[str, str] = {
    **dict.fromkeys(("min", "mins", "minute", "minutes", "мин", "минута", "минуты",
                     "минут", "دقیقه", "minuut", "minuten", "minuto", "minutos", "minut"),
                    "MIN"),
    **dict.fromkeys(("s", "sec", "secs", "second", "seconds", "сек", "seg", "segundos"),
                    "SEC"),
    **dict.fromkeys(("h", "hr", "hour", "hours", "ч", "час", "uur", "hora", "horas", "oră",
                     "ore"), "HUR"),
    **dict.fromkeys(("d", "day", "days", "дн", "день", "dia", "dias", "dag", "zi", "zile"),
                    "DAY"),
    **dict.fromkeys(("month", "months", "мес", "mês", "meses", "maand", "lună", "luni"),
                    "MON"),
    **dict.fromkeys(("kb", "kbyte", "kilobyte", "кб"), "2P"),
    **dict.fromkeys(("mb", "mbyte", "megabyte", "мб", "مگابایت"), "4L"),
    **dict.fromkeys(("gb", "gbyte", "gigabyte", "гб", "گیگابایت"), "E34"),
    **dict.fromkeys(("tb", "terabyte", "тб"), "E35"),
    **dict.fromkeys(("pc", "pcs", "piece", "pieces", "шт", "buc", "stuk", "stuks", "peça",
                     "unidade", "un", "عدد"), "H87"),
}


def unit_code(unit: str | None) -> str:
    """The Rec 20 code for a record's ``charges[].unit`` (``C62`` where none fits)."""
    if not unit:
        return "C62"
    return UNIT_CODES.get(unit.strip().lower().rstrip("."), "C62")


# --- the document -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Line:
    """One invoice line (BG-25): a charge. Texts escaped, numbers formatted."""

    id: str
    name: str
    note: str
    seller_id: str
    quantity: str  # signed: negative for a discount, so the price stays positive
    unit: str
    price: str
    base_quantity: str | None  # set when amount / quantity is not an exact price
    net: str
    category: str
    percent: str | None  # None for category O (no rate)


@dataclass(frozen=True, slots=True)
class Breakdown:
    """One VAT breakdown line (BG-23): a tax line of the record."""

    category: str
    percent: str | None
    basis: str
    tax: str
    reason: str | None
    reason_code: str | None


@dataclass(frozen=True, slots=True)
class Party:
    """Seller (BG-4) or buyer (BG-7)."""

    name: str
    identifier: str | None  # BT-46 (buyer: the account number)
    legal_id: str | None  # BT-30 / BT-47
    vat_id: str | None  # BT-31 / BT-48
    lines: tuple[str, ...]  # at most 3: BT-35, BT-36, BT-162
    city: str
    postcode: str | None
    country: str
    endpoint_scheme: str | None
    endpoint_id: str | None
    contact_name: str | None = None
    contact_phone: str | None = None
    contact_email: str | None = None


@dataclass(frozen=True, slots=True)
class PaymentMeans:
    """BG-16 and the direct-debit terms (BG-19)."""

    code: str  # UNTDID 4461
    text: str  # BT-82
    remittance: str | None  # BT-83
    payee_iban: str | None  # BT-84
    payee_bic: str | None  # BT-86
    mandate: str | None  # BT-89
    creditor_id: str | None  # BT-90
    debited_iban: str | None  # BT-91


@dataclass(frozen=True, slots=True)
class Document:
    """Everything both syntaxes write, in EN 16931 terms."""

    number: str
    issue_date: object
    due_date: object
    period_start: object
    period_end: object
    currency: str
    buyer_reference: str | None
    notes: tuple[str, ...]
    seller: Party
    buyer: Party
    deliver_to_country: str | None  # BT-80, for intra-community supply (K)
    payment: PaymentMeans
    terms: str
    lines: tuple[Line, ...]
    breakdown: tuple[Breakdown, ...]
    line_total: str
    tax_total: str
    grand_total: str
    due_amount: str


def _address_lines(lines: list[str]) -> tuple[str, ...]:
    if len(lines) <= 3:
        return tuple(esc(x) for x in lines)
    return (esc(lines[0]), esc(lines[1]), esc(", ".join(lines[2:])))


def _price(amount_: Decimal, quantity: Decimal) -> tuple[str, str | None]:
    """Net price (never negative) and base quantity for a line of ``amount_``."""
    if quantity == 0:
        return "0", None
    price = abs(amount_) / abs(quantity)
    exponent = price.as_tuple().exponent
    if price * abs(quantity) == abs(amount_) and isinstance(exponent, int) and exponent >= -6:
        return dec(price.normalize()), None
    # No exact unit price: the price is for the whole quantity (BT-149), so that
    # quantity x price / base quantity is the line amount to the cent.
    return dec(abs(amount_)), dec(abs(quantity))


def build_document(record: BillingRecord) -> Document:
    """The EN 16931 content of a record that asks for an e-invoice (checked by
    :func:`billing.einvoice.check_einvoice`)."""
    inv = record.invoice
    einvoice = record.delivery.einvoice
    taxes = {t.code: t for t in record.taxes}
    no_vat_ids = any(t.category is VatCategory.O for t in record.taxes)

    lines = []
    line_total = Decimal(0)
    for service in record.services:
        note = esc(f"{service.label} ({service.id})")
        for charge in service.charges:
            tax = taxes[charge.tax]
            qty = abs(charge.quantity)
            price, base = _price(charge.amount, charge.quantity)
            signed = -qty if charge.amount < 0 else qty
            lines.append(Line(
                id=str(len(lines) + 1), name=esc(charge.description), note=note,
                seller_id=esc(charge.code), quantity=dec(signed), unit=unit_code(charge.unit),
                price=price, base_quantity=base, net=amount(charge.amount),
                category=tax.category.value,
                percent=None if tax.category is VatCategory.O else percent(tax.rate)))
            line_total += charge.amount

    breakdown = tuple(Breakdown(
        category=t.category.value,
        percent=None if t.category is VatCategory.O else percent(t.rate),
        basis=amount(t.base), tax=amount(t.amount),
        reason=esc(t.exemption_reason) if t.exemption_reason else None,
        reason_code=t.exemption_code) for t in record.taxes)
    tax_total = sum((t.amount for t in record.taxes), Decimal(0))
    grand = line_total + tax_total

    op = record.operator
    support = op.support
    email = op.endpoint.id if op.endpoint is not None and op.endpoint.scheme == "EM" else None
    seller = Party(
        name=esc(op.name), identifier=None,
        legal_id=esc(op.tax_id) if op.tax_id else None,
        vat_id=None if no_vat_ids else op.vat_id,
        lines=_address_lines(op.address.lines), city=esc(op.address.city),
        postcode=esc(op.address.postal_code) or None, country=op.address.country,
        endpoint_scheme=op.endpoint.scheme if op.endpoint else None,
        endpoint_id=esc(op.endpoint.id) if op.endpoint else None,
        contact_name=esc(op.name) if (support and support.phone) or email else None,
        contact_phone=esc(support.phone) if support and support.phone else None,
        contact_email=esc(email) if email else None)
    customer = record.account.customer
    buyer = Party(
        name=esc(customer.name), identifier=esc(record.account.number),
        legal_id=esc(customer.tax_id) if customer.tax_id else None,
        vat_id=None if no_vat_ids else customer.vat_id,
        lines=_address_lines(customer.address.lines), city=esc(customer.address.city),
        postcode=esc(customer.address.postal_code) or None,
        country=customer.address.country,
        endpoint_scheme=einvoice.endpoint.scheme if einvoice.endpoint else None,
        endpoint_id=esc(einvoice.endpoint.id) if einvoice.endpoint else None)

    return Document(
        number=esc(inv.number), issue_date=inv.issue_date, due_date=inv.due_date,
        period_start=inv.period.start, period_end=inv.period.end, currency=inv.currency,
        buyer_reference=esc(einvoice.buyer_reference) if einvoice.buyer_reference else None,
        notes=tuple(esc(n) for n in _notes(record, grand)),
        seller=seller, buyer=buyer,
        deliver_to_country=customer.address.country
        if any(t.category is VatCategory.K for t in record.taxes) else None,
        payment=_payment_means(record), terms=esc(_terms(record)),
        lines=tuple(lines), breakdown=breakdown, line_total=amount(line_total),
        tax_total=amount(tax_total), grand_total=amount(grand), due_amount=amount(grand))


def _notes(record: BillingRecord, invoiced: Decimal) -> list[str]:
    """BT-22: what the PDF states beyond this period's invoice, with its amounts."""
    cur = record.invoice.currency
    bal = record.balance
    notes = []
    if record.invoice.kind.value == "duplicate":
        notes.append(f"Second copy (duplicate) of invoice {record.invoice.number}.")
    if bal.previous or bal.payments or bal.adjustments:
        parts = [f"Account statement: previous balance {amount(bal.previous)} {cur}"]
        parts += [f"payment received {p.date.isoformat()} -{amount(p.amount)} {cur} "
                  f"({p.method})" for p in bal.payments]
        parts += [f"adjustment {a.date.isoformat()} {amount(a.amount)} {cur} "
                  f"({' '.join(a.description.split())})" for a in bal.adjustments]
        parts.append(f"this invoice {amount(invoiced)} {cur}")
        parts.append(f"total due on the account {amount(record.totals.total_due)} {cur} "
                     f"by {record.invoice.due_date.isoformat()}")
        notes.append("; ".join(parts) + ".")
    return notes


def _terms(record: BillingRecord) -> str:
    due = record.invoice.due_date.isoformat()
    method = record.payment.method
    if method is PaymentMethod.direct_debit:
        return f"Debited by SEPA direct debit on or after {due}."
    if method is PaymentMethod.none:
        return f"Nothing to pay by {due}: the account is in credit."
    return f"Payable by {due}."


def _payment_means(record: BillingRecord) -> PaymentMeans:
    payment = record.payment
    none = {"remittance": None, "payee_iban": None, "payee_bic": None, "mandate": None,
            "creditor_id": None, "debited_iban": None}
    if payment.method is PaymentMethod.direct_debit:
        debit = payment.debit
        return PaymentMeans(**{**none, "code": "59", "text": "SEPA direct debit",
                               "mandate": esc(debit.mandate),
                               "creditor_id": esc(debit.creditor_id),
                               "debited_iban": esc(debit.iban.replace(" ", "").upper())})
    if payment.method is PaymentMethod.barcode and payment.scheme is PaymentScheme.epc_qr:
        fields = payment.fields or {}
        ref = fields.get("remittance_reference") or fields.get("remittance_text")
        return PaymentMeans(**{**none, "code": "58", "text": "SEPA credit transfer",
                               "remittance": esc(ref.replace(" ", "") if fields.get(
                                   "remittance_reference") else ref) if ref else None,
                               "payee_iban": esc(fields["IBAN"].replace(" ", "").upper()),
                               "payee_bic": esc(fields["BIC"].strip().upper())})
    if payment.method is PaymentMethod.barcode:
        return PaymentMeans(**{**none, "code": "1",
                               "text": esc(f"Payment code ({payment.scheme.value})"),
                               "remittance": esc(payment.code) if payment.code and
                               payment.scheme is not PaymentScheme.gost_qr else None})
    return PaymentMeans(**{**none, "code": "1", "text": "Nothing to pay (credit balance)"})


__all__ = ["UNIT_CODES", "ZERO_RATED", "Breakdown", "Document", "Line", "Party",
           "PaymentMeans", "build_document", "esc", "unit_code"]
