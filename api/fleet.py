"""The billing system registers business accounts' fleet managers.

A business account's invoices are read by the people who manage its lines, not by the
phone of one line. The billing system (a ``billing`` key, for the account's operator)
says who they are: phone numbers that may sign in with an SMS code, each optionally with
an e-mail address. The list it sends is the list (PUT replaces it, so sending it again
changes nothing; an empty list removes every manager)::

    GET /v1/billing/operators/{op}/accounts/{account}/managers
    PUT /v1/billing/operators/{op}/accounts/{account}/managers   {"managers": [...]}

A manager's SMS code opens the whole account (:mod:`api.access`): its invoices, the
per-line overview and every line's detailed bill (:mod:`api.details`). Removing a
manager closes new sign-ins at once; a session already open ends within 15 minutes.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, EmailStr, Field

from invoicer.api.keys import require_role
from invoicer.api.problems import Problem, problem_responses
from invoicer.billing.fields import IDENTIFIER_PATTERN
from invoicer.ledger import ApiKey, Ledger, Manager

__all__ = ["router"]

router = APIRouter(prefix="/v1/billing", tags=["billing"],
                   responses=problem_responses(401, 403),
                   generate_unique_id_function=lambda route: route.name)

BillingKey = Annotated[ApiKey, Depends(require_role("billing"))]
_ID_RE = re.compile(IDENTIFIER_PATTERN)
MAX_MANAGERS = 100

Phone = Annotated[str, Field(pattern=r"^\+[1-9][0-9]{1,14}$", examples=["+5521987650001"],
                             description="E.164: `+`, country code and number.")]


class ManagerIn(BaseModel):
    """A person allowed to read the whole business account."""

    model_config = ConfigDict(extra="forbid")
    phone: Phone
    email: EmailStr | None = Field(default=None, max_length=254)


class ManagersIn(BaseModel):
    """The account's fleet managers: this list replaces the previous one."""

    model_config = ConfigDict(extra="forbid")
    managers: list[ManagerIn] = Field(max_length=MAX_MANAGERS)


class ManagerOut(BaseModel):
    phone: str
    email: str | None
    registered_at: datetime


class Managers(BaseModel):
    """The account's fleet managers now, by phone."""

    operator: str
    account: str
    managers: list[ManagerOut]


def _account(key: ApiKey, operator: str, account: str) -> None:
    if operator not in key.operators:
        raise Problem(403, "operator-not-allowed", "Not this key's operator",
                      detail="This key does not act for that operator.")
    if not _ID_RE.fullmatch(account) or ".." in account:
        raise Problem(422, "invalid-account", "Not an account number",
                      detail="An account number is 1 to 64 of A-Z a-z 0-9 . _ -.")


def _out(operator: str, account: str, rows: list[Manager]) -> Managers:
    return Managers(operator=operator, account=account,
                    managers=[ManagerOut(phone=m.phone, email=m.email,
                                         registered_at=m.created_at) for m in rows])


@router.get("/operators/{operator}/accounts/{account}/managers", response_model=Managers,
            summary="A business account's fleet managers", responses=problem_responses(422))
def get_managers(request: Request, operator: str, account: str, key: BillingKey
                 ) -> Managers:
    """The phones (and e-mail addresses) registered as the account's fleet managers."""
    _account(key, operator, account)
    ledger: Ledger = request.app.state.ledger
    return _out(operator, account, ledger.fleet.managers(operator, account))


@router.put("/operators/{operator}/accounts/{account}/managers", response_model=Managers,
            summary="Set a business account's fleet managers",
            responses=problem_responses(422))
def put_managers(request: Request, operator: str, account: str, body: ManagersIn,
                 key: BillingKey) -> Managers:
    """Replace the account's fleet managers with this list (idempotent). A phone listed
    twice is refused."""
    _account(key, operator, account)
    phones = [m.phone for m in body.managers]
    if len(set(phones)) != len(phones):
        raise Problem(422, "duplicate-manager", "A phone is listed twice",
                      detail="Each manager's phone appears once.")
    ledger: Ledger = request.app.state.ledger
    rows = ledger.fleet.set_managers(operator, account,
                                     [(m.phone, m.email) for m in body.managers])
    return _out(operator, account, rows)
