"""The self-service page in Debian's Chromium (Playwright) at 390 px, in ``pt_BR`` and
``fa_IR`` (right to left): the payment code copied with the button, a QR code, direct
debit, overdue, the operator's branding; e-invoice/paper through the e-mailed link.

Every flow takes its screenshots; with ``INVOICER_SCREENSHOTS=docs/img`` they replace
those shown in ``docs/self-service.md``, otherwise they go to a temporary folder, so that
a test run never changes the checkout.
"""

from __future__ import annotations

import os
import tempfile
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from playwright.sync_api import expect

from invoicer.billing.paycodes import febraban
from tests.api.conftest import sms_code
from tests.api.self_service_world import EXTRA, add_samples, link_of, mails
from tests.api.world import MAIN

WIDTH = 390
SHOTS = Path(os.environ.get("INVOICER_SCREENSHOTS")
             or Path(tempfile.gettempdir()) / "invoicer-screenshots")
#: After the world's November due dates: unpaid invoices are overdue.
AFTER_DUE = datetime(2026, 11, 25, 12, tzinfo=UTC)
LANGS = {"pt_BR": ("pt-BR", "ltr"), "fa_IR": ("fa-IR", "rtl")}


def _context(browser, lang):
    tag, _ = LANGS[lang]
    context = browser.new_context(viewport={"width": WIDTH, "height": 844}, locale=tag,
                                  device_scale_factor=1)
    context.grant_permissions(["clipboard-read", "clipboard-write"])
    return context


def _sign_in(sub, page, lang, phone):
    before = len([m for m in sub.outbox.messages() if m.to == phone])
    page.goto(f"{sub.url}/access?lang={lang}")
    page.fill("#phone", phone)
    page.click("#send-code")
    page.wait_for_selector("#code")
    page.fill("#code", sms_code(sub.outbox, phone, after=before))
    page.click("#open")
    page.wait_for_selector("#latest")
    assert page.locator("html").get_attribute("dir") == LANGS[lang][1]


def _fits(page):
    assert page.evaluate("document.documentElement.scrollWidth") <= WIDTH


def _shot(page, name):
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


@pytest.mark.parametrize("lang", list(LANGS))
def test_payment_code_copy_qr_debit_overdue_and_branding(sub, browser, lang):
    add_samples(sub)
    sub.clock.now = AFTER_DUE
    context = _context(browser, lang)
    page = context.new_page()
    errors = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    # A code to copy: Oi's FEBRABAN line in Portuguese, Alborz's reference in Persian.
    phone, number, value = (
        (MAIN[2], "OI-2026-11-0000123",
         febraban.parse("84680000001047501080000001234567890202611200").formatted)
        if lang == "pt_BR" else
        (EXTRA["AB-2026-11-0000721"], "AB-2026-11-0000721", "8800012345000004180990"))
    _sign_in(sub, page, lang, phone)
    assert page.locator("#latest .status-overdue").count() == 1  # past due, unpaid
    assert page.input_value("#pay-code") == value
    button = page.locator("#copy-code")
    assert button.is_visible()  # the script ran: the CSP hash let it
    button.click()
    # Polled by Playwright's own injected script: the page's CSP forbids eval.
    expect(button).to_have_text({"pt_BR": "Copiado", "fa_IR": "رونوشت شد"}[lang])
    assert page.evaluate("navigator.clipboard.readText()") == page.input_value("#pay-code")
    assert page.locator("#brand").is_visible() and page.locator("#support").is_visible()
    brand = page.locator("header.brand").evaluate("e => getComputedStyle(e).backgroundColor")
    assert brand == {"pt_BR": "rgb(0, 135, 90)", "fa_IR": "rgb(11, 122, 117)"}[lang]
    if lang == "fa_IR":
        # The invoice number and the code stay left to right inside the RTL page.
        assert page.locator("#pay-code").evaluate("e => getComputedStyle(e).direction") == "ltr"
    assert number in page.inner_text("#latest")
    _fits(page)
    _shot(page, f"self-service-code-{lang}")
    # A QR code (EPC, Polder, with its logo) drawn as SVG.
    page.context.clear_cookies()
    _sign_in(sub, page, lang, EXTRA["PT-2026-11-0012012"])
    qr = page.locator("#pay-qr svg")
    assert qr.count() == 1 and qr.bounding_box()["width"] >= 150
    assert page.locator("#brand img").count() == 1  # the operator's logo, inline
    _fits(page)
    _shot(page, f"self-service-qr-{lang}")
    # Direct debit, collected and reported paid by the billing system: no code, the date.
    debit = sub.ledger.invoices.get("albion", "AM-2026-11-0031337")
    sub.ledger.invoices.set_payment_status(debit.id, "paid", paid_on=date(2026, 11, 16),
                                           source="test")
    page.context.clear_cookies()
    _sign_in(sub, page, lang, EXTRA["AM-2026-11-0031337"])
    assert page.locator("#pay-code").count() == 0
    assert {"pt_BR": "Paga em débito automático em 16 de novembro de 2026",
            "fa_IR": "با برداشت خودکار در"}[lang] in page.inner_text("#pay-text")
    assert page.locator("#latest .status-paid").count() == 1
    _fits(page)
    _shot(page, f"self-service-debit-{lang}")
    assert not [e for e in errors if "Content Security Policy" in e], errors
    context.close()


@pytest.mark.parametrize("lang", list(LANGS))
def test_switch_to_e_invoice_through_the_link_then_to_paper(sub, browser, lang):
    context = _context(browser, lang)
    page = context.new_page()
    _sign_in(sub, page, lang, MAIN[2])
    page.click("#change-delivery")
    page.wait_for_selector("#delivery-form")
    assert "Maria da Conceição Souza" in page.inner_text("#postal-address")
    page.check("#mode-electronic")
    page.fill("#email", "nova@example.com")
    _fits(page)
    _shot(page, f"self-service-choose-{lang}")
    page.click("#save-delivery")
    notice = page.inner_text("#notice")
    assert "nova@example.com" in notice
    page.click("#back")
    assert "nova@example.com" in page.inner_text("#waiting-choice")
    _shot(page, f"self-service-waiting-{lang}")
    # The link from the e-mail, opened in the same browser (no session needed).
    link = link_of(mails(sub)[-1])
    mail_page = context.new_page()
    mail_page.goto(f"{sub.url}/access/confirm/{link}?lang={lang}")
    assert "nova@example.com" in mail_page.inner_text("#confirm-question")
    _fits(mail_page)
    _shot(mail_page, f"self-service-confirm-{lang}")
    mail_page.click("#confirm")
    assert "nova@example.com" in mail_page.inner_text("#notice")
    # Opened again: refused.
    mail_page.goto(f"{sub.url}/access/confirm/{link}?lang={lang}")
    assert mail_page.locator("[role=alert]").count() == 1
    page.reload()
    pending = page.inner_text("#pending-choice")
    assert pending and page.locator("#waiting-choice").count() == 0
    _fits(page)
    _shot(page, f"self-service-pending-{lang}")
    # Paper: counts at once, pending until the next invoice.
    page.click("#change-delivery")
    page.check("#mode-paper")
    page.click("#save-delivery")
    page.click("#back")
    assert sub.ledger.preferences.current("oi", MAIN[1])[0].mode == "paper"
    assert page.locator("#pending-choice").count() == 1
    context.close()
