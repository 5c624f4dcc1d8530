"""The operations team's endpoints: deliveries that need a person, and print batches.

Every route needs an ``operations`` key (:mod:`api.keys`) and sees only the key's
operators. What the CLI does on the ledger machine (``invoicer deliveries``,
``invoicer print close``), an operator's on-call can do from anywhere:

    GET  /v1/operations/deliveries             not done or needing a person: failed,
                                               bounced, unknown, queued, stuck in sending
    GET  /v1/operations/conflicts              invoice numbers sent again with other content
    GET  /v1/operations/print-batches          batches and their states
    POST /v1/operations/print-batches/close    seal and close the open batches (202)

Resending an ``unknown`` e-mail stays a deliberate act on the CLI (``invoicer resend``):
it needs the mail and SMS backends, which the API process does not hold.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Annotated, Literal

from fastapi import APIRouter, BackgroundTasks, Depends, Query, Request
from pydantic import BaseModel, Field

from invoicer.api.keys import require_role
from invoicer.api.problems import Problem, problem_responses
from invoicer.ledger import ApiKey, Ledger
from invoicer.workflows import printing

__all__ = ["router"]

log = logging.getLogger(__name__)

PREFIX = "/v1/operations"

router = APIRouter(prefix=PREFIX, tags=["operations"], responses=problem_responses(401, 403),
                   generate_unique_id_function=lambda route: route.name)

OpsKey = Annotated[ApiKey, Depends(require_role("operations"))]
DeliveryState = Literal["pending", "sending", "sent", "failed_permanent", "unknown",
                        "bounced"]
BatchState = Literal["open", "closing", "closed", "printed"]


class FallbackOut(BaseModel):
    """The delivery that replaced this one (per the operator's fallback policy)."""

    id: int
    channel: str
    state: str


class DeliveryOut(BaseModel):
    """One channel of one invoice, and where it stands."""

    id: int
    operator: str
    invoice: str
    account: str
    channel: str = Field(description="`email`, `sms` or `print`.")
    state: str
    attempts: int
    updated_at: datetime = Field(description="Since when it is in this state.")
    last_error: str | None = Field(None, description="Why: the last failure, as recorded.")
    report_status: str | None = Field(
        None, description="The far end's word: a DSN status (`5.1.1`) or an SMS receipt "
                          "status (`delivered`, `failed`, `expired`).")
    replaces: int | None = Field(None, description="The delivery this fallback replaces.")
    fell_back_to: FallbackOut | None = None


class Deliveries(BaseModel):
    """Deliveries matching the query, oldest change first."""

    deliveries: list[DeliveryOut]


class BatchOut(BaseModel):
    """A print batch as operations see it (the print shop sees only closed ones)."""

    batch: str = Field(examples=["B12"])
    operator: str
    state: str
    documents: int
    sheets: int
    created_at: datetime
    closed_at: datetime | None
    printed_at: datetime | None
    last_error: str | None = Field(None, description="Why the last close failed.")


class Batches(BaseModel):
    """Print batches, newest first."""

    batches: list[BatchOut]


class CloseAccepted(BaseModel):
    """A close was started for these operators; follow it in the batch list."""

    operators: list[str]


class ConflictOut(BaseModel):
    """A line refused because its invoice number was issued with other content."""

    run_id: int
    line: int
    invoice: str | None
    field: str = Field(description="The first field that differs from the issued invoice "
                                   "(`invoice.number` when the issued one is not archived).")
    message: str
    recorded_at: datetime


class Conflicts(BaseModel):
    """Conflicts, newest first."""

    conflicts: list[ConflictOut]


def _ledger(request: Request) -> Ledger:
    return request.app.state.ledger


def _operators(key: ApiKey, operator: str | None) -> list[str]:
    # An operator the key does not act for reads as one with nothing to show: the
    # answer must not tell which operators exist (as for print shops).
    if operator is None:
        return list(key.operators)
    return [operator] if operator in key.operators else []


@router.get("/deliveries", response_model=Deliveries,
            summary="Deliveries that need a person", responses=problem_responses(422))
def needing_attention(
    request: Request,
    key: OpsKey,
    state: Annotated[list[DeliveryState] | None, Query(
        description="States to list [default: failed_permanent, bounced, unknown, "
                    "e-mails and SMS still pending, and sending untouched for "
                    "`stale_minutes`].")] = None,
    stale_minutes: Annotated[int, Query(ge=1, le=10_080)] = 30,
    operator: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> Deliveries:
    """Deliveries of the key's operators that are not done or need a person, with why
    and since when, and the fallback that replaced each, if any."""
    ledger, ops = _ledger(request), _operators(key, operator)
    if not ops:
        return Deliveries(deliveries=[])
    if state:
        rows = ledger.reports.deliveries(state, limit=limit, operators=ops)
    else:
        rows = ledger.reports.needing_attention(timedelta(minutes=stale_minutes),
                                                limit=limit, operators=ops)
    rows = rows[:limit]
    replaced = ledger.reports.replacements(d.id for d, _ in rows)
    return Deliveries(deliveries=[
        DeliveryOut(id=d.id, operator=inv.operator_id, invoice=inv.number,
                    account=inv.account, channel=d.channel, state=d.state,
                    attempts=d.attempts, updated_at=d.updated_at, last_error=d.last_error,
                    report_status=d.report_status, replaces=d.replaces_id,
                    fell_back_to=FallbackOut(id=fb.id, channel=fb.channel, state=fb.state)
                    if (fb := replaced.get(d.id)) else None)
        for d, inv in rows])


@router.get("/conflicts", response_model=Conflicts,
            summary="Invoice numbers sent again with other content",
            responses=problem_responses(422))
def conflicts(
    request: Request,
    key: OpsKey,
    operator: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> Conflicts:
    """Dead-lettered lines whose invoice number was already issued with other content
    (reason ``conflict``): a correction the billing system must send as a new number
    or a credit note."""
    ops = _operators(key, operator)
    found = _ledger(request).reports.conflicts(ops, limit=limit) if ops else []
    return Conflicts(conflicts=[
        ConflictOut(run_id=r.run_id, line=r.line, invoice=r.invoice_number, field=r.path,
                    message=r.message, recorded_at=r.created_at) for r in found])


@router.get("/print-batches", response_model=Batches, summary="Print batches",
            responses=problem_responses(422))
def print_batches(
    request: Request,
    key: OpsKey,
    state: Annotated[list[BatchState] | None, Query()] = None,
    operator: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> Batches:
    """The key's operators' print batches, newest first."""
    ops = _operators(key, operator)
    found = _ledger(request).reports.print_batches(
        ops, states=set(state) if state else None, limit=limit) if ops else []
    return Batches(batches=[
        BatchOut(batch=printing.batch_name(b.id), operator=b.operator_id, state=b.state,
                 documents=b.documents, sheets=b.sheets, created_at=b.created_at,
                 closed_at=b.closed_at, printed_at=b.printed_at, last_error=b.last_error)
        for b in found[:limit]])


def _close(ledger: Ledger, archive, operators: list[str]) -> None:
    for op in operators:
        try:
            report = printing.close(ledger, archive, op)
        except Exception:  # a background task has nobody to raise to: log it
            log.exception("closing the print batches of %s", op)
            continue
        log.info("print batches of %s: %d closed, %d failed", op, len(report.closed),
                 len(report.failed))


@router.post("/print-batches/close", status_code=202, response_model=CloseAccepted,
             summary="Seal and close the open print batches",
             responses=problem_responses(404, 422))
def close_print_batches(
    request: Request,
    key: OpsKey,
    tasks: BackgroundTasks,
    operator: Annotated[str | None, Query(max_length=64)] = None,
) -> CloseAccepted:
    """Join the print queue, seal the open batches and close them, after answering.

    A close of 10,000 documents takes seconds: it runs after the 202 goes out, and the
    batch list shows it done. Two closes at once are safe: each batch has one closer.
    """
    ops = _operators(key, operator)
    if not ops:
        raise Problem(404, "operator-not-found", "No such operator",
                      detail="This key does not act for that operator.")
    tasks.add_task(_close, _ledger(request), request.app.state.archive, ops)
    return CloseAccepted(operators=ops)
