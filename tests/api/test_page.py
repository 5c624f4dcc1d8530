"""The subscriber page in a real headless Chromium (Debian's ``chromium``, driven by
Playwright): phone number, the code read from the SMS outbox, the invoices, the PDF."""

from __future__ import annotations

import pytest

from invoicer.api.web import LOCALES, choose_locale, normalize_phone
from tests.api.conftest import sms_code
from tests.api.subscriber_client import BEFORE_DUE
from tests.api.world import MAIN


def test_the_whole_flow_on_a_phone_sized_screen(sub, browser, tmp_path):
    sub.clock.now = BEFORE_DUE  # the latest invoice is not overdue yet
    context = browser.new_context(viewport={"width": 375, "height": 740},
                                  accept_downloads=True, locale="pt-BR")
    page = context.new_page()
    page.goto(f"{sub.url}/access")
    assert page.locator("html").get_attribute("lang") == "pt-BR"
    page.fill("#phone", "+55 (21) 98765-4321")  # as people type it
    page.click("#send-code")
    page.wait_for_selector("#code")
    code = sms_code(sub.outbox, MAIN[2])
    page.fill("#code", code)
    page.click("#open")
    page.wait_for_selector("#latest")
    latest = page.inner_text("#latest")
    assert "OI-2026-11-0000123" in latest and "R$" in latest and "104,75" in latest
    assert "Em aberto" in latest
    assert page.locator("ul.invoices li").count() == 13
    # Nothing wider than the phone's screen.
    assert page.evaluate("document.documentElement.scrollWidth") <= 375
    with page.expect_download() as download:
        page.click("#download-latest")
    saved = tmp_path / "latest.pdf"
    download.value.save_as(saved)
    invoice = sub.ledger.invoices.get("oi", "OI-2026-11-0000123")
    assert saved.read_bytes() == sub.archive.get(invoice.archive_key)
    # A second copy from the list: issued, then downloaded.
    with page.expect_download() as download:
        page.locator("li[data-number='OI-2026-10-0000123'] button").click()
    copy = tmp_path / "copy.pdf"
    download.value.save_as(copy)
    assert copy.read_bytes().startswith(b"%PDF")
    assert copy.read_bytes() != sub.archive.get(
        sub.ledger.invoices.get("oi", "OI-2026-10-0000123").archive_key)
    context.close()


def test_a_wrong_code_says_so_in_persian_right_to_left(sub, browser):
    context = browser.new_context()
    page = context.new_page()
    page.goto(f"{sub.url}/access?lang=fa_IR")
    assert page.locator("html").get_attribute("dir") == "rtl"
    page.fill("#phone", MAIN[2])
    page.click("#send-code")
    page.fill("#code", "000000" if sms_code(sub.outbox, MAIN[2]) != "000000" else "111111")
    page.click("#open")
    assert "کد پذیرفته نشد" in page.inner_text("[role=alert]")
    # Without a session the list is not shown.
    page.goto(f"{sub.url}/access/invoices?lang=fa_IR")
    assert page.locator("ul.invoices").count() == 0
    context.close()


@pytest.mark.parametrize("lang", LOCALES)
def test_every_locale_renders_escaped_and_with_its_direction(sub, lang):
    got = sub.http.get("/access", params={"lang": lang})
    assert got.status_code == 200 and got.headers["content-type"].startswith("text/html")
    assert f'dir="{"rtl" if lang == "fa_IR" else "ltr"}"' in got.text
    assert 'name="viewport"' in got.text
    assert "default-src 'none'" in got.headers["content-security-policy"]
    hostile = sub.http.post("/access/code", data={"phone": "<script>x</script>",
                                                  "lang": lang})
    assert hostile.status_code == 422 and "<script>x" not in hostile.text


def test_locale_choice_and_phone_normalisation():
    assert choose_locale(None, "pt-PT,pt;q=0.9,en;q=0.5") == "pt_BR"
    assert choose_locale("ru", None) == "ru_RU"
    assert choose_locale("de", "de-CH") == "en"
    assert choose_locale("fa-IR", None) == "fa_IR"
    assert normalize_phone("0055 21 98765-4321") == "+5521987654321"
    assert normalize_phone("21 98765-4321") is None


def _solar_hijri(day) -> str:
    """``day`` as Iran writes it, computed here with jdatetime and a digit table (not
    with the code under test): ``۱۴ آبان ۱۴۰۵``."""
    import jdatetime

    persian = str.maketrans("0123456789", "۰۱۲۳۴۵۶۷۸۹")
    j = jdatetime.date.fromgregorian(date=day)
    months = ["فروردین", "اردیبهشت", "خرداد", "تیر", "مرداد", "شهریور", "مهر", "آبان",
              "آذر", "دی", "بهمن", "اسفند"]
    return f"{str(j.day).translate(persian)} {months[j.month - 1]} {str(j.year).translate(persian)}"


def test_the_persian_page_reads_solar_hijri_dates_and_persian_digits(sub):
    """Issue 12: in fa_IR every date on the page is Solar Hijri and every amount in
    Persian digits; invoice numbers stay as printed."""
    from datetime import date

    phone = MAIN[2]
    assert sub.http.post("/access/code", data={"phone": phone, "lang": "fa_IR"}
                         ).status_code == 200
    code = sms_code(sub.outbox, phone)
    opened = sub.http.post("/access/session", data={"phone": phone, "code": code,
                                                     "lang": "fa_IR"}, follow_redirects=True)
    assert opened.status_code == 200, opened.text
    page = opened.text
    latest = page[page.index('id="latest"'):page.index('class="invoices"')]
    assert _solar_hijri(date(2026, 11, 5)) in latest  # issue date
    assert _solar_hijri(date(2026, 11, 20)) in latest  # due date
    assert "۱۰۴٫۷۵" in latest and "104" not in latest.replace("OI-2026-11-0000123", "")
    assert "OI-2026-11-0000123" in latest  # the identifier as printed
    assert "Nov" not in page and "2026-11-05" not in page
