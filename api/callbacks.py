"""Callbacks from the far end: e-mail providers' bounce/complaint webhooks and the SMS
gateway's delivery receipts.

    POST /v1/callbacks/email-events    one event, or a JSON array of them
    POST /v1/callbacks/sms-receipts    one receipt, or a JSON array of them

Both take ``Authorization: Bearer <INVOICER_CALLBACK_TOKEN>`` (or the token as the
password of HTTP Basic, for gateways that can only put credentials in the URL),
compared in constant time; with no token configured they answer 404. The shapes are
documented in ``delivery/bounces/events.py`` and ``delivery/sms/receipts.py`` (and in
``docs/operating.md``). Recording is idempotent, so a provider that retries a callback
changes the ledger once. A receipt in an interim state (``ENROUTE``, ``ACCEPTD``) is
acknowledged and ignored, as gateways expect.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import logging
from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from invoicer.api.problems import Problem, problem_responses
from invoicer.delivery.bounces import parse_event
from invoicer.delivery.sms import parse_receipt
from invoicer.workflows.bounces import send_waiting, take_receipt, take_report

__all__ = ["router"]

log = logging.getLogger(__name__)

#: Callbacks are small; anything bigger is not one.
MAX_BODY = 256 * 1024
MAX_ITEMS = 100

router = APIRouter(prefix="/v1/callbacks", tags=["callbacks"],
                   responses=problem_responses(400, 401, 404, 413),
                   generate_unique_id_function=lambda route: route.name)


class Taken(BaseModel):
    """What each event of the request was taken for, in order: ``bounced``, ``soft``,
    ``complaint``, ``delivered``, ``duplicate`` (already recorded), ``unmatched`` (names
    no message of ours), ``ignored`` (an interim receipt)."""

    taken: list[str] = Field(examples=[["bounced"]])


def _authorize(request: Request) -> None:
    token = request.app.state.settings.callback_token
    if not token:
        raise Problem(404, "callbacks-off", "Callbacks are not configured",
                      detail="Set INVOICER_CALLBACK_TOKEN to receive callbacks.")
    given = ""
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer":
        given = value.strip()
    elif scheme.lower() == "basic":
        try:
            given = base64.b64decode(value.strip(), validate=True).decode().partition(":")[2]
        except (binascii.Error, UnicodeDecodeError):
            given = ""
    if not hmac.compare_digest(given.encode(), token.encode()):
        raise Problem(401, "bad-callback-token", "Not a valid callback token",
                      headers={"WWW-Authenticate": 'Bearer realm="callbacks"'})


async def _items(request: Request) -> list[Any]:
    body = await request.body()
    if len(body) > MAX_BODY:
        raise Problem(413, "too-large", "Callback too large")
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        raise Problem(400, "not-json", "The body is not JSON") from None
    items = data if isinstance(data, list) else [data]
    if not 1 <= len(items) <= MAX_ITEMS:
        raise Problem(400, "bad-batch", f"Send 1 to {MAX_ITEMS} events per request")
    return items


@router.post("/email-events", response_model=Taken, summary="Bounces and complaints")
async def email_events(request: Request) -> Taken:
    """Bounces and complaints from an e-mail provider, in the generic shape."""
    _authorize(request)
    items = await _items(request)
    try:
        reports = [parse_event(item) for item in items]
    except ValueError as exc:
        raise Problem(400, "bad-event", "Not an event", detail=str(exc)) from None
    intake = request.app.state.intake

    def record() -> list[str]:
        taken = [take_report(r, intake) for r in reports]
        send_waiting(intake)
        return taken

    return Taken(taken=await run_in_threadpool(record))


@router.post("/sms-receipts", response_model=Taken, summary="SMS delivery receipts")
async def sms_receipts(request: Request) -> Taken:
    """Delivery receipts from the SMS gateway; an undeliverable SMS falls back to
    paper (per the operator's policy)."""
    _authorize(request)
    items = await _items(request)
    receipts = []
    for item in items:
        try:
            receipts.append(parse_receipt(item))
        except ValueError as exc:
            interim = isinstance(item, dict) and str(item.get("status", "")).upper() in (
                "ENROUTE", "ACCEPTD", "ACCEPTED", "UNKNOWN", "SCHEDULED", "BUFFERED")
            if not interim:
                raise Problem(400, "bad-receipt", "Not a receipt", detail=str(exc)) from None
            receipts.append(None)
    intake = request.app.state.intake

    def record() -> list[str]:
        return [take_receipt(r, intake) if r is not None else "ignored" for r in receipts]

    return Taken(taken=await run_in_threadpool(record))
