"""The detailed bill, the fleet manager's and a line's own flows on the subscriber page,
in a real headless Chromium (Debian's ``chromium``, Playwright) at 390 px, in ``pt_BR``
and ``fa_IR`` (right to left).

Screenshots go to the test's folder; with ``INVOICER_SCREENSHOTS=docs/img`` they are
also written there (that is how ``docs/img/*-{pt_BR,fa_IR}.png`` were made).
"""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path

import pytest

from invoicer.billing import parse_record
from invoicer.renderer import render_details
from invoicer.workflows.second_copy import canonical_key
from tests.api.conftest import auth, sms_code
from tests.api.fleet_world import HOSTILE, MANAGER, NORRSKEN, OI_BUSINESS
from tests.api.world import MAIN

WIDTH = 390
LATEST = "OI-2026-11-0000123"
LANGS = {"pt_BR": "pt-BR", "fa_IR": "fa-IR"}


def screenshot(page, tmp_path: Path, name: str) -> None:
    page.screenshot(path=str(tmp_path / name), full_page=True)
    target = os.environ.get("INVOICER_SCREENSHOTS")
    if target:
        Path(target).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(target) / name), full_page=True)


def sign_in(sub, browser, lang: str, phone: str):
    context = browser.new_context(viewport={"width": WIDTH, "height": 844},
                                  accept_downloads=True, locale=LANGS[lang])
    page = context.new_page()
    page.goto(f"{sub.url}/access?lang={lang}")
    assert page.locator("html").get_attribute("dir") == ("rtl" if lang == "fa_IR" else "ltr")
    before = len([m for m in sub.outbox.messages() if m.to == phone])
    page.fill("#phone", phone)
    page.click("#send-code")
    page.wait_for_selector("#code")
    page.fill("#code", sms_code(sub.outbox, phone, after=before))
    page.click("#open")
    return context, page


def fits(page) -> None:
    """Nothing wider than the phone's screen."""
    assert page.evaluate("document.documentElement.scrollWidth") <= WIDTH


def csv_rows(download, tmp_path: Path, name: str) -> list[list[str]]:
    path = tmp_path / name
    download.save_as(path)
    return list(csv.reader(io.StringIO(path.read_bytes().decode("utf-8-sig"))))


@pytest.mark.parametrize("lang", ["pt_BR", "fa_IR"])
def test_a_subscriber_gets_the_detailed_bill_as_pdf_and_csv(sub, browser, tmp_path,
                                                            lang):
    context, page = sign_in(sub, browser, lang, MAIN[2])
    page.wait_for_selector("#latest")
    page.locator(f"li[data-number='{LATEST}'] a.details-link").click()
    page.wait_for_selector("#whole")
    fits(page)
    screenshot(page, tmp_path, f"detailed-bill-{lang}.png")
    with page.expect_download() as got:
        page.click("#details-pdf")
    pdf = tmp_path / "details.pdf"
    got.value.save_as(pdf)
    invoice = sub.ledger.invoices.get("oi", LATEST)
    record = parse_record(sub.archive.get(canonical_key(invoice)))
    assert pdf.read_bytes() == render_details(record)
    assert pdf.read_bytes() == sub.archive.get(
        sub.ledger.detailed_bills.get(invoice.id).archive_key)
    with page.expect_download() as got:
        page.click("#details-csv")
    rows = csv_rows(got.value, tmp_path, "details.csv")
    assert got.value.suggested_filename == f"{LATEST}-details.csv"
    assert len(rows) == 1 + len(record.services[0].usage)
    context.close()


@pytest.mark.parametrize("lang", ["pt_BR", "fa_IR"])
def test_a_fleet_manager_sees_every_line_and_each_lines_details(fleet, browser,
                                                                tmp_path, lang):
    url = f"/v1/billing/operators/oi/accounts/{OI_BUSINESS[1]}/managers"
    assert fleet.http.put(url, json={"managers": [{"phone": MANAGER}]},
                          headers=auth(fleet.billing)).status_code == 200
    context, page = sign_in(fleet, browser, lang, MANAGER)
    page.wait_for_selector("#latest")
    assert OI_BUSINESS[1] in page.inner_text("main")
    number = fleet.numbers["oi"][0]
    page.locator(f"li[data-number='{number}'] a.details-link").click()
    page.wait_for_selector("#lines")
    lines = page.locator("#lines li")
    assert lines.count() == 2
    # The amount as the invoices and the page's list show amounts (l10n).
    from decimal import Decimal

    from invoicer.l10n import formats

    first = lines.nth(0).inner_text()
    assert formats(lang).money(Decimal("83.00"), "BRL") in first
    fits(page)
    screenshot(page, tmp_path, f"fleet-manager-{lang}.png")
    second = OI_BUSINESS[3][1]
    with page.expect_download() as got:
        page.locator(f"li[data-line='{second}'] a[download]").click()
    rows = csv_rows(got.value, tmp_path, "line.csv")
    assert {r[0] for r in rows[1:]} == {"'" + second}
    assert rows[1][4] == "'" + HOSTILE  # a formula arrives as text
    with page.expect_download() as got:
        page.locator(f"li[data-line='{second}'] button").click()
    pdf = tmp_path / "line.pdf"
    got.value.save_as(pdf)
    invoice = fleet.ledger.invoices.get("oi", number)
    assert pdf.read_bytes() == fleet.archive.get(
        fleet.ledger.detailed_bills.get(invoice.id, second).archive_key)
    context.close()


@pytest.mark.parametrize("lang", ["pt_BR", "fa_IR"])
def test_a_lines_own_phone_sees_only_its_line(fleet, browser, tmp_path, lang):
    mine = NORRSKEN[3][1]
    context, page = sign_in(fleet, browser, lang, mine)
    page.wait_for_selector("#line-invoices")
    assert page.url.split("?")[0].endswith("/access/line")
    text = page.inner_text("main")
    assert mine in text and NORRSKEN[3][0] not in text
    fits(page)
    screenshot(page, tmp_path, f"line-{lang}.png")
    with page.expect_download() as got:
        page.locator("#line-invoices li").first.locator("a[download]").click()
    rows = csv_rows(got.value, tmp_path, "mine.csv")
    assert {r[0] for r in rows[1:]} == {"'" + mine}
    # Its section of the latest invoice: its charges and calls, its details.
    page.locator("#line-invoices li").first.locator("a.section-link").click()
    page.wait_for_selector("#section")
    assert "Frota — linha 2" in page.inner_text("#section")
    fits(page)
    with page.expect_download() as got:
        page.click("#section-pdf")
    assert got.value.suggested_filename.endswith(".pdf")
    page.goto(f"{fleet.url}/access/line?lang={lang}")
    # The account's list is not for this session.
    page.goto(f"{fleet.url}/access/invoices?lang={lang}")
    assert page.locator("ul.invoices").count() == 0
    number = fleet.numbers["norrsken"][0]
    page.goto(f"{fleet.url}/access/invoices/{number}/details?lang={lang}")
    assert page.url.split("?")[0].endswith("/access/line")
    context.close()
