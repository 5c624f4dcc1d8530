"""The subscriber page's detailed bills, business lines and a line's own view.

The same page as :mod:`api.web` (server-rendered, no script, the session in its
cookie), over the same logic as the API (:mod:`api.details`)::

    GET  /access/invoices/{n}/details        the invoice's detailed bill: PDF, CSV, and
                                             per line for a business account
    POST /access/invoices/{n}/detailed-bill  issue the PDF (of one line: ``line``), then
                                             download it
    GET  /access/line                        a line session: its line's invoices
    GET  /access/line/{n}                    its line's section of one invoice

Texts are in ``templates/web/details.toml`` (``d`` in the templates; the page's own
``messages.toml`` stays ``t``).
"""

from __future__ import annotations

import tomllib
from decimal import Decimal
from functools import cache
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from invoicer.api import web
from invoicer.api.access import AccessService, Grant
from invoicer.api.details import issue, line_history, line_section, lines_overview
from invoicer.api.problems import Problem
from invoicer.api.subscriber import account_invoice
from invoicer.api.web_context import account_brand
from invoicer.l10n import formats

__all__ = ["router"]

router = APIRouter(prefix="/access", include_in_schema=False)


@cache
def _texts() -> dict[str, dict[str, str]]:
    with open(web.TEMPLATES / "details.toml", "rb") as f:
        table = tomllib.load(f)
    english = table["en"]
    return {code: {**english, **table.get(code, {})} for code in web.LOCALES}


def _page(request: Request, template: str, lang: str, status: int = 200,
          **context: Any) -> HTMLResponse:
    return web._page(request, template, lang, status, d=_texts()[lang], **context)


def _access(request: Request) -> AccessService:
    return request.app.state.access


def _line_grant(request: Request) -> Grant | None:
    return _access(request).line_grant(request.cookies.get(web.COOKIE))


def _expired(request: Request, lang: str) -> HTMLResponse:
    return web._page(request, "phone.html", lang, 401, error=web._messages()[lang]["expired"])


def _brand(request: Request, grant: Grant):
    return account_brand(_access(request), request.app.state.archive, grant.operator,
                         grant.account)


@router.get("/invoices/{number}/details", response_class=HTMLResponse)
def details_page(request: Request, number: str) -> Response:
    lang = web._lang(request)
    grant = web._grant(request)
    if grant is None:
        if _line_grant(request) is not None:
            return RedirectResponse(f"/access/line?lang={lang}", status_code=303)
        return _expired(request, lang)
    access = _access(request)
    try:
        invoice = account_invoice(access, grant, number)
        overview = lines_overview(access, request.app.state.archive, grant, number)
    except Problem as problem:
        return _page(request, "phone.html", lang, problem.status,
                     error=web._messages()[lang]["no_invoices"])
    # The same formats as the invoices and the page's list (l10n: Persian digits and
    # the Solar Hijri calendar for fa_IR).
    f = formats(lang)
    lines = [{"line": ln.line, "label": ln.label, "calls": f.integer(ln.calls),
              "has_calls": ln.calls > 0, "csv": ln.csv,
              "charges": f.money(Decimal(ln.charges), overview.currency)}
             for ln in overview.lines]
    token = access.detail_token(invoice, "", grant.expires)
    calls = sum(ln.calls for ln in overview.lines)
    return _page(request, "details.html", lang, brand=_brand(request, grant),
                 account=grant.account,
                 number=invoice.number, calls=f.integer(calls) if calls else None,
                 csv=f"/details/{token}.csv", lines=lines)


@router.post("/invoices/{number}/detailed-bill")
def issue_page(request: Request, number: str,
               line: Annotated[str, Form(max_length=64)] = "",
               lang: Annotated[str, Form(max_length=35)] = "") -> Response:
    lang = web._lang(request, lang)
    grant = web._grant(request) or _line_grant(request)
    if grant is None:
        return _expired(request, lang)
    try:
        made = issue(_access(request), request.app.state.archive, grant, number,
                     line or None)
    except Problem as problem:
        message = _texts()[lang]["no_details" if problem.type.endswith(":no-call-details")
                                 else "not_available"]
        return _page(request, "phone.html", lang, problem.status, error=message)
    return RedirectResponse(made.pdf, status_code=303)


@router.get("/line", response_class=HTMLResponse)
def line_page(request: Request) -> Response:
    lang = web._lang(request)
    grant = _line_grant(request)
    if grant is None:
        if web._grant(request) is not None:
            return RedirectResponse(f"/access/invoices?lang={lang}", status_code=303)
        return _expired(request, lang)
    found = line_history(_access(request), grant)
    f = formats(lang)
    rows = [{"number": i.number, "csv": i.csv,
             "period": f"{f.date(i.period_start, 'short')} – {f.date(i.period_end, 'short')}",
             "due_date": f.date(i.due_date, "medium")}
            for i in found.invoices]
    return _page(request, "line.html", lang, brand=_brand(request, grant),
                 account=found.account, line=found.line, invoices=rows)


@router.get("/line/{number}", response_class=HTMLResponse)
def line_section_page(request: Request, number: str) -> Response:
    lang = web._lang(request)
    grant = _line_grant(request)
    if grant is None:
        return _expired(request, lang)
    try:
        section = line_section(_access(request), request.app.state.archive, grant, number)
    except Problem as problem:
        return _page(request, "phone.html", lang, problem.status,
                     error=_texts()[lang]["not_available"])
    f = formats(lang)

    def money(amount: str) -> str:
        return f.money(Decimal(amount), section.currency)

    return _page(request, "line_section.html", lang, brand=_brand(request, grant),
                 account=grant.account, section=section, calls=f.integer(section.calls),
                 total=money(section.total),
                 charges=[{"description": c.description, "amount": money(c.amount)}
                          for c in section.charges])
