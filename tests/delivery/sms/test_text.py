"""The SMS notice's text: every locale, its encoding and parts, hostile values kept as
plain text."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from invoicer.billing import parse_record
from invoicer.billing.models import BillingRecord, Payment
from invoicer.delivery.sms import (
    gsm,
    operator_short_name,
    render_sms,
)
from invoicer.l10n import formats

SAMPLES = Path(__file__).resolve().parents[3] / "samples" / "invoices.jsonl"
LINK = "https://t.example/i/Ab3dE9"
TOKEN = "s3cret-token"
PHONE = "+5521987654321"




@pytest.fixture(scope="module")
def samples() -> dict[str, BillingRecord]:
    """The sample records by invoice number."""
    records = {}
    # JSON Lines split on "\n" only: the hostile record holds U+0085 (see samples/README).
    for line in SAMPLES.read_bytes().split(b"\n"):
        if line.strip():
            record = parse_record(line)
            records[record.invoice.number] = record
    return records


# --- texts -----------------------------------------------------------------------------

# invoice number: (locale, encoding, segments without a link, segments with LINK)
EXPECTED = {
    "OI-2026-11-0000123": ("pt_BR", "gsm7", 1, 1),  # typeable line; the link is not used
    "OI-2026-10-0004417": ("pt_BR", "gsm7", 1, 1),
    "OI-2026-10-0100052": ("pt_BR", "gsm7", 1, 1),
    "OI-2026-09-0007781": ("pt_BR", "gsm7", 1, 1),
    "OI-2026-10-0020001": ("pt_BR", "gsm7", 1, 1),
    "CT-2026-11-0000457": ("ro_RO", "gsm7", 1, 1),  # Code 128 reference
    "CT-2026-11-0000999": ("ro_RO", "gsm7", 1, 1),  # direct debit
    "VT-2026-11-0003345": ("ru_RU", "ucs2", 1, 2),  # GOST QR: nothing to type
    "VT-2026-11-0005000": ("ru_RU", "ucs2", 1, 2),
    "PT-2026-11-0012012": ("nl_NL", "gsm7", 1, 1),  # EPC QR: nothing to type
    "PT-2026-11-0012999": ("nl_NL", "gsm7", 1, 1),  # credit
    "AB-2026-11-0000721": ("fa_IR", "ucs2", 2, 2),  # 22-digit Code 128 reference
    "AB-2026-11-0900001": ("fa_IR", "ucs2", 1, 2),  # direct debit
    "AM-2026-11-0031337": ("en", "gsm7", 1, 1),  # direct debit
    "LW-2026-11-000042": ("en", "gsm7", 1, 1),
    "AF-2026-11-000777": ("de_CH", "gsm7", 1, 1),  # English text, Swiss formats
    "AM-2026-11-0066666": ("en", "gsm7", 1, 1),  # hostile text
    # billing-record/1.1 business records asking for an e-invoice
    "PT-2026-11-0900020": ("nl_NL", "gsm7", 1, 1),  # Factur-X, EPC QR
    "SW-2026-11-0004711": ("en", "gsm7", 1, 1),  # XRechnung CII, SEPA direct debit
    "SW-2026-11-0004712": ("en", "gsm7", 1, 1),  # XRechnung UBL, EPC QR
    "PT-2026-11-0900021": ("nl_NL", "gsm7", 1, 1),  # Peppol BIS 3, EPC QR
    "CT-2026-11-0900005": ("ro_RO", "gsm7", 1, 1),  # RO_CIUS, Code 128 reference
}


def test_every_sample_is_expected(samples):
    assert set(samples) == set(EXPECTED)


@pytest.mark.parametrize("number", sorted(EXPECTED))
def test_sample_renders_within_its_segments(samples, number):
    record = samples[number]
    locale, enc, plain, linked = EXPECTED[number]
    assert record.invoice.locale == locale
    for link, segments in ((None, plain), (LINK, linked)):
        sms = render_sms(record, link)
        assert (sms.encoding, sms.segments) == (enc, segments), sms.text
        assert gsm.describe(sms.text).count == sms.segments
        assert "".join(sms.parts) == sms.text
        # One paragraph, nothing a phone would show as a box or a line break.
        assert sms.text == sms.text.strip() and "  " not in sms.text
        assert not any(ch in sms.text for ch in "\r\n\t\u00a0\u202f\u200e\u200f")


def test_golden_texts(samples):
    assert render_sms(samples["OI-2026-11-0000123"]).text == (
        "Oi: sua fatura de R$ 104,75 vence em 20/11/2026. Linha digitavel: "
        "84680000001-6 04750108000-7 00012345678-2 90202611200-0")
    assert render_sms(samples["CT-2026-11-0000457"]).text == (
        "Carpati Telecom: factura de 50,69 RON are scadenta 18.11.2026. "
        "Cod de plata: CT5500778899-20261118-5069")
    assert render_sms(samples["VT-2026-11-0003345"]).text == (
        "Волга Телеком: счёт 2 850,80 ₽, оплатить до 25.11.2026.")
    assert render_sms(samples["PT-2026-11-0012012"], LINK).text == (
        "Polder Telecom: uw factuur van € 98,49 moet uiterlijk 18-11-2026 betaald zijn. "
        f"Betaal of bekijk: {LINK}")
    assert render_sms(samples["AB-2026-11-0900001"]).text == (
        # fa_IR as Iran reads it: Persian digits, the Solar Hijri date (issue 12)
        "البرز: مبلغ ریال ۱۰٬۳۴۵٬۵۰۰ در ۲۶ آبان ۱۴۰۵ خودکار برداشت می\u200cشود.")
    assert render_sms(samples["AM-2026-11-0031337"]).text == (
        "Albion Mobile: your bill of £42.90 will be collected by Direct Debit on "
        "Nov 16, 2026. No action needed.")


def test_hostile_values_stay_literal_text(samples):
    sms = render_sms(samples["AM-2026-11-0066666"])
    # Not evaluated, not escaped: an SMS is plain text.
    assert sms.text.endswith("Payment reference: <b>&amp;{{7*7}}</b> 38.90")
    assert "<script>" not in sms.text  # the brand's short name, not the record's name
    assert sms.encoding == "gsm7" and sms.segments == 1


def test_unknown_locale_falls_back_to_english_with_its_own_formats(samples):
    sms = render_sms(samples["AF-2026-11-000777"])
    # de_CH's own date, as its PDF prints it (invoicer.l10n), in English words
    assert sms.text == ("Alpenfunk: your bill of CHF 59.46 will be collected by Direct "
                        "Debit on 30.11.26. No action needed.")


def with_changes(record: BillingRecord, *, payment: dict | None = None,
                 total: str | None = None, **operator: str) -> BillingRecord:
    """A copy of ``record`` with another payment, total or operator (unvalidated on
    purpose: the renderer must hold up whatever it is handed)."""
    update: dict = {}
    if payment is not None:
        update["payment"] = Payment.model_validate(payment)
    if total is not None:
        update["totals"] = record.totals.model_copy(update={"total_due": Decimal(total)})
    if operator:
        update["operator"] = record.operator.model_copy(update=operator)
    return record.model_copy(update=update)


BASES = {"en": "LW-2026-11-000042", "pt_BR": "OI-2026-11-0000123",
         "ro_RO": "CT-2026-11-0000457", "ru_RU": "VT-2026-11-0003345",
         "nl_NL": "PT-2026-11-0012012", "fa_IR": "AB-2026-11-0000721"}
FEBRABAN = "84680000001047501080000001234567890202611200"
SCENARIOS = {
    "typeable": dict(payment={"method": "barcode", "scheme": "febraban", "code": FEBRABAN}),
    "reference": dict(payment={"method": "barcode", "scheme": "code128",
                               "code": "REF-0000123456"}),
    "link": dict(payment={"method": "barcode", "scheme": "epc_qr", "code": "x"}, link=LINK),
    "nothing": dict(payment={"method": "barcode", "scheme": "epc_qr", "code": "x"}),
    "debit": dict(payment={"method": "direct_debit"}, link=LINK),
    "credit": dict(payment={"method": "none"}, total="-5.00", link=LINK),
    "zero": dict(payment={"method": "none"}, total="0.00"),
}
# The most parts each scenario may take: GSM locales one SMS (two for the 55-digit
# FEBRABAN line outside Brazil), UCS-2 locales two.
BUDGET = {"gsm7": {"typeable": 2}, "ucs2": {}}


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
@pytest.mark.parametrize("locale", sorted(BASES))
def test_every_locale_and_case_fits_its_budget(samples, locale, scenario):
    spec = dict(SCENARIOS[scenario])
    link = spec.pop("link", None)
    record = with_changes(samples[BASES[locale]], **spec)
    sms = render_sms(record, link)
    enc = "ucs2" if locale in ("ru_RU", "fa_IR") else "gsm7"
    budget = BUDGET[enc].get(scenario, 1 if enc == "gsm7" else 2)
    assert sms.encoding == enc, gsm.non_gsm_characters(sms.text)
    assert sms.segments <= budget, sms.text
    assert sms.text.startswith(operator_short_name(record.operator.id, record.operator.name,
                                                   locale) + ":")
    if scenario in ("typeable", "reference", "link", "nothing", "debit"):
        loc = formats(locale)  # what the PDF prints
        amount = loc.money(record.totals.total_due, record.invoice.currency)
        assert amount.replace("\u00a0", " ").replace("\u202f", " ") in sms.text
        assert loc.date(record.invoice.due_date) in sms.text
    expected_bits = {"typeable": "84680000001-6 04750108000-7", "reference": "REF-0000123456",
                     "link": LINK, "debit": LINK, "credit": LINK}
    if scenario in expected_bits:
        assert expected_bits[scenario] in sms.text


def test_values_lose_control_characters_line_breaks_and_bidi_overrides(samples):
    record = with_changes(samples["LW-2026-11-000042"], id="nova-tel",
                          name="Nova\r\nTel\u202e\x07 \u200bMobile Inc.")
    sms = render_sms(record)
    assert sms.text.startswith("Nova Tel Mobile: your bill of $51.11")
    assert sms.encoding == "gsm7"


def test_gsm_locales_spell_foreign_names_in_gsm(samples):
    record = with_changes(samples["CT-2026-11-0000457"], id="tara",
                          name="Țara Mobilă S.R.L.")
    sms = render_sms(record)
    assert sms.text.startswith("Tara Mobila: factura de 50,69 RON")
    assert sms.encoding == "gsm7" and sms.segments == 1


def test_a_reference_is_never_transliterated(samples):
    # A backtick is printable ASCII (Code 128 allows it) but not GSM: UCS-2, unchanged.
    record = with_changes(samples["LW-2026-11-000042"],
                          payment={"method": "barcode", "scheme": "code128",
                                   "code": "LW`42"})
    sms = render_sms(record)
    assert "LW`42" in sms.text and sms.encoding == "ucs2"


def test_swiss_apostrophe_separator_is_folded(samples):
    record = with_changes(samples["AF-2026-11-000777"], total="4537.69")
    sms = render_sms(record)
    assert "CHF 4'537.69" in sms.text and sms.encoding == "gsm7"


@pytest.mark.parametrize("link", ["javascript:alert(1)", "https://x.example/a b",
                                  "https://x.example/\n", "ftp://x.example/f"])
def test_bad_links_are_refused(samples, link):
    with pytest.raises(ValueError, match="link"):
        render_sms(samples["LW-2026-11-000042"], link)


def test_short_names():
    assert operator_short_name("oi", "Oi S.A.", "pt_BR") == "Oi"
    assert operator_short_name("volga", "ПАО «Волга Телеком»", "ru_RU") == "Волга Телеком"
    assert operator_short_name("volga", "ПАО «Волга Телеком»", "en") == "Volga Telecom"
    assert operator_short_name("x", "Lakeshore Wireless Inc.", "en") == "Lakeshore Wireless"
    assert operator_short_name("x", "Alpenfunk AG", "de_CH") == "Alpenfunk"
    assert operator_short_name("x", "ООО Связь", "ru_RU") == "Связь"
    assert operator_short_name("x", "Very Long Operator Name Telecommunications Ltd",
                               "en") == "Very Long Operator Name"


def test_printable_text_takes_the_short_path_of_clean_value_safely():
    """clean_value's short path for str.isprintable() text rests on this: no printable
    character is whitespace (but " "), a control, a format character or a surrogate,
    so the character loop would have kept each one as it is."""
    import sys
    import unicodedata

    for code in range(sys.maxunicode + 1):
        ch = chr(code)
        if ch.isprintable():
            assert not ch.isspace() or ch == " ", hex(code)
            assert unicodedata.category(ch) not in ("Cc", "Cs", "Cf"), hex(code)


def test_clean_value_is_the_character_loop_for_any_text():
    import random
    import re
    import unicodedata

    from invoicer.delivery.sms.text import _FOLD, _KEEP_FORMAT, clean_value

    def by_characters(value) -> str:  # clean_value before its short path
        text = unicodedata.normalize("NFC", str(value))
        out = []
        for ch in text:
            if ch.isspace():
                out.append(" ")
                continue
            category = unicodedata.category(ch)
            if category in ("Cc", "Cs") or (category == "Cf" and ch not in _KEEP_FORMAT):
                continue
            out.append(ch)
        return re.sub(r"\s+", " ", "".join(out).translate(_FOLD)).strip()

    rng = random.Random(5)
    alphabet = ("aZ9 .,'’“”–—…\u00a0\u202f\u2028\t\n\x00\x7f\u200c\u200d\u200e\u202e"
                "\ufeffçãéşțژ€₽e\u0301\ue000\U0010fffd")
    values = [None, 0, 104.75, "", " ", "R$\u00a0104,75", "e\u0301", "  a  b  "]
    values += ["".join(rng.choice(alphabet) for _ in range(rng.randrange(30)))
               for _ in range(5000)]
    for value in values:
        expected = "" if value is None else by_characters(value)
        assert clean_value(value) == expected, repr(value)
