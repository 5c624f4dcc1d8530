"""The SMS notice: texts per locale, the gateways (file, memory, a real HTTP server on
loopback), retries, and delivery receipts (delivery.sms)."""

from __future__ import annotations

import json
import multiprocessing
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from invoicer.billing import parse_record
from invoicer.billing.models import BillingRecord, Payment
from invoicer.delivery import gsm
from invoicer.delivery.errors import PermanentDeliveryError, TransientDeliveryError
from invoicer.delivery.sms import (
    FileSmsOutbox,
    HttpSmsGateway,
    MemorySmsGateway,
    SmsGateway,
    SmsResult,
    gateway_from_url,
    operator_short_name,
    parse_receipt,
    render_sms,
    retry_transient,
)
from invoicer.renderer.i18n import for_locale
from tests.delivery.conftest import SmsGatewayServer, SmsReply, closed_port

SAMPLES = Path(__file__).resolve().parents[2] / "samples" / "invoices.jsonl"
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
        "البرز: مبلغ ریال 10,345,500 در 2026/11/17 خودکار برداشت می\u200cشود.")
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
    assert sms.text == ("Alpenfunk: your bill of CHF 59.46 will be collected by Direct "
                        "Debit on 30.11.2026. No action needed.")


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
        loc = for_locale(locale)
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


# --- the gateways: one contract, every backend -----------------------------------------


@pytest.fixture(params=["file", "memory", "http"])
def sms_backend(request, tmp_path):
    """``(gateway, delivered)``: the backend, and a function listing what it delivered
    as ``(reference, to, text)`` (for HTTP: what the gateway accepted, once per key)."""
    if request.param == "file":
        outbox = FileSmsOutbox(tmp_path / "sms")
        return outbox, lambda: [(m.reference, m.to, m.text) for m in outbox.messages()]
    if request.param == "memory":
        memory = MemorySmsGateway()
        return memory, lambda: [(m.reference, m.to, m.text) for m in memory.messages]
    server = request.getfixturevalue("sms_gateway_server")
    gateway = HttpSmsGateway(f"{server.url}/v1/messages", TOKEN, timeout=2)

    def delivered():
        first = {}
        for r in server.received:
            body = r.json()
            key = r.headers["idempotency-key"]
            if key in server.accepted:
                first.setdefault(key, (body["reference"], body["to"], body["text"]))
        return list(first.values())

    return gateway, delivered


def test_contract_send_once_per_reference(sms_backend):
    gateway, delivered = sms_backend
    assert isinstance(gateway, SmsGateway)
    text = "Oi: sua fatura de R$ 104,75 vence em 20/11/2026."
    first = gateway.send(PHONE, text, reference="oi:OI-1:sms:1")
    assert first.segments == 1 and first.message_id and not first.already_sent
    again = gateway.send(PHONE, text, reference="oi:OI-1:sms:1")
    assert again.message_id == first.message_id and again.segments == 1
    other = gateway.send(PHONE, "a" * 161, reference="oi:OI-1:sms:2")  # a deliberate resend
    assert other.segments == 2 and other.message_id != first.message_id
    assert delivered() == [("oi:OI-1:sms:1", PHONE, text), ("oi:OI-1:sms:2", PHONE, "a" * 161)]


@pytest.mark.parametrize(("to", "text", "reference"), [
    ("5521987654321", "hi", "r1"),  # not E.164
    ("+5521 98765", "hi", "r1"),
    (PHONE, "", "r1"),
    (PHONE, "   ", "r1"),
    (PHONE, "a" * (153 * 10 + 1), "r1"),  # 11 parts
    (PHONE, "hi", ""),
    (PHONE, "hi", "ref with space"),
    (PHONE, "hi", "ref\r\nX-Injected: 1"),
])
def test_contract_refuses_bad_arguments_before_any_io(sms_backend, to, text, reference):
    gateway, delivered = sms_backend
    with pytest.raises(ValueError):
        gateway.send(to, text, reference=reference)
    assert delivered() == []


# --- HTTP gateway ----------------------------------------------------------------------


def http_gateway(server: SmsGatewayServer, **options) -> HttpSmsGateway:
    return HttpSmsGateway(f"{server.url}/v1/messages?account=acme", TOKEN,
                          **{"timeout": 2.0, **options})


def test_http_request_as_the_gateway_receives_it(sms_gateway_server):
    server = sms_gateway_server
    text = "Polder Telecom: uw factuur van € 98,49 moet uiterlijk 18-11-2026 betaald zijn."
    result = http_gateway(server).send("+31612345678", text, reference="polder:PT-1:sms:1")
    assert result == SmsResult("gw-1", 1)
    (request,) = server.received
    assert (request.method, request.path) == ("POST", "/v1/messages?account=acme")
    assert request.headers["authorization"] == f"Bearer {TOKEN}"
    assert request.headers["idempotency-key"] == "polder:PT-1:sms:1"
    assert request.headers["content-type"] == "application/json; charset=utf-8"
    assert request.json() == {"to": "+31612345678", "text": text,
                              "reference": "polder:PT-1:sms:1", "encoding": "gsm7",
                              "segments": 1}


GOLDEN = [
    ("plain GSM, 161 characters", "a" * 161, "gsm7", 2),
    ("€ at a part boundary", "a" * 152 + "€" + "b" * 10, "gsm7", 2),
    ("Romanian with ș ț", "Carpați Telecom: factura de 50,69 RON are scadența 18.11.2026. "
     "Cod de plată: CT5500778899-20261118-5069", "ucs2", 2),
    ("Romanian without diacritics", "Carpati Telecom: factura de 50,69 RON are scadenta "
     "18.11.2026. Cod de plata: CT5500778899-20261118-5069", "gsm7", 1),
    ("Persian", "البرز: صورتحساب ریال 4,180,990، مهلت پرداخت 2026/11/17.", "ucs2", 1),
    ("Persian with a reference", "البرز: صورتحساب ریال 4,180,990، مهلت پرداخت 2026/11/17. "
     "شناسه پرداخت: 8800012345000004180990", "ucs2", 2),
    ("emoji at 70 units", "a" * 68 + "😀", "ucs2", 1),
    ("emoji across 67", "a" * 66 + "😀" + "b" * 10, "ucs2", 2),
]


@pytest.mark.parametrize(("name", "text", "enc", "segments"), GOLDEN,
                         ids=[g[0] for g in GOLDEN])
def test_http_golden_segment_counts(sms_gateway_server, name, text, enc, segments):
    result = http_gateway(sms_gateway_server).send(PHONE, text, reference="r-1")
    assert result.segments == segments
    body = sms_gateway_server.received[0].json()
    assert (body["encoding"], body["segments"], body["text"]) == (enc, segments, text)


def test_http_429_then_200_is_delivered_once_after_a_retry(sms_gateway_server):
    server = sms_gateway_server
    server.reply(SmsReply(429, {"error": "slow down"}, headers={"Retry-After": "2"}))
    gateway = http_gateway(server)
    sleeps: list[float] = []
    result = retry_transient(lambda: gateway.send(PHONE, "hello", reference="oi:OI-9:sms:1"),
                             sleep=sleeps.append)
    assert sleeps == [2.0]  # the gateway's Retry-After, not our backoff
    assert [r.headers["idempotency-key"] for r in server.received] == ["oi:OI-9:sms:1"] * 2
    assert server.accepted == {"oi:OI-9:sms:1": result.message_id}


def test_http_400_is_permanent_and_not_retried(sms_gateway_server):
    server = sms_gateway_server
    server.reply(SmsReply(400, {"error": "number not mobile\r\nX-Evil: 1"}))
    gateway = http_gateway(server)
    sleeps: list[float] = []
    with pytest.raises(PermanentDeliveryError, match="HTTP 400") as caught:
        retry_transient(lambda: gateway.send(PHONE, "hello", reference="r-400"),
                        sleep=sleeps.append)
    assert "number not mobile X-Evil: 1" in str(caught.value)  # one line, gateway's words
    assert sleeps == [] and len(server.received) == 1 and server.accepted == {}


def test_http_503_with_retry_after(sms_gateway_server):
    server = sms_gateway_server
    server.reply(SmsReply(503, "maintenance", headers={"Retry-After": "7"}))
    with pytest.raises(TransientDeliveryError, match="HTTP 503") as caught:
        http_gateway(server).send(PHONE, "hello", reference="r-503")
    assert caught.value.retry_after == 7.0


def test_http_retry_after_beyond_the_in_process_limit_is_left_to_the_queue(
        sms_gateway_server):
    server = sms_gateway_server
    server.reply(SmsReply(429, headers={"Retry-After": "120"}))
    gateway = http_gateway(server)
    sleeps: list[float] = []
    with pytest.raises(TransientDeliveryError) as caught:
        retry_transient(lambda: gateway.send(PHONE, "hi", reference="r-1"),
                        sleep=sleeps.append, max_delay=30)
    assert caught.value.retry_after == 120.0 and sleeps == [] and len(server.received) == 1


def test_http_5xx_retried_with_growing_delays_then_given_up(sms_gateway_server):
    server = sms_gateway_server
    server.reply(SmsReply(500), SmsReply(502), SmsReply(504))
    gateway = http_gateway(server)
    sleeps: list[float] = []
    with pytest.raises(TransientDeliveryError, match="HTTP 504"):
        retry_transient(lambda: gateway.send(PHONE, "hi", reference="r-1"), attempts=3,
                        base_delay=0.5, sleep=sleeps.append, rand=lambda: 1.0)
    assert sleeps == [0.5, 1.0] and len(server.received) == 3


def test_http_timeout_is_transient(sms_gateway_server):
    server = sms_gateway_server
    server.reply(SmsReply(stall=3.0))
    gateway = http_gateway(server, timeout=0.3)
    started = time.monotonic()
    with pytest.raises(TransientDeliveryError, match="timed out"):
        gateway.send(PHONE, "hi", reference="r-slow")
    assert time.monotonic() - started < 2.0


def test_http_connection_refused_is_transient():
    gateway = HttpSmsGateway(f"http://127.0.0.1:{closed_port()}/send", TOKEN,
                             connect_timeout=1)
    with pytest.raises(TransientDeliveryError) as caught:
        gateway.send(PHONE, "hi", reference="r-down")
    assert isinstance(caught.value.__cause__, OSError)


def test_http_501_is_permanent(sms_gateway_server):
    sms_gateway_server.reply(SmsReply(501))
    with pytest.raises(PermanentDeliveryError):
        http_gateway(sms_gateway_server).send(PHONE, "hi", reference="r-1")


def test_http_answer_without_an_id_and_the_gateways_own_count(sms_gateway_server):
    server = sms_gateway_server
    server.reply(SmsReply(202, ""), SmsReply(200, {"id": 12345, "segments": 3}),
                 SmsReply(200, "<html>ok</html>"))
    gateway = http_gateway(server)
    assert gateway.send(PHONE, "hi", reference="r-1") == SmsResult("r-1", 1)
    assert gateway.send(PHONE, "hi", reference="r-2") == SmsResult("12345", 3)
    assert gateway.send(PHONE, "hi", reference="r-3") == SmsResult("r-3", 1)


def test_retry_after_as_an_http_date():
    from invoicer.delivery.sms import _retry_after

    now = datetime(2026, 11, 5, 10, 0, 0, tzinfo=UTC)
    assert _retry_after("Thu, 05 Nov 2026 10:00:10 GMT", lambda: now) == 10.0
    assert _retry_after("Thu, 05 Nov 2026 09:00:00 GMT", lambda: now) == 0.0
    assert _retry_after("soon", lambda: now) is None
    assert _retry_after(None) is None


# --- URLs ------------------------------------------------------------------------------


def test_http_from_url_token_in_the_password_and_options(monkeypatch):
    monkeypatch.delenv("INVOICER_SMS_TOKEN", raising=False)
    gateway = gateway_from_url("https://:tok%2Fen@sms.example.com:8443/v1/send?"
                               "timeout=3&connect_timeout=1.5&account=acme")
    assert isinstance(gateway, HttpSmsGateway)
    assert gateway.endpoint == "https://sms.example.com:8443/v1/send?account=acme"
    assert (gateway.token, gateway.timeout, gateway.connect_timeout) == ("tok/en", 3.0, 1.5)
    assert "tok" not in repr(gateway)


def test_http_from_url_token_in_the_query_or_the_environment(monkeypatch):
    monkeypatch.delenv("INVOICER_SMS_TOKEN", raising=False)
    gateway = HttpSmsGateway.from_url("https://sms.example.com/send?token=abc&x=1")
    assert (gateway.token, gateway.endpoint) == ("abc", "https://sms.example.com/send?x=1")
    monkeypatch.setenv("INVOICER_SMS_TOKEN", "from-env")
    assert HttpSmsGateway.from_url("https://sms.example.com/send").token == "from-env"


@pytest.mark.parametrize("url", [
    "https://sms.example.com/send",  # no token anywhere
    "https://tok@sms.example.com/send",  # a user name would be printed unmasked
    "https://sms.example.com/send?token=a&timeout=soon",
    "https://sms.example.com/send?token=a&timeout=0",
    "https:///send?token=a",
])
def test_http_from_url_refuses(monkeypatch, url):
    monkeypatch.delenv("INVOICER_SMS_TOKEN", raising=False)
    with pytest.raises(ValueError):
        gateway_from_url(url)


def test_gateway_from_url_default_and_environment(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("INVOICER_SMS_URL", raising=False)
    default = gateway_from_url()
    assert isinstance(default, FileSmsOutbox) and default.root == Path("var/sms")
    monkeypatch.setenv("INVOICER_SMS_URL", "memory://")
    assert isinstance(gateway_from_url(), MemorySmsGateway)
    assert gateway_from_url("file:///tmp/x/sms").root == Path("/tmp/x/sms")
    with pytest.raises(ValueError, match="unknown SMS scheme"):
        gateway_from_url("smpp://smsc.example.com")


# --- file outbox -----------------------------------------------------------------------


def test_file_outbox_lines(tmp_path):
    clock = lambda: datetime(2026, 11, 5, 9, 30, tzinfo=UTC)  # noqa: E731
    outbox = FileSmsOutbox(tmp_path / "sms", clock=clock)
    outbox.send(PHONE, "Olá 😀", reference="oi:OI-1:sms:1")
    (line,) = (tmp_path / "sms" / "outbox.jsonl").read_bytes().split(b"\n")[:-1]
    assert json.loads(line) == {
        "message_id": outbox.messages()[0].message_id, "reference": "oi:OI-1:sms:1",
        "to": PHONE, "text": "Olá 😀", "encoding": "ucs2", "segments": 1,
        "at": "2026-11-05T09:30:00Z"}


def test_file_outbox_idempotent_across_instances_and_restarts(tmp_path):
    first = FileSmsOutbox(tmp_path / "sms")
    sent = first.send(PHONE, "hello", reference="r-1")
    # Another process (or the same after a restart) sees the line and sends nothing.
    second = FileSmsOutbox(tmp_path / "sms")
    again = second.send(PHONE, "hello", reference="r-1")
    assert again == SmsResult(sent.message_id, 1, already_sent=True)
    second.send(PHONE, "next", reference="r-2")
    # The first instance catches up with what the second appended.
    assert first.send(PHONE, "next", reference="r-2").already_sent
    assert [m.reference for m in first.messages()] == ["r-1", "r-2"]


def _send_all(args: tuple[str, list[str]]) -> int:
    root, references = args
    outbox = FileSmsOutbox(root)
    return sum(not outbox.send(PHONE, f"text {r}", reference=r).already_sent
               for r in references)


def test_file_outbox_idempotent_across_processes(tmp_path):
    references = [f"r-{i}" for i in range(30)]
    jobs = [(str(tmp_path / "sms"), references[i:] + references[:i]) for i in range(6)]
    with multiprocessing.get_context("fork").Pool(6) as pool:
        written = sum(pool.map(_send_all, jobs))
    lines = (tmp_path / "sms" / "outbox.jsonl").read_bytes().split(b"\n")[:-1]
    assert written == 30
    assert sorted(json.loads(line)["reference"] for line in lines) == sorted(references)


def test_file_outbox_survives_a_torn_last_line(tmp_path):
    outbox = FileSmsOutbox(tmp_path / "sms")
    outbox.send(PHONE, "one", reference="r-1")
    with open(outbox.path, "ab") as f:
        f.write(b'{"message_id":"sms-x","reference":"r-2","to"')  # a crash mid-write
    fresh = FileSmsOutbox(tmp_path / "sms")
    assert not fresh.send(PHONE, "two", reference="r-2").already_sent
    assert [m.reference for m in fresh.messages()] == ["r-1", "r-2"]


def test_file_outbox_where_it_cannot_write_is_permanent(tmp_path):
    (tmp_path / "sms").write_text("a file, not a folder")
    with pytest.raises(PermanentDeliveryError):
        FileSmsOutbox(tmp_path / "sms").send(PHONE, "hi", reference="r-1")


# --- retries ---------------------------------------------------------------------------


def test_retry_transient_only_retries_transient_errors():
    calls = []

    def flaky():
        calls.append(1)
        if len(calls) < 3:
            raise TransientDeliveryError("busy")
        return "ok"

    sleeps: list[float] = []
    assert retry_transient(flaky, sleep=sleeps.append, rand=lambda: 0.0) == "ok"
    assert sleeps == [0.25, 0.5]  # half of 0.5 * 2**n, plus no jitter

    def broken():
        raise PermanentDeliveryError("no")

    with pytest.raises(PermanentDeliveryError):
        retry_transient(broken, sleep=sleeps.append)
    with pytest.raises(ValueError):
        retry_transient(flaky, attempts=0)


# --- receipts --------------------------------------------------------------------------


def test_parse_receipt():
    receipt = parse_receipt({"reference": "oi:OI-1:sms:1", "message_id": "gw-1",
                             "status": "DELIVRD", "at": "2026-11-05T10:15:30Z"})
    assert receipt.status == "delivered"
    assert receipt.at == datetime(2026, 11, 5, 10, 15, 30, tzinfo=UTC)
    assert (receipt.reference, receipt.message_id, receipt.error) == (
        "oi:OI-1:sms:1", "gw-1", None)
    failed = parse_receipt({"message_id": "gw-2", "status": "failed",
                            "at": "2026-11-05T13:15:30+03:00",
                            "error": "absent\nsubscriber"})
    assert failed.status == "failed" and failed.reference is None
    assert failed.at.utcoffset() == timedelta(hours=3) and failed.error == "absent subscriber"
    assert parse_receipt({"reference": "r", "status": "Expired",
                          "at": "2026-11-06T10:15:30Z"}).status == "expired"
    assert parse_receipt({"reference": "r", "status": "UNDELIV",
                          "at": "2026-11-06T10:15:30Z"}).status == "failed"


@pytest.mark.parametrize("body", [
    {"status": "delivered", "at": "2026-11-05T10:15:30Z"},  # which message?
    {"reference": "r", "status": "ENROUTE", "at": "2026-11-05T10:15:30Z"},  # interim
    {"reference": "r", "status": "delivered", "at": "2026-11-05T10:15:30"},  # naive
    {"reference": "r", "status": "delivered"},
    {"reference": "r", "status": "delivered", "at": "yesterday"},
    {"reference": "bad ref", "status": "delivered", "at": "2026-11-05T10:15:30Z"},
    {"message_id": 5, "status": "delivered", "at": "2026-11-05T10:15:30Z"},
    ["not", "an", "object"],
])
def test_parse_receipt_refuses(body):
    with pytest.raises(ValueError):
        parse_receipt(body)
