"""An in-memory webhook poster: records what was posted, answers what it is told."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from invoicer.delivery.errors import TransientDeliveryError

__all__ = ["MemoryPoster", "Posted"]


@dataclass(frozen=True)
class Posted:
    """One request the fake received."""

    url: str
    body: bytes
    headers: dict[str, str]

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class MemoryPoster:
    """:class:`~invoicer.delivery.webhooks.WebhookPoster` in memory.

    ``answers`` is consumed one per post (an int is a status, ``None`` means no
    answer, raised as a transient error); when empty every post gets ``200``.
    """

    answers: list[int | None] = field(default_factory=list)
    posted: list[Posted] = field(default_factory=list)

    def post(self, url: str, body: bytes, headers: Mapping[str, str]) -> int:
        answer = self.answers.pop(0) if self.answers else 200
        if answer is None:
            raise TransientDeliveryError("webhook timed out (memory)")
        self.posted.append(Posted(url, bytes(body), dict(headers)))
        return answer

    def close(self) -> None:
        pass
