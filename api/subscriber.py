"""The subscriber's endpoints: invoice history, documents, second copies, SMS codes.

No API key here: a subscriber holds a grant (:mod:`api.access`), sent as
``Authorization: Bearer <token>``: the session token from an SMS code, or the token of
an invoice link from an e-mail. Documents are fetched through signed links only::

    POST /v1/subscriber/sms-code             {"phone"}          a code by SMS (202, always)
    POST /v1/subscriber/session              {"phone", "code"}  -> a session token (15 min)
    GET  /v1/subscriber/invoices             the account's last invoices (Oi: 13), with links
    POST /v1/subscriber/invoices/{n}/second-copy   the second copy of one of them
    GET  /invoices/{token}.pdf               an invoice (the link in e-mails)
    GET  /invoices/{token}.xml               its e-invoice, when it travels beside the PDF
    GET  /invoices/{token}/second-copy.pdf   its second copy, once issued

Every refusal of a document (a link altered, expired, for another operator or
account, a number that is not the account's, a path that is not a number) is the same
404 problem, byte for byte; a token that grants nothing is the same 403 problem.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field
from pydantic_core import to_json

from invoicer.api.access import AccessService, Grant, RateLimited
from invoicer.api.problems import Problem, problem_responses
from invoicer.api.ranges import Download, ranged_response, reads_inline
from invoicer.billing.fields import IDENTIFIER_PATTERN
from invoicer.delivery.archive import Archive
from invoicer.delivery.errors import ArchiveNotFoundError
from invoicer.ledger import Invoice, Ledger
from invoicer.ledger.invoices import LinkedDocument, ListedInvoice
from invoicer.operator_settings import DEFAULT_HISTORY, operator_settings
from invoicer.renderer import RenderOptions
from invoicer.workflows.second_copy import issue_second_copy

__all__ = ["document_router", "effective_status", "history", "history_json", "router",
           "second_copy"]

PREFIX = "/v1/subscriber"
HISTORY_LENGTH = DEFAULT_HISTORY  # an operator without a setting

router = APIRouter(prefix=PREFIX, tags=["subscriber"],
                   generate_unique_id_function=lambda route: route.name)
document_router = APIRouter(tags=["subscriber"],
                            generate_unique_id_function=lambda route: route.name)

_NUMBER_RE = re.compile(IDENTIFIER_PATTERN)
_TOKEN_RE = re.compile(r"[A-Za-z0-9_-]{1,600}\.[A-Za-z0-9_-]{43}")


# ---------------------------------------------------------------------------- models

Phone = Annotated[str, Field(pattern=r"^\+[1-9][0-9]{1,14}$", examples=["+5521987654321"],
                             description="E.164: `+`, country code and number.")]


class CodeRequest(BaseModel):
    """Send me a code."""

    model_config = ConfigDict(extra="forbid")
    phone: Phone


class CodeRequested(BaseModel):
    """The one answer to every code request that is not rate-limited."""

    detail: str
    expires_in: int = Field(description="Seconds a code is valid once it arrives.")


class SessionRequest(BaseModel):
    """The code received by SMS."""

    model_config = ConfigDict(extra="forbid")
    phone: Phone
    code: str = Field(pattern=r"^[0-9]{6}$", examples=["042917"])


class Session(BaseModel):
    """A session for one account: send ``token`` as ``Authorization: Bearer``."""

    token: str
    token_type: Literal["Bearer"] = "Bearer"
    expires_at: datetime
    operator: str
    account: str
    line: str | None = Field(default=None, description="Set when the session opens one "
                             "line of a business account only (its own phone): see "
                             "`/v1/subscriber/line/invoices`.")


class Period(BaseModel):
    start: date
    end: date


class InvoiceSummary(BaseModel):
    """One invoice of the history."""

    number: str
    kind: str
    period: Period
    issue_date: date
    due_date: date
    amount: str = Field(description="Total due, a decimal string (`\"104.75\"`).")
    currency: str
    locale: str
    payment_status: Literal["unpaid", "paid", "overdue", "partially_paid"]
    paid_amount: str | None = None
    paid_on: date | None = None
    pages: int | None = None
    document: str = Field(description="Signed link to the PDF, relative to the API's "
                                      "address; it expires with the session or link.")
    second_copy: str = Field(description="POST here for a second copy.")
    einvoice_format: str | None = Field(
        None, description="The e-invoice issued with it (`xrechnung-cii`, `xrechnung-ubl`, "
                          "`peppol-bis3`, `ro-cius`, or `factur-x`: inside the PDF).")
    einvoice: str | None = Field(
        None, description="Signed link to the e-invoice XML archived beside the PDF "
                          "(XRechnung, Peppol BIS 3, RO_CIUS); null otherwise.")
    links_expire_at: datetime


class History(BaseModel):
    """The account's last invoices (as many as the operator's setting says: Oi 13,
    13 by default), newest first; ``latest`` is the first of them."""

    operator: str
    account: str
    latest: InvoiceSummary | None
    invoices: list[InvoiceSummary]


class SecondCopyOut(BaseModel):
    """A second copy (the same one however often it is asked for)."""

    number: str
    sha256: str
    size: int
    pages: int | None
    created_at: datetime
    document: str = Field(description="Signed link to the second copy's PDF.")


# ---------------------------------------------------------------------------- helpers


def _access(request: Request) -> AccessService:
    return request.app.state.access


def _ledger(request: Request) -> Ledger:
    return request.app.state.ledger


def _archive(request: Request) -> Archive:
    return request.app.state.archive


def render_options(request: Request) -> RenderOptions:
    """The bill run's rendering options (the bill-shock share), for second copies."""
    return RenderOptions(shock_share=request.app.state.settings.shock_share)


def client_address(request: Request) -> str:
    """The caller's address (behind a trusted proxy, the one its X-Forwarded-For
    names: :class:`~invoicer.api.edge.TrustedProxies`)."""
    return request.client.host if request.client else "unknown"


_bearer = HTTPBearer(auto_error=False, scheme_name="SubscriberToken",
                     description="A session token (SMS code) or an invoice link's token.")


def _refused() -> Problem:
    return Problem(403, "invalid-token", "The link or session is not valid",
                   detail="It may have expired: open the link from your e-mail again, "
                          "or ask for a new SMS code.")


def grant_of(request: Request, bearer: HTTPAuthorizationCredentials | None) -> Grant:
    """The grant the request's bearer token carries: 401 without a token, 403 for one
    that grants nothing."""
    if bearer is None:
        raise Problem(401, "unauthenticated", "A session or link token is required",
                      headers={"WWW-Authenticate": 'Bearer realm="subscriber"'})
    grant = _access(request).grant(bearer.credentials)
    if grant is None:
        raise _refused()
    return grant


async def current_grant(
    request: Request,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Grant:
    """The caller's grant (a dependency; see :func:`grant_of`).

    ``async``: an HMAC and a clock, no I/O, so it runs on the event loop; a plain ``def``
    dependency costs a hop to the thread pool on every request."""
    return grant_of(request, bearer)


def _not_found() -> Problem:
    return Problem(404, "document-not-found", "No such document",
                   detail="The link is not valid, has expired, or names no document.")


def _money(value) -> str | None:
    return None if value is None else format(value, "f")


def effective_status(invoice: Invoice | ListedInvoice, today: date) -> str:
    """The payment status to show: ``overdue`` for an invoice past its due date (UTC
    day) that is not marked paid, without waiting for the billing system to say so."""
    status = invoice.payment_status
    if status in ("unpaid", "partially_paid") and invoice.due_date < today \
            and invoice.total > 0:
        return "overdue"
    return status


def _summary_fields(access: AccessService, invoice: Invoice | ListedInvoice, expires: int,
                    today: date, links_expire_at: datetime) -> dict[str, Any]:
    """An invoice as the history shows it, with links valid until ``expires``: the
    values of an :class:`InvoiceSummary`'s fields, in the model's order, as plain
    Python values. The one definition both :func:`history` (the model, for the web
    page) and the API's history JSON (:func:`history_json`, without a model) are made
    of. ``today`` and ``links_expire_at`` are the same for every invoice of a history,
    so its caller works them out once."""
    token = access.invoice_token(invoice, expires)
    return {
        "number": invoice.number, "kind": invoice.kind,
        "period": {"start": invoice.period_start, "end": invoice.period_end},
        "issue_date": invoice.issue_date, "due_date": invoice.due_date,
        "amount": format(invoice.total, "f"), "currency": invoice.currency,
        "locale": invoice.locale, "payment_status": effective_status(invoice, today),
        "paid_amount": _money(invoice.paid_amount), "paid_on": invoice.paid_on,
        "pages": invoice.pages, "document": f"/invoices/{token}.pdf",
        "second_copy": f"{PREFIX}/invoices/{invoice.number}/second-copy",
        "einvoice_format": invoice.einvoice_format,
        "einvoice": f"/invoices/{token}.xml" if invoice.einvoice_key else None,
        "links_expire_at": links_expire_at,
    }


def history(access: AccessService, grant: Grant) -> History:
    """The grant's account's last archived invoices, newest first: as many as the
    operator's setting says (``operator_settings``: Oi 13)."""
    rows = access.ledger.invoices.listed(
        grant.operator, grant.account, limit=operator_settings(grant.operator).history)
    return History.model_validate(_history_fields(access, grant, rows))


async def history_json(access: AccessService, grant: Grant) -> bytes:
    """:func:`history` as the API sends it, JSON bytes, on an event loop: the ledger's
    query awaited (PostgreSQL: the loop serves other requests meanwhile).

    No pydantic model is built: the fields' plain values (:func:`_history_fields`) go
    straight to pydantic's own JSON serializer (``pydantic_core.to_json``), which encodes
    strings, dates and instants exactly as the :class:`History` model does, so the
    bytes are those FastAPI made from the model (``tests/api/test_history_json.py``
    checks them against the model, hostile text included). Thirteen models, their
    validation and FastAPI's validation of the returned model again cost about a fifth
    of a history's CPU (docs/performance.md, round 3)."""
    rows = await access.ledger.invoices.listed_async(
        grant.operator, grant.account, limit=operator_settings(grant.operator).history)
    return to_json(_history_fields(access, grant, rows))


def _history_fields(access: AccessService, grant: Grant, rows: list[ListedInvoice]
                    ) -> dict[str, Any]:
    """A :class:`History`'s fields as plain values, in the model's order."""
    today = access.clock().date()
    links_expire_at = datetime.fromtimestamp(grant.expires, UTC)
    items = [_summary_fields(access, row, grant.expires, today, links_expire_at)
             for row in rows]
    return {"operator": grant.operator, "account": grant.account,
            "latest": items[0] if items else None, "invoices": items}


def account_invoice(access: AccessService, grant: Grant, number: str) -> Invoice:
    """The grant's account's archived invoice ``number``; 404 for anything else."""
    if not _NUMBER_RE.fullmatch(number) or ".." in number:
        raise _not_found()
    invoice = access.ledger.invoices.account_invoice(grant.operator, grant.account, number)
    if invoice is None:
        raise _not_found()
    return invoice


def second_copy(access: AccessService, archive: Archive, grant: Grant, number: str,
                options: RenderOptions | None = None) -> SecondCopyOut:
    """Issue (once) and describe the second copy of one of the grant's invoices."""
    invoice = account_invoice(access, grant, number)
    try:
        copy = issue_second_copy(access.ledger, archive, invoice, options=options)
    except ArchiveNotFoundError:
        raise Problem(503, "original-missing", "The original is not available",
                      detail="Try again later; operations have been told.") from None
    token = access.invoice_token(invoice, grant.expires)
    return SecondCopyOut(number=invoice.number, sha256=copy.sha256, size=copy.size,
                         pages=copy.pages, created_at=copy.created_at,
                         document=f"/invoices/{token}/second-copy.pdf")


def einvoice_download(invoice: Invoice | LinkedDocument) -> Download | None:
    """The e-invoice XML archived beside the invoice's PDF, or None if it has none."""
    key = invoice.einvoice_key
    if key is None or not invoice.einvoice_sha256:
        return None
    return Download(key, invoice.einvoice_size or 0, invoice.einvoice_sha256,
                    "application/xml", f"{invoice.number}.xml")


def _document(request: Request, token: str, which: str) -> Response:
    if not _TOKEN_RE.fullmatch(token):
        raise _not_found()
    access = _access(request)
    download = _download(access, access.linked_invoice(token), which)
    return _send(request, download)


async def _document_async(request: Request, token: str, which: str) -> Response:
    """:func:`_document` on the event loop: the ledger's look-up awaited (PostgreSQL),
    the archive read inline where it is a local file (tens of kB: less than a hop to
    the thread pool), in the thread pool where it is remote (S3)."""
    if not _TOKEN_RE.fullmatch(token):
        raise _not_found()
    access = _access(request)
    download = _download(access, await access.linked_document_async(token), which)
    if reads_inline(_archive(request)):
        return _send(request, download)
    return await run_in_threadpool(_send, request, download)


def _download(access: AccessService, invoice: Invoice | LinkedDocument | None, which: str
              ) -> Download:
    """What a valid link to ``invoice`` downloads (``which``: original, einvoice,
    second-copy); the one 404 for everything else."""
    if invoice is None or not invoice.archive_key or not invoice.sha256:
        raise _not_found()
    if which == "original":
        download = Download(invoice.archive_key, invoice.size or 0, invoice.sha256,
                            "application/pdf", f"{invoice.number}.pdf")
    elif which == "einvoice":
        download = einvoice_download(invoice)
        if download is None:
            raise _not_found()
    else:
        copy = access.store.second_copy(invoice.id)
        if copy is None:
            raise _not_found()
        download = Download(copy.archive_key, copy.size, copy.sha256, "application/pdf",
                            f"{invoice.number}-2.pdf")
    return download


def _send(request: Request, download: Download) -> Response:
    try:
        response = ranged_response(request, _archive(request), download)
    except ArchiveNotFoundError:
        raise Problem(503, "document-missing", "The document is not available",
                      detail="Try again later; operations have been told.") from None
    # The link is the credential: keep it out of other sites' logs.
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


# ---------------------------------------------------------------------------- routes


@router.post("/sms-code", status_code=202, response_model=CodeRequested,
             summary="Send an access code by SMS",
             responses=problem_responses(422, 429))
def request_code(request: Request, body: CodeRequest) -> CodeRequested:
    """If the number received invoices, a 6-digit code goes to it by SMS, valid 15
    minutes. The answer is the same whether or not it did: the lookup and the SMS
    happen after the answer has gone, in a worker thread, so they delay no later
    request either. Rate-limited per number and per client (429)."""
    access = _access(request)
    try:
        access.admit_code_request(body.phone, client_address(request))
    except RateLimited as exc:
        raise _too_many(exc) from None
    request.app.state.deferred.submit(access.send_code, body.phone)
    return CodeRequested(
        detail="If this number receives our invoices, a code is on its way by SMS.",
        expires_in=int(access.limits.code_ttl.total_seconds()))


def _too_many(exc: RateLimited) -> Problem:
    return Problem(429, "rate-limited", "Too many requests",
                   detail="Wait a little before trying again.",
                   headers={"Retry-After": str(exc.retry_after)},
                   retry_after=exc.retry_after)


@router.post("/session", response_model=Session, summary="Exchange an SMS code for a session",
             responses=problem_responses(403, 422, 429))
def open_session(request: Request, body: SessionRequest) -> Session:
    """The right code (once, within 15 minutes, before five wrong tries) opens a
    15-minute session on the account the code was sent for. Every other case is the
    same 403 ``code-refused``."""
    try:
        got = _access(request).redeem(body.phone, body.code, client_address(request))
    except RateLimited as exc:
        raise _too_many(exc) from None
    if got is None:
        raise Problem(403, "code-refused", "The code was not accepted",
                      detail="It is wrong, expired or used. Ask for a new code.")
    token, expires, grant = got
    return Session(token=token, expires_at=datetime.fromtimestamp(expires, UTC),
                   operator=grant.operator, account=grant.account, line=grant.line)


@router.get("/invoices", response_model=History, summary="The account's last invoices",
            responses=problem_responses(401, 403))
async def list_invoices(request: Request, grant: Annotated[Grant, Depends(current_grant)]
                        ) -> Response:
    """Number, period, dates, amount, currency, payment status and a signed document
    link of each of the account's last invoices (the operator's setting: Oi 13), newest
    first. ``payment_status`` is ``overdue`` once an invoice not marked paid is past its
    due date."""
    # On the event loop: one indexed query of the ledger, awaited (PostgreSQL: the loop
    # serves other requests meanwhile; ledger.db.Database.read_async), and 13 HMACs. The hop
    # to the thread pool a plain def costs took more CPU than all of that (1.7 against
    # 1.1 ms a request; docs/performance.md).
    # A Response of ready JSON: FastAPI neither validates nor serializes it again;
    # response_model still documents it (the OpenAPI schema is unchanged).
    return Response(await history_json(_access(request), grant),
                    media_type="application/json")


@router.post("/invoices/{number}/second-copy", response_model=SecondCopyOut,
             summary="A second copy of an invoice",
             responses=problem_responses(401, 403, 404, 503))
def make_second_copy(request: Request, number: str,
                     grant: Annotated[Grant, Depends(current_grant)]) -> SecondCopyOut:
    """The archived original re-issued with the duplicate mark, archived and recorded
    once: asking again gives the same copy (same SHA-256)."""
    return second_copy(_access(request), _archive(request), grant, number,
                       render_options(request))


_PDF_RESPONSES = {
    **problem_responses(404, 416, 503),
    200: {"description": "The PDF.", "content": {"application/pdf": {}}},
    206: {"description": "The requested byte range (`Content-Range`)."},
    304: {"description": "Not modified (`If-None-Match` matched the ETag)."},
}


@document_router.get("/invoices/{token}/second-copy.pdf", response_class=Response,
                     summary="Download a second copy", responses=_PDF_RESPONSES)
def download_second_copy(request: Request, token: str) -> Response:
    """The second copy of the linked invoice, once issued (else 404)."""
    return _document(request, token, "second-copy")


@document_router.get("/invoices/{token}.pdf", response_class=Response,
                     summary="Download an invoice", responses=_PDF_RESPONSES)
async def download_invoice(request: Request, token: str) -> Response:
    """The archived PDF of the invoice the signed link names, streamed (ranges work)."""
    return await _document_async(request, token, "original")


_XML_RESPONSES = {
    **problem_responses(404, 416, 503),
    200: {"description": "The e-invoice (EN 16931 XML).", "content": {"application/xml": {}}},
    206: {"description": "The requested byte range (`Content-Range`)."},
    304: {"description": "Not modified (`If-None-Match` matched the ETag)."},
}


@document_router.get("/invoices/{token}.xml", response_class=Response,
                     summary="Download an invoice's e-invoice XML", responses=_XML_RESPONSES)
async def download_einvoice(request: Request, token: str) -> Response:
    """The e-invoice XML (XRechnung, Peppol BIS 3, RO_CIUS) archived beside the PDF of
    the invoice the signed link names; 404 for an invoice without one (a Factur-X
    invoice carries it inside its PDF)."""
    return await _document_async(request, token, "einvoice")


for _route, _path in ((download_second_copy, "/invoices/{token}/second-copy.pdf"),
                      (download_invoice, "/invoices/{token}.pdf"),
                      (download_einvoice, "/invoices/{token}.xml")):
    document_router.add_api_route(_path, _route, methods=["HEAD"], include_in_schema=False,
                                  name=f"{_route.__name__}_head")
