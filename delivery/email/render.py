"""The words of an invoice e-mail: subject, text and HTML from Jinja2 templates.

Templates live under ``templates/email/<message>/<locale>/`` (``subject.txt``,
``body.txt``, ``body.html``), one folder per locale extending the message's layout,
which extends the shared ``base.html`` / ``base.txt`` frame with the operator's brand.
HTML is autoescaped, text is not (it has no markup to inject into); an unknown locale
falls back to another locale of the same language, then to ``en``. Pure: no I/O beyond
reading the templates once, no clock.
"""

from __future__ import annotations

import logging
import re
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any
from urllib.parse import urlsplit

from babel.core import Locale, UnknownLocaleError
from jinja2 import Environment, FileSystemLoader, StrictUndefined, Template, select_autoescape

from invoicer.billing.models import BillingRecord, PaymentMethod, PaymentScheme
from invoicer.l10n import Formats, formats
from invoicer.renderer.brand import Brand, brand_for
from invoicer.renderer.i18n import InvoiceLocale, for_locale
from invoicer.resources import package_path

__all__ = ["INVOICE_ISSUED", "RenderedEmail", "check_url", "one_line", "render_invoice_email"]

log = logging.getLogger(__name__)

TEMPLATES_DIR = package_path("templates", "email")
FALLBACK_LOCALE = "en"
INVOICE_ISSUED = "invoice_issued"


# Anything a mail client or a header parser could take for a line break (CR, LF, NEL,
# VT, FF, U+2028/2029) or that is invisible control: a space. Bidi overrides and
# isolates are dropped: in a display name they can make "Bank" read as "knaB".
_BREAKING = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]+")
_BIDI_CONTROLS = re.compile(r"[\u202a-\u202e\u2066-\u2069]")
_SPACES = re.compile(r" {2,}")  # not \s: a no-break space in "R$ 104,75" is meant


def one_line(text: str) -> str:
    """``text`` flattened to a single line: controls and line breaks become one space.

    Used for every value that ends up in a header (subject, display names). The
    billing contract already cleans record text, but headers are where an injected
    CR/LF would do harm, so they are flattened again here whatever the caller passes.
    """
    text = _BIDI_CONTROLS.sub("", unicodedata.normalize("NFC", text))
    return _SPACES.sub(" ", _BREAKING.sub(" ", text)).strip()


@dataclass(frozen=True, slots=True)
class RenderedEmail:
    """The three texts of one message, in the language they were written in."""

    subject: str
    text: str
    html: str
    locale: str


@cache
def _environment() -> Environment:
    return Environment(
        loader=FileSystemLoader(TEMPLATES_DIR),
        # .html escapes, .txt does not (text/plain has no markup to inject into), and
        # anything else escapes: a new kind of template is safe until decided.
        autoescape=select_autoescape(enabled_extensions=("html",),
                                     disabled_extensions=("txt",), default=True),
        undefined=StrictUndefined,  # a typo in a template fails the tests, not a mailbox
        trim_blocks=True,
        lstrip_blocks=True,
        auto_reload=False,  # templates ship with the code: no stat() per message
    )


@cache
def _templates(message: str, locale: str) -> tuple[Template, Template, Template]:
    """A message's subject, text and HTML templates in ``locale``, looked up once:
    ``get_template`` per e-mail went through the environment's locked cache three
    times a message for the same three objects."""
    env, folder = _environment(), f"{message}/{locale}"
    return (env.get_template(f"{folder}/subject.txt"), env.get_template(f"{folder}/body.txt"),
            env.get_template(f"{folder}/body.html"))


@cache
def _template_locale(message: str, locale: str) -> str:
    """The locale folder to use: exact, else the same language, else English."""
    folder = TEMPLATES_DIR / message
    available = sorted(p.name for p in folder.iterdir() if (p / "body.html").is_file())
    if locale in available:
        return locale
    language = locale.split("_")[0]
    same = [a for a in available if a.split("_")[0] == language]
    if same:
        return same[0]
    if language != FALLBACK_LOCALE.split("_")[0]:
        log.warning("no %s e-mail templates for locale %r: using %s", message, locale,
                    FALLBACK_LOCALE)
    return FALLBACK_LOCALE


@cache
def _language_facts(locale: str) -> tuple[str, bool]:
    """(BCP 47 tag for ``lang=``, right-to-left?) of a template locale."""
    try:
        rtl = Locale.parse(locale).character_order == "right-to-left"
    except (UnknownLocaleError, ValueError):
        rtl = False
    return locale.replace("_", "-"), rtl


_SAFE_URL_CHARS = re.compile(r"[\x21-\x7e]+")


def check_url(url: str, schemes: Sequence[str], what: str) -> str:
    """``url`` if it is a plain ASCII URL of one of ``schemes``; ``ValueError`` naming
    ``what`` otherwise."""
    # Printable ASCII without spaces, quotes or angle brackets: safe inside an href,
    # inside <...> in List-Unsubscribe, and on a line of its own in text/plain.
    if (not isinstance(url, str) or not _SAFE_URL_CHARS.fullmatch(url)
            or any(c in url for c in "<>\"'`\\")):
        raise ValueError(f"{what} must be a plain ASCII URL, not {url!r}")
    parts = urlsplit(url)
    if parts.scheme.lower() not in schemes or (parts.scheme != "mailto" and not parts.netloc):
        raise ValueError(f"{what} must be a {' or '.join(schemes)} URL, not {url!r}")
    return url


def _web_href(url: str | None) -> str | None:
    """The support site as a link target, or None when it is not a plain http(s) URL
    (then it is printed as text only: a record must not choose a javascript: href)."""
    if not url:
        return None
    try:
        return check_url(url, ("https", "http"), "support web")
    except ValueError:
        return None


def _hex(color: Any) -> str:
    # ReportLab's Color.hexval() is "0x00875a"; brand files are trusted, but the value
    # lands in a style attribute, so only six hex digits pass.
    value = color.hexval()[2:].lower()
    return f"#{value}" if re.fullmatch(r"[0-9a-f]{6}", value) else "#33475b"


def _payment(record: BillingRecord, label: Callable[..., str], money: Callable[[Any], str],
             due_date: str) -> dict[str, str | None]:
    """How to pay, as the templates need it: a kind, the code to show, or a note."""
    p, due = record.payment, record.totals.total_due
    if p.method is PaymentMethod.direct_debit:
        if due > 0:
            return {"kind": "direct_debit", "code": None,
                    "note": label("direct_debit", amount=money(due), date=due_date)}
        return {"kind": "nothing_due", "code": None, "note": label("nothing_due")}
    if p.method is PaymentMethod.none or due <= 0 or not p.code:
        if due < 0:
            return {"kind": "credit", "code": None, "note": label("credit", amount=money(-due))}
        return {"kind": "nothing_due", "code": None, "note": label("nothing_due")}
    if p.scheme is PaymentScheme.febraban:
        from invoicer.billing.paycodes import PaymentCodeError, febraban

        try:
            line = febraban.parse(p.code).formatted
        except PaymentCodeError:  # validated upstream; never hide the code if not
            line = p.code
        return {"kind": "typeable_line", "code": line, "note": None}
    if p.scheme in (PaymentScheme.gost_qr, PaymentScheme.epc_qr):
        # The payload is a QR string meant for a banking app's camera, not for typing:
        # the e-mail points to the QR printed in the PDF.
        return {"kind": "qr", "code": None, "note": None}
    return {"kind": "reference", "code": p.code, "note": None}


@dataclass(frozen=True, slots=True)
class _BrandFacts:
    """``brand`` in the templates. An object, not a dict: Jinja looks ``brand.name`` up
    with ``getattr`` first, and on a dict every lookup raised and caught AttributeError
    (some forty a message)."""

    name: str
    colour: str
    accent: str
    text: str
    muted: str
    support_phone: str | None
    support_web: str | None
    support_web_href: str | None
    footer: str


@dataclass(frozen=True, slots=True)
class _Payment:
    """``pay`` in the templates: how to pay (an object for the reason of _BrandFacts)."""

    kind: str
    code: str | None
    note: str | None


@dataclass(frozen=True, slots=True)
class _Frame:
    """What the e-mails of one brand in one invoice locale share: templates, labels,
    colours, footer, direction. Built once per (brand, locale) instead of per message,
    where it was a fifth of the rendering."""

    brand: Brand
    loc: InvoiceLocale
    locale: str  # the template folder
    templates: tuple[Template, Template, Template]
    fmt: Formats
    colours: tuple[str, str, str, str]  # primary, accent, text, muted
    footer: str
    base: dict[str, Any]  # lang, dir, align, font, label


# (brand id, invoice locale) -> its frame. A few dozen entries at most (operators x
# locales); racing threads may both build one, which is harmless.
_FRAMES: dict[tuple[str, str], _Frame] = {}


def _labeller(loc: InvoiceLocale, overrides: dict[str, str]) -> Callable[..., str]:
    """The templates' ``label(key, **values)``: the brand's own wording wins, as on the
    PDF. Labels without values are the same for every message: looked up once each."""
    known: dict[str, str] = {}

    def label(key: str, **values: str) -> str:
        if not values:
            text = known.get(key)
            if text is None:
                text = overrides.get(key)
                known[key] = text = loc.label(key) if text is None else text
            return text
        text = overrides.get(key)
        if text is None:
            return loc.label(key, **values)
        return text.format_map(values)

    return label


def _frame(brand: Brand, locale_id: str) -> _Frame:
    loc = for_locale(locale_id)
    frame = _FRAMES.get((brand.id, locale_id))
    # Checked by identity: a cleared brand or label cache (tests do that) makes new
    # objects, and the frame must follow them rather than keep the old ones.
    if frame is not None and frame.brand is brand and frame.loc is loc:
        return frame
    locale = _template_locale(INVOICE_ISSUED, locale_id)
    lang, rtl = _language_facts(locale)
    frame = _Frame(
        brand=brand, loc=loc, locale=locale, templates=_templates(INVOICE_ISSUED, locale),
        # Amounts and dates as the PDF writes them (invoicer.l10n): for fa_IR the Solar
        # Hijri calendar and Persian digits; identifiers and payment codes stay as printed.
        fmt=formats(locale_id),
        colours=(_hex(brand.primary), _hex(brand.accent), _hex(brand.text), _hex(brand.muted)),
        footer=brand.footer(locale_id),
        base={
            "lang": lang,
            "dir": "rtl" if rtl else "ltr",
            "align": "right" if rtl else "left",
            "font": ("Tahoma,'Noto Sans Arabic','Segoe UI',Arial,sans-serif" if rtl
                     else "'Segoe UI',Roboto,Helvetica,Arial,sans-serif"),
            "label": _labeller(loc, brand.labels_for(loc.requested)),
        },
    )
    _FRAMES[(brand.id, locale_id)] = frame
    return frame


def _context(record: BillingRecord, frame: _Frame, *, link: str | None,
             unsubscribe: str | None) -> dict[str, Any]:
    inv = record.invoice
    fmt = frame.fmt
    label = frame.base["label"]

    def money(amount: Any) -> str:
        return fmt.money(amount, inv.currency)

    due_date = fmt.date(inv.due_date)
    support = record.operator.support
    colour, accent, text, muted = frame.colours
    return {
        **frame.base,
        "brand": _BrandFacts(
            name=record.operator.name, colour=colour, accent=accent, text=text, muted=muted,
            support_phone=(support.phone if support else None) or None,
            support_web=(support.web if support else None) or None,
            support_web_href=_web_href(support.web if support else None),
            footer=frame.footer),
        "customer": record.account.customer.name,
        "number": inv.number,
        "account": record.account.number,
        "duplicate": inv.kind.value == "duplicate",
        "amount": money(record.totals.total_due),
        "due": record.totals.total_due > 0,
        "due_date": due_date,
        "issue_date": fmt.date(inv.issue_date),
        "period": label("period_range", start=fmt.date(inv.period.start),
                        end=fmt.date(inv.period.end)),
        "pay": _Payment(**_payment(record, label, money, due_date)),
        "link": link,
        "filename": f"{inv.number}.pdf",
        "unsubscribe_href": unsubscribe,
    }


_BLANK_LINES = re.compile(r"\n\n\n+")


def render_invoice_email(record: BillingRecord, *, link: str | None = None,
                         unsubscribe: str | None = None) -> RenderedEmail:
    """Render the "invoice issued" subject, text and HTML for ``record``.

    ``link`` (an http(s) URL) replaces the "attached" sentence with a download link;
    ``unsubscribe`` (an http(s) URL) adds an opt-out link to the footer. Pure: no I/O
    beyond reading templates once, no clock.
    """
    if link is not None:
        check_url(link, ("https", "http"), "link")
    if unsubscribe is not None:
        check_url(unsubscribe, ("https", "http"), "unsubscribe")
    frame = _frame(brand_for(record.operator.id), record.invoice.locale)
    ctx = _context(record, frame, link=link, unsubscribe=unsubscribe)
    subject_t, text_t, html_t = frame.templates
    subject = one_line(subject_t.render(ctx))
    text = text_t.render(ctx)
    # Whitespace control in text templates is fiddly; one blank line at most, always.
    text = _BLANK_LINES.sub("\n\n", text).strip() + "\n"
    html = html_t.render(ctx)
    return RenderedEmail(subject, text, html, frame.locale)
