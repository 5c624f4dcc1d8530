"""Invoice e-mail: templated messages, safe MIME, and mailers chosen by URL.

Layers, each usable alone, one module each:

- ``render``: the words (:func:`render_invoice_email`), Jinja2 templates per locale
  with the operator's brand; HTML autoescaped;
- ``message``: the MIME message (:func:`build_invoice_message`, :func:`message_id`):
  text + HTML + the PDF or a link, and no header a billing record could add;
- ``wire``: the bytes that travel (:func:`serialize`), the envelope, the Message-ID;
- ``dkim``: optional DKIM signatures (:class:`DkimSigner`, dkimpy);
- ``mailer``: the :class:`Mailer` Protocol (one verb, ``send``) and its results;
- the backends, picked by URL (:func:`mailer_from_url`): ``outbox``
  (:class:`FileMailer`, ``file://PATH``, one ``.eml`` per Message-ID: the embedded
  default), ``smtp`` (:class:`SmtpMailer`, ``smtp://`` / ``smtps://`` through
  aiosmtplib over a small pool of reused connections), and ``memory``
  (:class:`MemoryMailer`, a list, for tests of callers; not configurable by URL).

Library internals are reached in two small modules only: ``_email`` (the standard
library's ``email`` package) and ``_aiosmtplib``; a test checks what each relies on.

Failures leave every mailer as :mod:`invoicer.delivery.errors` classes: SMTP 4xx,
refused or lost connections and timeouts are
:class:`~invoicer.delivery.errors.TransientDeliveryError` (retry:
:mod:`invoicer.delivery.retry`); 5xx is
:class:`~invoicer.delivery.errors.SmtpPermanentError` with the code and text; a
connection lost after the whole message went out and before the server's verdict is
:class:`~invoicer.delivery.errors.UnknownDeliveryError`, never retried automatically
because the message may already be in the subscriber's mailbox.
"""

from __future__ import annotations

from invoicer.delivery.email.dkim import DKIM_HEADERS, DkimSigner
from invoicer.delivery.email.mailer import Mailer, Outcome, SendResult
from invoicer.delivery.email.memory import MemoryMailer
from invoicer.delivery.email.message import (
    DEFAULT_MAX_ATTACHMENT,
    build_invoice_message,
    message_id,
    should_attach,
)
from invoicer.delivery.email.outbox import DEFAULT_MAIL_URL, FileMailer, outbox_name
from invoicer.delivery.email.render import RenderedEmail, one_line, render_invoice_email
from invoicer.delivery.email.smtp import SmtpMailer
from invoicer.delivery.email.wire import envelope, serialize
from invoicer.delivery.fileurl import by_scheme

__all__ = [
    "DEFAULT_MAIL_URL",
    "DEFAULT_MAX_ATTACHMENT",
    "DKIM_HEADERS",
    "DkimSigner",
    "FileMailer",
    "Mailer",
    "MemoryMailer",
    "Outcome",
    "RenderedEmail",
    "SendResult",
    "SmtpMailer",
    "build_invoice_message",
    "envelope",
    "mailer_from_url",
    "message_id",
    "one_line",
    "outbox_name",
    "render_invoice_email",
    "serialize",
    "should_attach",
]

# Scheme -> class; configuration names a URL, never a class path.
_BACKENDS = {
    "file": FileMailer.from_url,
    "smtp": SmtpMailer.from_url,
    "smtps": SmtpMailer.from_url,
}


def mailer_from_url(url: str = DEFAULT_MAIL_URL) -> Mailer:
    """Open the mailer a URL names (``INVOICER_MAIL_URL``): ``file://PATH`` (default
    ``file://var/outbox``), ``smtp://user:pass@host:587?starttls=true`` or
    ``smtps://user:pass@host:465``; see each class's ``from_url`` for options."""
    return by_scheme(url, _BACKENDS, "mail")
