"""Webhooks: signing events and POSTing them to the billing system's endpoints.

One small Protocol, :class:`WebhookPoster`, with one verb, ``post``: the real one over
httpx (:class:`HttpxPoster`) and an in-memory fake (:class:`MemoryPoster`). Signing is
:mod:`~invoicer.delivery.webhooks.signature` (``Invoicer-Signature: t=…,v1=…``,
HMAC-SHA256 over ``"{t}." + body``). Which events go where, retries and order are the
workflow's (:mod:`invoicer.workflows.webhooks`) and the ledger's business, not this
package's.
"""

from __future__ import annotations

from invoicer.delivery.webhooks.http import HttpxPoster
from invoicer.delivery.webhooks.memory import MemoryPoster
from invoicer.delivery.webhooks.poster import WebhookPoster
from invoicer.delivery.webhooks.signature import (
    SIGNATURE_HEADER,
    SignatureError,
    sign,
    signed_headers,
    verify,
)

__all__ = ["SIGNATURE_HEADER", "HttpxPoster", "MemoryPoster", "SignatureError",
           "WebhookPoster", "sign", "signed_headers", "verify"]
