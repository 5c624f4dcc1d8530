"""What the subscriber page adds to the invoice list: the operator's branding, how to
pay the latest invoice, and how invoices reach the account, formatted for one locale.

Plain functions over :mod:`api.self_service` and :mod:`api.preferences`, so the page
and the API show the same facts (:mod:`api.web` renders them).
"""

from __future__ import annotations

from typing import Any

from markupsafe import Markup

from invoicer.api.access import AccessService, Grant
from invoicer.api.preferences import preference_view
from invoicer.api.self_service import Branding, branding, canonical_record, payment_code
from invoicer.l10n import formats

__all__ = ["account_brand", "account_context"]


def _mode_text(t: dict[str, str], mode: str | None) -> str | None:
    return t.get(f"mode_{mode}") if mode else None


def _choice_text(t: dict[str, str], choice) -> str:
    text = _mode_text(t, choice.mode) or ""
    return f"{text} ({choice.email})" if choice.email else text


def account_brand(access: AccessService, archive, operator: str, account: str) -> Branding:
    """The operator's branding for pages about one account (its latest record)."""
    latest = access.ledger.invoices.for_account(operator, account, limit=1)
    return branding(operator, canonical_record(archive, latest[0]) if latest else None)


def account_context(access: AccessService, archive, grant: Grant, lang: str,
                    t: dict[str, str]) -> dict[str, Any]:
    """``brand``, ``pay`` and ``delivery`` for the invoices page, in ``lang``."""
    latest = access.ledger.invoices.for_account(grant.operator, grant.account, limit=1)
    record = canonical_record(archive, latest[0]) if latest else None
    brand: Branding = branding(grant.operator, record)
    pay: dict[str, Any] | None = None
    if latest:
        code = payment_code(latest[0], record, access.clock().date())
        if code.method == "direct_debit" and code.direct_debit_on:
            key = "direct_debit_paid" if code.payment_status == "paid" else "direct_debit_due"
            pay = {"kind": "debit", "text": t[key].format(
                date=formats(lang).date(code.direct_debit_on, "long"))}
        elif code.typeable_line or code.reference:
            pay = {"kind": "copy", "value": code.typeable_line or code.reference,
                   "label": t["typeable_line" if code.typeable_line else "reference"]}
        elif code.qr_svg:
            # segno's own markup (numbers and path data only), not text from the record.
            pay = {"kind": "qr", "svg": Markup(code.qr_svg)}
        elif not code.to_pay:
            pay = {"kind": "none", "text": t["nothing_to_pay"]}
    view = preference_view(access, archive, grant, record=record)
    delivery = {
        "mode": _mode_text(t, view.current.mode), "email": view.current.email,
        "address": view.current.postal_address,
        "pending": t["pending_choice"].format(mode=_choice_text(t, view.choice))
        if view.choice is not None and view.choice.state == "pending" else None,
        "waiting": t["waiting_choice"].format(email=view.waiting.email)
        if view.waiting is not None else None,
        "owner": t["owner_billing"].format(name=brand.name) if view.owner == "billing"
        else None,
    }
    return {"brand": brand, "pay": pay, "delivery": delivery}
