"""The words of an SMS notice, per locale, and what they cost in parts.

:func:`render_sms` fills ``templates/sms/<message>/<locale>.txt`` (Jinja2, plain text,
no autoescape) with values already formatted for the locale (amount, due date, the
FEBRABAN typeable line or a payment reference, a short link) and reports the encoding
and segment count (:mod:`~invoicer.delivery.sms.gsm`). Every value is cleaned on its
way into the text: control characters, bidi overrides and line breaks removed,
typographic spaces, quotes and dashes folded to their GSM-7 equivalents (a no-break
space in ``R$ 104,75`` would otherwise turn a whole SMS into UCS-2 and more than double
its parts).
"""

from __future__ import annotations

import functools
import re
import tomllib
import unicodedata
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import jinja2

from invoicer.billing.models import BillingRecord, PaymentMethod, PaymentScheme
from invoicer.billing.paycodes import febraban
from invoicer.delivery.sms import gsm
from invoicer.l10n import formats
from invoicer.resources import package_path

__all__ = [
    "SmsText",
    "clean_value",
    "operator_short_name",
    "render_access_code",
    "render_sms",
]

SMS_TEMPLATES_DIR = package_path("templates", "sms")
FALLBACK_LOCALE = "en"


@dataclass(frozen=True, slots=True)
class SmsText:
    """A rendered SMS: the text, its encoding and how many parts it is sent as."""

    text: str
    encoding: gsm.Encoding
    segments: int

    @property
    def parts(self) -> list[str]:
        """The parts as the network carries them (:func:`.gsm.segments`)."""
        return gsm.segments(self.text)


# Typographic characters with a GSM-7 twin of the same meaning. CLDR puts no-break and
# narrow no-break spaces in amounts (R$ 104,75, 2 850,80 ₽) and a right single quote as
# the Swiss thousands separator (CHF 4’537.69): left alone, any one of them makes the
# whole SMS UCS-2. Folding them changes no meaning in any language, so it applies to
# every value; dropping diacritics does change spelling, so that is the templates'
# choice (the ``gsm`` filter).
_FOLD = str.maketrans({
    "\u2018": "'", "\u2019": "'", "\u201a": "'", "\u201b": "'", "\u2032": "'",
    "\u201c": '"', "\u201d": '"', "\u201e": '"', "\u201f": '"', "\u2033": '"',
    "\u2010": "-", "\u2011": "-", "\u2012": "-", "\u2013": "-", "\u2014": "-",
    "\u2015": "-", "\u2212": "-",
    "\u2026": "...",
})
# Zero-width non-joiner and joiner are part of how Persian words and emoji are spelled;
# every other format character (bidi marks, embeddings, overrides, isolates, BOM) can
# only reorder or hide what the subscriber reads.
_KEEP_FORMAT = frozenset("\u200c\u200d")
_SPACES = re.compile(r"\s+")


def clean_value(value: Any) -> str:
    """One clean line of text: the Jinja ``finalize`` of every ``{{ value }}``, and what
    any outside text (a gateway's error, a receipt) goes through before it is kept."""
    if value is None:
        return ""
    text = unicodedata.normalize("NFC", str(value))
    if text.isprintable():
        # No control, format or surrogate character, and no whitespace but " " (what
        # str.isprintable() means; checked over all of Unicode by the tests): the loop
        # below would keep every character as it is. Most values (numbers, amounts,
        # names) are like this, and this path is a tenth of the loop's time.
        return _SPACES.sub(" ", text.translate(_FOLD)).strip()
    out = []
    for ch in text:
        if ch.isspace():
            out.append(" ")  # line breaks, tabs, NEL, LS/PS, no-break spaces: a space
            continue
        category = unicodedata.category(ch)
        if category in ("Cc", "Cs") or (category == "Cf" and ch not in _KEEP_FORMAT):
            continue
        out.append(ch)
    return _SPACES.sub(" ", "".join(out).translate(_FOLD)).strip()


def _to_gsm(value: Any) -> str:
    """Jinja filter ``gsm``: spell a value in GSM-7 letters where a close one exists.

    Characters GSM 03.38 has stay (é, ü, ñ, Ç ...); others lose their diacritics when
    what is left is GSM (ș->s, ț->t, ă->a, ã->a, ç->c); guillemets become quotes.
    Anything else stays as it is (and makes the text UCS-2) rather than turn into a
    guess. For names and formatted values; never for a code the subscriber must type
    exactly, which the templates print as it is.
    """
    text = clean_value(value)
    out = []
    for ch in text:
        if ch in gsm.BASIC or ch in gsm.EXTENSION:
            out.append(ch)
        elif ch in "«»":
            out.append('"')
        else:
            base = "".join(c for c in unicodedata.normalize("NFD", ch)
                           if not unicodedata.combining(c))
            out.append(base if base and gsm.encoding(base) == gsm.GSM7 else ch)
    return "".join(out)


@functools.cache
def _environment() -> jinja2.Environment:
    # Plain text, never HTML: autoescape would print "&lt;" in an SMS. Values cannot
    # inject anything but characters (they are data, not template source), and
    # ``finalize`` keeps them on one line without control characters.
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(SMS_TEMPLATES_DIR),
        autoescape=False,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        finalize=clean_value,
        auto_reload=False,  # shipped files: no stat() per message
    )
    env.filters["gsm"] = _to_gsm
    return env


_MESSAGE_RE = re.compile(r"[a-z][a-z0-9_]{0,63}")


@functools.cache
def _template_name(message: str, locale_id: str) -> str:
    """``message/<locale>.txt``: the exact locale, another of its language, else English."""
    if not _MESSAGE_RE.fullmatch(message) or not (SMS_TEMPLATES_DIR / message).is_dir():
        raise ValueError(f"no SMS message {message!r} under {SMS_TEMPLATES_DIR}")
    available = sorted(p.stem for p in (SMS_TEMPLATES_DIR / message).glob("*.txt"))
    language = locale_id.split("_")[0]
    if locale_id in available:
        chosen = locale_id
    else:
        same_language = [a for a in available if a.split("_")[0] == language]
        chosen = same_language[0] if same_language else FALLBACK_LOCALE
    return f"{message}/{chosen}.txt"


@functools.cache
def _short_names() -> dict[str, dict[str, str]]:
    with open(SMS_TEMPLATES_DIR / "operators.toml", "rb") as f:
        return tomllib.load(f)


# Legal forms say nothing to a subscriber and cost room in every SMS.
_LEGAL_FORMS = re.compile(
    r"(?:^|\s)(?:s\.?\s?a\.?|b\.?v\.?|n\.?v\.?|ltd\.?|limited|inc\.?|llc|plc|gmbh|ag|"
    r"s\.?r\.?l\.?|co\.|corp\.?|пао|оао|ао|ооо)(?=\s|$|,)",
    re.IGNORECASE,
)
_MAX_SHORT_NAME = 24


def operator_short_name(operator_id: str, name: str, locale_id: str) -> str:
    """The name an SMS opens with: ``templates/sms/operators.toml``, else derived.

    The table gives a name per operator (``default``) and optionally per locale or
    language. Without an entry the record's name is used without its legal form
    (``Lakeshore Wireless Inc.`` -> ``Lakeshore Wireless``), cut at a word to at most
    24 characters.
    """
    names = _short_names().get(operator_id, {})
    chosen = (names.get(locale_id) or names.get(locale_id.split("_")[0])
              or names.get("default"))
    if chosen:
        return clean_value(chosen)
    short = clean_value(_LEGAL_FORMS.sub(" ", clean_value(name))).strip(" ,-")
    short = short or clean_value(name)
    if len(short) > _MAX_SHORT_NAME:
        cut = short[:_MAX_SHORT_NAME + 1].rsplit(" ", 1)[0]
        short = cut if cut and len(cut) <= _MAX_SHORT_NAME else short[:_MAX_SHORT_NAME]
    return short.strip(" ,-")


# Printable ASCII without spaces: a URL a phone recognises as one link. Long enough for
# a signed download link (invoicer.delivery.links, ~160 characters), though a link that long
# costs a part of its own; a short one is what an SMS wants.
_LINK_RE = re.compile(r"https?://[!-~]{1,500}")


def _check_link(link: str | None) -> str | None:
    if link is None:
        return None
    if not isinstance(link, str) or not _LINK_RE.fullmatch(link):
        raise ValueError(f"link must be an http(s) URL of printable ASCII without spaces "
                         f"(at most 508 characters), not {link!r:.80}")
    return link


def render_sms(record: BillingRecord, link: str | None = None, *,
               message: str = "invoice_issued") -> SmsText:
    """Render the SMS ``message`` for ``record`` in the record's locale.

    ``link`` is an optional link to the invoice (``https://...``, printable ASCII
    without spaces); the shorter, the fewer parts. The templates get: ``operator``
    (short name), ``amount`` and ``due_date`` (formatted for the locale), ``to_pay``
    (anything to pay, by hand or by debit), ``credit`` (the credit, formatted, when the
    total is negative), ``direct_debit``, ``typeable_line`` (FEBRABAN,
    ``84680000001-6 ...``), ``reference`` (a Code 128 payment reference), ``link`` and
    ``invoice_number``.
    Runs of whitespace in the rendered template become one space: an SMS is one
    paragraph, and the templates stay readable.
    """
    # The PDF's formatting (invoicer.l10n): fa_IR dates in the Solar Hijri calendar and
    # amounts in Persian digits; the typeable line, reference and number stay as printed.
    loc = formats(record.invoice.locale)
    currency = record.invoice.currency
    due: Decimal = record.totals.total_due
    payment = record.payment
    barcode = payment.method is PaymentMethod.barcode
    typeable = reference = None
    if barcode and payment.scheme is PaymentScheme.febraban and payment.code:
        typeable = febraban.parse(payment.code).formatted
    elif barcode and payment.scheme is PaymentScheme.code128 and payment.code:
        reference = payment.code
    context = {
        "operator": operator_short_name(record.operator.id, record.operator.name,
                                        record.invoice.locale),
        "amount": loc.money(due, currency),
        "due_date": loc.date(record.invoice.due_date),
        "to_pay": due > 0,
        "credit": loc.money(-due, currency) if due < 0 else None,
        "direct_debit": payment.method is PaymentMethod.direct_debit,
        "typeable_line": typeable,
        "reference": reference,
        "link": _check_link(link),
        "invoice_number": record.invoice.number,
    }
    template = _environment().get_template(_template_name(message, record.invoice.locale))
    text = _SPACES.sub(" ", template.render(context)).strip()
    described = gsm.describe(text)
    return SmsText(text, described.encoding, described.count)


def render_access_code(operator_id: str, locale_id: str, code: str, minutes: int, *,
                       name: str | None = None) -> SmsText:
    """The SMS carrying a subscriber's access code (``templates/sms/access_code/``).

    Only the operator's short name (``operators.toml``, else derived from ``name``, its
    name as its records or settings give it, else its id), the six digits and the
    validity: an access code never travels with account data.
    """
    if not re.fullmatch(r"[0-9]{6}", code):
        raise ValueError("an access code is six digits")
    context = {"operator": operator_short_name(operator_id, name or operator_id, locale_id),
               # a quantity: in the locale's digits (Persian ones for fa_IR); the code
               # itself is typed on a keypad and stays in ASCII digits
               "code": code, "minutes": formats(locale_id).integer(int(minutes))}
    template = _environment().get_template(_template_name("access_code", locale_id))
    text = _SPACES.sub(" ", template.render(context)).strip()
    described = gsm.describe(text)
    return SmsText(text, described.encoding, described.count)
