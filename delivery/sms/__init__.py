"""The SMS notice: its text per locale, and the gateways that send it.

Text (``text``, ``gsm``). :func:`render_sms` fills ``templates/sms/<message>/<locale>.txt``
with values formatted for the locale and cleaned of anything that could reorder, hide
or break the text, and reports the encoding and segment count: GSM 03.38 7-bit or
UCS-2, and how a text splits into parts (:mod:`~invoicer.delivery.sms.gsm`).

Sending (``gateway``). One small Protocol, :class:`SmsGateway`, with one verb,
``send``; backends are picked by URL (:func:`gateway_from_url`, ``INVOICER_SMS_URL``):

- ``file://PATH`` -> :class:`FileSmsOutbox` (``outbox``): ``PATH/outbox.jsonl``, one
  JSON line per message (the embedded default, ``file://var/sms``);
- ``http://`` / ``https://`` -> :class:`HttpSmsGateway` (``http``): a JSON API with a
  bearer token;
- ``memory://`` -> :class:`MemorySmsGateway` (``memory``): a list, for tests of callers.

Every backend is **idempotent per reference**: a second ``send`` with a reference
already sent sends nothing and returns the first result (the HTTP gateway is asked to
do the same through the ``Idempotency-Key`` header). A deliberate re-send therefore
uses a new reference (e.g. ``{invoice}:sms:{attempt}``). Failures leave as
:class:`~invoicer.delivery.errors.TransientDeliveryError` (retry with
:func:`~invoicer.delivery.retry.retry_transient`; ``retry_after`` seconds when the
gateway said so) or :class:`~invoicer.delivery.errors.PermanentDeliveryError` (report).

Receipts (``receipts``). :func:`parse_receipt` reads the delivery report a gateway posts
back, for the HTTP API to expose; its docstring documents the JSON expected.
"""

from __future__ import annotations

import functools

from invoicer.delivery.fileurl import by_scheme
from invoicer.delivery.sms.gateway import (
    DEFAULT_SMS_URL,
    MAX_SEGMENTS,
    SmsGateway,
    SmsMessage,
    SmsResult,
)
from invoicer.delivery.sms.http import HttpSmsGateway
from invoicer.delivery.sms.memory import MemorySmsGateway
from invoicer.delivery.sms.outbox import FileSmsOutbox
from invoicer.delivery.sms.receipts import Receipt, parse_receipt
from invoicer.delivery.sms.text import (
    SmsText,
    operator_short_name,
    render_access_code,
    render_sms,
)

__all__ = [
    "DEFAULT_SMS_URL",
    "MAX_SEGMENTS",
    "FileSmsOutbox",
    "HttpSmsGateway",
    "MemorySmsGateway",
    "Receipt",
    "SmsGateway",
    "SmsMessage",
    "SmsResult",
    "SmsText",
    "gateway_from_url",
    "operator_short_name",
    "parse_receipt",
    "render_access_code",
    "render_sms",
]


def gateway_from_url(url: str = DEFAULT_SMS_URL, *, token: str | None = None) -> SmsGateway:
    """Open the gateway a URL names: ``file://PATH`` (default ``file://var/sms``),
    ``https://[:TOKEN@]host/path[?token=...]`` (or ``http://``), or ``memory://``.

    ``token`` is the HTTP gateway's token when the URL carries none.
    """
    # Scheme -> class; configuration names a URL, never a class path.
    backends = {
        "file": FileSmsOutbox.from_url,
        "http": functools.partial(HttpSmsGateway.from_url, token=token),
        "https": functools.partial(HttpSmsGateway.from_url, token=token),
        "memory": MemorySmsGateway.from_url,
    }
    return by_scheme(url, backends, "SMS")
