"""The page's e-invoice/paper choice and the e-mailed confirmation link.

    GET  /access/delivery           the choice form (after the SMS code)
    POST /access/delivery           record the choice; for e-mail, send the link
    GET  /access/confirm/{token}    what the link would confirm, and a button
    POST /access/confirm/{token}    confirm (once)

Opening the link only shows the question: mail scanners follow links, and only the
button (a POST) confirms. The rules are the API's (:mod:`api.preferences`).
"""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, Response

from invoicer.api.edge import require_same_origin
from invoicer.api.preferences import (
    ChoiceIn,
    change_preference,
    confirm_choice,
    preference_view,
)
from invoicer.api.problems import Problem
from invoicer.api.web import _grant, _lang, _messages, _page
from invoicer.api.web_context import account_brand
from invoicer.workflows.preferences import awaiting

__all__ = ["router"]

router = APIRouter(prefix="/access", include_in_schema=False)

_TOKEN_RE = re.compile(r"[A-Za-z0-9_-]{1,600}\.[A-Za-z0-9_-]{43}")
_MODES = ("electronic", "paper", "both")


def _brand(request: Request, operator: str, account: str):
    return account_brand(request.app.state.access, request.app.state.archive, operator,
                         account)


def _expired(request: Request, lang: str) -> HTMLResponse:
    return _page(request, "phone.html", lang, 401, error=_messages()[lang]["expired"])


@router.get("/delivery", response_class=HTMLResponse)
def delivery_form(request: Request) -> Response:
    lang = _lang(request)
    grant = _grant(request)
    if grant is None:
        return _expired(request, lang)
    view = preference_view(request.app.state.access, request.app.state.archive, grant)
    chosen = (view.waiting or view.choice)
    mode = chosen.mode if chosen is not None else view.current.mode
    email = (chosen.email if chosen is not None and chosen.email else view.current.email)
    return _page(request, "delivery.html", lang, mode=mode or "electronic",
                 email=email or "", address=view.current.postal_address,
                 brand=_brand(request, grant.operator, grant.account))


@router.post("/delivery", response_class=HTMLResponse,
             dependencies=[Depends(require_same_origin)])
def delivery_choose(request: Request, mode: Annotated[str, Form(max_length=16)] = "",
                    email: Annotated[str, Form(max_length=320)] = "",
                    lang: Annotated[str, Form(max_length=35)] = "") -> Response:
    lang = _lang(request, lang)
    t = _messages()[lang]
    grant = _grant(request)
    if grant is None:
        return _expired(request, lang)
    view = preference_view(request.app.state.access, request.app.state.archive, grant)
    form = {"mode": mode if mode in _MODES else "electronic", "email": email,
            "address": view.current.postal_address,
            "brand": _brand(request, grant.operator, grant.account)}
    if mode not in _MODES:
        return _page(request, "delivery.html", lang, 422, error=t["bad_email"], **form)
    try:
        pref = change_preference(request, grant, ChoiceIn(mode=mode, email=email or None),
                                 via="page", locale=lang)
    except Problem as problem:
        key = {422: "bad_email", 429: "rate_limited", 503: "mail_down"}.get(problem.status,
                                                                            "expired")
        return _page(request, "delivery.html", lang, problem.status, error=t[key], **form)
    notice = t["paper_notice"] if pref.mode == "paper" else \
        t["sent_notice"].format(email=pref.email)
    return _page(request, "notice.html", lang, notice=notice, back=True, brand=form["brand"])


@router.get("/confirm/{token}", response_class=HTMLResponse)
def confirm_form(request: Request, token: str) -> Response:
    lang = _lang(request)
    t = _messages()[lang]
    access = request.app.state.access
    pref = awaiting(access.ledger, request.app.state.confirmations.key, token,
                    now=access.now()) if _TOKEN_RE.fullmatch(token) else None
    if pref is None:
        return _page(request, "notice.html", lang, 404, error=t["link_refused"])
    return _page(request, "confirm.html", lang, token=token,
                 question=t["confirm_question"].format(account=pref.account,
                                                       email=pref.email),
                 brand=_brand(request, pref.operator_id, pref.account))


@router.post("/confirm/{token}", response_class=HTMLResponse,
             dependencies=[Depends(require_same_origin)])
def confirm_post(request: Request, token: str,
                 lang: Annotated[str, Form(max_length=35)] = "") -> Response:
    lang = _lang(request, lang)
    t = _messages()[lang]
    pref = confirm_choice(request, token) if _TOKEN_RE.fullmatch(token) else None
    if pref is None:
        return _page(request, "notice.html", lang, 404, error=t["link_refused"])
    return _page(request, "notice.html", lang, notice=t["confirmed"].format(email=pref.email),
                 brand=_brand(request, pref.operator_id, pref.account))
