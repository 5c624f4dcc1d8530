"""The billing system's endpoints: payment status of invoices, and bill runs.

Every route needs a ``billing`` key (:mod:`api.keys`) and reaches only the key's
operators: an invoice of another operator is the same 404 as one that does not exist.

    GET  /v1/billing/operators/{op}/invoices/{n}/payment-status   status and its history
    PUT  /v1/billing/operators/{op}/invoices/{n}/payment-status   {"status", "date", "amount"}
    GET  /v1/billing/operators/{op}/invoices/{n}/documents        signed links: PDF, e-invoice XML
    POST /v1/billing/runs        a JSON Lines upload, or {"source": "s3://bucket/key"}
    GET  /v1/billing/runs/{job}  the run's state and outcome counts
"""

from __future__ import annotations

import datetime as dt
import re
from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from invoicer.api.billrun import BillRunJob, BillRunSource, LineSplitter, foreign_operators
from invoicer.api.keys import require_role
from invoicer.api.problems import Problem, problem_responses
from invoicer.billing.fields import IDENTIFIER_PATTERN, currency_minor_units, precision_error
from invoicer.ledger import ApiKey, Invoice, Ledger

__all__ = ["router"]

PREFIX = "/v1/billing"

router = APIRouter(prefix=PREFIX, tags=["billing"], responses=problem_responses(401, 403),
                   generate_unique_id_function=lambda route: route.name)

BillingKey = Annotated[ApiKey, Depends(require_role("billing"))]
_ID_RE = re.compile(IDENTIFIER_PATTERN)
JSON_LINES = ("application/x-ndjson", "application/jsonl", "application/json-lines",
              "application/x-jsonlines")
MAX_UPLOAD = 8 << 30  # bytes: a month's bill run of a large operator, CDRs included


# ---------------------------------------------------------------------------- models

Amount = Annotated[str, Field(pattern=r"^[0-9]{1,15}(\.[0-9]{1,4})?$", examples=["52.40"],
                              description="A decimal string, at most the currency's "
                                          "minor-unit digits.")]


class PaymentUpdate(BaseModel):
    """A payment status as the billing system knows it.

    ``paid``: ``date`` required, ``amount`` defaults to the total due;
    ``partially_paid``: ``date`` and an ``amount`` above zero and below the total;
    ``overdue``: ``date`` (since when) optional, no amount; ``unpaid``: neither (a
    payment reversed).
    """

    model_config = ConfigDict(extra="forbid")
    status: Literal["paid", "overdue", "partially_paid", "unpaid"]
    date: dt.date | None = None
    amount: Amount | None = None


class PaymentEventOut(BaseModel):
    status: str
    amount: str | None
    date: dt.date | None
    recorded_at: datetime


class PaymentState(BaseModel):
    """An invoice's payment status now, and every change reported."""

    operator: str
    invoice: str
    total: str
    currency: str
    status: str
    paid_amount: str | None
    paid_on: dt.date | None
    history: list[PaymentEventOut]


class Documents(BaseModel):
    """Signed links to an invoice's documents, relative to the API's address, valid
    until ``expires_at`` (15 minutes): the same links a subscriber gets."""

    operator: str
    invoice: str
    pdf: str = Field(description="The PDF (a PDF/A-3b; a Factur-X one carries its XML).")
    einvoice_format: str | None = Field(
        None, description="`factur-x`, `xrechnung-cii`, `xrechnung-ubl`, `peppol-bis3`, "
                          "`ro-cius`, or null.")
    einvoice: str | None = Field(
        None, description="The e-invoice XML archived beside the PDF (not for Factur-X, "
                          "whose XML is inside the PDF); null when there is none.")
    expires_at: datetime


class RunRequest(BaseModel):
    """A bill run already in object storage."""

    model_config = ConfigDict(extra="forbid")
    source: str = Field(pattern=r"^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]/[!-~]{1,1024}$",
                        examples=["s3://billing-exports/2026-11/run-1.jsonl"])


class RunJob(BaseModel):
    """A queued bill run and, once it ran, what came of it."""

    job: str
    state: Literal["queued", "running", "done", "failed", "refused"]
    submitted_at: datetime
    source: str
    run_id: int | None = None
    outcomes: dict[str, int] = Field(default_factory=dict,
                                     description="Records per outcome (archived, "
                                                 "already_done, rejected, failed...).")
    einvoices: dict[str, int] = Field(default_factory=dict,
                                      description="E-invoices the run issued, per format "
                                                  "(`xrechnung-cii`: 3, ...).")
    error: str | None = None
    finished_at: datetime | None = None
    status_url: str


# ---------------------------------------------------------------------------- helpers


def _not_found() -> Problem:
    return Problem(404, "invoice-not-found", "No such invoice",
                   detail="No archived invoice with this number is available to this key.")


def _invoice(request: Request, key: ApiKey, operator: str, number: str) -> Invoice:
    if operator not in key.operators or not _ID_RE.fullmatch(number) or ".." in number:
        raise _not_found()
    ledger: Ledger = request.app.state.ledger
    invoice = ledger.invoices.get(operator, number)
    if invoice is None or invoice.status != "archived":
        raise _not_found()
    return invoice


def _money(value: Decimal | None) -> str | None:
    return None if value is None else format(value, "f")


def _state(request: Request, invoice: Invoice) -> PaymentState:
    ledger: Ledger = request.app.state.ledger
    events = ledger.invoices.payment_history(invoice.id)
    return PaymentState(
        operator=invoice.operator_id, invoice=invoice.number, total=format(invoice.total, "f"),
        currency=invoice.currency, status=invoice.payment_status,
        paid_amount=_money(invoice.paid_amount), paid_on=invoice.paid_on,
        history=[PaymentEventOut(status=e.status, amount=_money(e.amount), date=e.paid_on,
                                 recorded_at=e.recorded_at) for e in events])


def _invalid(detail: str) -> Problem:
    return Problem(422, "invalid-payment", "The payment status is not valid", detail=detail)


def _check_update(update: PaymentUpdate, invoice: Invoice) -> tuple[Decimal | None,
                                                                    dt.date | None]:
    amount = Decimal(update.amount) if update.amount is not None else None
    if amount is not None:
        digits = currency_minor_units(invoice.currency)
        problem = precision_error(amount, digits if digits is not None else 2,
                                  invoice.currency)
        if problem:
            raise _invalid(problem)
    if update.status == "paid":
        if update.date is None:
            raise _invalid("'paid' needs the date it was paid.")
        return (amount if amount is not None else invoice.total), update.date
    if update.status == "partially_paid":
        if update.date is None or amount is None:
            raise _invalid("'partially_paid' needs the date and the amount paid.")
        if not 0 < amount < invoice.total:
            raise _invalid(f"a partial payment is above 0 and below the total "
                           f"{invoice.total} {invoice.currency}.")
        return amount, update.date
    if amount is not None:
        raise _invalid(f"'{update.status}' takes no amount.")
    if update.status == "unpaid" and update.date is not None:
        raise _invalid("'unpaid' takes no date.")
    return None, update.date


def _job(job: BillRunJob) -> RunJob:
    return RunJob(job=job.id, state=job.state, submitted_at=job.submitted_at,  # type: ignore[arg-type]
                  source=job.source, run_id=job.run_id, outcomes=job.outcomes,
                  error=job.error, finished_at=job.finished_at,
                  status_url=f"{PREFIX}/runs/{job.id}")


# ---------------------------------------------------------------------------- routes

PaymentPath = "/operators/{operator}/invoices/{number}/payment-status"


@router.get(PaymentPath, response_model=PaymentState, summary="An invoice's payment status",
            responses=problem_responses(404))
def get_payment_status(request: Request, key: BillingKey, operator: str, number: str
                       ) -> PaymentState:
    """The status, amount and date now, and every change reported, oldest first."""
    return _state(request, _invoice(request, key, operator, number))


@router.put(PaymentPath, response_model=PaymentState, summary="Set an invoice's payment status",
            responses=problem_responses(404, 422))
def set_payment_status(request: Request, key: BillingKey, operator: str, number: str,
                       update: PaymentUpdate) -> PaymentState:
    """Paid, overdue, partially paid (with date and amount) or unpaid again; the
    subscriber's history shows it at once. Sending the same state again changes
    nothing and adds nothing to the history."""
    invoice = _invoice(request, key, operator, number)
    amount, when = _check_update(update, invoice)
    ledger: Ledger = request.app.state.ledger
    updated, _ = ledger.invoices.set_payment_status(
        invoice.id, update.status, amount=amount, paid_on=when, source=f"api-key:{key.id}")
    return _state(request, updated)


#: How long the links of :class:`Documents` live.
DOCUMENT_LINK_TTL = 900


@router.get("/operators/{operator}/invoices/{number}/documents", response_model=Documents,
            summary="Signed links to an invoice's PDF and e-invoice XML",
            responses=problem_responses(404))
def get_documents(request: Request, key: BillingKey, operator: str, number: str
                  ) -> Documents:
    """Links to download the archived PDF and, for XRechnung, Peppol BIS 3 and RO_CIUS,
    the XML archived beside it (``GET`` them without a key: the link is the
    credential, for 15 minutes)."""
    invoice = _invoice(request, key, operator, number)
    access = request.app.state.access  # its clock: tests move it
    expires = int(access.now()) + DOCUMENT_LINK_TTL
    token = access.invoice_token(invoice, expires)
    return Documents(operator=invoice.operator_id, invoice=invoice.number,
                     pdf=f"/invoices/{token}.pdf", einvoice_format=invoice.einvoice_format,
                     einvoice=f"/invoices/{token}.xml" if invoice.einvoice_key else None,
                     expires_at=datetime.fromtimestamp(expires, UTC))


_RUN_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/x-ndjson": {"schema": {"type": "string", "format": "binary"}},
            "application/json": {"schema": {"$ref": "#/components/schemas/RunRequest"}},
        },
    }
}


@router.post("/runs", status_code=202, response_model=RunJob, summary="Enqueue a bill run",
             openapi_extra=_RUN_BODY, responses=problem_responses(403, 413, 415, 422))
async def enqueue_run(request: Request, key: BillingKey) -> RunJob:
    """A bill run: the records as a JSON Lines body (``Content-Type:
    application/x-ndjson``), or ``{"source": "s3://bucket/key"}`` as JSON. Records of
    operators the key does not act for refuse the whole run (403 for an upload, state
    ``refused`` for an S3 source, which is read when the run starts)."""
    queue = request.app.state.bill_runs
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media == "application/json":
        try:
            body = RunRequest.model_validate_json(await request.body())
        except ValidationError as exc:
            raise Problem(422, "invalid-request", "The request is not valid",
                          detail=str(exc.errors(include_input=False))[:500]) from None
        job = queue.enqueue(BillRunSource(tuple(key.operators), key.id, url=body.source))
        return _job(job)
    if media not in JSON_LINES:
        raise Problem(415, "unsupported-media-type", "Send JSON Lines or JSON",
                      detail="Content-Type: application/x-ndjson (the records) or "
                             "application/json ({\"source\": \"s3://...\"}).")
    path = queue.spool_path()
    size, foreign, lines = 0, set(), LineSplitter()
    try:
        with open(path, "wb") as f:
            async for chunk in request.stream():
                size += len(chunk)
                if size > MAX_UPLOAD:
                    raise Problem(413, "too-large", "The upload is too large",
                                  detail=f"At most {MAX_UPLOAD} bytes; use an s3:// source.")
                f.write(chunk)
                foreign |= foreign_operators(lines.feed(chunk), key.operators)
            foreign |= foreign_operators([lines.rest()], key.operators)
        if size == 0:
            raise Problem(422, "empty-run", "The bill run has no records")
        if foreign:
            raise Problem(403, "foreign-operator", "Records of another operator",
                          detail="This key does not act for: " + ", ".join(sorted(foreign)),
                          operators=sorted(foreign))
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return _job(queue.enqueue(BillRunSource(tuple(key.operators), key.id, path=path)))


@router.get("/runs/{job}", response_model=RunJob, summary="A bill run's state",
            responses=problem_responses(404))
def get_run(request: Request, key: BillingKey, job: str) -> RunJob:
    """Queued, running, done (with outcome counts), failed or refused."""
    found = request.app.state.bill_runs.status(job) if re.fullmatch(r"[0-9a-f]{32}", job) \
        else None
    if found is None or not set(found.operators) & set(key.operators):
        raise Problem(404, "run-not-found", "No such bill run")
    job = _job(found)
    if found.run_id is not None:
        ledger: Ledger = request.app.state.ledger
        job.einvoices = {fmt: n for fmt, n, _ in ledger.reports.run_einvoices(found.run_id)}
    return job
