"""What the e-mail code relies on inside its libraries, checked against the installed
versions: fails by name when an upgrade changes one of them.

Two modules reach inside: ``delivery/email/_email.py`` (the standard library's
``email``: raw headers and ``_payload``) and ``delivery/email/_aiosmtplib.py``
(aiosmtplib's protocol: the message data sent apart from the DATA command). Each test
here names the module to revisit in its failure message. ``aiosmtplib`` is pinned below
6 in ``pyproject.toml``; the pin can go once these pass on 6.
"""

from __future__ import annotations

import asyncio
import inspect
from email import policy
from email.message import EmailMessage, MIMEPart

import aiosmtplib
import pytest
from aiosmtplib.protocol import SMTPProtocol

from invoicer.delivery.email import serialize
from invoicer.delivery.email._aiosmtplib import read_reply, write_payload
from invoicer.delivery.email._email import payload, raw_headers, set_raw_header
from invoicer.delivery.email.smtp import _prepare
from tests.support.mails import build

EMAIL = "the standard library's email package changed: see delivery/email/_email.py"
AIOSMTPLIB = (f"aiosmtplib {aiosmtplib.__version__} changed: see "
              "delivery/email/_aiosmtplib.py")

# --- email: raw headers and _payload ---------------------------------------------------


def test_raw_headers_are_stored_and_printed_verbatim():
    smtp = policy.SMTP.clone(refold_source="none")
    message = EmailMessage(policy=smtp)
    long_value = "=?utf-8?b?" + "QUJD" * 30 + "?= <maria@example.com>"  # > 78 characters
    set_raw_header(message, "To", long_value)
    message["Subject"] = "Fatura de novembro"
    message.set_payload("body\n")
    headers = raw_headers(message)
    assert headers[0] == ("To", long_value), EMAIL
    assert headers[1][0] == "Subject" and isinstance(headers[1][1], str), EMAIL
    assert f"To: {long_value}\r\n".encode() in message.as_bytes(), (
        f"{EMAIL}: a raw header is no longer printed as stored (refold_source='none')")


def test_payload_is_the_stored_body_or_the_list_of_parts():
    leaf = MIMEPart(policy=policy.SMTP)
    leaf.set_payload("SGVsbG8=\n")
    assert payload(leaf) == "SGVsbG8=\n", EMAIL
    parts = [leaf]
    outer = MIMEPart(policy=policy.SMTP)
    set_raw_header(outer, "Content-Type", 'multipart/mixed; boundary="=_x"')
    outer.set_payload(parts)
    assert payload(outer) is parts, f"{EMAIL}: _payload no longer holds the parts as set"


def test_the_fast_serializer_still_writes_what_the_generator_writes():
    for message in (build(), build(pdf=None, link="https://x.example/d")):
        assert serialize(message) == message.as_bytes(policy=message.policy), (
            f"{EMAIL}: the generator's output moved away from delivery/email/wire.py's")


# --- aiosmtplib: the message data on its own -------------------------------------------


def test_the_protocol_interface_we_call():
    assert aiosmtplib.SMTP(hostname="127.0.0.1").protocol is None, (
        f"{AIOSMTPLIB}: SMTP.protocol is not None before connecting")
    assert not inspect.iscoroutinefunction(SMTPProtocol.write), (
        f"{AIOSMTPLIB}: SMTPProtocol.write is no longer synchronous")
    assert list(inspect.signature(SMTPProtocol.write).parameters) == ["self", "data"], (
        AIOSMTPLIB)
    read = inspect.signature(SMTPProtocol.read_response)
    assert inspect.iscoroutinefunction(SMTPProtocol.read_response) and (
        "timeout" in read.parameters), f"{AIOSMTPLIB}: SMTPProtocol.read_response(timeout=)"


def test_the_errors_the_mailer_sorts_by():
    # SmtpMailer tells "connection trouble" (OSError: transient, or unknown after the
    # data) from a server's reply (SMTPResponseException) by these classes.
    assert issubclass(aiosmtplib.SMTPServerDisconnected, OSError), AIOSMTPLIB
    assert issubclass(aiosmtplib.SMTPReadTimeoutError, TimeoutError), AIOSMTPLIB
    assert issubclass(aiosmtplib.SMTPConnectTimeoutError, OSError), AIOSMTPLIB
    assert not issubclass(aiosmtplib.SMTPResponseException, OSError), AIOSMTPLIB


def _exchange(server, messages, *, data_timeout=5.0, close_first=False):
    """MAIL/RCPT/DATA through the public API, then the data through _aiosmtplib."""

    async def run():
        smtp = aiosmtplib.SMTP(hostname="127.0.0.1", port=server.port,
                               local_hostname="client.test", timeout=5, start_tls=False)
        await smtp.connect()
        replies = []
        try:
            for message in messages:
                out = _prepare(message, None)
                await smtp.mail(out.sender)
                for rcpt in out.recipients:
                    await smtp.rcpt(rcpt)
                start = await smtp.execute_command(b"DATA")
                assert start.code == 354, AIOSMTPLIB
                if close_first:
                    smtp.close()
                write_payload(smtp, out.payload)
                replies.append(await read_reply(smtp, timeout=data_timeout))
        finally:
            smtp.close()
        return replies

    return asyncio.run(run())


def test_the_data_goes_out_and_its_reply_comes_back(smtp_server):
    # Twenty on one connection: a reply that arrives right after the write must be kept
    # (read_response marks a reply as expected before it waits).
    messages = [build(message_id=f"<i{i}@mail.oi.example>") for i in range(20)]
    replies = _exchange(smtp_server, messages)
    assert [r.code for r in replies] == [250] * 20, AIOSMTPLIB
    received = [data for _, _, data in smtp_server.handler.received]
    assert received == [serialize(m) for m in messages], AIOSMTPLIB


def test_a_connection_already_gone_sends_nothing(smtp_server):
    with pytest.raises(aiosmtplib.SMTPServerDisconnected):
        _exchange(smtp_server, [build()], close_first=True)
    assert smtp_server.handler.received == [], AIOSMTPLIB


def test_no_reply_in_time_is_a_read_timeout(smtp_server):
    smtp_server.handler.data_script[:] = ["stall"]
    with pytest.raises(aiosmtplib.SMTPReadTimeoutError):
        _exchange(smtp_server, [build()], data_timeout=0.3)
