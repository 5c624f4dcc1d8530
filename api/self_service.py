"""What the subscriber's page shows beside the list: the payment code, branding.

Read from the canonical record archived beside each invoice (never re-derived from
the ledger's summary), so the code on the page is the one printed on the PDF:

- the **payment code** of an invoice: the FEBRABAN typeable line, a reference (Code
  128), or the GOST R 56042 / EPC069-12 QR payload drawn as an inline SVG (segno, the
  library the PDF's QR codes come from, fed the same bytes); or, for direct debit, the
  date it is (or was) debited;
- the operator's **branding** for the page: name, logo, colours and support contacts
  (``operator_settings``, else the record's operator).

    GET /v1/subscriber/invoices/{number}/payment   how to pay one of the account's invoices
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date
from typing import Annotated, Literal

import segno
from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field

from invoicer.api.access import AccessService, Grant
from invoicer.api.problems import problem_responses
from invoicer.api.subscriber import PREFIX, account_invoice, current_grant, effective_status
from invoicer.billing import RecordError, parse_record
from invoicer.billing.models import BillingRecord, PaymentMethod, PaymentScheme
from invoicer.billing.paycodes import PaymentCodeError, febraban
from invoicer.delivery.archive import Archive
from invoicer.delivery.errors import ArchiveNotFoundError
from invoicer.ledger import Invoice
from invoicer.operator_settings import operator_settings
from invoicer.renderer.codes import qr
from invoicer.workflows.second_copy import canonical_key

__all__ = ["Branding", "PaymentCode", "branding", "canonical_record", "payment_code", "router"]

log = logging.getLogger(__name__)

router = APIRouter(prefix=PREFIX, tags=["subscriber"],
                   generate_unique_id_function=lambda route: route.name)

#: How the QR codes of the two QR schemes are read (EPC069-12 asks for level M).
_QR_LEVEL = "M"


def canonical_record(archive: Archive, invoice: Invoice) -> BillingRecord | None:
    """The canonical record archived beside ``invoice``; ``None`` (logged) if it is
    missing or no longer validates: the page then shows what the ledger knows."""
    try:
        return parse_record(archive.get(canonical_key(invoice)))
    except (ArchiveNotFoundError, RecordError, ValueError) as exc:
        log.warning("canonical record of %s/%s unavailable: %s", invoice.operator_id,
                    invoice.number, exc)
        return None


# ---------------------------------------------------------------------------- payment


class PaymentCode(BaseModel):
    """How to pay one invoice."""

    number: str
    method: Literal["barcode", "direct_debit", "none"]
    scheme: Literal["febraban", "gost_qr", "epc_qr", "code128"] | None = None
    payment_status: Literal["unpaid", "paid", "overdue", "partially_paid"]
    amount: str = Field(description="Total due, a decimal string.")
    currency: str
    due_date: date
    to_pay: bool = Field(description="True when something is to be paid by hand.")
    typeable_line: str | None = Field(
        None, description="FEBRABAN: the 48-digit line as the slip prints it.")
    reference: str | None = Field(None, description="Code 128: the payment reference.")
    qr_payload: str | None = Field(None, description="GOST/EPC: the QR code's text.")
    qr_svg: str | None = Field(None, description="GOST/EPC: the QR code as an SVG element.")
    direct_debit_on: date | None = Field(
        None, description="Direct debit: the day it was paid (if marked paid), else the "
                          "day it will be debited (the due date).")


def qr_svg(payload: str) -> str:
    """The payment QR code as an inline ``<svg>``: the bytes and error level the PDF
    uses (:func:`renderer.codes.qr`), drawn by segno; sized by CSS."""
    made = qr(payload, _QR_LEVEL)
    symbol = segno.make_qr(made.data, error=_QR_LEVEL, boost_error=False)
    return symbol.svg_inline(scale=1, border=4, omitsize=True, svgclass="qr",
                             lineclass=None, dark="#000", light="#fff")


def payment_code(invoice: Invoice, record: BillingRecord | None, today: date) -> PaymentCode:
    """How to pay ``invoice`` (its record's ``payment``), as of ``today``."""
    status = effective_status(invoice, today)
    base = {"number": invoice.number, "payment_status": status,
            "amount": format(invoice.total, "f"), "currency": invoice.currency,
            "due_date": invoice.due_date}
    open_ = status != "paid" and invoice.total > 0
    if record is None:
        return PaymentCode(method="none", to_pay=open_, **base)
    payment = record.payment
    if payment.method is PaymentMethod.direct_debit:
        on = invoice.paid_on if status == "paid" and invoice.paid_on else invoice.due_date
        return PaymentCode(method="direct_debit", to_pay=False, direct_debit_on=on, **base)
    if payment.method is PaymentMethod.none or not payment.code or payment.scheme is None:
        return PaymentCode(method="none", to_pay=open_, **base)
    out = PaymentCode(method="barcode", scheme=payment.scheme.value, to_pay=open_, **base)
    if not open_:
        return out  # paid, or nothing due: no code to copy
    try:
        if payment.scheme is PaymentScheme.febraban:
            out.typeable_line = febraban.parse(payment.code).formatted
        elif payment.scheme is PaymentScheme.code128:
            out.reference = payment.code
        else:
            out.qr_payload = payment.code
            out.qr_svg = qr_svg(payment.code)
    except (PaymentCodeError, ValueError) as exc:  # validated on the way in; never shown half
        log.error("payment code of %s/%s unusable: %s", invoice.operator_id, invoice.number,
                  exc)
    return out


# ---------------------------------------------------------------------------- branding


@dataclass(frozen=True, slots=True)
class Branding:
    """The operator as the page shows it."""

    name: str
    logo: str | None
    primary: str
    accent: str
    support_phone: str | None
    support_web: str | None
    support_email: str | None


def _web(url: str | None) -> str | None:
    # Only http(s) becomes a link: a record's "javascript:..." stays out of href.
    return url if url and url.lower().startswith(("https://", "http://")) else None


def branding(operator_id: str, record: BillingRecord | None) -> Branding:
    """The page's branding: the operator's settings, else its record's details."""
    s = operator_settings(operator_id)
    support = record.operator.support if record is not None else None
    return Branding(
        name=s.name or (record.operator.name if record is not None else operator_id),
        logo=s.logo_data_uri, primary=s.primary, accent=s.accent,
        support_phone=s.support_phone or (support.phone if support else None),
        support_web=_web(s.support_web or (support.web if support else None)),
        support_email=s.support_email)


# ---------------------------------------------------------------------------- routes


def _access(request: Request) -> AccessService:
    return request.app.state.access


@router.get("/invoices/{number}/payment", response_model=PaymentCode,
            summary="How to pay one of the account's invoices",
            responses=problem_responses(401, 403, 404))
def get_payment_code(request: Request, number: str,
                     grant: Annotated[Grant, Depends(current_grant)]) -> PaymentCode:
    """The invoice's payment code (typeable line, reference, or QR code as SVG), or the
    direct-debit date; ``payment_status`` is ``overdue`` once the due date has passed
    unpaid. Another account's number is the same 404 as no number at all."""
    access = _access(request)
    invoice = account_invoice(access, grant, number)
    record = canonical_record(request.app.state.archive, invoice)
    return payment_code(invoice, record, access.clock().date())
