"""Numbers, money, dates and times as each locale writes them, for every channel.

The PDF, the e-mail, the SMS and the subscriber page must say the same amount and the
same date the same way, so they all format through :func:`formats`::

    f = formats("fa_IR")
    f.money(Decimal("3850000"), "IRR")   # 'ریال ۳٬۸۵۰٬۰۰۰'
    f.date(date(2026, 11, 20))           # '۲۹ آبان ۱۴۰۵'   (Solar Hijri)
    f.date(date(2026, 11, 20), "short")  # '۱۴۰۵/۰۸/۲۹'
    f.integer(3)                         # '۳'   (page numbers, counts)

Babel (CLDR) supplies patterns, symbols and month names. Babel formats Gregorian dates
and Latin digits only, so two things are added where CLDR asks for them:

- **Native digits**: a locale whose CLDR default numbering system is not ``latn`` (Persian:
  ``arabext``, ۰۱۲۳۴۵۶۷۸۹) gets its digits and its own decimal and group separators in
  every number, amount, percentage, date, time, duration and page number formatted here.
- **The Solar Hijri calendar** for Persian as written in Iran (``fa``, ``fa_IR``), with
  the Iranian month names, through `jdatetime` (maintained, the calendar library most
  used from Python, with Persian month names built in and no dependency beyond its own
  small arithmetic core); ``fa_AF`` keeps the Gregorian calendar, as Afghanistan's Dari
  month names differ.

Text that is *not* a quantity is never formatted here and keeps its digits as printed on
a bank slip: payment codes and typeable lines, phone numbers, invoice and account numbers,
tax identifiers, postal codes and addresses.

Every function is pure and cached: a call-details annex formats the same amounts, dates
and durations thousands of times.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time
from decimal import Decimal
from functools import cache, lru_cache

import jdatetime
from babel.core import Locale, UnknownLocaleError
from babel.dates import format_date, format_skeleton
from babel.numbers import format_currency, format_decimal, format_percent

__all__ = ["Formats", "formats", "native_digits"]

FALLBACK = "en"

# Invisible direction marks that CLDR puts into some formats (fa, ar): renderers order
# runs themselves, fonts have no glyph for them, and SMS counts them as characters.
_MARKS = str.maketrans("", "", "\u200e\u200f\u061c")

#: Digits of the CLDR numbering systems a supported locale can default to.
_DIGITS = {
    "arabext": "۰۱۲۳۴۵۶۷۸۹",  # Persian (Extended Arabic-Indic)
    "arab": "٠١٢٣٤٥٦٧٨٩",  # Arabic-Indic
}

#: Locales written with the Solar Hijri calendar and Iran's month names.
_SOLAR_HIJRI = frozenset({"fa", "fa_IR"})


def native_digits(text: str, locale_id: str) -> str:
    """``text`` with its ASCII digits in the locale's own digits (unchanged for most).

    For numerals built outside :class:`Formats` that are quantities, not identifiers.
    """
    return formats(locale_id).digits(text)


@dataclass(frozen=True)
class Formats:
    """Formatting for one locale; get one with :func:`formats`."""

    locale_id: str
    babel: Locale
    numbering: str  # "latn", "arabext", ...
    solar_hijri: bool

    # -- numbers -------------------------------------------------------------------------

    def digits(self, text: str) -> str:
        """ASCII digits of ``text`` in this locale's digits."""
        if self.numbering == "latn":
            return text
        return text.translate(_digit_table(self.numbering))

    def number(self, amount: Decimal, fraction_digits: int) -> str:
        """``1.234,50``: an amount without currency, with exactly ``fraction_digits``."""
        return _number(amount, fraction_digits, self.babel, self.numbering)

    def decimal(self, value: Decimal) -> str:
        """A quantity as the locale writes it, with the decimals it has (``2,5``)."""
        return _decimal(value, self.babel, self.numbering)

    def integer(self, value: int) -> str:
        """A count or a page number, without group separators (``12``, ``۱۲``)."""
        return self.digits(str(value))

    def money(self, amount: Decimal, currency: str) -> str:
        """``R$ 104,75``: the amount with its currency as the locale writes it."""
        return _money(amount, currency, self.babel, self.numbering)

    def signed_money(self, amount: Decimal, currency: str) -> str:
        """``+R$ 42,10`` / ``-R$ 5,00``: a change, always with its sign."""
        text = self.money(abs(amount), currency)
        return ("-" if amount < 0 else "+") + text

    def percent(self, share: Decimal) -> str:
        """``0.1025`` as ``10,25 %`` (CLDR pattern and sign; decimals kept as given)."""
        return _percent(share, self.babel, self.numbering)

    # -- dates and times -----------------------------------------------------------------

    def date(self, value: date, width: str | None = None) -> str:
        """A calendar date: CLDR ``short`` / ``medium`` / ``long`` in Gregorian locales;
        Solar Hijri for Persian (``۱۴۰۵/۰۸/۲۹`` short, ``۲۹ آبان ۱۴۰۵`` otherwise).

        Without ``width``, the locale's usual width for a document: ``short`` (``20/11/2026``)
        except where that is ambiguous or unnamed: English (``11/20/26`` reads two ways)
        and Solar Hijri (Iranian bills name the month) take ``medium``.
        """
        if width is None:
            width = "medium" if self.solar_hijri or self.babel.language == "en" else "short"
        return _date(value, width, self.babel, self.numbering, self.solar_hijri)

    def month(self, value: date) -> str:
        """The month holding ``value`` with its year (``setembro de 2026``, ``آبان ۱۴۰۵``)."""
        return _month(value, self.babel, self.numbering, self.solar_hijri)

    def month_parts(self, value: date) -> tuple[str, str]:
        """Short month name and year, for chart axes (``Sep``, ``2026``)."""
        return _month_parts(value, self.babel, self.numbering, self.solar_hijri)

    def time(self, value: datetime | time) -> str:
        """Clock time ``HH:MM:SS`` (24 h everywhere: a call's time, not a meeting's)."""
        return self.digits(f"{value.hour:02d}:{value.minute:02d}:{value.second:02d}")

    def duration(self, seconds: int) -> str:
        """``2:05`` or ``1:02:05``."""
        h, rest = divmod(seconds, 3600)
        m, s = divmod(rest, 60)
        return self.digits(f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}")


def formats(locale_id: str) -> Formats:
    """The :class:`Formats` of a locale id such as ``pt_BR`` (cached).

    A locale CLDR does not know formats as English; labels have their own fallback.
    """
    return _formats(locale_id)


@cache
def _formats(locale_id: str) -> Formats:
    try:
        babel = Locale.parse(locale_id)
    except (UnknownLocaleError, ValueError):
        babel = Locale.parse(FALLBACK)
    numbering = babel.default_numbering_system
    if numbering not in _DIGITS:
        numbering = "latn"
    return Formats(locale_id, babel, numbering, str(babel) in _SOLAR_HIJRI)


@cache
def _digit_table(numbering: str) -> dict[int, int]:
    return str.maketrans("0123456789", _DIGITS.get(numbering, "0123456789"))


def _native(text: str, numbering: str) -> str:
    text = text.translate(_MARKS)
    return text if numbering == "latn" else text.translate(_digit_table(numbering))


def _system(numbering: str) -> str:
    # Babel picks symbols (separators, signs) per numbering system; "latn" is its default.
    return "latn" if numbering == "latn" else "default"


#: Formatted amounts kept per process (money and plain numbers, each). Bounded low:
#: a bill run formats ~5 new amounts per invoice, so 65,536 entries (~23 MB a cache)
#: filled only after ~13,000 invoices per process and a long run's memory kept
#: growing; the amounts that recur (prices, small call charges) stay cached anyway.
AMOUNTS_CACHED = 4096


@lru_cache(maxsize=AMOUNTS_CACHED)
def _money(amount: Decimal, currency: str, babel: Locale, numbering: str) -> str:
    return _native(format_currency(amount, currency, locale=babel,
                                   numbering_system=_system(numbering)), numbering)


@lru_cache(maxsize=AMOUNTS_CACHED)
def _number(amount: Decimal, fraction_digits: int, babel: Locale, numbering: str) -> str:
    pattern = "#,##0" + ("." + "0" * fraction_digits if fraction_digits else "")
    return _native(format_decimal(amount, format=pattern, locale=babel,
                                  decimal_quantization=False,
                                  numbering_system=_system(numbering)), numbering)


@lru_cache(maxsize=4096)
def _decimal(value: Decimal, babel: Locale, numbering: str) -> str:
    return _native(format_decimal(value, locale=babel, decimal_quantization=False,
                                  numbering_system=_system(numbering)), numbering)


@lru_cache(maxsize=1024)
def _percent(share: Decimal, babel: Locale, numbering: str) -> str:
    return _native(format_percent(share, locale=babel, decimal_quantization=False,
                                  numbering_system=_system(numbering)), numbering)


@lru_cache(maxsize=4096)
def _date(value: date, width: str, babel: Locale, numbering: str, solar_hijri: bool) -> str:
    if solar_hijri:
        j = jdatetime.date.fromgregorian(date=value)
        if width == "short":
            text = f"{j.year:04d}/{j.month:02d}/{j.day:02d}"
        else:
            text = f"{j.day} {jdatetime.date.j_months_fa[j.month - 1]} {j.year}"
        return _native(text, numbering)
    return _native(format_date(value, width, locale=babel), numbering)


@lru_cache(maxsize=1024)
def _month(value: date, babel: Locale, numbering: str, solar_hijri: bool) -> str:
    if solar_hijri:
        j = jdatetime.date.fromgregorian(date=value)
        return _native(f"{jdatetime.date.j_months_fa[j.month - 1]} {j.year}", numbering)
    return _native(format_skeleton("yMMMM", value, locale=babel), numbering)


@lru_cache(maxsize=1024)
def _month_parts(value: date, babel: Locale, numbering: str,
                 solar_hijri: bool) -> tuple[str, str]:
    if solar_hijri:
        j = jdatetime.date.fromgregorian(date=value)
        return jdatetime.date.j_months_fa[j.month - 1], _native(str(j.year), numbering)
    name = babel.months["stand-alone"]["abbreviated"][value.month]
    return name.translate(_MARKS), _native(str(value.year), numbering)
