"""The one place that reaches inside aiosmtplib: the message data sent on its own.

``SMTP.data()`` sends the DATA command and the message in one call, so a connection
lost inside it could be before the server's 354 (nothing was sent: retry) or after the
payload (the message may be delivered: never resend blindly). The SMTP mailer keeps the
two apart: it sends ``DATA`` with the public ``execute_command``, then the payload and
the final reply through the two functions here, which use aiosmtplib's protocol object.

What they rely on (aiosmtplib 5.x; ``tests/delivery/email/test_internals.py`` checks
each point against the installed version and names the one that changed):

- ``SMTP.protocol`` is the connection's ``SMTPProtocol``, ``None`` once it is lost;
- ``SMTPProtocol.write(data)`` is synchronous and raises ``SMTPServerDisconnected``
  before sending a byte when the transport is closing;
- ``SMTPProtocol.read_response(timeout=...)`` returns the next reply as an
  ``SMTPResponse`` and marks a reply as expected before it waits, so a reply that
  arrives right after the write is kept; it raises ``SMTPReadTimeoutError`` when none
  comes in time;
- ``SMTPServerDisconnected`` and ``SMTPReadTimeoutError`` are ``OSError`` subclasses
  (the mailer's "connection trouble" branch catches ``OSError``).
"""

from __future__ import annotations

import aiosmtplib

__all__ = ["read_reply", "write_payload"]


def write_payload(smtp: aiosmtplib.SMTP, payload: bytes) -> None:
    """Write the dot-stuffed message data (ending ``.\\r\\n``) after a 354.

    Raises ``SMTPServerDisconnected`` before anything is sent when the connection is
    already gone; once this returns, bytes may be on their way. Call
    :func:`read_reply` next, with no ``await`` in between.
    """
    protocol = smtp.protocol
    if protocol is None:
        raise aiosmtplib.SMTPServerDisconnected("Connection lost")
    protocol.write(payload)


async def read_reply(smtp: aiosmtplib.SMTP, *, timeout: float | None) -> aiosmtplib.SMTPResponse:
    """The server's reply to the message data (``250`` when it took it)."""
    protocol = smtp.protocol
    if protocol is None:
        raise aiosmtplib.SMTPServerDisconnected("Connection lost")
    return await protocol.read_response(timeout=timeout)
