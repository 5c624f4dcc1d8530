"""``Invoicer-Signature``: what the sender signs, what :func:`verify` accepts, and the
verification snippet docs/webhooks.md gives receivers, run as printed."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from invoicer.delivery.webhooks import SignatureError, sign, signed_headers, verify

DOC = Path(__file__).resolve().parents[3] / "docs" / "webhooks.md"
SECRET = "whsec_" + "q" * 43
BODY = '{"data":{"total":"104.75","name":"Conceição"},"id":"evt_1"}'.encode()


def _doc_snippet():
    """``verify_invoicer_signature`` from the page's Python block, executed alone."""
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S)
    (code,) = [b for b in blocks if "def verify_invoicer_signature" in b]
    namespace: dict = {}
    exec(compile(code, str(DOC), "exec"), namespace)  # our own page's code
    return namespace["verify_invoicer_signature"]


def test_the_header_is_hmac_sha256_over_timestamp_dot_body():
    import hashlib
    import hmac
    digest = hmac.new(SECRET.encode(), b"1700000000." + BODY, hashlib.sha256).hexdigest()
    assert sign(SECRET, BODY, 1700000000) == f"t=1700000000,v1={digest}"
    headers = signed_headers(SECRET, BODY, event_id="evt_1", event_type="invoice.issued")
    assert headers["Invoicer-Event-Id"] == "evt_1"
    assert verify(SECRET, headers["Invoicer-Signature"], BODY) <= time.time()


@pytest.mark.parametrize("check", ["library", "doc"])
def test_good_signatures_pass_and_every_kind_of_bad_one_fails(check, monkeypatch):
    if check == "doc":
        snippet = _doc_snippet()
        ok = lambda header, body=BODY, secret=SECRET: snippet(secret, header, body)  # noqa: E731
    else:
        def ok(header, body=BODY, secret=SECRET):
            try:
                verify(secret, header, body)
                return True
            except SignatureError:
                return False
    # The clock stands still at a whole second: with it running, "301 s ahead" was
    # checked at now + 301 - (time.time() - now), under the 300 s tolerance (accepted)
    # whenever the fraction of the second int() dropped plus the time taken to get
    # there passed one second.
    now = int(time.time())
    monkeypatch.setattr(time, "time", lambda: float(now))
    good = sign(SECRET, BODY, now)
    assert ok(good)
    assert ok(f"{good},v1={'0' * 64}")  # another v1 beside it (a rotated secret)
    assert not ok(good, body=BODY + b" ")  # a changed body
    assert not ok(good, body=BODY.replace(b"104.75", b"1.75"))
    assert not ok(good, secret=SECRET + "x")  # another secret
    assert not ok(sign(SECRET, BODY, now - 301))  # too old: a replayed request
    assert not ok(sign(SECRET, BODY, now + 301))
    assert not ok(good.replace(f"t={now}", f"t={now - 1}"))  # timestamp is signed too
    for broken in ("", "v1=abc", f"t={now}", "t=x,v1=y", "garbage"):
        assert not ok(broken)
