"""``http://`` / ``https://``: an SMS gateway's JSON API, one ``POST`` per message."""

from __future__ import annotations

import contextlib
import email.utils
import http.client
import json
import logging
import re
import ssl
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

from invoicer.delivery.errors import (
    PermanentDeliveryError,
    TransientDeliveryError,
    error_for_status,
)
from invoicer.delivery.sms.gateway import SmsResult, check_message, utc_now
from invoicer.delivery.sms.text import clean_value

__all__ = ["HttpSmsGateway"]

log = logging.getLogger(__name__)

_MAX_RESPONSE = 64 * 1024  # a JSON answer; anything bigger is not one


class HttpSmsGateway:
    """An SMS gateway's JSON API: one ``POST`` per message.

    The request::

        POST {endpoint}
        Authorization: Bearer {token}
        Idempotency-Key: {reference}
        Content-Type: application/json; charset=utf-8

        {"to": "+5521987654321", "text": "...", "reference": "OI-2026-11-0000123:sms:1",
         "encoding": "gsm7", "segments": 1}

    A 2xx answer may carry ``{"message_id": "..."}`` (or ``"id"``) and ``"segments"``;
    without an id the reference stands in for it. 429 and 5xx (but 501/505) raise
    ``TransientDeliveryError`` with ``retry_after`` (seconds, from ``Retry-After``, or
    None); any other status raises ``PermanentDeliveryError``; refused or dropped
    connections and timeouts are transient. A timeout after the request went out leaves
    it unknown whether the gateway took it: retrying is safe only because the gateway
    de-duplicates on ``Idempotency-Key``, which this backend requires of it.
    """

    def __init__(self, endpoint: str, token: str | None, *, timeout: float = 10.0,
                 connect_timeout: float = 5.0,
                 ssl_context: ssl.SSLContext | None = None) -> None:
        parts = urlsplit(endpoint)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) endpoint: {endpoint!r}")
        if parts.username or parts.password or parts.fragment:
            raise ValueError("the endpoint carries no credentials or fragment; "
                             "pass the token separately")
        if token is not None and not re.fullmatch(r"[!-~]+", token):
            raise ValueError("the token must be printable ASCII without spaces")
        self.endpoint = endpoint
        self.token = token
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self._https = parts.scheme == "https"
        self._host = parts.hostname
        self._port = parts.port
        self._target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self._ssl_context = ssl_context
        if not self._https and self._host not in ("127.0.0.1", "::1", "localhost"):
            log.warning("SMS gateway %s is plain HTTP: the token travels in clear", endpoint)

    @classmethod
    def from_url(cls, url: str, *, token: str | None = None) -> HttpSmsGateway:
        """``https://[:TOKEN@]host[:port]/path[?token=...&timeout=...&connect_timeout=...]``.

        The token comes from the URL's password or its ``token`` parameter (both masked
        by ``invoicer config``), else from ``token`` (the service passes
        ``INVOICER_SMS_TOKEN``); one is required.
        ``timeout`` (seconds to wait for the answer, default 10) and ``connect_timeout``
        (default 5) are options; other query parameters stay part of the endpoint.
        """
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.fragment:
            raise ValueError(f"not an http(s) SMS gateway URL: {parts.scheme}://"
                             f"{parts.hostname}{parts.path}")
        if parts.username and not parts.password:
            # A bare "user@" would be printed unmasked by `invoicer config`.
            raise ValueError("put the SMS token in the URL's password (https://:TOKEN@host) "
                             "or in ?token=, not in the user name")
        options: dict[str, str] = {}
        rest: list[tuple[str, str]] = []
        for name, value in parse_qsl(parts.query, keep_blank_values=True):
            if name in ("token", "timeout", "connect_timeout"):
                options[name] = value
            else:
                rest.append((name, value))
        token = (options.get("token") or (unquote(parts.password) if parts.password else None)
                 or token or None)
        if not token:
            raise ValueError("the SMS gateway needs a token: https://:TOKEN@host/..., "
                             "?token=..., or INVOICER_SMS_TOKEN")
        netloc = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
        if parts.port:
            netloc += f":{parts.port}"
        endpoint = urlunsplit((parts.scheme, netloc, parts.path or "/", urlencode(rest), ""))
        kwargs = {}
        for name in ("timeout", "connect_timeout"):
            if name in options:
                try:
                    kwargs[name] = float(options[name])
                except ValueError:
                    raise ValueError(f"{name} must be a number of seconds, "
                                     f"not {options[name]!r}") from None
                if not kwargs[name] > 0:
                    raise ValueError(f"{name} must be positive, not {options[name]!r}")
        return cls(endpoint, token, **kwargs)

    def __repr__(self) -> str:
        return f"HttpSmsGateway({self.endpoint!r})"  # never the token

    def send(self, to: str, text: str, *, reference: str) -> SmsResult:
        """``POST`` the message; see the class for statuses and errors."""
        described = check_message(to, text, reference)
        body = json.dumps({"to": to, "text": text, "reference": reference,
                           "encoding": described.encoding, "segments": described.count},
                          ensure_ascii=False).encode()
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            "Accept": "application/json",
            "Idempotency-Key": reference,
            "User-Agent": "invoicer-sms/1",
        }
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        status, response_headers, data = self._post(body, headers, reference)
        if 200 <= status <= 299:
            return self._result(data, reference, described.count)
        error = error_for_status(status, f"SMS gateway refused {reference}: {_detail(data)}")
        if isinstance(error, TransientDeliveryError):
            error.retry_after = _retry_after(response_headers.get("retry-after"))
        raise error

    def _connection(self) -> http.client.HTTPConnection:
        if self._https:
            return http.client.HTTPSConnection(
                self._host, self._port, timeout=self.connect_timeout,
                context=self._ssl_context or ssl.create_default_context())
        return http.client.HTTPConnection(self._host, self._port, timeout=self.connect_timeout)

    def _post(self, body: bytes, headers: Mapping[str, str],
              reference: str) -> tuple[int, dict[str, str], bytes]:
        # One connection per message: a kept-alive connection the gateway closed in the
        # meantime would fail the next send half-way, and SMS volumes (one per invoice,
        # a few per second per worker) do not need the saved handshake.
        conn = self._connection()
        what = f"sending {reference} to {self.endpoint}"
        try:
            conn.connect()
            if conn.sock is not None:  # connected within connect_timeout; now the answer
                conn.sock.settimeout(self.timeout)
            conn.request("POST", self._target, body=body, headers=dict(headers))
            response = conn.getresponse()
            data = response.read(_MAX_RESPONSE)
            return (response.status, {k.lower(): v for k, v in response.getheaders()},
                    data)
        except ssl.SSLCertVerificationError as exc:
            # A certificate that does not verify will not verify on a retry either.
            raise PermanentDeliveryError(f"{what}: {exc.verify_message or exc}") from exc
        except TimeoutError as exc:
            raise TransientDeliveryError(f"{what}: timed out") from exc
        except (OSError, http.client.HTTPException) as exc:
            raise TransientDeliveryError(f"{what}: {type(exc).__name__}: {exc}") from exc
        finally:
            conn.close()

    @staticmethod
    def _result(data: bytes, reference: str, segments: int) -> SmsResult:
        try:
            doc = json.loads(data) if data.strip() else {}
        except ValueError:
            doc = {}
        if not isinstance(doc, dict):
            doc = {}
        raw_id = doc.get("message_id", doc.get("id"))
        message_id = str(raw_id) if isinstance(raw_id, str | int) else ""
        if not re.fullmatch(r"[!-~]{1,128}", message_id):
            # The gateway took the message (2xx) but gave no usable id: failing now
            # would make a retry look like a second message. Our reference names it.
            message_id = reference
        counted = doc.get("segments")
        if isinstance(counted, int) and not isinstance(counted, bool) and counted > 0:
            segments = counted  # the gateway bills its own count; record that one
        return SmsResult(message_id, segments)


def _detail(data: bytes) -> str:
    """A short, printable excerpt of a gateway's error answer."""
    text = data[:2000].decode("utf-8", "replace")
    with contextlib.suppress(ValueError):
        doc = json.loads(text)
        if isinstance(doc, dict):
            for key in ("error", "message", "detail", "title"):
                if isinstance(doc.get(key), str):
                    text = doc[key]
                    break
    text = clean_value(text)
    return (text[:200] + "…") if len(text) > 200 else (text or "(no details)")


def _retry_after(value: str | None, now: Callable[[], datetime] = utc_now) -> float | None:
    """Seconds from a ``Retry-After`` header: delta-seconds or an HTTP date; else None."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(int(value))
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now()).total_seconds())
