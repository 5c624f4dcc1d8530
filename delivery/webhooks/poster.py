"""The Protocol every webhook transport implements."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol


class WebhookPoster(Protocol):
    """POSTs a signed event body to an endpoint."""

    def post(self, url: str, body: bytes, headers: Mapping[str, str]) -> int:
        """Send ``body`` with ``headers``; the HTTP status the endpoint answered.

        Raises :class:`~invoicer.delivery.errors.TransientDeliveryError` when no answer
        came (refused, reset, timed out): the caller retries later either way, and an
        answer of any status is the endpoint's to give.
        """
        ...

    def close(self) -> None:
        """Release connections."""
        ...
