"""The account's previous invoice, for the bill-shock sentence (issue 12).

The renderer names the categories that moved most only when it is handed the previous
invoice's figures (:class:`renderer.PreviousInvoice`); finding them is this module's.
Which invoice is "previous" is decided once, when the number is claimed (the ledger's
``previous_number``: the account's archived original whose period ended last before
this one began), and its figures are read from its archived canonical record. A retry,
a resumed run and a second copy therefore compare with the same invoice and render the
same sentence, whatever was archived in between (and with the same share,
``INVOICER_SHOCK_SHARE`` as it was then). The figures are the previous
invoice's charges per category, kept with it in the ledger when it was claimed; an
invoice issued before the ledger kept them is read from its archived canonical record.
"""

from __future__ import annotations

import dataclasses
import json
from datetime import date
from decimal import Decimal, InvalidOperation

from invoicer.billing.models import ChargeCategory
from invoicer.delivery.archive import Archive, check_key
from invoicer.ledger import Invoice, Ledger
from invoicer.renderer import PreviousInvoice, RenderOptions

__all__ = ["PreviousUnreadable", "options_for", "previous_figures", "previous_number"]

_CATEGORIES = frozenset(c.value for c in ChargeCategory)


class PreviousUnreadable(ValueError):
    """The previous invoice's figures cannot be read (ledger or archive): rendering without
    it would give another sentence than the one already issued, so the caller fails."""


def options_for(ledger: Ledger, archive: Archive, invoice: Invoice,
                options: RenderOptions) -> RenderOptions:
    """``options`` with what the invoice's claim fixed: the previous invoice's figures
    and the bill-shock share (when recorded; else the one of ``options``)."""
    share = Decimal(invoice.shock_share) if invoice.shock_share else options.shock_share
    return dataclasses.replace(
        options, shock_share=share,
        previous=previous_figures(ledger, archive, invoice.operator_id,
                                  invoice.previous_number))


def previous_number(ledger: Ledger, operator: str, account: str,
                    period_start: date) -> str | None:
    """The number of the invoice a new invoice of this period compares with, if any."""
    found = ledger.invoices.previous(operator, account, period_start)
    return found.number if found is not None else None


def previous_figures(ledger: Ledger, archive: Archive, operator: str,
                     number: str | None) -> PreviousInvoice | None:
    """The figures of the previous invoice ``number`` (from the ledger, else from its
    archived canonical record), or None when there is none. ``ArchiveNotFoundError`` if
    its record is needed and gone."""
    if number is None:
        return None
    invoice = ledger.invoices.get(operator, number)
    if invoice is None or not invoice.archive_key:
        raise PreviousUnreadable(f"previous invoice {number} of {operator} is not archived")
    if invoice.charges_by_category is not None:
        try:
            return PreviousInvoice(invoice.period_start, invoice.period_end,
                                   invoice.currency,
                                   {k: Decimal(v) for k, v in
                                    invoice.charges_by_category.items()})
        except (ValueError, InvalidOperation) as exc:
            raise PreviousUnreadable(f"previous invoice {number} of {operator}: "
                                     f"figures in the ledger unreadable: {exc}") from None
    key = check_key(invoice.archive_key.removesuffix(".pdf") + ".json")
    # Only the period, the currency and the charges are needed: read them from the JSON
    # directly rather than re-validating a record archived under an older contract.
    try:
        data = json.loads(archive.get(key))
        head = data["invoice"]
        charges: dict[str, Decimal] = {}
        for service in data.get("services") or ():
            for charge in service.get("charges") or ():
                category = charge.get("category")
                if category not in _CATEGORIES:
                    continue
                charges[category] = charges.get(category, Decimal(0)) + Decimal(
                    str(charge["amount"]))
        return PreviousInvoice(date.fromisoformat(head["period"]["start"]),
                               date.fromisoformat(head["period"]["end"]),
                               head["currency"], charges)
    except (ValueError, KeyError, TypeError, InvalidOperation) as exc:
        raise PreviousUnreadable(f"previous invoice {number} of {operator}: archived record "
                                 f"{key} unreadable: {exc}") from None
