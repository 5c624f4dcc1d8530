"""The detailed bill on demand, the per-line overview, and a line's own view.

A subscriber's session (or an invoice link's token) opens the account
(:mod:`api.subscriber`); so does a fleet manager's. A line session (the phone of one
line of a business account, where the operator allows it) opens that line only::

    POST /v1/subscriber/invoices/{n}/detailed-bill[?line=…]   the call details: PDF + CSV links
    GET  /v1/subscriber/invoices/{n}/lines     per line: charges, call count, its links
    GET  /v1/subscriber/line/invoices          a line session: the invoices covering it
    GET  /v1/subscriber/line/invoices/{n}      its line's section: charges, call count
    GET  /details/{token}.pdf                  the detailed bill's PDF (once issued)
    GET  /details/{token}.csv                  its CSV, streamed (one row per call)

The PDF is made once per (invoice, line) and archived (:mod:`workflows.detailed_bill`);
the CSV streams from the archived canonical record. Links are signed for the grant's
account and expire with it. Refusals: another account's invoice, an altered or expired
link, a line other than one's own, are the same 404 problem as everywhere else in the
subscriber API; a line session asking for the whole account (or the overview) is a
403 ``line-only``.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response, StreamingResponse
from fastapi.security import HTTPAuthorizationCredentials
from pydantic import BaseModel, Field

from invoicer.api.access import AccessService, Grant
from invoicer.api.problems import Problem, problem_responses
from invoicer.api.ranges import Download, ranged_response
from invoicer.api.subscriber import (
    _NUMBER_RE,
    _TOKEN_RE,
    PREFIX,
    _bearer,
    account_invoice,
    grant_of,
)
from invoicer.billing.fields import currency_minor_units
from invoicer.delivery.archive import Archive
from invoicer.delivery.errors import ArchiveNotFoundError
from invoicer.ledger import DetailedBill, Invoice
from invoicer.operator_settings import operator_settings
from invoicer.renderer import NoDetailsError
from invoicer.workflows.detailed_bill import csv_stream, issue_detailed_bill
from invoicer.workflows.second_copy import canonical_key

__all__ = ["document_router", "issue", "line_history", "line_section", "lines_overview",
           "router"]

router = APIRouter(prefix=PREFIX, tags=["subscriber"],
                   generate_unique_id_function=lambda route: route.name)
document_router = APIRouter(tags=["subscriber"],
                            generate_unique_id_function=lambda route: route.name)

_LINE_RE = re.compile(r"[^\x00-\x1f\x7f/]{1,64}")


# ---------------------------------------------------------------------------- models


class DetailedBillOut(BaseModel):
    """An invoice's detailed bill (of one line, or the whole account)."""

    number: str
    line: str | None = Field(description="The line (`services[].id`), or null for all.")
    sha256: str = Field(description="Of the PDF.")
    size: int
    pages: int | None
    created_at: datetime
    pdf: str = Field(description="Signed link to the PDF, relative to the API's address.")
    csv: str = Field(description="Signed link to the CSV (one row per call), streamed.")
    links_expire_at: datetime


class LineOut(BaseModel):
    """One line of a business invoice, as the overview shows it."""

    line: str
    label: str
    charges: str = Field(description="The line's charges before taxes, a decimal string.")
    calls: int = Field(description="Call detail records (calls, messages, sessions).")
    detailed_bill: str = Field(description="POST here for this line's detailed bill.")
    csv: str = Field(description="Signed link to this line's CSV.")


class LinesOut(BaseModel):
    """Every line of one invoice of the account."""

    number: str
    currency: str
    lines: list[LineOut]
    links_expire_at: datetime


class LineInvoice(BaseModel):
    number: str
    period_start: date
    period_end: date
    issue_date: date
    due_date: date
    detailed_bill: str = Field(description="POST here for this line's detailed bill.")
    csv: str = Field(description="Signed link to this line's CSV.")


class ChargeOut(BaseModel):
    description: str
    category: str
    amount: str


class LineSection(BaseModel):
    """One line's section of one invoice: what the line's own phone may see of it."""

    number: str
    line: str
    label: str
    currency: str
    charges: list[ChargeOut]
    total: str = Field(description="The line's charges before taxes, a decimal string.")
    calls: int
    detailed_bill: str = Field(description="POST here (with `line`) for the PDF.")
    csv: str
    links_expire_at: datetime


class LineHistory(BaseModel):
    """What a line session sees: the invoices that cover its line, without the
    account's amounts or documents."""

    operator: str
    account: str
    line: str
    invoices: list[LineInvoice]
    links_expire_at: datetime


# ---------------------------------------------------------------------------- helpers


def _access(request: Request) -> AccessService:
    return request.app.state.access


def _archive(request: Request) -> Archive:
    return request.app.state.archive


def _not_found() -> Problem:
    return Problem(404, "document-not-found", "No such document",
                   detail="The link is not valid, has expired, or names no document.")


def _line_only() -> Problem:
    return Problem(403, "line-only", "This session opens one line only",
                   detail="Signed in with the phone of one line, you see that line's "
                          "section; the whole account is for its managers.")


def _missing() -> Problem:
    return Problem(503, "original-missing", "The invoice's record is not available",
                   detail="Try again later; operations have been told.")


def any_grant(request: Request,
              bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
              ) -> Grant:
    """The caller's grant, account-wide or one line's (a dependency)."""
    if bearer is not None:
        line = _access(request).line_grant(bearer.credentials)
        if line is not None:
            return line
    return grant_of(request, bearer)


def grant_invoice(access: AccessService, grant: Grant, number: str) -> Invoice:
    """The grant's account's archived invoice ``number`` (for a line grant: one that
    covers its line); 404 otherwise."""
    if grant.line is None:
        return account_invoice(access, grant, number)
    if not _NUMBER_RE.fullmatch(number) or ".." in number:
        raise _not_found()
    invoice = access.ledger.invoices.account_invoice(grant.operator, grant.account, number)
    if invoice is None or not access.ledger.fleet.covers(invoice.id, grant.line):
        raise _not_found()
    return invoice


def _links(access: AccessService, invoice: Invoice, line: str, expires: int
           ) -> tuple[str, str]:
    token = access.detail_token(invoice, line, expires)
    return f"/details/{token}.pdf", f"/details/{token}.csv"


def _line_for(grant: Grant, line: str | None) -> str:
    """The line a request may name: a line grant its own only (no line means the whole
    account: 403 ``line-only``; another line: 404, as if it did not exist), an account
    grant any line, or "" for all."""
    if grant.line is not None:
        if line is None:
            raise _line_only()
        if line == grant.line:
            return grant.line
        raise _not_found()
    if line is not None and not _LINE_RE.fullmatch(line):
        raise _not_found()
    return line or ""


def issue(access: AccessService, archive: Archive, grant: Grant, number: str,
          line: str | None = None) -> DetailedBillOut:
    """Issue (once) and describe the detailed bill of one of the grant's invoices (of
    its line ``line``, or the whole account)."""
    chosen = _line_for(grant, line)
    invoice = grant_invoice(access, grant, number)
    try:
        made: DetailedBill = issue_detailed_bill(access.ledger, archive, invoice, chosen)
    except ArchiveNotFoundError:
        raise _missing() from None
    except NoDetailsError:
        raise Problem(404, "no-call-details", "No call details",
                      detail="This invoice (or line) lists no calls, messages or "
                             "data sessions.") from None
    pdf, csv = _links(access, invoice, chosen, grant.expires)
    return DetailedBillOut(number=invoice.number, line=chosen or None, sha256=made.sha256,
                           size=made.size, pages=made.pages, created_at=made.created_at,
                           pdf=pdf, csv=csv,
                           links_expire_at=datetime.fromtimestamp(grant.expires, UTC))


def lines_overview(access: AccessService, archive: Archive, grant: Grant, number: str
                   ) -> LinesOut:
    """Every line of one of the account's invoices: charges, call count and links.
    Account grants only (a fleet manager, the account's contact)."""
    if grant.line is not None:
        raise _line_only()
    invoice = account_invoice(access, grant, number)
    try:
        # The canonical record the service wrote after validating it; read as JSON
        # (a 100,000-call record validates in a second, parses in a fifth of one).
        record = json.loads(archive.get(canonical_key(invoice)))
    except ArchiveNotFoundError:
        raise _missing() from None
    # Decimal money, shown with the currency's minor units ("0.00", not "0").
    cents = Decimal(1).scaleb(-(currency_minor_units(invoice.currency) or 0))
    lines = []
    for service in record.get("services", ()):
        line = str(service["id"])
        _, csv = _links(access, invoice, line, grant.expires)
        lines.append(LineOut(
            line=line, label=str(service.get("label", "")),
            charges=format(sum((Decimal(c["amount"]) for c in service.get("charges", ())),
                               Decimal(0)).quantize(cents), "f"),
            calls=len(service.get("usage", ())),
            detailed_bill=f"{PREFIX}/invoices/{invoice.number}/detailed-bill", csv=csv))
    return LinesOut(number=invoice.number, currency=invoice.currency, lines=lines,
                    links_expire_at=datetime.fromtimestamp(grant.expires, UTC))


def line_section(access: AccessService, archive: Archive, grant: Grant, number: str
                 ) -> LineSection:
    """One line's section of one of the account's invoices: its label, charges and
    call count, with its detailed-bill links. For a line grant, its own line only; for
    the section of another line, or of an invoice that does not cover it: 404."""
    if grant.line is None:
        raise Problem(403, "not-a-line", "This session is not one line's",
                      detail="Use the invoice's lines overview.")
    invoice = grant_invoice(access, grant, number)
    try:
        record = json.loads(archive.get(canonical_key(invoice)))
    except ArchiveNotFoundError:
        raise _missing() from None
    service = next((s for s in record.get("services", ()) if s.get("id") == grant.line),
                   None)
    if service is None:
        raise _not_found()
    cents = Decimal(1).scaleb(-(currency_minor_units(invoice.currency) or 0))
    charges = [ChargeOut(description=str(c.get("description", "")),
                         category=str(c.get("category", "")),
                         amount=format(Decimal(c["amount"]).quantize(cents), "f"))
               for c in service.get("charges", ())]
    total = sum((Decimal(c.amount) for c in charges), Decimal(0)).quantize(cents)
    _, csv = _links(access, invoice, grant.line, grant.expires)
    return LineSection(number=invoice.number, line=grant.line,
                       label=str(service.get("label", "")), currency=invoice.currency,
                       charges=charges, total=format(total, "f"),
                       calls=len(service.get("usage", ())),
                       detailed_bill=f"{PREFIX}/invoices/{invoice.number}/detailed-bill",
                       csv=csv, links_expire_at=datetime.fromtimestamp(grant.expires, UTC))


def line_history(access: AccessService, grant: Grant) -> LineHistory:
    """A line grant's view: the account's latest invoices that cover its line."""
    if grant.line is None:
        raise Problem(403, "not-a-line", "This session is not one line's",
                      detail="Use the account's invoice list.")
    rows = access.ledger.fleet.line_invoices(grant.operator, grant.account, grant.line,
                                             limit=operator_settings(grant.operator).history)
    items = []
    for invoice in rows:
        _, csv = _links(access, invoice, grant.line, grant.expires)
        items.append(LineInvoice(
            number=invoice.number, period_start=invoice.period_start,
            period_end=invoice.period_end, issue_date=invoice.issue_date,
            due_date=invoice.due_date,
            detailed_bill=f"{PREFIX}/invoices/{invoice.number}/detailed-bill", csv=csv))
    return LineHistory(operator=grant.operator, account=grant.account, line=grant.line,
                       invoices=items,
                       links_expire_at=datetime.fromtimestamp(grant.expires, UTC))


def _linked(request: Request, token: str) -> tuple[Invoice, str]:
    if not _TOKEN_RE.fullmatch(token):
        raise _not_found()
    found = _access(request).linked_detail(token)
    if found is None:
        raise _not_found()
    return found


# ---------------------------------------------------------------------------- routes

GrantDep = Annotated[Grant, Depends(any_grant)]


@router.post("/invoices/{number}/detailed-bill", response_model=DetailedBillOut,
             summary="The detailed bill of an invoice (PDF and CSV)",
             responses=problem_responses(401, 403, 404, 503))
def make_detailed_bill(request: Request, number: str, grant: GrantDep,
                       line: str | None = None) -> DetailedBillOut:
    """Every call, message and data session of the invoice (of its line ``line`` only,
    if given): the PDF is made, archived and recorded once (asking again gives the same
    SHA-256); the CSV link streams one row per call. A line session must name its own
    line (403 ``line-only`` without one, 404 for another)."""
    return issue(_access(request), _archive(request), grant, number, line)


@router.get("/invoices/{number}/lines", response_model=LinesOut,
            summary="The lines of a business invoice",
            responses=problem_responses(401, 403, 404, 503))
def list_lines(request: Request, number: str, grant: GrantDep) -> LinesOut:
    """Each line (`services[].id`) of the invoice: label, charges, call count, and the
    links to its detailed bill. For the account's managers; a line session gets 403."""
    return lines_overview(_access(request), _archive(request), grant, number)


@router.get("/line/invoices", response_model=LineHistory,
            summary="A line session's invoices", responses=problem_responses(401, 403))
def list_line_invoices(request: Request, grant: GrantDep) -> LineHistory:
    """The invoices that cover the session's line, with its own detailed-bill links."""
    return line_history(_access(request), grant)


@router.get("/line/invoices/{number}", response_model=LineSection,
            summary="A line session's section of one invoice",
            responses=problem_responses(401, 403, 404, 503))
def get_line_section(request: Request, number: str, grant: GrantDep) -> LineSection:
    """The session's line in the invoice: label, charges (before taxes), call count,
    and its detailed-bill links."""
    return line_section(_access(request), _archive(request), grant, number)


@document_router.get("/details/{token}.pdf", response_class=Response,
                     summary="Download a detailed bill (PDF)",
                     responses={**problem_responses(404, 416, 503),
                                200: {"content": {"application/pdf": {}}}})
def download_detailed_pdf(request: Request, token: str) -> Response:
    """The detailed bill the signed link names, once issued (else 404); ranges work."""
    invoice, line = _linked(request, token)
    made = _access(request).ledger.detailed_bills.get(invoice.id, line)
    if made is None:
        raise _not_found()
    suffix = f"-{re.sub(r'[^0-9A-Za-z]', '', line)}" if line else ""
    download = Download(made.archive_key, made.size, made.sha256, "application/pdf",
                        f"{invoice.number}-details{suffix}.pdf")
    try:
        response = ranged_response(request, _archive(request), download)
    except ArchiveNotFoundError:
        raise _missing() from None
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


@document_router.get("/details/{token}.csv", response_class=StreamingResponse,
                     summary="Download a detailed bill (CSV)",
                     responses={**problem_responses(404, 503),
                                200: {"content": {"text/csv": {}}}})
def download_detailed_csv(request: Request, token: str) -> StreamingResponse:
    """One row per call of the invoice (of the link's line), streamed as it is read:
    ``line, date, time, number, destination, type, duration_s, volume_kb, cost,
    currency``; text that a spreadsheet would run as a formula starts with ``'``."""
    invoice, line = _linked(request, token)
    try:
        chunks = csv_stream(_archive(request), invoice, line)
    except ArchiveNotFoundError:
        raise _missing() from None
    suffix = f"-{re.sub(r'[^0-9A-Za-z]', '', line)}" if line else ""
    return StreamingResponse(chunks, media_type="text/csv; charset=utf-8", headers={
        "Content-Disposition": f'attachment; filename="{invoice.number}-details{suffix}.csv"',
        "Cache-Control": "private, no-store", "Referrer-Policy": "no-referrer",
        "X-Content-Type-Options": "nosniff"})


# A download manager asks HEAD first, as for invoices.
document_router.add_api_route("/details/{token}.pdf", download_detailed_pdf, methods=["HEAD"],
                              include_in_schema=False, name="download_detailed_pdf_head")
