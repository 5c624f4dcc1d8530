"""invoicer.l10n: one formatting for every channel. Persian as Iran reads it (Solar Hijri,
Persian digits); every other locale exactly as CLDR (Babel) writes it."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

import jdatetime
import pytest
from babel.dates import format_date
from babel.numbers import format_currency, format_decimal
from hypothesis import given, settings
from hypothesis import strategies as st

from invoicer.l10n import formats, native_digits

PERSIAN = "۰۱۲۳۴۵۶۷۸۹"
GREGORIAN_LOCALES = ["en", "pt_BR", "ro_RO", "ru_RU", "nl_NL", "de_CH"]


@settings(max_examples=300, deadline=None)
@given(st.dates(date(1990, 1, 1), date(2090, 12, 31)))
def test_persian_dates_are_solar_hijri_with_iranian_month_names(day):
    j = jdatetime.date.fromgregorian(date=day)
    f = formats("fa_IR")
    digits = str.maketrans("0123456789", PERSIAN)
    assert f.date(day) == (f"{j.day} {jdatetime.date.j_months_fa[j.month - 1]} "
                           f"{j.year}").translate(digits)
    assert f.date(day, "short") == f"{j.year:04d}/{j.month:02d}/{j.day:02d}".translate(
        digits)
    assert not any(c.isascii() and c.isdigit() for c in f.date(day) + f.month(day))


def test_known_persian_dates():
    f = formats("fa_IR")
    assert f.date(date(2026, 3, 21)) == "۱ فروردین ۱۴۰۵"  # Nowruz
    assert f.date(date(2026, 11, 20)) == "۲۹ آبان ۱۴۰۵"
    assert f.month(date(2026, 9, 15)) == "شهریور ۱۴۰۵"
    assert f.month_parts(date(2026, 10, 15)) == ("مهر", "۱۴۰۵")


@settings(max_examples=300, deadline=None)
@given(st.decimals(min_value=-10**12, max_value=10**12, places=2, allow_nan=False))
def test_persian_amounts_are_cldr_with_persian_digits(amount):
    f = formats("fa_IR")
    text = f.money(amount, "IRR")
    expected = format_currency(amount, "IRR", locale="fa_IR", numbering_system="default")
    strip = str.maketrans("", "", "\u200e\u200f\u061c")
    assert text == expected.translate(strip).translate(str.maketrans("0123456789", PERSIAN))
    assert not any(c.isascii() and c.isdigit() for c in text)
    assert "٬" in f.number(Decimal("1234567"), 0)  # the Persian group separator


def test_persian_times_durations_counts_and_percentages():
    f = formats("fa_IR")
    assert f.time(datetime(2026, 10, 3, 9, 5, 7)) == "۰۹:۰۵:۰۷"
    assert f.duration(3725) == "۱:۰۲:۰۵"
    assert f.integer(12) == "۱۲"
    assert not any(c.isascii() and c.isdigit() for c in f.percent(Decimal("0.19")))
    assert native_digits("page 3", "fa_IR") == "page ۳"


@pytest.mark.parametrize("locale", GREGORIAN_LOCALES)
def test_other_locales_are_exactly_cldr(locale):
    f = formats(locale)
    day = date(2026, 11, 20)
    width = "medium" if locale == "en" else "short"
    assert f.date(day) == format_date(day, width, locale=locale)
    assert f.money(Decimal("1234.5"), "EUR") == format_currency(Decimal("1234.5"), "EUR",
                                                                locale=locale)
    assert f.decimal(Decimal("2.5")) == format_decimal(Decimal("2.5"), locale=locale)
    assert f.integer(17) == "17" and f.time(datetime(2026, 1, 1, 8, 0, 9)) == "08:00:09"
    assert not f.solar_hijri


def test_afghan_persian_keeps_the_gregorian_calendar():
    assert not formats("fa_AF").solar_hijri


def test_an_unknown_locale_formats_as_english():
    assert formats("xx_YY").money(Decimal("5"), "USD") == "$5.00"


def test_signed_money_always_shows_the_sign():
    f = formats("pt_BR")
    assert f.signed_money(Decimal("42.10"), "BRL") == "+R$\xa042,10"
    assert f.signed_money(Decimal("-5"), "BRL") == "-R$\xa05,00"
