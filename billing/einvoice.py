"""What a record asking for an e-invoice (``delivery.einvoice``, version 1.1) must carry.

A structured invoice that a tax portal or an access point rejects is a bill the customer
never receives, so a record that lacks what its format needs is rejected up front, like
any other bad record, naming the field to add. The rules are those of EN 16931 that the
record can break (the builders in :mod:`renderer.einvoice` state what the record says
and cannot repair it), plus each format's own:

============== =========================================================================
format         needs, beyond EN 16931
============== =========================================================================
factur-x       nothing more (profile EN 16931)
xrechnung-*    ``buyer_reference`` (BT-10, the Leitweg-ID), the buyer's ``endpoint``
               (BT-49), an ``operator.endpoint`` of scheme ``EM`` (BT-34, also the seller
               contact e-mail BT-43), ``operator.support.phone`` (BT-42), postal codes
peppol-bis3    the buyer's ``endpoint`` (BT-49), ``operator.endpoint`` (BT-34),
               ``buyer_reference`` (BT-10: Peppol needs it or an order reference)
ro-cius        nothing more that the record can state (see docs/einvoices.md)
============== =========================================================================

Every issue has reason ``einvoice`` except figures that do not add up (``tax_mismatch``).
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

from invoicer.billing.errors import Issue
from invoicer.billing.fields import currency_minor_units
from invoicer.billing.models import (
    BillingRecord,
    EInvoiceFormat,
    PaymentMethod,
    VatCategory,
)
from invoicer.billing.paycodes.epc import iban_is_valid

__all__ = ["EXEMPT", "ZERO_RATED", "check_einvoice"]

#: Categories that state why no VAT is charged (BR-E-10, BR-AE-10, BR-IC-10, BR-G-10,
#: BR-O-10): an exemption reason text or VATEX code is required.
EXEMPT = frozenset({VatCategory.E, VatCategory.AE, VatCategory.K, VatCategory.G,
                    VatCategory.O})
#: Categories whose rate is zero by definition (BR-Z-5, BR-E-5, BR-AE-5, BR-IC-5, BR-G-5).
ZERO_RATED = frozenset({VatCategory.Z, *EXEMPT})

_XRECHNUNG = frozenset({EInvoiceFormat.xrechnung_cii, EInvoiceFormat.xrechnung_ubl})


def _issue(path: str, message: str) -> Issue:
    return Issue(path, message, "einvoice")


def check_einvoice(record: BillingRecord) -> Iterator[Issue]:
    """Every reason the record cannot become the e-invoice it asks for (none if it asks
    for none)."""
    einvoice = record.delivery.einvoice
    if einvoice is None:
        return
    fmt = einvoice.format.value
    yield from _common(record, fmt)
    yield from _taxes(record)
    yield from _payment(record, fmt)
    if einvoice.format in _XRECHNUNG:
        yield from _xrechnung(record, fmt)
    elif einvoice.format is EInvoiceFormat.peppol_bis3:
        yield from _peppol(record, fmt)


def _common(record: BillingRecord, fmt: str) -> Iterator[Issue]:
    digits = currency_minor_units(record.invoice.currency)
    if digits is not None and digits > 2:
        yield _issue("invoice.currency",
                     f"{record.invoice.currency} has {digits} decimals but EN 16931 amounts "
                     f"have at most 2: no {fmt} e-invoice can state it")
    if record.operator.vat_id is None:
        yield _issue("operator.vat_id", f"required for a {fmt} e-invoice (seller VAT "
                     "identifier, BT-31)")
    codes = {t.code for t in record.taxes}
    for i, service in enumerate(record.services):
        for j, charge in enumerate(service.charges):
            path = f"services[{i}].charges[{j}]"
            if charge.tax is None:
                yield _issue(f"{path}.tax", "every charge of an e-invoice must name its tax "
                             "line (its VAT category and rate)")
            elif charge.tax not in codes:
                yield Issue(f"{path}.tax", f"names tax {charge.tax!r}, which is not among "
                            f"taxes[].code ({', '.join(sorted(codes)) or 'none'})",
                            "tax_mismatch")
            if charge.quantity == 0 and charge.amount != 0:
                yield _issue(f"{path}.quantity", f"quantity 0 with amount {charge.amount}: "
                             "an e-invoice line needs a quantity to price")


def _taxes(record: BillingRecord) -> Iterator[Issue]:
    seen: dict[tuple[VatCategory, Decimal], int] = {}
    categories = {t.category for t in record.taxes}
    customer = record.account.customer
    for i, tax in enumerate(record.taxes):
        path = f"taxes[{i}]"
        cat = tax.category
        if cat is None:
            yield _issue(f"{path}.category", "required for an e-invoice: the UNTDID 5305 VAT "
                         "category (S, Z, E, AE, K, G, O, L, M)")
            continue
        if cat in ZERO_RATED and tax.rate != 0:
            yield _issue(f"{path}.rate", f"category {cat.value} is charged at 0, not "
                         f"{tax.rate}")
        if cat is VatCategory.S and tax.rate <= 0:
            yield _issue(f"{path}.rate", "category S (standard rate) needs a rate above 0")
        if tax.rate < 0:
            yield _issue(f"{path}.rate", f"a VAT rate is never negative ({tax.rate})")
        has_reason = tax.exemption_reason is not None or tax.exemption_code is not None
        if cat in EXEMPT and not has_reason:
            yield _issue(f"{path}.exemption_reason", f"category {cat.value} needs an "
                         "exemption_reason (BT-120) or exemption_code (BT-121)")
        if cat not in EXEMPT and has_reason:
            field = "exemption_reason" if tax.exemption_reason is not None else "exemption_code"
            yield _issue(f"{path}.{field}", f"category {cat.value} takes no exemption reason")
        key = (cat, tax.rate)
        if key in seen:
            yield _issue(f"{path}.category", f"taxes[{seen[key]}] already has category "
                         f"{cat.value} at rate {tax.rate}: one VAT breakdown line each")
        seen.setdefault(key, i)
        if cat in (VatCategory.AE, VatCategory.K) and customer.vat_id is None:
            yield _issue("account.customer.vat_id", f"category {cat.value} (reverse charge /"
                         " intra-community) needs the buyer's VAT identifier (BT-48)")
    if VatCategory.O in categories and len(categories) > 1:
        i = next(i for i, t in enumerate(record.taxes) if t.category is VatCategory.O)
        yield _issue(f"taxes[{i}].category", "an invoice not subject to VAT (O) has no "
                     "other VAT category (BR-O-11)")
    if VatCategory.O in categories and not record.operator.tax_id:
        yield _issue("operator.tax_id", "with category O the seller is identified by its "
                     "legal registration (BT-30), not a VAT identifier")


def _payment(record: BillingRecord, fmt: str) -> Iterator[Issue]:
    payment = record.payment
    if payment.method is PaymentMethod.direct_debit:
        if payment.debit is None:
            yield _issue("payment.debit", f"a {fmt} e-invoice paid by direct debit needs the "
                         "mandate (mandate, creditor_id, iban: BT-89, BT-90, BT-91)")
        elif not iban_is_valid(payment.debit.iban):
            yield _issue("payment.debit.iban", f"{payment.debit.iban!r} is not a valid IBAN "
                         "(country, check digits, length)")


def _endpoint_issues(record: BillingRecord, fmt: str) -> Iterator[Issue]:
    if record.delivery.einvoice.endpoint is None:
        yield _issue("delivery.einvoice.endpoint", f"required for {fmt}: the buyer's "
                     "electronic address (BT-49) with its EAS scheme")


def _xrechnung(record: BillingRecord, fmt: str) -> Iterator[Issue]:
    if record.delivery.einvoice.buyer_reference is None:
        yield _issue("delivery.einvoice.buyer_reference", f"required for {fmt}: the "
                     "Leitweg-ID (BT-10)")
    yield from _endpoint_issues(record, fmt)
    endpoint = record.operator.endpoint
    if endpoint is None or endpoint.scheme != "EM":
        yield _issue("operator.endpoint", f"{fmt} needs the seller's electronic address "
                     "(BT-34) of scheme EM: its e-mail address is also the seller contact "
                     "e-mail (BT-43)")
    support = record.operator.support
    if support is None or not support.phone:
        yield _issue("operator.support.phone", f"required for {fmt}: the seller contact "
                     "telephone (BT-42)")
    if not record.operator.address.postal_code:
        yield _issue("operator.address.postal_code", f"required for {fmt} (BT-38)")
    if not record.account.customer.address.postal_code:
        yield _issue("account.customer.address.postal_code", f"required for {fmt} (BT-53)")


def _peppol(record: BillingRecord, fmt: str) -> Iterator[Issue]:
    if record.delivery.einvoice.buyer_reference is None:
        yield _issue("delivery.einvoice.buyer_reference", f"required for {fmt} (BT-10): "
                     "Peppol needs a buyer reference or an order reference")
    yield from _endpoint_issues(record, fmt)
    if record.operator.endpoint is None:
        yield _issue("operator.endpoint", f"required for {fmt}: the seller's electronic "
                     "address (BT-34) with its EAS scheme")
