"""Cross-field rules of ``billing-record/1`` that the field types cannot see.

Each rule returns :class:`~billing.errors.Issue` objects naming the field that is wrong
and the figures involved, so a billing engineer can fix the record without guessing.
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal, localcontext

from invoicer.billing.einvoice import check_einvoice
from invoicer.billing.errors import Issue
from invoicer.billing.fields import currency_minor_units
from invoicer.billing.models import BillingRecord, PaymentMethod
from invoicer.billing.paycodes import PaymentCodeError, validate_payment


def check_record(record: BillingRecord) -> list[Issue]:
    """Every cross-field issue of ``record``, in the order a reader would fix them."""
    return [*check_dates(record), *reconcile(record), *check_taxes(record),
            *check_payment(record), *check_einvoice(record)]


def check_dates(record: BillingRecord) -> Iterator[Issue]:
    inv = record.invoice
    if inv.period.end < inv.period.start:
        yield Issue("invoice.period.end",
                    f"the period ends ({inv.period.end}) before it starts ({inv.period.start})",
                    "date_order")
    if inv.due_date < inv.issue_date:
        yield Issue("invoice.due_date",
                    f"the due date {inv.due_date} is before the issue date {inv.issue_date}",
                    "date_order")


def reconcile(record: BillingRecord) -> Iterator[Issue]:
    """The spec's reconciliation, to the minor unit, naming the figures that disagree."""
    totals = record.totals
    charges = sum((c.amount for s in record.services for c in s.charges), Decimal(0))
    taxes = sum((t.amount for t in record.taxes), Decimal(0))
    adjustments = sum((a.amount for a in record.balance.adjustments), Decimal(0))
    payments = sum((p.amount for p in record.balance.payments), Decimal(0))

    if totals.charges != charges:
        yield Issue("totals.charges",
                    f"totals.charges is {totals.charges} but the service charges add up to "
                    f"{charges}", "reconciliation")
    if totals.taxes != taxes:
        yield Issue("totals.taxes",
                    f"totals.taxes is {totals.taxes} but the taxes add up to {taxes}",
                    "reconciliation")
    if totals.adjustments != adjustments:
        yield Issue("totals.adjustments",
                    f"totals.adjustments is {totals.adjustments} but balance.adjustments add "
                    f"up to {adjustments}", "reconciliation")
    # The total is checked against the sums of the items, not the stated subtotals, so
    # one wrong subtotal is reported once (as itself), not a second time as the total.
    expected = record.balance.previous - payments + adjustments + charges + taxes
    if totals.total_due != expected:
        yield Issue("totals.total_due",
                    f"totals.total_due is {totals.total_due} but previous balance "
                    f"{record.balance.previous} - payments {payments} + adjustments "
                    f"{adjustments} + charges {charges} + taxes {taxes} = {expected}",
                    "reconciliation")


def check_taxes(record: BillingRecord) -> Iterator[Issue]:
    """Tax lines add up (every record, every version).

    Each tax line's ``amount`` is ``base x rate`` rounded to the minor unit, within one
    minor unit per charge naming that tax (the billing system may round per charge);
    when charges name a tax, its ``base`` is the sum of those charges.
    """
    digits = currency_minor_units(record.invoice.currency) or 0
    unit = Decimal(1).scaleb(-digits)
    named: dict[str, tuple[int, Decimal]] = {}
    for service in record.services:
        for charge in service.charges:
            if charge.tax is not None:
                count, total = named.get(charge.tax, (0, Decimal(0)))
                named[charge.tax] = (count + 1, total + charge.amount)
    for i, tax in enumerate(record.taxes):
        count, charged = named.get(tax.code, (0, Decimal(0)))
        if count and tax.base != charged:
            yield Issue(f"taxes[{i}].base",
                        f"tax {tax.code!r} has base {tax.base} but the {count} charge(s) "
                        f"naming it add up to {charged}", "tax_mismatch")
        # Exact arithmetic whatever the figures' size: the default 28 digits would round
        # a long product and make quantize() raise instead of naming the figures.
        with localcontext() as ctx:
            ctx.prec = len(tax.base.as_tuple().digits) + len(tax.rate.as_tuple().digits) + 4
            exact = tax.base * tax.rate
            # Half a unit covers either rounding of base x rate; each charge may add one.
            off = abs(tax.amount - exact) > unit / 2 + count * unit
            rounded = exact.quantize(unit) if off else exact
        if off:
            yield Issue(f"taxes[{i}].amount",
                        f"tax {tax.code!r} is {tax.amount} but base {tax.base} x rate "
                        f"{tax.rate} = {rounded} (allowed: one minor unit per charge "
                        f"naming it, {count} here)", "tax_mismatch")


def check_payment(record: BillingRecord) -> Iterator[Issue]:
    """Method/scheme presence rules, then the scheme's own code checks."""
    payment = record.payment
    due = record.totals.total_due
    if payment.debit is not None and payment.method is not PaymentMethod.direct_debit:
        yield Issue("payment.debit", "only for payment.method direct_debit, not "
                    f"{payment.method.value}", "payment_shape")
    if payment.method is not PaymentMethod.barcode:
        for name in ("scheme", "code", "fields"):
            if getattr(payment, name) is not None:
                yield Issue(f"payment.{name}",
                            f"must be absent when payment.method is {payment.method.value} "
                            "(there is nothing to scan)", "payment_shape")
        if payment.method is PaymentMethod.none and due > 0:
            yield Issue("payment.method",
                        f"method 'none' is for a credit or zero balance, but total_due is {due}",
                        "payment_shape")
        return
    if payment.scheme is None:
        yield Issue("payment.scheme", "required when payment.method is barcode", "missing")
        return
    if payment.code is None:
        yield Issue("payment.code", "required when payment.method is barcode", "missing")
        return
    needs_fields = payment.scheme.value in ("gost_qr", "epc_qr")
    if needs_fields and payment.fields is None:
        yield Issue("payment.fields", f"required for scheme {payment.scheme.value}", "missing")
        return
    if not needs_fields and payment.fields is not None:
        yield Issue("payment.fields",
                    f"scheme {payment.scheme.value} takes no fields, only a code",
                    "payment_shape")
        return
    try:
        validate_payment(payment.scheme.value, payment.code, payment.fields, due,
                         record.invoice.currency)
    except PaymentCodeError as exc:
        yield Issue(f"payment.{exc.field}", exc.message, "payment_code")
