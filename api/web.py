"""The subscriber page: phone number -> SMS code -> latest invoice and the last 13.

Server-rendered (Jinja2, ``templates/web/``, autoescaped), no JavaScript; one small
stylesheet inline; usable on a phone. The same logic as the API (:mod:`api.access`,
:mod:`api.subscriber`): the session token lives in an ``HttpOnly``, ``SameSite=Strict``
cookie for 15 minutes; the download links are the API's signed links. Texts are in
``templates/web/messages.toml`` for the six locales (``fa_IR`` right to left), chosen by
``?lang=`` or the browser's ``Accept-Language``.

    GET  /access                       the phone number form
    POST /access/code                  send a code; the code form
    POST /access/session               check the code; the session cookie
    GET  /access/invoices              latest invoice and the last 13
    POST /access/invoices/{n}/second-copy   issue a second copy, then download it
"""

from __future__ import annotations

import base64
import hashlib
import re
import tomllib
from decimal import Decimal
from functools import cache
from typing import Annotated, Any

import jinja2
from babel import Locale
from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from markupsafe import Markup

from invoicer.api.access import AccessService, Grant, RateLimited
from invoicer.api.edge import require_same_origin
from invoicer.api.problems import Problem
from invoicer.api.subscriber import client_address, history, render_options, second_copy
from invoicer.api.web_context import account_context
from invoicer.l10n import formats
from invoicer.resources import package_path

__all__ = ["LOCALES", "router"]

TEMPLATES = package_path("templates", "web")
LOCALES = ("en", "pt_BR", "ro_RO", "ru_RU", "nl_NL", "fa_IR")
RTL = frozenset({"fa_IR"})
COOKIE = "invoicer_session"
COOKIE_PATH = "/access"

router = APIRouter(prefix="/access", include_in_schema=False)

_SEPARATORS = re.compile(r"[\s().\-\u00a0\u200e\u200f]")
_PHONE_RE = re.compile(r"\+[1-9][0-9]{1,14}")
_LANG_RE = re.compile(r"[A-Za-z]{2,3}(?:[-_][A-Za-z0-9]{2,8})*")

# One small script (the payment code's copy button), allowed by its hash and by
# nothing else; images only inline (the operator's logo); styles inline; forms post
# only here; never framed.
COPY_SCRIPT = (TEMPLATES / "copy.js").read_text(encoding="utf-8")
COPY_SCRIPT_HASH = base64.b64encode(hashlib.sha256(COPY_SCRIPT.encode()).digest()).decode()
_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
                               "img-src data:; "
                               f"script-src 'sha256-{COPY_SCRIPT_HASH}'; "
                               "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
}


@cache
def _messages() -> dict[str, dict[str, str]]:
    with open(TEMPLATES / "messages.toml", "rb") as f:
        table = tomllib.load(f)
    english = table["en"]
    return {code: {**english, **table.get(code, {})} for code in LOCALES}


@cache
def _environment() -> jinja2.Environment:
    return jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES),
                              autoescape=True, undefined=jinja2.StrictUndefined,
                              trim_blocks=True, lstrip_blocks=True, auto_reload=False)


@cache
def _language_names() -> tuple[tuple[str, str], ...]:
    return tuple((code, Locale.parse(code).get_display_name(code).split(" (")[0].capitalize())
                 for code in LOCALES)


def choose_locale(requested: str | None, accept_language: str | None) -> str:
    """One of :data:`LOCALES`: ``requested`` if it is one (or of its language), else
    the best of ``Accept-Language``, else English."""
    wanted: list[str] = []
    if requested:
        wanted.append(requested)
    for part in (accept_language or "").split(",")[:20]:
        tag = part.split(";")[0].strip()
        if tag and tag != "*":
            wanted.append(tag)
    for tag in wanted:
        if not _LANG_RE.fullmatch(tag):
            continue
        norm = tag.replace("-", "_")
        for code in LOCALES:
            if code.lower() == norm.lower():
                return code
        language = norm.split("_")[0].lower()
        for code in LOCALES:
            if code.split("_")[0] == language:
                return code
    return "en"


def _page(request: Request, template: str, lang: str, status: int = 200,
          **context: Any) -> HTMLResponse:
    html = _environment().get_template(template).render(
        t=_messages()[lang], lang=lang, lang_tag=lang.replace("_", "-"),
        dir="rtl" if lang in RTL else "ltr", languages=_language_names(),
        copy_script=Markup(COPY_SCRIPT),  # our own file, its hash is in the CSP
        **{"error": None, "phone": None, "brand": None, "notice": None, **context})
    return HTMLResponse(html, status_code=status, headers=_HEADERS)


def _lang(request: Request, lang: str | None = None) -> str:
    return choose_locale(lang or request.query_params.get("lang"),
                         request.headers.get("accept-language"))


def normalize_phone(text: str) -> str | None:
    """``"+55 (21) 98765-4321"`` -> ``"+5521987654321"``; ``None`` if not E.164."""
    phone = _SEPARATORS.sub("", text or "")
    if phone.startswith("00"):
        phone = "+" + phone[2:]
    return phone if _PHONE_RE.fullmatch(phone) else None


def _access(request: Request) -> AccessService:
    return request.app.state.access


def _grant(request: Request) -> Grant | None:
    grant = _access(request).grant(request.cookies.get(COOKIE))
    return grant if grant is not None and grant.kind == "session" else None


def _row(item: Any, lang: str) -> dict[str, Any]:
    t = _messages()[lang]
    # The same formats as the PDF, the e-mail and the SMS (l10n): Persian gets the Solar
    # Hijri calendar and Persian digits, as on its invoices.
    f = formats(lang)
    start, end = item.period.start, item.period.end
    return {
        "number": item.number,
        "period": f"{f.date(start, 'short')} – {f.date(end, 'short')}",
        "issue_date": f.date(item.issue_date, "medium"),
        "due_date": f.date(item.due_date, "medium"),
        "amount": f.money(Decimal(item.amount), item.currency),
        "status": t[item.payment_status], "status_code": item.payment_status,
        "document": item.document, "einvoice": item.einvoice,
    }


# ---------------------------------------------------------------------------- routes


@router.get("", response_class=HTMLResponse)
def phone_form(request: Request) -> HTMLResponse:
    lang = _lang(request)
    if _grant(request) is not None:
        return RedirectResponse(f"/access/invoices?lang={lang}", status_code=303)
    return _page(request, "phone.html", lang)


#: Every form post of the page: from the page itself only (``api.edge``).
_FORM = [Depends(require_same_origin)]


@router.post("/code", response_class=HTMLResponse, dependencies=_FORM)
def send_code(request: Request,
              phone: Annotated[str, Form(max_length=64)] = "",
              lang: Annotated[str, Form(max_length=35)] = "") -> HTMLResponse:
    lang = _lang(request, lang)
    t = _messages()[lang]
    number = normalize_phone(phone)
    if number is None:
        return _page(request, "phone.html", lang, 422, error=t["bad_phone"], phone=phone)
    access = _access(request)
    try:
        access.admit_code_request(number, client_address(request))
    except RateLimited:
        return _page(request, "phone.html", lang, 429, error=t["rate_limited"], phone=phone)
    request.app.state.deferred.submit(access.send_code, number)
    return _page(request, "code.html", lang, phone=number)


@router.post("/session", response_class=HTMLResponse, dependencies=_FORM)
def open_session(request: Request, phone: Annotated[str, Form(max_length=64)] = "",
                 code: Annotated[str, Form(max_length=16)] = "",
                 lang: Annotated[str, Form(max_length=35)] = "") -> Response:
    lang = _lang(request, lang)
    t = _messages()[lang]
    number = normalize_phone(phone)
    if number is None:
        return _page(request, "phone.html", lang, 422, error=t["bad_phone"])
    try:
        got = _access(request).redeem(number, code.strip(), client_address(request))
    except RateLimited:
        return _page(request, "code.html", lang, 429, error=t["rate_limited"], phone=number)
    if got is None:
        return _page(request, "code.html", lang, 403, error=t["wrong_code"], phone=number)
    token = got[0]
    # A line's own phone (api/web_details.py) has its own page.
    target = "/access/line" if got[2].line else "/access/invoices"
    response = RedirectResponse(f"{target}?lang={lang}", status_code=303)
    response.set_cookie(COOKIE, token, max_age=int(_access(request).limits.session_ttl
                                                    .total_seconds()),
                        path=COOKIE_PATH, httponly=True, samesite="strict",
                        secure=request.url.scheme == "https")
    return response


@router.get("/invoices", response_class=HTMLResponse)
def invoices_page(request: Request) -> Response:
    lang = _lang(request)
    grant = _grant(request)
    if grant is None:
        return _page(request, "phone.html", lang, 401, error=_messages()[lang]["expired"])
    found = history(_access(request), grant)
    rows = [_row(item, lang) for item in found.invoices]
    extras = account_context(_access(request), request.app.state.archive, grant, lang,
                             _messages()[lang])
    return _page(request, "invoices.html", lang, account=found.account,
                 latest=rows[0] if rows else None, invoices=rows, **extras)


@router.post("/invoices/{number}/second-copy", dependencies=_FORM)
def second_copy_page(request: Request, number: str,
                     lang: Annotated[str, Form(max_length=35)] = "") -> Response:
    lang = _lang(request, lang)
    grant = _grant(request)
    if grant is None:
        return _page(request, "phone.html", lang, 401, error=_messages()[lang]["expired"])
    try:
        made = second_copy(_access(request), request.app.state.archive, grant, number,
                           render_options(request))
    except Problem as problem:
        return _page(request, "phone.html", lang, problem.status,
                     error=_messages()[lang]["no_invoices"])
    return RedirectResponse(made.document, status_code=303)
