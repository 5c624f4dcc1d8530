"""The subject a mail client shows is the template's text, in every locale (issue 12).

Folding a long subject must neither join two words (the ``fa_IR`` subject once read
"ارتباطاتسیار") nor add a space (an ``en`` subject once got a double one). Each message is
serialized as it goes on the wire, received by a real SMTP server (aiosmtpd) and parsed
with Python's ``email`` parser, policy ``default``; the decoded ``Subject`` must equal
the rendered one character for character, and no name, however long or hostile, may
add a header or a line over 78 characters.
"""

from __future__ import annotations

import pytest

from invoicer.delivery.email import SmtpMailer, render_invoice_email
from invoicer.delivery.email.wire import serialize
from tests.support.mails import HOSTILE, LOCALE_SAMPLES, SAMPLE, build, parse, with_names

LONG_NAMES = [
    None,  # the sample's own
    "شرکت ارتباطات سیار البرز " * 4,  # Persian words, each fold a chance to lose a space
    "Lakeshore Wireless Communications Incorporated of the Greater Lakes Region " * 2,
    "Oi\u00a0S.A.  —  Telecomunicações   Brasileiras " * 3,  # no-break and double spaces
    "A" * 150,  # one word longer than a line
    HOSTILE,
    "Evil\r\nBcc: victim@example.com\r\nSubject: free money",
    "=?utf-8?b?SGFja2Vk?= looks like an encoded word",
    "Ünïcødé — " + "ж" * 90,
]
HEADERS = {"from", "to", "subject", "date", "message-id", "auto-submitted", "mime-version",
           "content-type", "content-language"}


def _raw_header(data: bytes, name: bytes) -> list[bytes]:
    """The physical lines of one header as they are on the wire."""
    lines = data.split(b"\r\n\r\n", 1)[0].split(b"\r\n")
    start = next(i for i, line in enumerate(lines) if line.startswith(name + b":"))
    end = start + 1
    while end < len(lines) and lines[end][:1] in (b" ", b"\t"):
        end += 1
    return lines[start:end]


def _cases():
    for locale, number in LOCALE_SAMPLES.items():
        for i, name in enumerate(LONG_NAMES):
            yield pytest.param(number, name, id=f"{locale}-{i}")


@pytest.mark.parametrize(("number", "operator"), list(_cases()))
def test_the_received_subject_is_the_rendered_one(number, operator):
    record = with_names(SAMPLE[number], email="someone@example.com", attach_pdf=True)
    if operator is not None:
        record = with_names(record, operator=operator, customer=operator)
    expected = render_invoice_email(record).subject
    data = serialize(build(record))
    assert max(map(len, _raw_header(data, b"Subject"))) <= 78
    assert max(map(len, _raw_header(data, b"To"))) <= 78
    received = parse(data)
    assert received["Subject"] == expected
    assert "  " not in expected or "  " in record.operator.name  # no space made up
    assert {k.lower() for k in received} == HEADERS, list(received)
    assert len(received.get_all("Subject")) == 1


def test_subjects_survive_a_real_smtp_server(smtp_server):
    mailer = SmtpMailer.from_url(smtp_server.url)
    expected = []
    try:
        for number in LOCALE_SAMPLES.values():
            record = with_names(SAMPLE[number], operator=LONG_NAMES[1] + LONG_NAMES[2],
                                email="someone@example.com", attach_pdf=True)
            expected.append(render_invoice_email(record).subject)
            mailer.send(build(record))
    finally:
        mailer.close()
    got = [parse(data)["Subject"] for _, _, data in smtp_server.handler.received]
    assert got == expected
