"""Bounces and complaints: the far end's word on e-mail that was handed over.

- ``verp``: a signed return path per delivery (:class:`Verp`), so a bounce names its
  delivery without reading free text;
- ``reports``: DSNs (RFC 3464) and ARF complaints (RFC 5965) read with the standard
  library's ``email`` (:func:`parse_report`): ``5.x.x`` hard, ``4.x.x`` soft, anything
  else (an out-of-office reply, a malformed message) never a bounce;
- ``events``: e-mail providers' webhooks in one generic JSON shape (:func:`parse_event`);
- the ways bounces arrive: ``receiver`` (SMTP/LMTP through aiosmtpd,
  :class:`BounceReceiver`) and ``imap`` (a mailbox, :class:`ImapMailbox`); the HTTP
  endpoint is in ``api/callbacks.py``.

What a bounce changes (the ledger, the fallback) is :mod:`invoicer.workflows.fallback`'s.
"""

from __future__ import annotations

from invoicer.delivery.bounces.events import parse_event
from invoicer.delivery.bounces.imap import ImapMailbox
from invoicer.delivery.bounces.receiver import BounceHandler, BounceReceiver
from invoicer.delivery.bounces.reports import Report, clean, parse_report
from invoicer.delivery.bounces.verp import Verp

__all__ = ["BounceHandler", "BounceReceiver", "ImapMailbox", "Report", "Verp", "clean",
           "parse_event", "parse_report"]
