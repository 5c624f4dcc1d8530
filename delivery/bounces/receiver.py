"""The bounce domain's mail receiver: SMTP or LMTP on a port, through aiosmtpd.

Point the bounce domain's MX (or the MTA's LMTP transport) at it. It takes mail for
``<local>+...@<domain>`` and ``<local>@<domain>`` only (anything else is refused at
RCPT TO with 550), and hands each message with its envelope recipients to a callback
(a plain blocking function, run in a thread). The message is acknowledged (250) only
after the callback returns, so a crash or a ledger outage makes the sending MTA try
again (451) instead of losing the bounce.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from aiosmtpd.controller import Controller
from aiosmtpd.lmtp import LMTP
from aiosmtpd.smtp import SMTP

from invoicer.delivery.bounces.verp import Verp

__all__ = ["BounceHandler", "BounceReceiver"]

log = logging.getLogger(__name__)

#: Bounces are small; a huge message to the bounce address is not one.
MAX_MESSAGE = 2 * 1024 * 1024


class BounceHandler:
    """aiosmtpd handler: accept our addresses, pass each message to ``take``."""

    def __init__(self, verp: Verp, take: Callable[[bytes, tuple[str, ...]], object], *,
                 lmtp: bool = False) -> None:
        self.verp, self.take, self.lmtp = verp, take, lmtp

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if not self.verp.is_ours(address):
            return "550 5.1.1 not a bounce address here"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server, session, envelope):
        data = envelope.original_content or envelope.content or b""
        if isinstance(data, str):
            data = data.encode("utf-8", "surrogateescape")
        try:
            await asyncio.to_thread(self.take, bytes(data), tuple(envelope.rcpt_tos))
            reply = "250 2.0.0 OK"
        except Exception:
            log.exception("bounce receiver: could not record a message; the sender "
                          "will retry")
            reply = "451 4.3.0 could not record it now, try again later"
        # LMTP answers DATA once per recipient.
        return "\r\n".join([reply] * len(envelope.rcpt_tos)) if self.lmtp else reply


class BounceReceiver(Controller):
    """An SMTP (or LMTP) server for the bounce domain on ``host:port`` in a thread."""

    def __init__(self, handler: BounceHandler, host: str = "127.0.0.1", port: int = 2525):
        super().__init__(handler, hostname=host, port=port,
                         data_size_limit=MAX_MESSAGE, enable_SMTPUTF8=True)
        self.lmtp = handler.lmtp

    def factory(self):
        cls = LMTP if self.lmtp else SMTP
        return cls(self.handler, **self.SMTP_kwargs)
