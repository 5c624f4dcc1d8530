"""The subscriber's e-invoice/paper choice, through the API (the page uses the same
functions, ``api/web_preferences.py``).

    GET  /v1/subscriber/delivery-preference                how invoices reach the account
    PUT  /v1/subscriber/delivery-preference  {"mode", "email"}   choose (202)
    POST /v1/subscriber/delivery-preference/confirmation {"token"}  the e-mailed link's token

Choosing needs an SMS-code session (an invoice link from an e-mail is not enough: whoever
holds a forwarded e-mail must not redirect the invoices). Confirming needs only the
token of the link sent to the address: it proves the address is read by the one who
chose it. The rules (confirmation, precedence) are in ``workflows/preferences.py``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field

from invoicer.api.access import AccessService, Grant, RateLimited
from invoicer.api.problems import Problem, problem_responses
from invoicer.api.self_service import branding, canonical_record
from invoicer.api.subscriber import PREFIX, client_address, current_grant
from invoicer.billing.models import BillingRecord
from invoicer.delivery.errors import DeliveryError
from invoicer.ledger import Preference
from invoicer.operator_settings import operator_settings
from invoicer.workflows.preferences import (
    ConfirmationMail,
    InvalidEmail,
    choose,
    confirm,
    is_pending,
)

__all__ = ["PreferenceOut", "change_preference", "confirm_choice", "preference_view",
           "router"]

router = APIRouter(prefix=PREFIX, tags=["subscriber"],
                   generate_unique_id_function=lambda route: route.name)

Mode = Literal["electronic", "paper", "both"]


class ChoiceIn(BaseModel):
    """E-invoice (with the address to use), paper (the postal address on file), or both."""

    model_config = ConfigDict(extra="forbid")
    mode: Mode
    email: str | None = Field(None, max_length=320, examples=["maria@example.com"],
                              description="Required for electronic and both.")


class ConfirmationIn(BaseModel):
    """The token of the link e-mailed to the chosen address."""

    model_config = ConfigDict(extra="forbid")
    token: str = Field(max_length=600)


class ChoiceOut(BaseModel):
    """One choice the subscriber made, with when and how."""

    mode: Mode
    email: str | None
    state: Literal["awaiting_confirmation", "pending", "applied"] = Field(
        description="`awaiting_confirmation`: the e-mailed link is not used yet; "
                    "`pending`: confirmed, no invoice issued under it yet; `applied`.")
    requested_at: datetime
    requested_via: str
    confirmed_at: datetime | None
    confirmed_via: str | None
    applied_at: datetime | None
    applied_invoice: str | None


class CurrentDelivery(BaseModel):
    """How the latest invoice went out."""

    mode: Mode | None
    email: str | None
    postal_address: list[str] = Field(description="The postal address on file.")


class PreferenceOut(BaseModel):
    """How the account's invoices reach it, and the subscriber's own choices."""

    operator: str
    account: str
    owner: Literal["service", "billing"] = Field(
        description="`service`: a confirmed choice applies to the next invoices; "
                    "`billing`: the billing system is told and decides.")
    current: CurrentDelivery
    choice: ChoiceOut | None = Field(description="The confirmed choice in force.")
    waiting: ChoiceOut | None = Field(description="A choice waiting for its e-mail link.")


def _choice(pref: Preference | None) -> ChoiceOut | None:
    if pref is None:
        return None
    state = ("awaiting_confirmation" if pref.state == "unconfirmed"
             else "pending" if is_pending(pref) else "applied")
    return ChoiceOut(mode=pref.mode, email=pref.email, state=state,
                     requested_at=pref.requested_at, requested_via=pref.requested_via,
                     confirmed_at=pref.confirmed_at, confirmed_via=pref.confirmed_via,
                     applied_at=pref.applied_at, applied_invoice=pref.applied_invoice)


def preference_view(access: AccessService, archive, grant: Grant, *,
                    record: BillingRecord | Literal[False] | None = False) -> PreferenceOut:
    """The account's delivery: the latest invoice's, and the subscriber's choices.
    ``record``: the latest invoice's canonical record when the caller has it already."""
    live = access.ledger.preferences.current(grant.operator, grant.account)
    choice = next((p for p in live if p.state == "confirmed"), None)
    waiting = next((p for p in live if p.state == "unconfirmed"), None)
    if record is False:
        latest = access.ledger.invoices.for_account(grant.operator, grant.account, limit=1)
        record = canonical_record(archive, latest[0]) if latest else None
    address: list[str] = []
    mode = email = None
    if record is not None:
        a = record.account.customer.address
        address = [record.account.customer.name, *a.lines,
                   " ".join(p for p in (a.postal_code, a.city) if p), a.country]
        mode, email = record.delivery.mode.value, record.delivery.email
    if choice is not None and choice.applied_at is not None:
        mode, email = choice.mode, choice.email or email
    owner = "service" if operator_settings(grant.operator).service_owns_preference \
        else "billing"
    return PreferenceOut(operator=grant.operator, account=grant.account, owner=owner,
                         current=CurrentDelivery(mode=mode, email=email,
                                                 postal_address=address),
                         choice=_choice(choice), waiting=_choice(waiting))


def _session(grant: Grant) -> Grant:
    if grant.kind != "session":
        raise Problem(403, "session-required", "Sign in with an SMS code to change this",
                      detail="An invoice link opens invoices; choosing how they arrive "
                             "needs the code sent to the account's phone.")
    return grant


def change_preference(request: Request, grant: Grant, body: ChoiceIn, *, via: str,
                      locale: str | None = None) -> Preference:
    """Record a choice for the session's account (and send the confirmation link).
    Problems: 403 (not a session), 422 (no or a bad address), 429, 503 (mail down)."""
    access: AccessService = request.app.state.access
    _session(grant)
    if body.mode != "paper" and not body.email:
        raise Problem(422, "email-required", "An e-mail address is needed",
                      detail="Electronic invoices go to an e-mail address.")
    try:
        access.admit_choice(grant.operator, grant.account, client_address(request))
    except RateLimited as exc:
        raise Problem(429, "rate-limited", "Too many requests",
                      detail="Wait a little before trying again.",
                      headers={"Retry-After": str(exc.retry_after)},
                      retry_after=exc.retry_after) from None
    latest = access.ledger.invoices.for_account(grant.operator, grant.account, limit=1)
    record = canonical_record(request.app.state.archive, latest[0]) if latest else None
    mail: ConfirmationMail = request.app.state.confirmations
    try:
        return choose(access.ledger, mail, operator=grant.operator, account=grant.account,
                      mode=body.mode, email=body.email, via=via,
                      client=client_address(request),
                      locale=locale or (latest[0].locale if latest else "en"),
                      operator_name=branding(grant.operator, record).name, now=access.now())
    except InvalidEmail:
        raise Problem(422, "invalid-email", "That is not an e-mail address",
                      detail="Check the address and try again.") from None
    except DeliveryError:
        raise Problem(503, "mail-unavailable", "The confirmation e-mail could not be sent",
                      detail="Try again in a few minutes.") from None


def confirm_choice(request: Request, token: str) -> Preference | None:
    """Confirm the choice a link names (once); ``None`` for every refused link."""
    access: AccessService = request.app.state.access
    mail: ConfirmationMail = request.app.state.confirmations
    return confirm(access.ledger, mail.key, token, now=access.now())


# ---------------------------------------------------------------------------- routes


@router.get("/delivery-preference", response_model=PreferenceOut,
            summary="How the account's invoices arrive",
            responses=problem_responses(401, 403))
def get_preference(request: Request, grant: Annotated[Grant, Depends(current_grant)]
                   ) -> PreferenceOut:
    """The latest invoice's delivery (mode, e-mail, the postal address on file), who owns
    the choice, the confirmed choice (``pending`` until an invoice is issued under it)
    and any choice waiting for its e-mailed link."""
    return preference_view(request.app.state.access, request.app.state.archive,
                           _session(grant))


@router.put("/delivery-preference", response_model=PreferenceOut, status_code=202,
            summary="Choose e-invoice, paper or both",
            responses=problem_responses(401, 403, 422, 429, 503))
def put_preference(request: Request, body: ChoiceIn,
                   grant: Annotated[Grant, Depends(current_grant)]) -> PreferenceOut:
    """``paper`` counts at once. ``electronic`` and ``both`` send a link to ``email``
    (valid 24 hours, single use); the choice counts once it is confirmed, and a newer
    choice retires an unused link. Recorded with when and how (``requested_via: api``)."""
    change_preference(request, grant, body, via="api")
    return preference_view(request.app.state.access, request.app.state.archive, grant)


@router.post("/delivery-preference/confirmation", response_model=ChoiceOut,
             summary="Confirm an e-mail address for invoices",
             responses=problem_responses(404, 422))
def post_confirmation(request: Request, body: ConfirmationIn) -> ChoiceOut:
    """The token of the link sent to the chosen address. Every refusal (altered,
    expired, used, replaced by a newer choice) is the same 404."""
    confirmed = confirm_choice(request, body.token)
    if confirmed is None:
        raise Problem(404, "link-refused", "The link is not valid",
                      detail="It may have expired or been used; choose again to get a "
                             "new one.")
    return _choice(confirmed)
