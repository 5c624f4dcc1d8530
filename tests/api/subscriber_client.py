"""What the subscriber API tests share: the API's prefix, a session through the SMS code,
signed invoice links made directly, and a moment before the world's latest due date."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from invoicer.delivery import links
from invoicer.delivery.links import LinkClaims
from tests.api.conftest import SECRET, sms_code
from tests.api.world import MAIN

API = "/v1/subscriber"
#: A day before the world's latest invoice falls due (2026-11-20).
BEFORE_DUE = datetime(2026, 11, 19, 12, tzinfo=UTC)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def session(sub, phone: str = MAIN[2]) -> str:
    before = len([m for m in sub.outbox.messages() if m.to == phone])
    got = sub.http.post(f"{API}/sms-code", json={"phone": phone})
    assert got.status_code == 202, got.text
    code = sms_code(sub.outbox, phone, after=before)
    opened = sub.http.post(f"{API}/session", json={"phone": phone, "code": code})
    assert opened.status_code == 200, opened.text
    return opened.json()["token"]


def link_token(operator: str, account: str, number: str, *, ttl: int = 3600, now=None,
               secret: bytes = SECRET) -> str:
    expires = int((now if now is not None else time.time()) + ttl)
    return links.sign(LinkClaims(operator, account, number, expires), secret)
