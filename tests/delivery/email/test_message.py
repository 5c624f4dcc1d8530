"""The MIME message under hostile input: parts, attachment or link, headers nobody can
add, deterministic Message-IDs, and serialisation identical to the standard library's."""

from __future__ import annotations

import email
import email.errors
import email.header
import email.utils
import re

import pytest

from invoicer.delivery.email import (
    DkimSigner,
    envelope,
    message_id,
    serialize,
    should_attach,
)
from tests.support.mails import (
    BR,
    HOSTILE,
    HOSTILE_FLAT,
    PDF,
    SAMPLE,
    build,
    display_names,
    html_facts,
    parse,
    with_names,
)


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


XML = '<?xml version="1.0" encoding="UTF-8"?>\n<Invoice>Ünïcødé &amp; ۱۲۳</Invoice>\n'.encode()


def test_an_einvoice_xml_goes_next_to_the_pdf_or_alone_beside_a_link():
    msg = parse(serialize(build(xml=XML)))
    assert [p.get_content_type() for p in msg.walk()] == [
        "multipart/mixed", "multipart/alternative", "text/plain", "text/html",
        "application/pdf", "application/xml"]
    pdf, xml = msg.iter_attachments()
    assert (pdf.get_filename(), pdf.get_content()) == ("OI-2026-11-0000123.pdf", PDF)
    assert (xml.get_filename(), xml.get_content()) == ("OI-2026-11-0000123.xml", XML)
    assert xml.get_content_disposition() == "attachment"
    # The PDF as a link (attach_pdf false): the XML still travels in the message.
    link = "https://invoices.example/d/x"
    alone = parse(serialize(build(with_names(BR, attach_pdf=False), link=link, xml=XML)))
    assert [p.get_filename() for p in alone.iter_attachments()] == ["OI-2026-11-0000123.xml"]
    assert link in alone.get_body(("plain",)).get_content()


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


@pytest.mark.parametrize("name", [
    'x' * 60 + ' "q" <attacker@evil.example>', "Doe, John", 'Back\\slash "and" quote',
    "Журавлёва Алёна Фёдоровна" * 3, "a" * 300, "", HOSTILE,
])
def test_the_envelope_is_what_the_header_parser_reads(name):
    """envelope() reads build_invoice_message's own mailbox values without the header
    parser; it must name exactly the addresses the parser finds in the same message."""
    msg = build(with_names(BR, customer=name, operator=name),
                reply_to=(name, "atendimento@oi.example"))
    parsed = [a.addr_spec for h in ("From", "To") for a in msg[h].addresses]
    sender, recipients = envelope(msg)
    assert [sender, *recipients] == parsed == ["faturas@mail.oi.example", "maria@example.com"]
    msg["Cc"] = '"Quoted, Name" <copy@example.com>, other@example.com'  # the parser's path
    assert envelope(msg)[1] == ["maria@example.com", "copy@example.com", "other@example.com"]


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


def test_base64_length_is_computed_exactly_without_encoding():
    """_body_encoding compares quoted-printable with base64 by length only; the length
    formula must be the encoder's, line ends included."""
    import os

    from invoicer.delivery.email.message import _base64_length, _base64_lines

    for size in [*range(0, 240), 57 * 100, 57 * 100 + 1, 48_000]:
        assert len(_base64_lines(os.urandom(size))) == _base64_length(size), size


def test_base64_lines_are_the_standard_librarys():
    import base64
    import os

    from invoicer.delivery.email.message import _base64_lines

    for size in [*range(0, 200), 57 * 100, 57 * 100 + 1, 48_000]:
        data = os.urandom(size)
        assert _base64_lines(data) == base64.encodebytes(data).decode("ascii"), size


def test_encoded_words_cut_at_the_last_whole_character_that_fits():
    """The byte-slicing cut gives the words a character-by-character loop gives."""
    import base64
    import random

    from invoicer.delivery.email.message import _EW_BYTES, _encoded_words

    def by_characters(text: str) -> list[bytes]:
        words, chunk = [], b""
        for char in text:
            data = char.encode("utf-8")
            if chunk and len(chunk) + len(data) > _EW_BYTES:
                words.append(chunk)
                chunk = b""
            chunk += data
        words.append(chunk)
        return words

    rng = random.Random(7)
    alphabet = "aZ 9é€ж\u200cز🙂\U0010fffd" + HOSTILE
    texts = ["", "a", "é" * 18, "é" * 19, "🙂" * 9, "🙂" * 10, "a" + "🙂" * 9, HOSTILE]
    texts += ["".join(rng.choice(alphabet) for _ in range(rng.randrange(120)))
              for _ in range(2000)]
    for text in texts:
        expected = [f"=?utf-8?b?{base64.b64encode(w).decode('ascii')}?="
                    for w in by_characters(text)]
        assert _encoded_words(text) == expected, text


def test_plain_addresses_skip_the_parser_with_its_result():
    """Dot-atom addresses are split without the header parser: same parts, same
    addr_spec; anything else still goes through it (and is refused as before)."""
    import random
    from email.headerregistry import Address

    from invoicer.delivery.email.message import _PLAIN_SPEC, _address
    from invoicer.delivery.email.render import one_line

    def through_the_parser(spec: str) -> Address:  # what _address did for every spec
        if one_line(spec) != spec or not spec:
            raise ValueError(spec)
        return Address(display_name="N", addr_spec=spec)

    rng = random.Random(11)
    atext = "abcXYZ019!#$%&'*+/=?^_`{|}~-"
    specs = ["a@b", "a.b+c@mail.oi.example", "O'Brien@x.example", "{x}|y@z.q",
             "ana@exêmplo.com.br", '"a b"@x.example', "a..b@x.example", "a.@x.example",
             "a@[127.0.0.1]", " a@b.example", "a@b.example (c)", "a(b)@c.example"]
    for _ in range(3000):
        parts = ["".join(rng.choice(atext + "..") for _ in range(rng.randrange(1, 8)))
                 for _ in range(2)]
        specs.append("@".join(parts))
    fast = 0
    for spec in specs:
        try:
            parsed = through_the_parser(spec)
        except Exception as exc:  # the parser's refusals: ValueError, defects
            with pytest.raises(type(exc)):
                _address(("N", spec))
            continue
        ours = _address(("N", spec))
        assert (ours.username, ours.domain, ours.addr_spec) == (
            parsed.username, parsed.domain, parsed.addr_spec), spec
        fast += _PLAIN_SPEC.fullmatch(spec) is not None
    assert fast > 500  # the fast path was exercised, not only the parser
    for hostile in ("a@b\r\nBcc: c@d", "a@b, c@d", "a@b <c@d>", "<a@b>", "a@b\u2028c"):
        with pytest.raises((ValueError, email.errors.HeaderParseError)):
            _address(("N", hostile))
