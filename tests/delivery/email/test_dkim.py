"""DKIM: a signature that verifies on what the SMTP server received, and breaks when
the message is touched."""

from __future__ import annotations

import base64

from invoicer.delivery.email import (
    DkimSigner,
    SmtpMailer,
)
from tests.support.mails import (
    BR,
    HOSTILE,
    build,
    with_names,
)


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
