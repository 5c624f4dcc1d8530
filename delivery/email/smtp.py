"""Invoice e-mail: templated messages, safe MIME, and mailers chosen by URL.

Three layers, each usable alone:

- **Content** (:func:`render_invoice_email`): Jinja2 templates under
  ``templates/email/<message>/`` (``subject.txt``, ``body.txt``, ``body.html``), one
  folder per locale extending the message's layout, which extends the shared
  ``base.html`` / ``base.txt`` frame with the operator's brand. HTML is autoescaped; an
  unknown locale falls back to another locale of the same language, then to ``en``.
- **Message** (:func:`build_invoice_message`): ``multipart/alternative`` (text + HTML)
  plus the PDF as an ``application/pdf`` attachment, or a download link when the
  subscriber asked for no attachment or the PDF is over the size limit. Nothing in a
  billing record can add a header: names are flattened to one line, addresses are
  parsed by ``email.headerregistry.Address``, display names travel as RFC 2047 encoded
  words (immune to CPython's quote-dropping folder, gh-80222), the subject is folded
  by the ``EmailMessage`` policy, and the remaining headers are composed from checked
  tokens. ``Message-ID`` is deterministic (:func:`message_id`); DKIM (dkimpy) and
  ``List-Unsubscribe`` are optional.
- **Transport** (:class:`Mailer`, :func:`mailer_from_url`): ``file://PATH`` writes one
  ``.eml`` per Message-ID into an outbox folder (the embedded default);
  ``smtp://`` / ``smtps://`` send through aiosmtplib over a small pool of reused
  connections with a concurrency limit.

Failures leave every mailer as :mod:`delivery.errors` classes: SMTP 4xx, refused or
lost connections and timeouts are :class:`~delivery.errors.TransientDeliveryError`
(retry: :func:`retry`); 5xx is :class:`~delivery.errors.SmtpPermanentError` with the
code and text; a connection lost after the whole message went out and before the
server's verdict is :class:`~delivery.errors.UnknownDeliveryError`, never retried
automatically because the message may already be in the subscriber's mailbox.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import concurrent.futures
import contextlib
import dataclasses
import errno
import hashlib
import logging
import os
import random
import re
import secrets
import socket
import ssl
import tempfile
import threading
import time
import unicodedata
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email import policy as email_policy
from email.headerregistry import Address
from email.message import EmailMessage, MIMEPart
from email.utils import format_datetime, getaddresses
from functools import cache
from pathlib import Path
from typing import Any, ClassVar, Protocol, TypeVar, runtime_checkable
from urllib.parse import parse_qs, unquote, urlsplit

import aiosmtplib
from babel.core import Locale, UnknownLocaleError
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from invoicer.billing.models import BillingRecord, PaymentMethod, PaymentScheme
from invoicer.delivery.errors import (
    DeliveryError,
    PermanentDeliveryError,
    TransientDeliveryError,
    UnknownDeliveryError,
    error_for_smtp_reply,
)
from invoicer.delivery.fileurl import local_path
from invoicer.renderer.brand import brand_for
from invoicer.renderer.i18n import for_locale
from invoicer.resources import package_path

__all__ = [
    "DEFAULT_MAIL_URL",
    "DEFAULT_MAX_ATTACHMENT",
    "DKIM_HEADERS",
    "Backoff",
    "DkimSigner",
    "FileMailer",
    "Mailer",
    "Outcome",
    "RenderedEmail",
    "SendResult",
    "SmtpMailer",
    "build_invoice_message",
    "envelope",
    "mailer_from_url",
    "message_id",
    "one_line",
    "outbox_name",
    "render_invoice_email",
    "retry",
    "serialize",
    "should_attach",
]

log = logging.getLogger(__name__)

DEFAULT_MAIL_URL = "file://var/outbox"
"""Where e-mails go when nothing is configured: ``.eml`` files in ``./var/outbox``."""

DEFAULT_MAX_ATTACHMENT = 10 * 1024 * 1024
"""PDFs above this many bytes go as a link: base64 makes them a third larger, and many
providers refuse messages over 20-25 MB."""

TEMPLATES_DIR = package_path("templates", "email")
FALLBACK_LOCALE = "en"
INVOICE_ISSUED = "invoice_issued"

T = TypeVar("T")


# --- one-line text ---------------------------------------------------------------------

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


# --- Message-ID ------------------------------------------------------------------------

_NOT_ATEXT = re.compile(r"[^A-Za-z0-9_-]+")
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HOSTNAME = re.compile(rf"{_LABEL}(?:\.{_LABEL})*")
_MESSAGE_ID = re.compile(r"<[\x21-\x3b\x3d\x3f-\x7e]+@[\x21-\x3b\x3d\x3f-\x7e]+>")


def _check_domain(domain: str) -> str:
    try:
        ascii_domain = domain.strip().encode("idna").decode("ascii")
    except (UnicodeError, AttributeError):
        raise ValueError(f"not a domain name: {domain!r}") from None
    if not _HOSTNAME.fullmatch(ascii_domain) or len(ascii_domain) > 253:
        raise ValueError(f"not a domain name: {domain!r}")
    return ascii_domain.lower()


def message_id(operator: str, number: str, series: int, domain: str, *,
               channel: str = "email") -> str:
    """The ``Message-ID`` of one invoice's e-mail, the same every time it is built.

    ``series`` is the attempt series: 0 for the first dispatch, then one more for each
    deliberate re-send (``invoicer resend``). Retries inside a series keep the ID, so
    the file outbox keeps one copy and a receiving system can spot a duplicate.

    ``<OI-2026-11-0000123.oi.email.0.1f3a...@mail.oi.example>``: the readable part is
    for people grepping logs; the 16 hex digits of SHA-256 over the exact values keep
    two invoices apart even when their readable parts collide (``a.b``+``c`` versus
    ``a``+``b.c``).
    """
    if isinstance(series, bool) or not isinstance(series, int) or series < 0:
        raise ValueError(f"series must be a whole number >= 0, not {series!r}")
    parts = (number, operator, channel, str(series))
    for name, value in zip(("number", "operator", "channel"), parts, strict=False):
        if not isinstance(value, str) or not value or one_line(value) != value:
            raise ValueError(f"{name} must be a non-empty single-line string, not {value!r}")
    digest = hashlib.sha256("\0".join(parts).encode("utf-8")).hexdigest()[:16]
    readable = ".".join(_NOT_ATEXT.sub("-", part).strip("-") or "x" for part in parts)
    return f"<{readable}.{digest}@{_check_domain(domain)}>"


# --- content: templates ----------------------------------------------------------------


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


def _check_url(url: str, schemes: Sequence[str], what: str) -> str:
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
        return _check_url(url, ("https", "http"), "support web")
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


def _context(record: BillingRecord, locale: str, *, link: str | None,
             unsubscribe: str | None) -> dict[str, Any]:
    inv = record.invoice
    loc = for_locale(inv.locale)
    brand = brand_for(record.operator.id)
    overrides = brand.labels_for(loc.requested)

    def label(key: str, **values: str) -> str:
        # The brand's own wording wins, as on the PDF.
        text = overrides.get(key)
        if text is None:
            return loc.label(key, **values)
        return text.format_map(values) if values else text

    def money(amount: Any) -> str:
        return loc.money(amount, inv.currency)

    due_date = loc.date(inv.due_date)
    support = record.operator.support
    lang, rtl = _language_facts(locale)
    return {
        "lang": lang,
        "dir": "rtl" if rtl else "ltr",
        "align": "right" if rtl else "left",
        "font": ("Tahoma,'Noto Sans Arabic','Segoe UI',Arial,sans-serif" if rtl
                 else "'Segoe UI',Roboto,Helvetica,Arial,sans-serif"),
        "label": label,
        "brand": {
            "name": record.operator.name,
            "colour": _hex(brand.primary),
            "accent": _hex(brand.accent),
            "text": _hex(brand.text),
            "muted": _hex(brand.muted),
            "support_phone": (support.phone if support else None) or None,
            "support_web": (support.web if support else None) or None,
            "support_web_href": _web_href(support.web if support else None),
            "footer": brand.footer(inv.locale),
        },
        "customer": record.account.customer.name,
        "number": inv.number,
        "account": record.account.number,
        "duplicate": inv.kind.value == "duplicate",
        "amount": money(record.totals.total_due),
        "due": record.totals.total_due > 0,
        "due_date": due_date,
        "issue_date": loc.date(inv.issue_date),
        "period": label("period_range", start=loc.date(inv.period.start),
                        end=loc.date(inv.period.end)),
        "pay": _payment(record, label, money, due_date),
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
        _check_url(link, ("https", "http"), "link")
    if unsubscribe is not None:
        _check_url(unsubscribe, ("https", "http"), "unsubscribe")
    locale = _template_locale(INVOICE_ISSUED, record.invoice.locale)
    ctx = _context(record, locale, link=link, unsubscribe=unsubscribe)
    env = _environment()
    folder = f"{INVOICE_ISSUED}/{locale}"
    subject = one_line(env.get_template(f"{folder}/subject.txt").render(ctx))
    text = env.get_template(f"{folder}/body.txt").render(ctx)
    # Whitespace control in text templates is fiddly; one blank line at most, always.
    text = _BLANK_LINES.sub("\n\n", text).strip() + "\n"
    html = env.get_template(f"{folder}/body.html").render(ctx)
    return RenderedEmail(subject, text, html, locale)


# --- the message -----------------------------------------------------------------------


def should_attach(record: BillingRecord, pdf_size: int | None, *,
                  max_attachment: int = DEFAULT_MAX_ATTACHMENT) -> bool:
    """Whether the PDF goes inside the e-mail; when False the caller makes a link.

    The subscriber's ``attach_pdf`` choice, and a size limit (``pdf_size`` None: no
    PDF at hand, so a link).
    """
    return bool(record.delivery.attach_pdf) and pdf_size is not None and (
        pdf_size <= max_attachment)


AddressLike = Address | str | tuple[str, str]


def _address(value: AddressLike, default_name: str = "") -> Address:
    """An :class:`Address` with a one-line display name, from an Address, a bare
    ``addr_spec`` (display name ``default_name``) or a ``(name, addr_spec)`` pair.

    ``addr_spec`` is parsed by the header registry, which rejects anything that is
    not exactly one address (``"a@b\\r\\nBcc: c@d"`` raises).
    """
    if isinstance(value, Address):
        name, spec = value.display_name, value.addr_spec
    elif isinstance(value, tuple):
        name, spec = value
    elif isinstance(value, str):
        name, spec = default_name, value
    else:
        raise TypeError(f"an address is an Address, a str or a (name, addr) pair: {value!r}")
    if one_line(spec) != spec or not spec:
        raise ValueError(f"not an e-mail address: {spec!r}")
    return Address(display_name=one_line(name or ""), addr_spec=spec)


# Address headers are written here, not folded by the policy: CPython's folder drops
# the quotes of a display name it has to fold (gh-80222, fixed only in 2025 releases),
# so a long name holding <x@evil.example> would read as that address. A display name
# that is not plain words becomes RFC 2047 encoded words, which carry any character
# and have no quotes to lose. The message policy's refold_source="none" prints these
# values as written; headers set the ordinary way are still folded by the policy.
_SMTP = email_policy.SMTP.clone(refold_source="none")
_SMTPUTF8 = email_policy.SMTPUTF8.clone(refold_source="none")
_PLAIN_PHRASE = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?: [A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*")
_EW_BYTES = 36  # 36 bytes -> 48 base64 chars -> a 60-char word: lines stay under 78


def _encoded_words(text: str) -> list[str]:
    """``text`` as RFC 2047 "B" encoded words of whole characters, each under 75
    characters. Readers join adjacent encoded words without the space between them
    (RFC 2047 §6.2), so splitting anywhere keeps the text exact."""
    words, chunk = [], b""
    for char in text:
        data = char.encode("utf-8")
        if chunk and len(chunk) + len(data) > _EW_BYTES:
            words.append(chunk)
            chunk = b""
        chunk += data
    words.append(chunk)
    return [f"=?utf-8?b?{base64.b64encode(w).decode('ascii')}?=" for w in words]


def _mailbox(address: Address) -> str:
    """An address header value for one mailbox, folded, safe whatever the name."""
    spec = address.addr_spec  # parsed and checked by the header registry
    name = address.display_name
    if not name:
        return spec
    if _PLAIN_PHRASE.fullmatch(name) and len(name) + len(spec) <= 60:
        return f"{name} <{spec}>"
    words = _encoded_words(name)
    tail = f" <{spec}>"
    if len(words[-1]) + len(tail) <= 76:
        words[-1] += tail
    else:
        words.append(tail.strip())
    return "\n ".join(words)


def _unsubscribe_urls(value: str | Sequence[str] | None) -> list[str]:
    urls = [value] if isinstance(value, str) else list(value or ())
    return [_check_url(u, ("https", "http", "mailto"), "List-Unsubscribe") for u in urls]


# The MIME parts are assembled by hand rather than with set_content/add_attachment:
# those encode in pure Python (quoted-printable char by char, base64 line by line), let
# the generator scan for a free boundary with a fresh regex per try, and parse every
# Content-* header they set; several milliseconds per message with a 50 KB PDF, which
# capped the service at 40 % of what the SMTP server takes (bench/mail.py). Here
# binascii does the encodings in C and the structural headers, composed from
# constants and checked tokens, are stored as written (see _set).


def _base64_lines(data: bytes) -> str:
    """MIME base64 (76-character lines, LF ends), as ``base64.encodebytes`` gives but
    without its Python loop over 57-byte chunks."""
    if not data:
        return ""
    b64 = binascii.b2a_base64(data, newline=False)
    n = len(b64)
    lines = b"\n".join(map(b64.__getitem__, map(slice, range(0, n, 76), range(76, n + 76, 76))))
    return lines.decode("ascii") + "\n"


def _body_encoding(data: bytes) -> tuple[str, str]:
    """(Content-Transfer-Encoding, encoded text with LF line ends) for a text body:
    7bit when it is short-lined ASCII, else the shorter of quoted-printable and base64
    (as the stdlib chooses, without computing both in Python)."""
    if data.isascii() and max(map(len, data.split(b"\n"))) <= 900:
        return "7bit", data.decode("ascii")
    qp = binascii.b2a_qp(data, istext=True)
    b64 = _base64_lines(data)
    if len(qp) <= len(b64):
        return "quoted-printable", qp.decode("ascii")
    return "base64", b64


def _set(part: MIMEPart, name: str, value: str) -> None:
    """Set a header whose value this module composed from constants and checked
    tokens (types, boundaries, dates, IDs): stored as written, printed verbatim."""
    if not value.isascii() or not value.isprintable():
        raise ValueError(f"{name} value must be one line of printable ASCII: {value!r}")
    part.set_raw(name, value)


_FILENAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,100}")


def _text_part(text: str, subtype: str, policy: email_policy.EmailPolicy) -> MIMEPart:
    data = text.replace("\r\n", "\n").encode("utf-8")
    if not data.endswith(b"\n"):
        data += b"\n"
    cte, payload = _body_encoding(data)
    part = MIMEPart(policy=policy)
    _set(part, "Content-Type", f'text/{subtype}; charset="utf-8"')
    _set(part, "Content-Transfer-Encoding", cte)
    part.set_payload(payload)
    return part


def _pdf_part(pdf: bytes, filename: str, policy: email_policy.EmailPolicy) -> MIMEPart:
    part = MIMEPart(policy=policy)
    _set(part, "Content-Type", "application/pdf")
    _set(part, "Content-Transfer-Encoding", "base64")
    if _FILENAME.fullmatch(filename):  # invoice numbers are identifiers: no quoting needed
        _set(part, "Content-Disposition", f'attachment; filename="{filename}"')
    else:  # the policy quotes or RFC 2231-encodes anything else
        part.add_header("Content-Disposition", "attachment", filename=filename)
    part.set_payload(_base64_lines(pdf))
    return part


def _multipart(part: MIMEPart, subtype: str, parts: list[MIMEPart]) -> MIMEPart:
    """Make ``part`` (a new part, or the message itself) a multipart of ``parts``."""
    # "=_" cannot occur in base64 or quoted-printable, and 128 random bits cannot be
    # guessed by the text of a 7-bit part.
    _set(part, "Content-Type", f'multipart/{subtype}; boundary="=_{secrets.token_hex(16)}"')
    part.set_payload(list(parts))
    return part


def build_invoice_message(
    record: BillingRecord,
    *,
    pdf: bytes | None,
    link: str | None,
    sender: AddressLike,
    reply_to: AddressLike | None,
    message_id: str,
    list_unsubscribe: str | Sequence[str] | None = None,
    dkim: DkimSigner | None = None,
    max_attachment: int = DEFAULT_MAX_ATTACHMENT,
    date: datetime | None = None,
) -> EmailMessage:
    """The "invoice issued" e-mail for ``record``, ready for any :class:`Mailer`.

    Structure: ``multipart/mixed`` [``multipart/alternative`` [text, HTML], the PDF as
    ``application/pdf`` named ``<invoice number>.pdf``]; or only the alternative part
    with ``link`` in the text when :func:`should_attach` says no (the subscriber's
    ``attach_pdf`` is false, ``pdf`` is None, or it is over ``max_attachment``). Then
    ``link`` (http/https) is required: the caller makes it (a signed token or a
    presigned URL), this module never signs anything.

    ``sender``/``reply_to``: an :class:`~email.headerregistry.Address`, a
    ``(name, addr)`` pair, or a bare address that gets the operator's name. Display
    names (the operator's, the customer's) are flattened to one line and handed to the
    header registry, which quotes and RFC 2047-encodes them: CR/LF, quotes, ``<>`` or
    non-ASCII in a name can never start a header of their own.

    ``message_id`` comes from :func:`message_id`. ``list_unsubscribe``: one or more
    https/mailto URLs for ``List-Unsubscribe`` (with ``List-Unsubscribe-Post:
    List-Unsubscribe=One-Click`` when one is https, RFC 8058). ``dkim`` signs the
    result last, so it must be the final change to the message. ``date`` defaults to
    now (UTC).
    """
    to_spec = record.delivery.email
    if not to_spec:
        raise ValueError(f"invoice {record.invoice.number} has no e-mail address: "
                         "route it to paper")
    attach = should_attach(record, None if pdf is None else len(pdf),
                           max_attachment=max_attachment)
    if not attach and link is None:
        raise ValueError(f"the PDF of {record.invoice.number} is not attached "
                         "(attach_pdf false, no PDF, or over the size limit): pass a link")
    if not isinstance(message_id, str) or not _MESSAGE_ID.fullmatch(message_id):
        raise ValueError(f"Message-ID must look like <local@domain>: {message_id!r}")
    unsubscribe = _unsubscribe_urls(list_unsubscribe)
    web_unsubscribe = next((u for u in unsubscribe if not u.startswith("mailto:")), None)
    rendered = render_invoice_email(record, link=None if attach else link,
                                    unsubscribe=web_unsubscribe)

    operator = record.operator.name
    from_addr = _address(sender, operator)
    to_addr = _address((record.account.customer.name, to_spec))
    reply_addr = _address(reply_to, operator) if reply_to is not None else None
    specs = [a.addr_spec for a in (from_addr, to_addr, reply_addr) if a is not None]
    # An internationalised address (ü@example.com) can only travel as SMTPUTF8.
    policy = _SMTP if all(s.isascii() for s in specs) else _SMTPUTF8

    msg = EmailMessage(policy=policy)
    msg.set_raw("From", _mailbox(from_addr))
    msg.set_raw("To", _mailbox(to_addr))
    if reply_addr is not None:
        msg.set_raw("Reply-To", _mailbox(reply_addr))
    msg["Subject"] = rendered.subject  # one_line() already; the policy refuses CR/LF too
    _set(msg, "Date", format_datetime(date or datetime.now(UTC)))
    _set(msg, "Message-ID", message_id)  # checked against _MESSAGE_ID above
    # RFC 3834: vacation responders and auto-repliers stay quiet.
    _set(msg, "Auto-Submitted", "auto-generated")
    if unsubscribe:
        msg["List-Unsubscribe"] = ", ".join(f"<{u}>" for u in unsubscribe)
        if web_unsubscribe:
            _set(msg, "List-Unsubscribe-Post", "List-Unsubscribe=One-Click")
    _set(msg, "MIME-Version", "1.0")
    texts = [_text_part(rendered.text, "plain", policy),
             _text_part(rendered.html, "html", policy)]
    if attach:
        assert pdf is not None
        alternative = _multipart(MIMEPart(policy=policy), "alternative", texts)
        pdf_part = _pdf_part(bytes(pdf), f"{record.invoice.number}.pdf", policy)
        _multipart(msg, "mixed", [alternative, pdf_part])
    else:
        _multipart(msg, "alternative", texts)
    _set(msg, "Content-Language", rendered.locale.replace("_", "-"))
    if dkim is not None:
        dkim.sign(msg)
    return msg


def serialize(message: EmailMessage) -> bytes:
    """The message as it goes on the wire and into the outbox: CRLF, ``Bcc`` removed.

    The same message serializes to the same bytes every time (boundaries are fixed
    when it is built), which a DKIM signature relies on. Messages made of plain
    multiparts and ASCII-encoded leaves (all that :func:`build_invoice_message` makes)
    take a fast path with output identical to ``BytesGenerator`` (checked by the
    tests), without its line-by-line writes; anything else goes through the generator.
    """
    policy = message.policy
    if policy.linesep != "\r\n":
        policy = policy.clone(linesep="\r\n")
    if "Bcc" in message or "Resent-Bcc" in message:
        # A blind copy must not show its recipients to the others.
        import copy

        message = copy.copy(message)
        del message["Bcc"]
        del message["Resent-Bcc"]
    out: list[bytes] = []
    if _flatten(message, policy, out):
        return b"".join(out)
    return message.as_bytes(policy=policy)


# The multiparts _multipart() makes. Others (another boundary style, multipart/signed,
# digests) go through the generator, which knows their special cases.
_OWN_MULTIPART = re.compile(r'multipart/(?:mixed|alternative|related); boundary="(=_[0-9a-f]{32})"')


def _flatten(part: Any, policy: email_policy.EmailPolicy, out: list[bytes]) -> bool:
    """Append the generator's bytes for ``part`` to ``out``; False when the part is of
    a kind only the generator handles (then ``out`` is to be discarded).

    Reads the raw Content-Type rather than get_content_type()/get_boundary(), which
    parse the header anew on every call (a third of the serialization time)."""
    if part.preamble is not None or part.epilogue is not None:
        return False
    headers = list(part.raw_items())
    ctype = next((v for n, v in headers if n.lower() == "content-type"), None)
    payload = part._payload  # what the generator reads too: no decoding, no copy
    if isinstance(payload, list):
        own = _OWN_MULTIPART.fullmatch(ctype) if isinstance(ctype, str) else None
        if own is None:
            return False
        boundary = own.group(1)
        out.extend(policy.fold_binary(name, value) for name, value in headers)
        out.append(b"\r\n")
        delimiter = f"--{boundary}\r\n".encode("ascii")
        for i, sub in enumerate(payload):
            out.append(delimiter if i == 0 else b"\r\n" + delimiter)
            if not _flatten(sub, policy, out):
                return False
        out.append(f"\r\n--{boundary}--\r\n".encode("ascii"))
        return True
    if ctype is None:
        maintype = "text"
    elif isinstance(ctype, str):  # raw text, or a header object (a str subclass)
        maintype = ctype.split("/", 1)[0].strip().lower()
    else:  # a compat32 Header object: leave it to the generator
        return False
    if (not isinstance(payload, str) or not payload.isascii() or "\r" in payload
            or maintype in ("message", "multipart")):
        return False
    out.extend(policy.fold_binary(name, value) for name, value in headers)
    out.append(b"\r\n")
    out.append(payload.replace("\n", "\r\n").encode("ascii"))
    return True


def _addresses(message: EmailMessage, name: str) -> list[str]:
    specs: list[str] = []
    for header in message.get_all(name, []):
        addresses = getattr(header, "addresses", None)
        if addresses is not None:
            specs.extend(a.addr_spec for a in addresses if a.addr_spec and a.addr_spec != "<>")
        else:  # a message built with the compat32 policy
            specs.extend(spec for _, spec in getaddresses([str(header)]) if spec)
    return specs


def envelope(message: EmailMessage, envelope_from: str | None = None) -> tuple[str, list[str]]:
    """``(MAIL FROM, [RCPT TO...])``: ``envelope_from`` or the Sender/From address,
    and every To, Cc and Bcc address once, in order."""
    if envelope_from is None:
        senders = _addresses(message, "Sender") or _addresses(message, "From")
        if not senders:
            raise ValueError("the message has no From address")
        envelope_from = senders[0]
    recipients = list(dict.fromkeys(
        _addresses(message, "To") + _addresses(message, "Cc") + _addresses(message, "Bcc")))
    if not recipients:
        raise ValueError("the message has no recipient")
    return envelope_from, recipients


def _message_id_of(message: EmailMessage) -> str:
    # The raw value: message["Message-ID"] would run the header parser on every call.
    raw = next((v for n, v in message.raw_items() if n.lower() == "message-id"), None)
    value = "".join(str(raw).split()) if raw is not None else ""
    if not _MESSAGE_ID.fullmatch(value):
        # Idempotence (outbox file names, the ledger, the receiver's duplicate check)
        # rests on a stable ID, so a message without one is refused, not given a random one.
        raise ValueError(f"the message needs a Message-ID like <local@domain>: {raw!r}")
    return value


# --- DKIM ------------------------------------------------------------------------------

#: Headers a DKIM signature covers (when present; From always is). Content headers are
#: in so that a relay cannot swap the body's structure under a valid signature.
DKIM_HEADERS = ("From", "To", "Reply-To", "Subject", "Date", "Message-ID", "MIME-Version",
                "Content-Type", "Content-Language", "List-Unsubscribe",
                "List-Unsubscribe-Post", "Auto-Submitted")


@dataclass(frozen=True)
class DkimSigner:
    """Signs messages for ``domain`` with the key published at ``selector._domainkey``.

    ``private_key`` is the PEM (PKCS#1 or PKCS#8) of an RSA key. dkimpy is imported only
    when a signer signs, so deployments without DKIM need not install it.
    """

    selector: str
    domain: str
    private_key: bytes = field(repr=False)
    headers: tuple[str, ...] = DKIM_HEADERS

    @classmethod
    def from_file(cls, selector: str, domain: str, path: str | os.PathLike[str]) -> DkimSigner:
        """A signer whose key is read from a PEM file."""
        return cls(selector, domain, Path(path).read_bytes())

    def sign(self, message: EmailMessage) -> None:
        """Add a ``DKIM-Signature`` header (relaxed/relaxed, rsa-sha256) on top."""
        import dkim  # dkimpy

        data = serialize(message)
        include = [h.lower().encode() for h in self.headers if h in message]
        try:
            header = dkim.sign(data, self.selector.encode("ascii"),
                               _check_domain(self.domain).encode("ascii"), self.private_key,
                               canonicalize=(b"relaxed", b"relaxed"), include_headers=include)
        except dkim.DKIMException as exc:
            raise ValueError(f"DKIM signing failed (selector {self.selector!r}, domain "
                             f"{self.domain!r}): {exc}") from exc
        name, value = message.policy.header_source_parse(
            header.decode("ascii").splitlines(keepends=True))
        # The signature covers the headers exactly as serialized; stored raw (not
        # re-parsed) so the policy prints it as dkimpy folded it. It goes on top, as
        # RFC 6376 §5.6 asks, so the other headers are taken off and put back unchanged.
        headers = list(message.raw_items())  # raw: exactly as they were serialized
        for existing in dict.fromkeys(n for n, _ in headers):
            del message[existing]
        message.set_raw(name, value)
        for existing, header_value in headers:
            message.set_raw(existing, header_value)


# --- results and the Protocol ----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SendResult:
    """A message handed over: to an SMTP server (its final reply) or to the outbox."""

    message_id: str
    recipients: tuple[str, ...]
    reply: str
    """The server's final reply (``250 2.0.0 Ok: queued as ...``) or the outbox file."""
    created: bool = True
    """False when the file outbox already held this Message-ID and wrote nothing."""


Outcome = SendResult | DeliveryError


@runtime_checkable
class Mailer(Protocol):
    """Hands finished messages to someone who delivers them. One verb: ``send``.

    ``send`` returns once the message is accepted (SMTP 250, or durably in the outbox)
    and raises :class:`~delivery.errors.DeliveryError` subclasses otherwise. It never
    retries on its own (see :func:`retry`); sending the same Message-ID twice is the
    caller's decision. ``send_many`` is the same verb for throughput: it sends
    concurrently and returns one outcome per message, in order, with failures as
    values. Implementations are safe to share between threads.
    """

    def send(self, message: EmailMessage, *,
             before_data: Callable[[], None] | None = None) -> SendResult:
        """Deliver one message or raise a ``DeliveryError``.

        ``before_data`` is called once the server has taken the envelope, right before
        the message data goes out: the point after which a crash or a lost connection
        leaves the outcome unknown. The caller records that there (the ledger's
        ``unknown``), so that a process killed mid-send is never sent again blindly.
        If it raises, nothing is sent. A backend without such a point (the file
        outbox, idempotent by Message-ID) does not call it.
        """
        ...

    def send_many(self, messages: Iterable[EmailMessage]) -> list[Outcome]:
        """Deliver many; one ``SendResult`` or ``DeliveryError`` per message, in order."""
        ...

    def close(self) -> None:
        """Release connections and threads; the mailer may be used again afterwards."""
        ...


# --- retries ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Backoff:
    """Exponential backoff with "equal jitter": retry ``n`` (0-based) waits between
    half and all of ``min(cap, base * factor**n)`` seconds.

    Half the wait is random, so a thousand workers that failed together do not return
    together; with ``factor >= 2`` each wait is still at least the previous one (the
    lower bound of a step is the upper bound of the one before), so a struggling
    server gets more room every time until ``cap``.
    """

    attempts: int = 5
    base: float = 2.0
    factor: float = 2.0
    cap: float = 300.0

    def delay(self, retry_number: int, rand: float) -> float:
        """The wait before retry ``retry_number`` (0 = first retry); ``rand`` in [0, 1)."""
        ceiling = min(self.cap, self.base * self.factor ** retry_number)
        return ceiling / 2 + ceiling / 2 * rand


def retry(call: Callable[[], T], *, backoff: Backoff = Backoff(),
          sleep: Callable[[float], Any] = time.sleep,
          rand: Callable[[], float] = random.random,
          on_retry: Callable[[int, DeliveryError, float], Any] | None = None) -> T:
    """Call ``call()`` until it returns, retrying only ``TransientDeliveryError``.

    At most ``backoff.attempts`` calls; the last transient error is raised when they
    are used up. Permanent and unknown outcomes are raised at once: retrying a 550
    cannot help, and retrying an unknown one might deliver twice. ``sleep`` and
    ``rand`` are injectable for tests; ``on_retry(attempt, error, delay)`` is told
    before each wait (for logs and metrics).
    """
    if backoff.attempts < 1:
        raise ValueError("backoff.attempts must be at least 1")
    for attempt in range(1, backoff.attempts + 1):
        try:
            return call()
        except TransientDeliveryError as exc:
            if attempt >= backoff.attempts:
                raise
            delay = backoff.delay(attempt - 1, rand())
            log.info("attempt %d failed (%s); retrying in %.1f s", attempt, exc, delay)
            if on_retry is not None:
                on_retry(attempt, exc, delay)
            sleep(delay)
    raise AssertionError("unreachable")  # pragma: no cover


# --- shared batch logic ----------------------------------------------------------------


class _Batch:
    """``send_many`` / ``iter_send`` on top of a ``_submit`` that returns a future."""

    #: Messages in flight at once in ``iter_send`` (set per instance by SMTP).
    window: int = 1

    def _submit(self, message: EmailMessage) -> concurrent.futures.Future[SendResult]:
        raise NotImplementedError

    def iter_send(self, messages: Iterable[EmailMessage]
                  ) -> Iterator[tuple[EmailMessage, Outcome]]:
        """Send ``messages`` (consumed lazily), yielding ``(message, outcome)`` as each
        finishes, in completion order.

        At most ``window`` messages are in flight, so a generator that builds messages
        overlaps building with sending and memory stays bounded. Outcomes are
        ``SendResult`` or ``DeliveryError`` values; anything else (a bug, a malformed
        message) is raised. This is where the caller records each outcome (the ledger)
        in its own thread, as soon as it is known.
        """
        for _, message, outcome in self._iter_indexed(messages):
            yield message, outcome

    def send_many(self, messages: Iterable[EmailMessage]) -> list[Outcome]:
        """Send all; one ``SendResult`` or ``DeliveryError`` per message, in order."""
        results: dict[int, Outcome] = {}
        for index, _, outcome in self._iter_indexed(messages):
            results[index] = outcome
        return [results[i] for i in range(len(results))]

    def _iter_indexed(self, messages: Iterable[EmailMessage]
                      ) -> Iterator[tuple[int, EmailMessage, Outcome]]:
        pending: dict[concurrent.futures.Future[SendResult], tuple[int, EmailMessage]] = {}
        source = enumerate(messages)
        exhausted = False
        while True:
            while not exhausted and len(pending) < self.window:
                item = next(source, None)
                if item is None:
                    exhausted = True
                    break
                pending[self._submit(item[1])] = item
            if not pending:
                return
            done, _ = concurrent.futures.wait(
                pending, return_when=concurrent.futures.FIRST_COMPLETED)
            for future in done:
                index, message = pending.pop(future)
                try:
                    outcome: Outcome = future.result()
                except DeliveryError as exc:
                    outcome = exc
                yield index, message, outcome


# --- file:// ---------------------------------------------------------------------------

# Errors of a local disk that an operator (or time) can clear: retry them.
_TRANSIENT_ERRNOS = frozenset(
    {errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EAGAIN, errno.EBUSY, errno.EINTR,
     errno.ETIMEDOUT, errno.ESTALE, errno.ENOLCK}
)
_FILENAME_SAFE = re.compile(r"[^A-Za-z0-9._@+=-]")


def outbox_name(message_id: str) -> str:
    """The outbox file name of a Message-ID: readable, reversible, and never hidden.

    Characters outside ``[A-Za-z0-9._@+=-]`` (``/`` above all) are percent-encoded; a
    leading dot too, so no name can clash with a temp file. Very long IDs are cut and
    end with their SHA-256, keeping names unique and under filesystem limits.
    """
    core = message_id.strip().removeprefix("<").removesuffix(">")
    name = _FILENAME_SAFE.sub(
        lambda m: "".join(f"%{b:02X}" for b in m.group().encode("utf-8")), core)
    if name.startswith("."):
        name = "%2E" + name[1:]
    if len(name) > 200:
        name = name[:136] + "~" + hashlib.sha256(core.encode("utf-8")).hexdigest()
    return name + ".eml"


def _fsync_dir(path: Path) -> None:
    # The new name is only durable once the directory entry is: the ledger will say
    # "sent" right after this returns.
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class FileMailer(_Batch):
    """The outbox folder: one ``<Message-ID>.eml`` file per message (RFC 5322 bytes,
    CRLF, exactly what SMTP would carry).

    Writes go to a temp file, are fsynced, then hard-linked to the final name: ``link``
    fails when the name exists, so the first copy of a Message-ID wins, a re-send of
    the same ID writes nothing (``created=False``), two racing writers leave one file,
    and a reader never sees half a message.
    """

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(os.path.abspath(os.fspath(root)))

    @classmethod
    def from_url(cls, url: str) -> FileMailer:
        """``file:///abs/path``, ``file://relative/path`` (to the working directory)."""
        return cls(local_path(url, "file outbox"))

    def __repr__(self) -> str:
        return f"FileMailer({str(self.root)!r})"

    def path_for(self, message_id: str) -> Path:
        """Where the message with this Message-ID is (or would be) in the outbox."""
        return self.root / outbox_name(message_id)

    def send(self, message: EmailMessage, *,
             before_data: Callable[[], None] | None = None) -> SendResult:
        """Write the message unless its Message-ID is already in the outbox.

        ``before_data`` is not called: writing the same Message-ID again is a no-op,
        so a crash mid-write is safely repeated."""
        mid = _message_id_of(message)
        _, recipients = envelope(message)
        path = self.path_for(mid)
        what = f"writing {mid} to the outbox {self.root}"
        try:
            if path.exists():
                return SendResult(mid, tuple(recipients), str(path), created=False)
            data = serialize(message)
            self.root.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".", suffix=".tmp", dir=self.root)
            try:
                with os.fdopen(fd, "wb") as f:
                    f.write(data)
                    f.flush()
                    os.fsync(f.fileno())
                try:
                    os.link(tmp, path)
                except FileExistsError:
                    return SendResult(mid, tuple(recipients), str(path), created=False)
            finally:
                os.unlink(tmp)
            _fsync_dir(self.root)
        except OSError as exc:
            cls = (TransientDeliveryError if exc.errno in _TRANSIENT_ERRNOS
                   else PermanentDeliveryError)
            raise cls(f"{what}: {exc}") from exc
        return SendResult(mid, tuple(recipients), str(path), created=True)

    def _submit(self, message: EmailMessage) -> concurrent.futures.Future[SendResult]:
        # Local disk writes: nothing to overlap, so "submitting" is doing.
        future: concurrent.futures.Future[SendResult] = concurrent.futures.Future()
        try:
            future.set_result(self.send(message))
        except DeliveryError as exc:
            future.set_exception(exc)
        return future

    def close(self) -> None:
        """Nothing to release."""


# --- smtp:// and smtps:// --------------------------------------------------------------

_PERIOD_AT_LINE_START = re.compile(rb"(?m)^\.")
_BARE_LINE_END = re.compile(rb"\r\n|\r|\n")


@dataclass(frozen=True, slots=True)
class _Outgoing:
    """A message ready for the wire: envelope, and the DATA payload dot-stuffed."""

    message_id: str
    sender: str
    recipients: tuple[str, ...]
    payload: bytes
    utf8: bool
    before_data: Callable[[], None] | None = None


def _prepare(message: EmailMessage, envelope_from: str | None) -> _Outgoing:
    mid = _message_id_of(message)
    sender, recipients = envelope(message, envelope_from)
    data = serialize(message)
    # A lone CR or LF (from a hand-made part) would be read differently by different
    # servers: normalise, but only when one is there (counting is cheap, rewriting
    # 70 KB is not).
    crlf = data.count(b"\r\n")
    if data.count(b"\n") != crlf or data.count(b"\r") != crlf:
        data = _BARE_LINE_END.sub(b"\r\n", data)
    if not data.endswith(b"\r\n"):
        data += b"\r\n"
    if data.startswith(b".") or b"\n." in data:  # base64 lines never start with a dot
        data = _PERIOD_AT_LINE_START.sub(b"..", data)  # RFC 5321 §4.5.2
    payload = data + b".\r\n"
    utf8 = bool(getattr(message.policy, "utf8", False)) or not all(
        a.isascii() for a in (sender, *recipients))
    return _Outgoing(mid, sender, tuple(recipients), payload, utf8)


class _StaleConnection(Exception):
    """A pooled connection turned out to be closed before this message started."""


@dataclass(eq=False)
class _Connection:
    smtp: aiosmtplib.SMTP
    sent: int = 0


class SmtpMailer(_Batch):
    """SMTP submission through aiosmtplib, with a synchronous face.

    The service's pipeline is synchronous (process pool, Celery tasks), aiosmtplib is
    asyncio: the mailer runs one event loop in a daemon thread of its own, and
    ``send`` / ``send_many`` hand coroutines to it. The loop keeps a pool of at most
    ``concurrency`` connections, reused across messages (``max_messages`` each, then a
    fresh one: many providers cap messages per connection), so connection set-up,
    STARTTLS and AUTH are paid once per connection, not per message. Messages are
    serialized in the caller's thread, keeping the loop free for I/O.

    Outcomes: 250 -> :class:`SendResult`; 4xx, refused/lost connections, timeouts ->
    ``TransientDeliveryError``; 5xx -> ``SmtpPermanentError``; the connection lost or
    timed out after the payload was written and before the final reply ->
    ``UnknownDeliveryError``. A pooled connection that the server closed while idle
    is replaced once, transparently: nothing of the message had been sent.

    Safe to share between threads; after ``os.fork`` the child starts its own loop.
    """

    def __init__(
        self,
        host: str,
        port: int | None = None,
        *,
        username: str | None = None,
        password: str | None = None,
        use_tls: bool = False,
        starttls: bool | None = None,
        timeout: float = 30.0,
        data_timeout: float = 600.0,
        concurrency: int = 4,
        max_messages: int = 100,
        local_hostname: str | None = None,
        envelope_from: str | None = None,
        tls_context: ssl.SSLContext | None = None,
        cafile: str | None = None,
    ) -> None:
        """``starttls``: True requires it, False never, None (default) requires it
        when a password is configured (never send one in clear) and uses it when
        offered otherwise. ``timeout`` bounds connect and each command; the final
        reply to DATA gets ``data_timeout`` (RFC 5321 §4.5.3.2.6 suggests 10 minutes:
        giving up earlier turns a slow accept into an "unknown")."""
        if use_tls and starttls:
            raise ValueError("smtps (implicit TLS) and STARTTLS exclude each other")
        if concurrency < 1 or max_messages < 1:
            raise ValueError("concurrency and max_messages must be at least 1")
        self.host = host
        self.port = port or (465 if use_tls else 25)
        self.username = username
        self._password = password
        self.use_tls = use_tls
        if starttls is None and password is not None and not use_tls:
            starttls = True
        self.starttls = starttls
        self.timeout = timeout
        self.data_timeout = data_timeout
        self.concurrency = concurrency
        self.max_messages = max_messages
        self.local_hostname = local_hostname
        self.envelope_from = envelope_from
        if tls_context is None and cafile:
            tls_context = ssl.create_default_context(cafile=cafile)
        self.tls_context = tls_context
        # Two per connection: one on the wire, one serialized and waiting, so a
        # connection never idles while the caller builds the next message.
        self.window = concurrency * 2
        self._lock = threading.Lock()
        self._pid: int | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._idle: list[_Connection] = []
        self._slots: asyncio.Semaphore | None = None
        self.connections_opened = 0
        """Connections opened so far (for metrics and the benchmark)."""

    # -- configuration --

    _PARAMS: ClassVar[dict[str, Callable[[str], Any]]] = {
        "starttls": lambda v: _parse_bool("starttls", v),
        "timeout": float,
        "data_timeout": float,
        "concurrency": int,
        "max_messages": int,
        "local_hostname": str,
        "envelope_from": str,
        "cafile": str,
    }

    @classmethod
    def from_url(cls, url: str) -> SmtpMailer:
        """``smtp://[user[:password]@]host[:port][?starttls=true|false&timeout=30&
        data_timeout=600&concurrency=4&max_messages=100&local_hostname=..&
        envelope_from=..&cafile=..]``, or ``smtps://`` for implicit TLS (port 465).

        User and password are percent-decoded. Unknown parameters are an error, so a
        typo cannot silently drop a setting.
        """
        parts = urlsplit(url)
        if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
            raise ValueError(f"not an smtp:// or smtps:// URL with a host: {url!r}")
        options: dict[str, Any] = {}
        for key, values in parse_qs(parts.query, keep_blank_values=True,
                                    strict_parsing=bool(parts.query)).items():
            if key not in cls._PARAMS:
                raise ValueError(f"unknown SMTP URL parameter {key!r}; known: "
                                 f"{sorted(cls._PARAMS)}")
            try:
                options[key] = cls._PARAMS[key](values[-1])
            except ValueError as exc:
                raise ValueError(f"bad value for {key!r} in SMTP URL: {exc}") from None
        use_tls = parts.scheme == "smtps"
        if use_tls and options.get("starttls"):
            raise ValueError("smtps:// is implicit TLS; starttls=true needs smtp://")
        return cls(
            parts.hostname,
            parts.port,
            username=unquote(parts.username) if parts.username is not None else None,
            password=unquote(parts.password) if parts.password is not None else None,
            use_tls=use_tls,
            **options,
        )

    def __repr__(self) -> str:
        scheme = "smtps" if self.use_tls else "smtp"
        user = f"{self.username}:***@" if self.username else ""
        return (f"SmtpMailer({scheme}://{user}{self.host}:{self.port}, "
                f"concurrency={self.concurrency}, starttls={self.starttls})")

    # -- synchronous face --

    def send(self, message: EmailMessage, *,
             before_data: Callable[[], None] | None = None) -> SendResult:
        """Send one message and wait for the server's verdict (see the class and
        :meth:`Mailer.send` for ``before_data``)."""
        return self._submit(message, before_data).result()

    async def asend(self, message: EmailMessage) -> SendResult:
        """``send`` for callers that run their own event loop."""
        return await asyncio.wrap_future(self._submit(message))

    def _submit(self, message: EmailMessage, before_data: Callable[[], None] | None = None
                ) -> concurrent.futures.Future[SendResult]:
        out = _prepare(message, self.envelope_from)  # CPU work stays in the caller's thread
        if before_data is not None:
            out = dataclasses.replace(out, before_data=before_data)
        loop = self._ensure_loop()
        return asyncio.run_coroutine_threadsafe(self._deliver(out), loop)

    def _ensure_loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None or self._pid != os.getpid():
                # First use, or a forked child: the parent's loop thread and sockets
                # do not exist here, so start afresh (the parent keeps its own).
                loop = asyncio.new_event_loop()
                thread = threading.Thread(target=loop.run_forever, daemon=True,
                                          name=f"smtp-{self.host}:{self.port}")
                thread.start()
                self._loop, self._thread, self._pid = loop, thread, os.getpid()
                self._idle = []
                self._slots = asyncio.Semaphore(self.concurrency)
            return self._loop

    def close(self) -> None:
        """Let messages in flight finish (``timeout`` seconds at most; those still
        going then end as ``TransientDeliveryError``, or ``UnknownDeliveryError`` once
        their data went out), say QUIT on idle connections and stop the loop thread.
        The mailer can be used again afterwards."""
        with self._lock:
            loop, thread, pid = self._loop, self._thread, self._pid
            self._loop = self._thread = None
        if loop is None or thread is None or pid != os.getpid():
            return
        future = asyncio.run_coroutine_threadsafe(self._shutdown(), loop)
        with contextlib.suppress(Exception):
            future.result(timeout=2 * self.timeout + 5)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=self.timeout + 5)
        if not thread.is_alive():
            loop.close()

    def __enter__(self) -> SmtpMailer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- inside the loop thread --

    async def _shutdown(self) -> None:
        current = asyncio.current_task()
        pending = [t for t in asyncio.all_tasks() if t is not current]
        if pending:
            _, late = await asyncio.wait(pending, timeout=self.timeout)
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)
        await self._quit_all()

    async def _quit_all(self) -> None:
        idle, self._idle = self._idle, []
        for conn in idle:
            with contextlib.suppress(Exception):
                await conn.smtp.quit(timeout=min(self.timeout, 5))
            conn.smtp.close()

    async def _deliver(self, out: _Outgoing) -> SendResult:
        try:
            return await self._deliver_in_slot(out)
        except asyncio.CancelledError:
            # close() gave up waiting before this message's data went out (after
            # that, _transaction reports "unknown" itself).
            raise TransientDeliveryError(
                f"{out.message_id}: the mailer was closed before it was sent") from None

    async def _deliver_in_slot(self, out: _Outgoing) -> SendResult:
        assert self._slots is not None
        async with self._slots:
            for _ in range(2):
                conn = self._idle.pop() if self._idle else None
                reused = conn is not None
                if conn is None:
                    conn = await self._open()
                try:
                    reply = await self._transaction(conn, out, reused=reused)
                except _StaleConnection:
                    continue  # the next round opens a fresh connection
                if conn.sent >= self.max_messages:
                    await self._quit(conn)
                else:
                    self._idle.append(conn)
                return SendResult(out.message_id, out.recipients, f"{reply.code} {reply.message}")
        raise AssertionError("unreachable")  # pragma: no cover

    async def _open(self) -> _Connection:
        if self.local_hostname is None:
            # aiosmtplib would look the FQDN up (in a thread) for every connection.
            self.local_hostname = await asyncio.to_thread(socket.getfqdn)
        smtp = aiosmtplib.SMTP(
            hostname=self.host, port=self.port, username=self.username,
            password=self._password, local_hostname=self.local_hostname,
            timeout=self.timeout, use_tls=self.use_tls, start_tls=self.starttls,
            tls_context=self.tls_context,
        )
        where = f"connecting to {self.host}:{self.port}"
        try:
            await smtp.connect()
        except aiosmtplib.SMTPResponseException as exc:
            # A greeting, EHLO, STARTTLS or AUTH refused: 4xx later, 5xx for good
            # (535 bad credentials, 554 no service).
            smtp.close()
            raise error_for_smtp_reply(exc.code, exc.message, where) from exc
        except OSError as exc:  # refused, reset, timeouts (aiosmtplib's are OSErrors too)
            smtp.close()
            if _caused_by(exc, ssl.SSLCertVerificationError):
                # An untrusted or mismatched certificate stays so until someone acts.
                raise PermanentDeliveryError(f"{where}: TLS certificate rejected: "
                                             f"{exc}") from exc
            raise TransientDeliveryError(f"{where}: {exc}") from exc
        except aiosmtplib.SMTPException as exc:
            # No STARTTLS offered although required, no usable AUTH mechanism: a
            # configuration mismatch that waiting will not fix.
            smtp.close()
            raise PermanentDeliveryError(f"{where}: {exc}") from exc
        self.connections_opened += 1
        return _Connection(smtp)

    async def _quit(self, conn: _Connection) -> None:
        with contextlib.suppress(Exception):
            await conn.smtp.quit(timeout=min(self.timeout, 5))
        conn.smtp.close()

    async def _transaction(self, conn: _Connection, out: _Outgoing, *,
                           reused: bool) -> aiosmtplib.SMTPResponse:
        """One MAIL/RCPT/DATA exchange. On success the caller keeps the connection;
        on failure this returns it to the pool (after RSET) or closes it."""
        smtp = conn.smtp
        stage = "MAIL FROM"
        options = ["SMTPUTF8", "BODY=8BITMIME"] if out.utf8 else []
        encoding = "utf-8" if out.utf8 else "ascii"
        try:
            if out.utf8 and not smtp.supports_extension("smtputf8"):
                self._idle.append(conn)  # nothing was started on it
                raise PermanentDeliveryError(
                    f"{out.message_id}: an internationalised address needs SMTPUTF8, which "
                    f"{self.host}:{self.port} does not offer")
            if smtp.supports_extension("size"):
                # A message over the server's limit is refused now, not after upload.
                options.append(f"SIZE={len(out.payload)}")
            await smtp.mail(out.sender, options=options, encoding=encoding,
                            timeout=self.timeout)
            stage = "RCPT TO"
            for rcpt in out.recipients:
                await smtp.rcpt(rcpt, encoding=encoding, timeout=self.timeout)
            stage = "DATA"
            start = await smtp.execute_command(b"DATA", timeout=self.timeout)
            if start.code != 354:
                raise aiosmtplib.SMTPDataError(start.code, start.message)
            if out.before_data is not None:
                # The caller records "outcome unknown from here" (a ledger write: in a
                # thread, not on the loop). If that fails, the data is not sent.
                try:
                    await asyncio.get_running_loop().run_in_executor(None, out.before_data)
                except Exception as exc:
                    smtp.close()  # mid-DATA: the only clean way out is to hang up
                    raise TransientDeliveryError(
                        f"{out.message_id}: not sent, recording the hand-off failed: "
                        f"{type(exc).__name__}: {exc}") from exc
            # aiosmtplib's data() sends DATA and the payload in one call, so a lost
            # connection there could be before the 354 (nothing sent: retry) or after
            # the payload (maybe delivered: unknown). Doing the two halves here keeps
            # that difference. write() raises before sending a byte if the transport is
            # already closing; once it returns, bytes may be out.
            protocol = smtp.protocol
            if protocol is None:
                raise aiosmtplib.SMTPServerDisconnected("Connection lost")
            protocol.write(out.payload)
            stage = "end of data"
            reply = await protocol.read_response(timeout=self.data_timeout)
            if reply.code != 250:
                raise aiosmtplib.SMTPDataError(reply.code, reply.message)
        except aiosmtplib.SMTPResponseException as exc:
            if reused and stage == "MAIL FROM" and exc.code == 421:
                smtp.close()  # "closing channel" on a pooled connection: it was stale
                raise _StaleConnection from exc
            if exc.code == 421 or not smtp.is_connected:
                smtp.close()
            else:
                await self._reset(conn)
            raise error_for_smtp_reply(exc.code, exc.message, stage) from exc
        except OSError as exc:  # lost connection, timeout, reset (aiosmtplib's included)
            smtp.close()
            if stage == "end of data":
                raise UnknownDeliveryError(
                    f"{out.message_id}: no reply from {self.host}:{self.port} after the "
                    f"message was sent ({type(exc).__name__}: {exc}); it may have been "
                    "delivered, so it is not sent again automatically") from exc
            if reused and stage == "MAIL FROM" and not isinstance(exc, TimeoutError):
                raise _StaleConnection from exc
            raise TransientDeliveryError(
                f"{out.message_id}: connection to {self.host}:{self.port} lost during "
                f"{stage}: {exc}") from exc
        except aiosmtplib.SMTPException as exc:
            smtp.close()
            raise TransientDeliveryError(
                f"{out.message_id}: SMTP error during {stage}: {exc}") from exc
        except asyncio.CancelledError:  # close() is giving up on this message
            smtp.close()
            if stage == "end of data":
                raise UnknownDeliveryError(
                    f"{out.message_id}: the mailer was closed while waiting for the reply "
                    "to the message data; it may have been delivered") from None
            raise TransientDeliveryError(
                f"{out.message_id}: the mailer was closed during {stage}") from None
        conn.sent += 1
        return reply

    async def _reset(self, conn: _Connection) -> None:
        """RSET after a refused transaction and keep the connection, or drop it."""
        try:
            await conn.smtp.rset(timeout=self.timeout)
        except Exception:
            conn.smtp.close()
        else:
            self._idle.append(conn)


def _caused_by(exc: BaseException | None, kind: type[BaseException]) -> bool:
    """Whether ``exc`` or anything in its cause/context chain is a ``kind``."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, kind):
            return True
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return False


def _parse_bool(name: str, value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in ("true", "1", "yes", "on"):
        return True
    if lowered in ("false", "0", "no", "off"):
        return False
    raise ValueError(f"{name} must be true or false, not {value!r}")


# --- by URL ----------------------------------------------------------------------------

# Scheme -> class; configuration names a URL, never a class path.
_BACKENDS: Mapping[str, type[FileMailer] | type[SmtpMailer]] = {
    "file": FileMailer,
    "smtp": SmtpMailer,
    "smtps": SmtpMailer,
}


def mailer_from_url(url: str = DEFAULT_MAIL_URL) -> Mailer:
    """Open the mailer a URL names (``INVOICER_MAIL_URL``): ``file://PATH`` (default
    ``file://var/outbox``), ``smtp://user:pass@host:587?starttls=true`` or
    ``smtps://user:pass@host:465``; see each class's ``from_url`` for options."""
    scheme = urlsplit(url).scheme
    try:
        backend = _BACKENDS[scheme]
    except KeyError:
        raise ValueError(
            f"unknown mail scheme {scheme!r}; known: {sorted(_BACKENDS)}"
        ) from None
    return backend.from_url(url)
