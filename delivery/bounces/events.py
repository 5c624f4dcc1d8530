"""E-mail providers' bounce and complaint webhooks, in one generic JSON shape.

Providers each have their own; a small adapter (or the provider's own templating)
maps theirs to this one, which the HTTP endpoint takes::

    {
      "type": "bounce",                         # | "complaint"
      "return_path": "bounces+42-...@bounce.example",   # the envelope sender, or/and
      "message_id": "<oi.OI-1.0@mail.example>",         # the Message-ID we sent
      "recipient": "ana@example.com",           # optional
      "status": "5.1.1",                        # bounces: the DSN status, required
      "diagnostic": "smtp; 550 5.1.1 no such user"       # optional
    }

A bounce with a ``5.x.x`` status is hard, ``4.x.x`` soft; a complaint needs no status.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from invoicer.delivery.bounces.reports import Report, clean

__all__ = ["parse_event"]

_STATUS = re.compile(r"[45]\.\d{1,3}\.\d{1,3}")
_MESSAGE_ID = re.compile(r"<[!-;=?-~]{1,250}>")
_ADDRESS = re.compile(r"[^\s<>@]{1,200}@[^\s<>@]{1,255}")


def parse_event(body: Any) -> Report:
    """The :class:`Report` an event says; ``ValueError`` with the reason if malformed."""
    if not isinstance(body, Mapping):
        raise ValueError("an event is a JSON object")
    kind = body.get("type")
    if kind not in ("bounce", "complaint"):
        raise ValueError("type must be 'bounce' or 'complaint'")
    return_path, message_id = body.get("return_path"), body.get("message_id")
    if return_path is not None and not (isinstance(return_path, str)
                                        and _ADDRESS.fullmatch(return_path)):
        raise ValueError("return_path must be an e-mail address")
    if message_id is not None and not (isinstance(message_id, str)
                                       and _MESSAGE_ID.fullmatch(message_id)):
        raise ValueError("message_id must look like <local@domain>")
    if return_path is None and message_id is None:
        raise ValueError("an event names the message: return_path or message_id")
    recipient = body.get("recipient")
    if recipient is not None and not (isinstance(recipient, str)
                                      and _ADDRESS.fullmatch(recipient)):
        raise ValueError("recipient must be an e-mail address")
    status = body.get("status")
    if kind == "bounce":
        if not isinstance(status, str) or not _STATUS.fullmatch(status):
            raise ValueError("a bounce needs a status like 5.1.1 or 4.2.2")
    else:
        status = "abuse"
    diagnostic = body.get("diagnostic")
    if diagnostic is not None and not isinstance(diagnostic, str):
        raise ValueError("diagnostic must be a string")
    return Report(kind, kind == "complaint" or status.startswith("5"), status,
                  clean(diagnostic), recipient, message_id,
                  (return_path,) if return_path else ())
