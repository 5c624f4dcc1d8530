"""Webhooks over HTTP with httpx: a pooled client, short timeouts, no redirects.

httpx rather than the standard library: connection pooling and keep-alive across a
batch, one timeout object for connect/read/write/pool, and a clear exception tree
(``TimeoutException`` < ``TransportError``) to translate at the edge.
"""

from __future__ import annotations

from collections.abc import Mapping

import httpx

from invoicer.delivery.errors import TransientDeliveryError

__all__ = ["HttpxPoster"]

USER_AGENT = "invoicer-webhooks/1"


class HttpxPoster:
    """:class:`~invoicer.delivery.webhooks.WebhookPoster` over an ``httpx.Client``.

    ``HttpxPoster(client)`` takes a ready client (tests, proxies, mTLS);
    :meth:`with_timeout` builds one. Redirects are not followed: a signed event goes
    where the operator registered it, or fails and is retried.
    """

    def __init__(self, client: httpx.Client) -> None:
        self._client = client

    @classmethod
    def with_timeout(cls, timeout: float = 10.0) -> HttpxPoster:
        """A poster whose every phase (connect, write, read, pool) waits ``timeout`` s."""
        return cls(httpx.Client(timeout=httpx.Timeout(timeout), follow_redirects=False,
                                headers={"User-Agent": USER_AGENT}))

    def post(self, url: str, body: bytes, headers: Mapping[str, str]) -> int:
        """POST and return the status; no answer is a ``TransientDeliveryError``."""
        try:
            response = self._client.post(url, content=body, headers=dict(headers))
        except httpx.TimeoutException as exc:
            raise TransientDeliveryError(f"webhook timed out: {type(exc).__name__}") from exc
        except httpx.TransportError as exc:
            raise TransientDeliveryError(f"webhook not reached: {type(exc).__name__}: "
                                         f"{exc}") from exc
        response.close()
        return response.status_code

    def close(self) -> None:
        self._client.close()
