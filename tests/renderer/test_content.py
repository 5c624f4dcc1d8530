"""Nothing the subscriber is owed is hidden: payments and adjustments itemized, long
tables that say what they continue, addresses wrapped in the window rather than cut, the
bill-shock explainer, and Persian dates and digits as Iran reads them."""

from __future__ import annotations

import json
import logging
import re
from decimal import Decimal

import pytest
from reportlab.lib.units import mm

from invoicer.billing import parse_record
from invoicer.l10n import formats
from invoicer.renderer import PreviousInvoice, RenderOptions, render
from invoicer.renderer.i18n import for_locale
from tests.renderer.conftest import (
    first_of_locale,
    pdftotext,
    rendered,
    sample,
    sample_records,
    with_usage,
    word_boxes,
)

LOCALES = ["en", "pt_BR", "ro_RO", "ru_RU", "nl_NL", "fa_IR"]
_SPACES = str.maketrans({"\xa0": " ", "\u202f": " ", **dict.fromkeys(
    map(ord, "\u200e\u200f\u202a\u202b\u202c\u202d\u202e"), None)})


def norm(s: str) -> str:
    return re.sub(r"\s+", " ", s.translate(_SPACES))


def squeeze(s: str) -> str:
    """Letters and digits in order: poppler moves spaces around numbers in RTL lines."""
    return re.sub(r"\s+", "", s.translate(_SPACES))


def edited(record, change) -> object:
    data = json.loads(record.model_dump_json(by_alias=True))
    change(data)
    return parse_record(json.dumps(data, ensure_ascii=False))


# --- payments and adjustments ---------------------------------------------------------------


@pytest.mark.parametrize("number", sorted(n for n, r in sample_records().items()
                                          if r.balance.payments or r.balance.adjustments))
def test_each_payment_and_adjustment_is_itemized(number):
    record = sample(number)
    f, loc = formats(record.invoice.locale), for_locale(record.invoice.locale)
    text = pdftotext(rendered(number))
    flat, rtl = norm(text), loc.rtl
    has = (lambda s: squeeze(s) in squeeze(text)) if rtl else (lambda s: norm(s) in flat)
    digits = 2 if record.invoice.currency != "IRR" else 0
    for p in record.balance.payments:
        assert has(f.date(p.date)), p
        assert has(loc.payment_method(p.method)), p
        assert has(f.number(-p.amount, digits)), p
    for a in record.balance.adjustments:
        assert has(f.date(a.date)), a
        assert has(a.description.splitlines()[0]), a
        assert has(f.number(a.amount, digits)), a


def test_unknown_payment_methods_print_as_given():
    text = pdftotext(rendered("AM-2026-11-0066666"))
    assert "Payment (card <b>)" in text


# --- long tables --------------------------------------------------------------------------


def test_a_call_details_page_that_starts_mid_group_names_the_group_continued():
    record = with_usage(first_of_locale("en"), 600)
    pages = pdftotext(render(record)).split("\f")
    annex = [p for p in pages if "Destination" in p]
    assert len(annex) >= 4
    for page in annex[1:]:
        lines = [x for x in page.splitlines() if x.strip()]
        # After the page header, the first thing is a group title, marked when continued.
        title = next(x for x in lines if " — " in x)
        assert title.endswith("(continued)") or "Records:" in page, title
    assert sum("(continued)" in p for p in annex) >= 3


def test_the_business_overview_repeats_its_title_and_header_on_every_page():
    record = sample("OI-2026-10-0100052")
    pages = pdftotext(rendered(record.invoice.number)).split("\f")
    loc = for_locale("pt_BR")
    with_lines = [p for p in pages if any(s.id in p for s in record.services[1:])
                  and loc.label("lines_overview") in p]
    assert len(with_lines) >= 2
    for page in with_lines[1:]:
        assert loc.label("continued", title=loc.label("lines_overview")) in page
        assert all(loc.label(k) in page for k in ("line", "plan", "usage_total"))


def test_long_service_labels_wrap_in_the_overview_instead_of_being_cut():
    long = "Oi Empresa — Gestão de Frota 15GB com roaming internacional e " * 3
    record = edited(sample("OI-2026-10-0100052"),
                    lambda d: d["services"][1].update(label=long.strip()))
    text = norm(pdftotext(render(record, RenderOptions(detail="summary"))))
    assert norm(long.strip()) in text.replace("- ", "-")


# --- addresses ----------------------------------------------------------------------------


def _window_words(pdf: bytes) -> tuple[set[str], list[str]]:
    x0, y0, x1, y1 = 20 * mm, 45 * mm, 105 * mm, 90 * mm
    words = word_boxes(pdf)[0]
    inside = {w for a, b, c, d, w in words if a >= x0 and c <= x1 and b >= y0 and d <= y1}
    crossing = [w for a, b, c, d, w in words
                if not (c <= x0 or a >= x1 or d <= y0 or b >= y1) and w not in inside]
    return inside, crossing


def test_a_long_address_line_wraps_inside_the_window(caplog):
    line = "Rua Doutor Joaquim Floriano de Albuquerque Cavalcanti, 1234, Bloco C, Ap 56"
    record = edited(sample("OI-2026-11-0000123"),
                    lambda d: d["account"]["customer"]["address"].update(lines=[line]))
    with caplog.at_level(logging.WARNING):
        pdf = render(record)
    inside, crossing = _window_words(pdf)
    assert set(line.split()) <= inside and not crossing
    assert "…" not in inside
    assert not [r for r in caplog.records if "address" in r.getMessage()]


def test_an_address_that_cannot_fit_is_shortened_and_logged(caplog):
    lines = [f"Bloco {i} Quadra {i} Conjunto Habitacional Presidente Juscelino Kubitschek"
             for i in range(6)]
    record = edited(sample("OI-2026-11-0000123"),
                    lambda d: d["account"]["customer"]["address"].update(lines=lines))
    with caplog.at_level(logging.WARNING):
        pdf = render(record)
    inside, crossing = _window_words(pdf)
    assert not crossing and any("…" in w for w in inside)
    assert record.account.customer.name.split()[0] in inside
    assert any(record.invoice.number in r.getMessage() and "address" in r.getMessage()
               for r in caplog.records)


# --- the bill-shock explainer ----------------------------------------------------------


def _jump(record, factor: str):
    """The record with its last history entry set so that this period is ``factor``
    times the previous one."""
    now = record.totals.charges + record.totals.taxes
    places = Decimal(1) if record.invoice.currency == "IRR" else Decimal("0.01")
    before = (now / Decimal(factor)).quantize(places)
    return edited(record, lambda d: d["history"][-1].update(amount=str(before)))


@pytest.mark.parametrize("locale", LOCALES)
def test_a_jump_is_explained_on_page_one_in_every_locale(locale):
    record = _jump(next(r for r in sample_records().values()
                        if r.invoice.locale == locale and r.history), "1.5")
    f = formats(locale)
    pages = pdftotext(render(record)).split("\f")
    change = record.totals.charges + record.totals.taxes - record.history[-1].amount
    expected = f.money(change, record.invoice.currency)
    if locale == "fa_IR":
        # poppler's own reordering moves the "(۵۰%)" run between currency and number
        number = f.number(change, 0)
        assert number in squeeze(pages[0]) and "(۵۰%)" in pages[0].replace(")%۵۰(", "(۵۰%)")
    else:
        assert norm(expected) in norm(pages[0])
        assert norm(f.percent(Decimal("0.50"))) in norm(pages[0])


def test_the_explainer_names_the_categories_that_moved_most():
    from datetime import date

    record = _jump(sample("OI-2026-11-0000123"), "1.4")
    previous = PreviousInvoice(date(2026, 9, 1), date(2026, 9, 30), "BRL",
                               {"subscription": Decimal("59.90"),
                                "international": Decimal("1.10")})
    text = norm(pdftotext(render(record, RenderOptions(previous=previous))).split("\f")[0])
    loc = for_locale("pt_BR")
    assert f"{loc.category('international')} +R$ 22,00" in text
    assert "outubro de 2026" in text  # the month of history[-1], named


def test_figures_that_are_not_of_an_earlier_period_are_not_compared():
    record = _jump(sample("OI-2026-11-0000123"), "1.4")
    same = PreviousInvoice(record.invoice.period.start, record.invoice.period.end, "BRL",
                           {"international": Decimal("1.10")})
    text = norm(pdftotext(render(record, RenderOptions(previous=same))).split("\f")[0])
    assert "+R$ 22,00" not in text and "outubro de 2026" in text


def test_no_sentence_within_the_share_and_the_share_is_configurable():
    record = _jump(sample("OI-2026-11-0000123"), "1.15")
    label = for_locale("pt_BR").label("shock_up", change="X", share="Y", period="Z")
    start = norm(label.split("X")[0]).strip()
    assert start not in norm(pdftotext(render(record)))
    lowered = RenderOptions(shock_share=Decimal("0.10"))
    assert start in norm(pdftotext(render(record, lowered)))


def test_previous_figures_reject_unknown_categories():
    with pytest.raises(ValueError, match="unknown charge categories"):
        PreviousInvoice(*(sample("OI-2026-11-0000123").invoice.period.model_dump()
                          .values()), "BRL", {"gadgets": Decimal(1)})


# --- Persian as Iran reads it ---------------------------------------------------------------


def test_every_persian_date_is_solar_hijri_and_the_chart_names_its_months():
    import jdatetime

    record = sample("AB-2026-11-0000721")
    text = pdftotext(rendered(record.invoice.number))
    f = formats("fa_IR")
    for day in (record.invoice.issue_date, record.invoice.due_date,
                record.invoice.period.start, record.invoice.period.end):
        assert squeeze(f.date(day)) in squeeze(text)
    # No Gregorian year anywhere but inside the invoice number (an identifier).
    assert "2026" not in text.replace(record.invoice.number, "")
    for h in record.history:
        year, month = map(int, h.period.split("-"))
        j = jdatetime.date.fromgregorian(year=year, month=month, day=15)
        assert jdatetime.date.j_months_fa[j.month - 1] in text


def test_persian_digits_throughout_except_codes_phones_and_identifiers():
    for record in (r for r in sample_records().values() if r.invoice.locale == "fa_IR"):
        text = pdftotext(rendered(record.invoice.number))
        op, cust = record.operator, record.account.customer
        brand_footer = "Alborz Communications Co · ۱۰۱۰۰۰۰۰۰۰۰"
        allowed = " ".join(filter(None, [
            record.invoice.number, record.account.number, cust.tax_id, op.tax_id,
            op.support.phone if op.support else None, op.support.web if op.support else None,
            record.payment.code, record.delivery.phone, brand_footer,
            *op.address.lines, op.address.postal_code, *cust.address.lines,
            cust.address.postal_code,
            *(s.id for s in record.services), *(s.label for s in record.services),
            *(u.called or "" for s in record.services for u in s.usage)]))
        runs = re.findall(r"[A-Za-z0-9+\-./:@*_]*[0-9][A-Za-z0-9+\-./:@*_]*",
                          text.translate(_SPACES))
        # poppler may swap the parts of "19697-33141" in a right-to-left line: each part
        # must come from an identifier.
        stray = [run for run in runs for part in run.split("-")
                 if part.strip(".:/") and part.strip(".:/") not in squeeze(allowed)]
        assert not stray, (record.invoice.number, stray)
        assert re.search("[۰-۹]", text)
