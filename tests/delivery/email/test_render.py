"""The words of an invoice e-mail: templates in every locale, the brand, how to pay,
and markup from a record that stays text."""

from __future__ import annotations

import re

import pytest

from invoicer.delivery.email import (
    render_invoice_email,
    serialize,
)
from tests.support.mails import (
    BR,
    HOSTILE_RECORD,
    LOCALE_SAMPLES,
    SAMPLE,
    build,
    html_facts,
    parse,
    with_names,
)


@pytest.mark.parametrize("locale", sorted(LOCALE_SAMPLES))
def test_every_locale_renders_its_own_template(locale):
    record = SAMPLE[LOCALE_SAMPLES[locale]]
    assert record.invoice.locale == locale
    for link in (None, "https://invoices.example/d/tok"):
        mail = render_invoice_email(record, link=link)
        assert mail.locale == locale
        assert "\n" not in mail.subject and "{" not in mail.subject
        assert record.invoice.number in mail.subject
        html = html_facts(mail.html)
        rtl = locale == "fa_IR"
        assert f'<html lang="{locale.replace("_", "-")}" dir="{"rtl" if rtl else "ltr"}">' in (
            mail.html)
        for body in (mail.text, "".join(html.text)):
            assert record.invoice.number in body
            assert record.operator.name in body
            assert "{{" not in body and "{%" not in body
        if link:
            assert link in mail.text and link in html.hrefs
            assert f"{record.invoice.number}.pdf" not in mail.text
        else:
            assert f"{record.invoice.number}.pdf" in mail.text


def test_each_locale_speaks_its_language():
    words = {"en": "Dear", "pt_BR": "Olá", "ro_RO": "Bună ziua", "ru_RU": "Здравствуйте",
             "nl_NL": "Beste", "fa_IR": "گرامی"}
    for locale, number in LOCALE_SAMPLES.items():
        mail = render_invoice_email(SAMPLE[number])
        assert words[locale] in mail.text and words[locale] in mail.html, locale


def test_unknown_locale_falls_back_to_english():
    mail = render_invoice_email(SAMPLE["AF-2026-11-000777"])  # de_CH
    assert mail.locale == "en"
    assert "Dear Jürg Müller-Käser" in mail.text
    assert 'dir="ltr"' in mail.html
    # Another country of a language we have: that language first.
    pt = BR.model_copy(update={"invoice": BR.invoice.model_copy(update={"locale": "pt_PT"})})
    assert render_invoice_email(pt).locale == "pt_BR"


def test_brand_colour_name_and_support_contacts():
    mail = render_invoice_email(BR)
    assert "background:#00875a" in mail.html  # templates/brands/oi/brand.toml primary
    assert "Atendimento: *144 · https://www.oi.com.br" in mail.text
    assert "https://www.oi.com.br" in html_facts(mail.html).hrefs
    assert "Anatel" in mail.text and "Anatel" in mail.html  # the brand's legal footer


def test_amount_due_date_period_and_typeable_line():
    mail = render_invoice_email(BR)
    for body in (mail.text, mail.html):
        assert "R$\xa0104,75" in body
        assert "20/11/2026" in body
        assert "01/10/2026 a 31/10/2026" in body
        assert "84680000001-6 04750108000-7 00012345678-2 90202611200-0" in body
    assert mail.subject == ("Sua fatura Oi S.A. OI-2026-11-0000123: R$\xa0104,75, "
                            "vencimento 20/11/2026")


@pytest.mark.parametrize(("number", "expected"), [
    ("VT-2026-11-0003345", "отсканируйте QR-код из приложенного PDF-файла"),  # GOST QR
    ("PT-2026-11-0012012", "Scan de QR-code in de pdf-factuur"),  # EPC QR, linked PDF
    ("CT-2026-11-0000457", "CT5500778899-20261118-5069"),  # Code 128 reference
    ("CT-2026-11-0000999", "Nu trebuie să plătiți manual"),  # direct debit
    ("AB-2026-11-0900001", "نیازی به پرداخت دستی نیست"),  # direct debit, Persian
    ("PT-2026-11-0012999", "U heeft een tegoed van € 5,00"),  # credit
])
def test_how_to_pay_for_every_payment_kind(number, expected):
    record = SAMPLE[number]
    attach = record.delivery.attach_pdf
    mail = render_invoice_email(record, link=None if attach else "https://x.example/d")
    assert expected in mail.text.replace("\xa0", " ")
    assert expected in mail.html.replace("\xa0", " ")


def test_html_escapes_markup_from_the_record():
    mail = render_invoice_email(HOSTILE_RECORD)
    html = html_facts(mail.html)
    assert not {"script", "img", "b"} & set(html.tags)
    assert all(h.startswith("https://") for h in html.hrefs), html.hrefs
    text = "".join(html.text)
    assert "<script>alert('op')</script>" in text  # shown as text...
    assert "&lt;script&gt;" in mail.html  # ...because it was escaped
    assert '<img src=x onerror=alert(1)>' in text
    assert "<b>&amp;{{7*7}}</b>" in text  # the payment reference, not evaluated
    # The text part is not HTML: it shows the name as written, unescaped.
    assert "<script>alert('op')</script>" in mail.text


def test_a_javascript_support_link_is_not_a_link():
    operator = BR.operator.model_copy(update={"support": BR.operator.support.model_copy(
        update={"web": "javascript:alert(1)"})})
    mail = render_invoice_email(BR.model_copy(update={"operator": operator}))
    assert "javascript:" not in " ".join(html_facts(mail.html).hrefs)
    with pytest.raises(ValueError):
        render_invoice_email(BR, link="javascript:alert(1)")
    with pytest.raises(ValueError):
        render_invoice_email(BR, link='https://x.example/"><script>')


@pytest.mark.parametrize("name", [
    "Evil\r\nBcc: x@y", "Evil\nSubject: hi", "Evil\rX: y", "A\u2028B\u2029C", "A\x85B",
    "A\x0bB\x0cC", "Tab\tbed", "\u202eevil",
])
def test_subject_is_one_line_whatever_the_names(name):
    record = with_names(BR, customer=name, operator=f"Op {name}")
    mail = render_invoice_email(record)
    assert not re.search(r"[\r\n\x0b\x0c\x85\u2028\u2029\u202e]", mail.subject)
    message = build(record)
    data = serialize(message)
    head = data.split(b"\r\n\r\n", 1)[0].decode("ascii")
    assert not re.search(r"^(Bcc|X|Subject: hi)", head, re.M | re.I)
    assert [k for k in parse(data) if k.lower() == "subject"] == ["Subject"]


def test_persian_mail_reads_solar_hijri_dates_and_persian_digits():
    """Issue 12: the fa_IR e-mail says the PDF's dates and amounts (Solar Hijri, Persian
    digits); ASCII digits remain only in identifiers, codes, phones and addresses."""
    import re

    record = SAMPLE["AB-2026-11-0000721"]  # due 2026-11-17 = 26 Aban 1405
    mail = render_invoice_email(record)
    assert "۲۶ آبان ۱۴۰۵" in mail.subject and "۴٬۱۸۰٬۹۹۰" in mail.subject
    assert "۲۶ آبان ۱۴۰۵" in mail.text and "۲۶ آبان ۱۴۰۵" in mail.html
    allowed = {record.invoice.number, record.account.number, record.payment.code,
               record.operator.support.phone}
    text = mail.text
    for value in sorted(filter(None, allowed), key=len, reverse=True):
        text = text.replace(value, "")
    text = re.sub(r"https?://\S+", "", text)
    assert not re.search(r"[0-9]", text), re.findall(r".{0,20}[0-9]+.{0,20}", text)
