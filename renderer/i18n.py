"""Labels for invoices, per locale.

Labels live in ``templates/labels/<locale>.toml`` (one place, one file per locale).
The PDF formats numbers, money and dates through :mod:`invoicer.l10n` (native digits,
the Solar Hijri calendar for Persian). :meth:`InvoiceLocale.money`, ``number``,
``decimal``, ``date``, ``percent`` and ``month`` below are the earlier Gregorian,
Latin-digit formatting that the e-mail and SMS texts still use until they move to
:mod:`invoicer.l10n` too; the renderer no longer calls them.
"""

from __future__ import annotations

import logging
import tomllib
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from functools import cache, lru_cache
from typing import Any

from babel.core import Locale, UnknownLocaleError
from babel.dates import format_date
from babel.numbers import format_currency, format_decimal

from invoicer.resources import package_path

log = logging.getLogger(__name__)

LABELS_DIR = package_path("templates", "labels")
FALLBACK = "en"

# Invisible direction marks that CLDR puts into some formats: the renderer orders
# runs itself, and fonts have no glyph for them (they would print as boxes).
_MARKS = str.maketrans("", "", "\u200e\u200f\u061c")


@dataclass(frozen=True)
class InvoiceLocale:
    """Everything locale-specific the renderer needs, for one locale."""

    requested: str
    labels_locale: str
    babel: Locale
    rtl: bool
    labels: dict[str, Any] = field(repr=False)

    def label(self, key: str, **values: str) -> str:
        """The label ``key``, with ``{placeholders}`` filled from ``values``."""
        text = self.labels.get(key) or _load(FALLBACK)[key]
        return text.format_map(values) if values else text

    def category(self, name: str) -> str:
        return self.labels["category"].get(name, name)

    def usage_type(self, name: str) -> str:
        return self.labels["usage"].get(name, name)

    def payment_method(self, method: str) -> str:
        """A payment's ``method`` in words (``card`` -> "cartão"); unknown ones as given."""
        return self.labels["payment_method"].get(method, method)

    def money(self, amount: Decimal, currency: str) -> str:
        """``R$ 104,75``: amount with the currency, as the locale writes it."""
        return _money(amount, currency, self.babel)

    def number(self, amount: Decimal, digits: int) -> str:
        """``1.234,50``: an amount without the currency (table columns say it once)."""
        return _number(amount, digits, self.babel)

    def decimal(self, value: Decimal) -> str:
        return _decimal(value, self.babel)

    def date(self, value: date) -> str:
        return _date(value, self.labels.get("date_format", "short"), self.babel)

    def percent(self, rate: Decimal) -> str:
        return _decimal(rate * 100, self.babel) + " %"

    def month(self, period: str) -> str:
        """``2026-09`` as a short month label for the history chart."""
        return _month(period, self.babel)


def for_locale(locale_id: str) -> InvoiceLocale:
    """The :class:`InvoiceLocale` for a record's ``invoice.locale`` (cached).

    Labels: the exact locale, else another locale of the same language, else English
    with a warning. Formats: the requested locale when CLDR knows it, else English.
    """
    return _for_locale(locale_id)


@cache
def _for_locale(locale_id: str) -> InvoiceLocale:
    available = sorted(p.stem for p in LABELS_DIR.glob("*.toml"))
    language = locale_id.split("_")[0]
    if locale_id in available:
        labels_locale = locale_id
    else:
        same_language = [a for a in available if a.split("_")[0] == language]
        labels_locale = same_language[0] if same_language else FALLBACK
        if labels_locale == FALLBACK and language != FALLBACK:
            log.warning("no invoice labels for locale %r: using English labels", locale_id)
    try:
        babel = Locale.parse(locale_id)
    except (UnknownLocaleError, ValueError):
        babel = Locale.parse(FALLBACK)
    merged = {**_load(FALLBACK), **_load(labels_locale)}
    for section in ("category", "usage", "payment_method"):
        merged[section] = {**_load(FALLBACK)[section], **_load(labels_locale).get(section, {})}
    return InvoiceLocale(
        requested=locale_id,
        labels_locale=labels_locale,
        babel=babel,
        rtl=merged.get("direction") == "rtl",
        labels=merged,
    )


@cache
def _load(locale_id: str) -> dict[str, Any]:
    with open(LABELS_DIR / f"{locale_id}.toml", "rb") as f:
        return tomllib.load(f)


#: Formatted amounts kept per process (money and plain numbers, each). Bounded low:
#: a bill run formats ~5 new amounts per invoice, so 65,536 entries (~23 MB a cache)
#: filled only after ~13,000 invoices per process and a long run's memory kept
#: growing; the amounts that recur (prices, small call charges) stay cached anyway.
AMOUNTS_CACHED = 4096


@lru_cache(maxsize=AMOUNTS_CACHED)
def _money(amount: Decimal, currency: str, babel: Locale) -> str:
    return format_currency(amount, currency, locale=babel).translate(_MARKS)


@lru_cache(maxsize=AMOUNTS_CACHED)
def _number(amount: Decimal, digits: int, babel: Locale) -> str:
    pattern = "#,##0" + ("." + "0" * digits if digits else "")
    return format_decimal(amount, format=pattern, locale=babel,
                          decimal_quantization=False).translate(_MARKS)


@lru_cache(maxsize=4096)
def _decimal(value: Decimal, babel: Locale) -> str:
    return format_decimal(value, locale=babel, decimal_quantization=False).translate(_MARKS)


@lru_cache(maxsize=4096)
def _date(value: date, fmt: str, babel: Locale) -> str:
    return format_date(value, fmt, locale=babel).translate(_MARKS)


@lru_cache(maxsize=1024)
def _month(period: str, babel: Locale) -> str:
    year, month = period.split("-")
    name = babel.months["stand-alone"]["abbreviated"][int(month)]
    return f"{name} {year[2:]}"


def clock(value: datetime) -> tuple[str, str]:
    """Local date (ISO, for sorting-friendly columns) and time ``HH:MM:SS`` of a CDR.

    CDR start instants are printed in their own offset: the subscriber's local time
    when the call was made, which is what they remember.
    """
    return value.date().isoformat(), value.strftime("%H:%M:%S")


def duration(seconds: int) -> str:
    """``2:05`` or ``1:02:05``."""
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"
