"""Invoice e-mail: templates in every locale, MIME and headers under hostile input,
the file outbox, and SMTP against a real aiosmtpd server on loopback (retries,
permanent refusals, outages, a connection lost after DATA, connection reuse).

No Python-level mocking of aiosmtplib: every SMTP test talks the protocol to a real
server (``tests/delivery/conftest.py``: ``SmtpServer``, ``ScriptedHandler``).
"""

from __future__ import annotations

import base64
import email
import email.header
import email.utils
import re
import ssl
import threading
from email import policy
from email.headerregistry import Address
from email.message import EmailMessage
from html.parser import HTMLParser
from pathlib import Path

import pytest

from invoicer.billing import parse_record
from invoicer.billing.models import BillingRecord
from invoicer.delivery.email import (
    DEFAULT_MAIL_URL,
    Backoff,
    DkimSigner,
    FileMailer,
    Mailer,
    SendResult,
    SmtpMailer,
    build_invoice_message,
    envelope,
    mailer_from_url,
    message_id,
    outbox_name,
    render_invoice_email,
    retry,
    serialize,
    should_attach,
)
from invoicer.delivery.errors import (
    DeliveryError,
    PermanentDeliveryError,
    SmtpPermanentError,
    SmtpTransientError,
    TransientDeliveryError,
    UnknownDeliveryError,
)
from tests.conftest import SAMPLES
from tests.delivery.conftest import SmtpServer, closed_port

PDF = b"%PDF-1.7\n" + bytes(range(256)) * 64 + b"\n%%EOF\n"  # every byte value
SENDER = Address("Faturas", "faturas", "mail.oi.example")
HOSTILE = 'Evil\r\nBcc: x@y "Quoted" <b>Ünïcødé</b>\u2028X-Evil: 1 زهرا قاسمی\u200cنژاد'
HOSTILE_FLAT = 'Evil Bcc: x@y "Quoted" <b>Ünïcødé</b> X-Evil: 1 زهرا قاسمی\u200cنژاد'


def _samples() -> dict[str, BillingRecord]:
    records = {}
    raw = (SAMPLES / "invoices.jsonl").read_bytes()
    for n, line in enumerate(raw.split(b"\n"), 1):
        if line.strip():
            record = parse_record(line, line=n)
            records[record.invoice.number] = record
    return records


SAMPLE = _samples()
BR = SAMPLE["OI-2026-11-0000123"]  # pt_BR, FEBRABAN, attach_pdf
HOSTILE_RECORD = SAMPLE["AM-2026-11-0066666"]  # markup and template syntax everywhere
LOCALE_SAMPLES = {
    "en": "LW-2026-11-000042", "pt_BR": "OI-2026-11-0000123", "ro_RO": "CT-2026-11-0000457",
    "ru_RU": "VT-2026-11-0003345", "nl_NL": "PT-2026-11-0012012",
    "fa_IR": "AB-2026-11-0000721",
}


def with_names(record: BillingRecord, *, customer: str | None = None,
               operator: str | None = None, **delivery) -> BillingRecord:
    """A copy of ``record`` with other names or delivery options, *without* the billing
    contract's cleaning: the e-mail code must hold on its own."""
    account = record.account
    if customer is not None:
        account = account.model_copy(update={
            "customer": account.customer.model_copy(update={"name": customer})})
    op = record.operator if operator is None else record.operator.model_copy(
        update={"name": operator})
    return record.model_copy(update={
        "account": account, "operator": op,
        "delivery": record.delivery.model_copy(update=delivery)})


def build(record: BillingRecord = BR, **overrides) -> EmailMessage:
    args = {"pdf": PDF, "link": None, "sender": SENDER, "reply_to": None,
            "message_id": message_id(record.operator.id, record.invoice.number, 0,
                                     "mail.oi.example")}
    args.update(overrides)
    return build_invoice_message(record, **args)


def parse(data: bytes) -> EmailMessage:
    return email.message_from_bytes(data, policy=policy.default)


def display_names(data: bytes, header: str) -> list[tuple[str, str]]:
    """(display name, address) pairs of a header, decoded as RFC 2047 §6.2 says.

    Python 3.11's structured-header parser keeps the space between two adjacent
    encoded words (CPython gh-128110, fixed upstream in 2025), so a long non-ASCII
    name that the folder split mid-word would read "زه را". The legacy decoder below
    joins them as mail clients do; the structure itself is checked with policy.default.
    """
    raw = email.message_from_bytes(data, policy=policy.compat32).get_all(header, [])
    return [(str(email.header.make_header(email.header.decode_header(name))), addr)
            for name, addr in email.utils.getaddresses(raw)]


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.hrefs: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.hrefs += [v for k, v in attrs if k == "href"]

    def handle_data(self, data):
        self.text.append(data)


def html_facts(html: str) -> _Tags:
    parser = _Tags()
    parser.feed(html)
    return parser


# --- templates -------------------------------------------------------------------------


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


# --- the message -----------------------------------------------------------------------


def test_message_parts_and_attachment_bytes():
    data = serialize(build())
    msg = parse(data)
    assert [p.get_content_type() for p in msg.walk()] == [
        "multipart/mixed", "multipart/alternative", "text/plain", "text/html",
        "application/pdf"]
    (pdf,) = msg.iter_attachments()
    assert pdf.get_filename() == "OI-2026-11-0000123.pdf"
    assert pdf.get_content_disposition() == "attachment"
    assert pdf.get_content() == PDF
    assert "Olá, Maria da Conceição Souza" in msg.get_body(("plain",)).get_content()
    assert "Olá, Maria da Conceição Souza" in msg.get_body(("html",)).get_content()
    assert msg["Content-Language"] == "pt-BR"
    assert msg["Auto-Submitted"] == "auto-generated"
    assert msg["Message-ID"] == message_id("oi", "OI-2026-11-0000123", 0, "mail.oi.example")
    assert email.utils.parsedate_to_datetime(msg["Date"]) is not None
    assert b"\r\n" in data and b"\n" not in data.replace(b"\r\n", b"")


def test_link_instead_of_attachment_when_asked_or_too_big():
    link = "https://invoices.example/d/OI-2026-11-0000123?token=abc"
    no_attach = with_names(BR, attach_pdf=False)
    for record, kwargs in ((no_attach, {}), (BR, {"max_attachment": len(PDF) - 1}),
                           (BR, {"pdf": None})):
        msg = parse(serialize(build(record, link=link, **kwargs)))
        assert msg.get_content_type() == "multipart/alternative"
        assert list(msg.iter_attachments()) == []
        assert link in msg.get_body(("plain",)).get_content()
        assert link in html_facts(msg.get_body(("html",)).get_content()).hrefs
    assert should_attach(BR, len(PDF)) and not should_attach(no_attach, len(PDF))
    assert not should_attach(BR, 10 * 1024 * 1024 + 1)
    with pytest.raises(ValueError, match="pass a link"):
        build(no_attach)
    with pytest.raises(ValueError, match="no e-mail address"):
        build(SAMPLE["CT-2026-11-0000457"])  # paper, no address


def test_hostile_display_names_cannot_inject_headers():
    record = with_names(BR, customer=HOSTILE, operator='Oi "S.A."\r\nX-Evil: 2')
    msg_obj = build(record, sender="faturas@mail.oi.example",
                    reply_to=("Atendimento\nBcc: z@z", "atendimento@oi.example"))
    data = serialize(msg_obj)
    msg = parse(data)
    assert sorted(k.lower() for k in msg) == sorted([
        "from", "to", "reply-to", "subject", "date", "message-id", "auto-submitted",
        "mime-version", "content-type", "content-language"])
    assert [a.addr_spec for a in msg["To"].addresses] == ["maria@example.com"]
    assert [a.addr_spec for a in msg["From"].addresses] == ["faturas@mail.oi.example"]
    assert display_names(data, "To") == [(HOSTILE_FLAT, "maria@example.com")]
    assert display_names(data, "From") == [('Oi "S.A." X-Evil: 2', "faturas@mail.oi.example")]
    assert display_names(data, "Reply-To") == [("Atendimento Bcc: z@z",
                                                 "atendimento@oi.example")]
    assert envelope(msg_obj) == ("faturas@mail.oi.example", ["maria@example.com"])


@pytest.mark.parametrize("name", [
    'x' * 60 + ' "q" <attacker@evil.example>',  # CPython gh-80222: quotes lost on folding
    '<b>Bold</b> <a href="javascript:x">Tom</a> <img src=x onerror=alert(1)> O\'Brien',
    "Doe, John", 'Back\\slash "and" quote', "Журавлёва Алёна Фёдоровна" * 3, "a" * 300,
])
def test_long_and_special_display_names_keep_their_address(name):
    data = serialize(build(with_names(BR, customer=name, operator=name)))
    msg = parse(data)
    assert [a.addr_spec for a in msg["To"].addresses] == ["maria@example.com"]
    assert [a.addr_spec for a in msg["From"].addresses] == ["faturas@mail.oi.example"]
    assert display_names(data, "To") == [(name, "maria@example.com")]
    head = data.split(b"\r\n\r\n", 1)[0]
    assert max(map(len, head.split(b"\r\n"))) <= 78


def test_fast_serializer_matches_the_stdlib_generator(dkim_key):
    signer = DkimSigner("s", "mail.oi.example", dkim_key[0])
    for record in SAMPLE.values():
        if not record.delivery.email:
            continue
        for kwargs in ({}, {"pdf": None},
                       {"dkim": signer, "list_unsubscribe": "https://x.example/u"}):
            message = build(record, link="https://x.example/d", **kwargs)
            assert serialize(message) == message.as_bytes(policy=message.policy)


def test_an_address_with_a_line_break_is_refused():
    with pytest.raises(ValueError):
        build(sender="faturas@oi.example\r\nBcc: x@y")
    with pytest.raises(ValueError):
        build(with_names(BR, email="maria@example.com\r\nBcc: x@y"))


def test_message_id_is_deterministic_and_distinct():
    a = message_id("oi", "OI-2026-11-0000123", 0, "mail.oi.example")
    assert a == message_id("oi", "OI-2026-11-0000123", 0, "MAIL.oi.example")
    assert re.fullmatch(r"<OI-2026-11-0000123\.oi\.email\.0\.[0-9a-f]{16}@mail\.oi\.example>", a)
    others = {message_id("oi", "OI-2026-11-0000123", 1, "mail.oi.example"),
              message_id("oi", "OI-2026-11-0000123", 0, "mail.oi.example", channel="sms"),
              message_id("oi", "OI-2026-11-0000124", 0, "mail.oi.example"),
              message_id("a.b", "c", 0, "x.example"), message_id("a", "b.c", 0, "x.example")}
    assert len(others | {a}) == 6
    assert message_id("oi", "F..1.", 0, "bücher.example").endswith("@xn--bcher-kva.example>")
    for bad in (("oi", "x\r\ny", 0, "d.example"), ("oi", "x", -1, "d.example"),
                ("oi", "x", 0, "not a domain"), ("oi", "", 0, "d.example")):
        with pytest.raises(ValueError):
            message_id(*bad)


def test_list_unsubscribe_headers():
    msg = parse(serialize(build(list_unsubscribe=[
        "https://oi.example/unsub?t=1", "mailto:unsub@oi.example"])))
    assert msg["List-Unsubscribe"] == "<https://oi.example/unsub?t=1>, <mailto:unsub@oi.example>"
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert "https://oi.example/unsub?t=1" in msg.get_body(("plain",)).get_content()
    mailto_only = parse(serialize(build(list_unsubscribe="mailto:unsub@oi.example")))
    assert "List-Unsubscribe-Post" not in mailto_only
    with pytest.raises(ValueError):
        build(list_unsubscribe="https://x.example/>\r\nBcc: a@b")


@pytest.fixture(scope="module")
def dkim_key() -> tuple[bytes, bytes]:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(serialization.Encoding.PEM,
                                serialization.PrivateFormat.TraditionalOpenSSL,
                                serialization.NoEncryption())
    public = key.public_key().public_bytes(serialization.Encoding.DER,
                                           serialization.PublicFormat.SubjectPublicKeyInfo)
    return private, public


def test_dkim_signature_verifies_after_smtp(smtp_server, dkim_key):
    import dkim

    private, public = dkim_key
    signer = DkimSigner("inv2026", "mail.oi.example", private)
    message = build(with_names(BR, customer=HOSTILE), dkim=signer,
                    list_unsubscribe="https://oi.example/u")
    with SmtpMailer.from_url(smtp_server.url) as mailer:
        mailer.send(message)
    (_, _, received), = smtp_server.handler.received
    assert received.startswith(b"DKIM-Signature: ")

    def dns(name, timeout=5):
        assert name == b"inv2026._domainkey.mail.oi.example."
        return b"v=DKIM1; k=rsa; p=" + base64.b64encode(public)

    assert dkim.verify(received, dnsfunc=dns)
    tampered = received.replace(b"Subject: ", b"Subject: FREE ", 1)
    assert not dkim.verify(tampered, dnsfunc=dns)


# --- the file outbox -------------------------------------------------------------------


def test_file_outbox_is_idempotent_per_message_id(tmp_path):
    mailer = mailer_from_url(f"file://{tmp_path}/outbox")
    assert isinstance(mailer, FileMailer) and isinstance(mailer, Mailer)
    first = mailer.send(build())
    again = mailer.send(build())  # rebuilt: other boundaries and Date, same Message-ID
    assert first.created and not again.created
    files = list((tmp_path / "outbox").iterdir())
    assert [f.name for f in files] == [outbox_name(first.message_id)]
    stored = parse(files[0].read_bytes())
    assert stored["Message-ID"] == first.message_id
    assert next(stored.iter_attachments()).get_content() == PDF
    resend = mailer.send(build(message_id=message_id("oi", BR.invoice.number, 1,
                                                     "mail.oi.example")))
    assert resend.created and len(list((tmp_path / "outbox").iterdir())) == 2


def test_file_outbox_race_leaves_one_file(tmp_path):
    mailer = FileMailer(tmp_path)
    messages = [build() for _ in range(16)]
    barrier = threading.Barrier(len(messages))
    results: list[SendResult] = []

    def send(m):
        barrier.wait()
        results.append(mailer.send(m))

    threads = [threading.Thread(target=send, args=(m,)) for m in messages]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(r.created for r in results) == 1
    assert len(list(tmp_path.iterdir())) == 1  # and no temp file left behind


def test_outbox_names_are_safe():
    assert outbox_name("<a/b@c>") == "a%2Fb@c.eml"
    assert outbox_name("<../../etc/passwd@x>").startswith("%2E.%2F")
    long = outbox_name("<" + "x" * 500 + "@y>")
    assert len(long) < 255 and long != outbox_name("<" + "x" * 499 + "@y>")
    assert DEFAULT_MAIL_URL == "file://var/outbox"
    assert FileMailer.from_url("file://var/outbox").root == Path("var/outbox").absolute()


def test_a_message_without_message_id_is_refused(tmp_path):
    msg = build()
    del msg["Message-ID"]
    with pytest.raises(ValueError, match="Message-ID"):
        FileMailer(tmp_path).send(msg)


# --- SMTP: outcomes and retries --------------------------------------------------------


def test_451_three_times_then_delivered_once_with_growing_delays(smtp_server):
    smtp_server.handler.data_script[:] = ["451 4.3.0 Try again later"] * 3
    sleeps: list[float] = []
    with SmtpMailer.from_url(smtp_server.url) as mailer:
        result = retry(lambda: mailer.send(build()), backoff=Backoff(attempts=5, base=1),
                       sleep=sleeps.append)
    assert smtp_server.handler.data_attempts == 4
    assert len(smtp_server.handler.received) == 1
    assert result.reply.startswith("250 ")
    assert len(sleeps) == 3 and sleeps == sorted(sleeps) and sleeps[0] < sleeps[-1]
    assert 0.5 <= sleeps[0] <= 1 and 2 <= sleeps[2] <= 4  # 1, 2, 4 s with equal jitter


def test_transient_smtp_error_keeps_code_and_text(smtp_server):
    smtp_server.handler.data_script[:] = ["452 4.3.1 Insufficient system storage"]
    with SmtpMailer.from_url(smtp_server.url) as mailer, pytest.raises(
            SmtpTransientError) as caught:
        mailer.send(build())
    assert (caught.value.code, caught.value.text) == (452, "4.3.1 Insufficient system storage")


def test_550_is_permanent_and_not_retried(smtp_server):
    smtp_server.handler.rcpt_script[:] = ["550 5.1.1 <maria@example.com>: no such user"]
    sleeps: list[float] = []
    with SmtpMailer.from_url(smtp_server.url) as mailer:
        with pytest.raises(SmtpPermanentError) as caught:
            retry(lambda: mailer.send(build()), sleep=sleeps.append)
        assert mailer.send(build()).reply.startswith("250")  # the connection is still good
    err = caught.value
    assert isinstance(err, PermanentDeliveryError) and not err.transient
    assert err.code == 550 and err.text == "5.1.1 <maria@example.com>: no such user"
    assert err.stage == "RCPT TO"
    assert sleeps == [] and smtp_server.handler.connections == 1
    assert len(smtp_server.handler.received) == 1


def test_server_down_then_up_delivers_once_after_recovery():
    server = SmtpServer()  # not started: connections are refused
    sleeps: list[float] = []

    def sleep(delay: float) -> None:
        sleeps.append(delay)
        if len(sleeps) == 2:
            server.start()

    try:
        with SmtpMailer.from_url(server.url) as mailer:
            with pytest.raises(TransientDeliveryError):
                mailer.send(build())
            result = retry(lambda: mailer.send(build()), backoff=Backoff(attempts=4),
                           sleep=sleep)
    finally:
        server.stop()
    assert len(sleeps) == 2 and sleeps[0] <= sleeps[1]
    assert len(server.handler.received) == 1 and result.reply.startswith("250")


def test_connection_lost_after_data_is_unknown_and_not_resent(smtp_server):
    smtp_server.handler.data_script[:] = ["drop"]
    sleeps: list[float] = []
    with SmtpMailer.from_url(smtp_server.url) as mailer:
        with pytest.raises(UnknownDeliveryError) as caught:
            retry(lambda: mailer.send(build()), sleep=sleeps.append)
        assert not isinstance(caught.value, TransientDeliveryError | PermanentDeliveryError)
        assert sleeps == [] and smtp_server.handler.data_attempts == 1
        # The mailer itself is fine afterwards: a fresh connection for the next one.
        mailer.send(build(message_id="<next@mail.oi.example>"))
    assert smtp_server.handler.connections == 2


def test_no_reply_after_data_within_data_timeout_is_unknown(smtp_server):
    smtp_server.handler.data_script[:] = ["stall"]
    mailer = SmtpMailer.from_url(smtp_server.url + "&data_timeout=0.3")
    with mailer, pytest.raises(UnknownDeliveryError):
        retry(lambda: mailer.send(build()), sleep=lambda d: None)
    assert smtp_server.handler.data_attempts == 1


def test_close_with_a_message_in_flight_reports_it_unknown(smtp_server):
    smtp_server.handler.data_script[:] = ["stall"]
    mailer = SmtpMailer.from_url(smtp_server.url.replace("timeout=5", "timeout=0.3"))
    outcome: list[BaseException] = []

    def send() -> None:
        try:
            mailer.send(build())
        except DeliveryError as exc:
            outcome.append(exc)

    sender = threading.Thread(target=send)
    sender.start()
    waited = threading.Event()
    while smtp_server.handler.data_attempts == 0 and not waited.wait(0.01):
        pass
    mailer.close()  # waits 0.3 s for the reply, then gives up on the message
    sender.join(timeout=5)
    assert len(outcome) == 1 and isinstance(outcome[0], UnknownDeliveryError)


def test_connection_lost_before_the_payload_is_transient(smtp_server):
    smtp_server.handler.drop_at_data_command = 1
    sleeps: list[float] = []
    with SmtpMailer.from_url(smtp_server.url) as mailer:
        retry(lambda: mailer.send(build()), sleep=sleeps.append)
    assert len(sleeps) == 1 and smtp_server.handler.data_attempts == 1
    assert len(smtp_server.handler.received) == 1


def test_hand_off_is_called_once_right_before_the_data(smtp_server):
    seen: list[int] = []
    with SmtpMailer.from_url(smtp_server.url) as mailer:
        # Called after the server's 354 (DATA accepted), before any byte of the message.
        mailer.send(build(), before_data=lambda: seen.append(
            len(smtp_server.handler.received)))
        assert seen == [0] and len(smtp_server.handler.received) == 1

        # A hand-off that cannot be recorded stops the message: nothing delivered.
        def broken() -> None:
            raise OSError("ledger unreachable")

        with pytest.raises(TransientDeliveryError, match="recording the hand-off failed"):
            mailer.send(build(message_id="<second@mail.oi.example>"), before_data=broken)
        assert len(smtp_server.handler.received) == 1
        # The mailer recovers: the next message goes on a fresh connection.
        mailer.send(build(message_id="<third@mail.oi.example>"))
    assert len(smtp_server.handler.received) == 2


def test_received_message_is_intact_over_smtp(smtp_server):
    record = with_names(BR, customer=HOSTILE)
    with SmtpMailer.from_url(smtp_server.url) as mailer:
        result = mailer.send(build(record))
    ((mail_from, rcpts, data),) = smtp_server.handler.received
    assert (mail_from, rcpts) == ("faturas@mail.oi.example", ["maria@example.com"])
    assert result.recipients == ("maria@example.com",)
    msg = parse(data)
    assert "Bcc" not in msg and "X-Evil" not in msg
    assert display_names(data, "To") == [(HOSTILE_FLAT, "maria@example.com")]
    assert next(msg.iter_attachments()).get_content() == PDF
    assert msg["Message-ID"] == result.message_id


# --- SMTP: connections -----------------------------------------------------------------


def _numbered(n: int, record: BillingRecord = BR) -> list[EmailMessage]:
    return [build(record, message_id=f"<m{i}@mail.oi.example>") for i in range(n)]


def test_one_connection_carries_many_messages(smtp_server):
    with SmtpMailer.from_url(smtp_server.url + "&concurrency=1") as mailer:
        for message in _numbered(5):
            mailer.send(message)
        outcomes = mailer.send_many(_numbered(25))
    assert all(isinstance(o, SendResult) for o in outcomes)
    assert [o.message_id for o in outcomes] == [f"<m{i}@mail.oi.example>" for i in range(25)]
    assert len(smtp_server.handler.received) == 30
    assert smtp_server.handler.connections == 1


def test_concurrency_bounds_the_connections(smtp_server):
    with SmtpMailer.from_url(smtp_server.url + "&concurrency=3&max_messages=10") as mailer:
        outcomes = mailer.send_many(_numbered(60))
        opened = mailer.connections_opened
    assert all(isinstance(o, SendResult) for o in outcomes)
    assert len(smtp_server.handler.received) == 60
    # Never more than 3 open at once; each retired after 10 messages, so at least 6,
    # plus at most 2 others part-used when the work ran out.
    assert smtp_server.handler.max_open == 3
    assert 6 <= smtp_server.handler.connections == opened <= 8


def test_send_many_reports_failures_in_place(smtp_server):
    smtp_server.handler.rcpt_script[:] = ["accept", "550 5.1.1 gone", "accept"]
    with SmtpMailer.from_url(smtp_server.url + "&concurrency=1") as mailer:
        outcomes = mailer.send_many(_numbered(3))
    assert isinstance(outcomes[0], SendResult) and isinstance(outcomes[2], SendResult)
    assert isinstance(outcomes[1], SmtpPermanentError) and outcomes[1].code == 550


def test_iter_send_yields_each_outcome_as_it_is_known(smtp_server):
    built: list[int] = []

    def messages():
        for i in range(12):
            built.append(i)
            yield build(message_id=f"<lazy{i}@mail.oi.example>")

    seen = []
    with SmtpMailer.from_url(smtp_server.url + "&concurrency=2") as mailer:
        for message, outcome in mailer.iter_send(messages()):
            assert isinstance(outcome, SendResult)
            assert outcome.message_id == message["Message-ID"]
            # Built lazily: never more than the window (2 per connection) ahead.
            assert len(built) - len(seen) <= mailer.window
            seen.append(outcome.message_id)
    assert len(set(seen)) == 12


def test_a_connection_the_server_closed_while_idle_is_replaced():
    # aiosmtpd says "421 timeout" and hangs up after 0.3 s of silence.
    with SmtpServer(timeout=0.3) as server:
        with SmtpMailer.from_url(server.url) as mailer:
            mailer.send(build(message_id="<first@mail.oi.example>"))
            threading.Event().wait(0.6)
            result = mailer.send(build(message_id="<second@mail.oi.example>"))
        assert result.reply.startswith("250")
        assert len(server.handler.received) == 2 and server.handler.connections == 2


def test_refused_connection_is_transient():
    mailer = SmtpMailer("127.0.0.1", closed_port(), timeout=2, local_hostname="c.test")
    with mailer, pytest.raises(TransientDeliveryError):
        mailer.send(build())


def test_password_requires_tls_unless_told_otherwise():
    from aiosmtpd.smtp import AuthResult

    def authenticator(server, session, envelope, mechanism, auth_data):
        ok = (auth_data.login, auth_data.password) == (b"inv@oi", b"p@ss:w/rd")
        return AuthResult(success=ok, handled=False)  # handled=False: aiosmtpd answers 535

    with SmtpServer(authenticator=authenticator, auth_require_tls=False) as server:
        base = f"smtp://inv%40oi:p%40ss%3Aw%2Frd@127.0.0.1:{server.port}?timeout=5"
        # No STARTTLS on this server: a password is never sent in clear by default.
        with SmtpMailer.from_url(base) as mailer, pytest.raises(PermanentDeliveryError):
            mailer.send(build())
        with SmtpMailer.from_url(base + "&starttls=false") as mailer:
            assert mailer.send(build()).reply.startswith("250")
        wrong = base.replace("p%40ss", "nope") + "&starttls=false"
        with SmtpMailer.from_url(wrong) as mailer, pytest.raises(SmtpPermanentError) as err:
            mailer.send(build())
        assert err.value.code == 535
        assert len(server.handler.received) == 1


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and its key (PEM files)."""
    import datetime as dt
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "smtp.test")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    folder = tmp_path_factory.mktemp("tls")
    cert_file, key_file = folder / "cert.pem", folder / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_file, key_file


def _server_tls(tls_files) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(*tls_files)
    return context


def test_starttls_and_smtps_with_a_trusted_certificate(tls_files):
    cafile = tls_files[0]
    with SmtpServer(tls_context=_server_tls(tls_files), require_starttls=True) as server:
        url = f"smtp://127.0.0.1:{server.port}?timeout=5&starttls=true&cafile={cafile}"
        with SmtpMailer.from_url(url) as mailer:
            assert mailer.send(build()).reply.startswith("250")
        # Not trusted: refused for good, not retried forever.
        untrusted = f"smtp://127.0.0.1:{server.port}?timeout=5&starttls=true"
        with SmtpMailer.from_url(untrusted) as mailer, pytest.raises(PermanentDeliveryError):
            mailer.send(build())
        assert len(server.handler.received) == 1
    with SmtpServer(ssl_context=_server_tls(tls_files)) as server:
        with SmtpMailer.from_url(f"{server.url}&cafile={cafile}") as mailer:
            assert mailer.send(build()).reply.startswith("250")
        assert len(server.handler.received) == 1


# --- configuration and the retry helper ------------------------------------------------


def test_mailer_urls():
    m = mailer_from_url("smtp://u%40x:s3cret@mail.example:587?starttls=true&concurrency=8"
                        "&timeout=10&max_messages=50")
    assert isinstance(m, SmtpMailer)
    assert (m.host, m.port, m.username, m.starttls, m.concurrency, m.timeout,
            m.max_messages) == ("mail.example", 587, "u@x", True, 8, 10.0, 50)
    assert "s3cret" not in repr(m)
    s = mailer_from_url("smtps://u:p@mail.example")
    assert (s.port, s.use_tls, s.starttls) == (465, True, None)
    assert mailer_from_url("smtp://relay.internal").starttls is None  # offered -> used
    assert mailer_from_url("smtp://u:p@relay.internal").starttls is True
    for bad in ("smtp://h?startls=true", "smtp://h?starttls=maybe", "smtps://h?starttls=true",
                "ftp://h", "smtp:///nohost", "file://"):
        with pytest.raises(ValueError):
            mailer_from_url(bad)


def test_retry_only_retries_transient_errors():
    calls: list[int] = []

    def failing(exc: DeliveryError):
        def call():
            calls.append(1)
            raise exc
        return call

    for exc in (PermanentDeliveryError("no"), UnknownDeliveryError("maybe")):
        calls.clear()
        with pytest.raises(type(exc)):
            retry(failing(exc), sleep=lambda d: None)
        assert len(calls) == 1
    calls.clear()
    sleeps: list[float] = []
    with pytest.raises(TransientDeliveryError):
        retry(failing(TransientDeliveryError("later")), backoff=Backoff(attempts=8, base=1),
              sleep=sleeps.append)
    assert len(calls) == 8 and len(sleeps) == 7
    assert sleeps == sorted(sleeps)  # random, yet never shorter than the one before
    capped: list[float] = []
    with pytest.raises(TransientDeliveryError):
        retry(failing(TransientDeliveryError("later")), backoff=Backoff(attempts=9, cap=10),
              sleep=capped.append)
    assert max(capped) <= 10 and min(capped[4:]) >= 5  # jittered within [cap/2, cap]
    assert Backoff(base=2).delay(0, 0.0) == 1 and Backoff(base=2).delay(3, 0.999) < 16
