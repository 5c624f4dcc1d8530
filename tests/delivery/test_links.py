"""Signed download links: valid ones open one invoice, nothing else opens anything."""

from __future__ import annotations

import base64
import hmac
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from invoicer.delivery.links import (
    InvalidLinkError,
    LinkClaims,
    _b64,
    invoice_link,
    local_secret,
    sign,
    sign_fields,
    verify,
)

SECRET = b"k" * 32


def test_round_trip_and_expiry():
    claims = LinkClaims("oi", "1234567890", "OI-2026-11-0000123", 2_000)
    token = sign(claims, SECRET)
    assert verify(token, SECRET, now=1_999) == claims
    with pytest.raises(InvalidLinkError, match="expired"):
        verify(token, SECRET, now=2_000)


HOSTILE = ["", 'a"b', "a\\b", "\u00e9\u00e7\u00e3o", "\u4e2d\u6587", "\U0001f600", "\x00\x1f\x7f",
           "\n\r\t", "\u2028\u2029", "</script>", "a,b]", "' OR 1=1 --"]


@given(st.sampled_from(HOSTILE) | st.text(), st.sampled_from(HOSTILE) | st.text(),
       st.sampled_from(HOSTILE) | st.text(), st.integers(0, 2**53))
def test_the_payload_is_the_compact_json_of_the_claims(operator, account, invoice, expires):
    """sign() spells its payload out for speed: it must stay ``json.dumps`` of the
    claims' list (compact, ASCII), whatever text the claims hold, and round-trip."""
    token = sign(LinkClaims(operator, account, invoice, expires), SECRET)
    payload_b64, mac_b64 = token.split(".")
    payload = base64.urlsafe_b64decode(payload_b64 + "=" * (-len(payload_b64) % 4))
    assert payload == json.dumps([operator, account, invoice, expires],
                                 separators=(",", ":")).encode()
    mac = base64.urlsafe_b64decode(mac_b64 + "=" * (-len(mac_b64) % 4))
    assert mac == hmac.digest(SECRET, payload, "sha256")
    assert verify(token, SECRET, now=expires - 1) == LinkClaims(operator, account, invoice,
                                                                expires)
    # A history's links: the same token without the claims' object, the key given.
    assert sign_fields(operator, account, invoice, expires, SECRET) == token


@given(st.binary(max_size=200))
def test_base64url_is_the_standard_librarys_unpadded(data):
    assert _b64(data) == base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def test_every_single_bit_flip_is_refused():
    token = sign(LinkClaims("oi", "1", "N-1", 10**10), SECRET)
    for i in range(len(token)):
        for replacement in {"A", "B", "_", "-"} - {token[i]}:
            forged = token[:i] + replacement + token[i + 1:]
            with pytest.raises(InvalidLinkError):
                verify(forged, SECRET, now=0)


def test_no_other_spelling_of_a_token_is_accepted():
    """The last character of unpadded base64 carries unused bits: a decoder that ignores
    them takes several strings for one signature (a flipped link that still opens).
    Every other character at the end of either part, over many tokens, is refused."""
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    for n in range(64):
        token = sign(LinkClaims("oi", str(n), f"N-{n}", 10**10), SECRET)
        payload, mac = token.split(".")
        for replacement in set(alphabet) - {mac[-1]}:
            with pytest.raises(InvalidLinkError):
                verify(f"{payload}.{mac[:-1]}{replacement}", SECRET, now=0)
        for replacement in set(alphabet) - {payload[-1]}:
            with pytest.raises(InvalidLinkError):
                verify(f"{payload[:-1]}{replacement}.{mac}", SECRET, now=0)


def test_other_secret_other_operator_and_garbage_are_refused():
    token = sign(LinkClaims("oi", "1", "N-1", 10**10), SECRET)
    with pytest.raises(InvalidLinkError):
        verify(token, b"x" * 32, now=0)
    _, mac = token.split(".")
    other = sign(LinkClaims("vivo", "1", "N-1", 10**10), SECRET).split(".")[0]
    with pytest.raises(InvalidLinkError):
        verify(f"{other}.{mac}", SECRET, now=0)  # signature of another claim set
    for junk in ("", ".", "a.b.c", "../../etc/passwd", "%2e%2e"):
        with pytest.raises(InvalidLinkError):
            verify(junk, SECRET, now=0)


def test_link_shape_and_local_secret(tmp_path):
    url = invoice_link("https://bills.example/", "oi", "1", "N-1", SECRET, ttl=60, now=100)
    assert url.startswith("https://bills.example/invoices/") and url.endswith(".pdf")
    token = url.rsplit("/", 1)[1].removesuffix(".pdf")
    assert verify(token, SECRET, now=159).invoice == "N-1"
    path = tmp_path / "secret"
    first = local_secret(path)
    assert len(first) == 32 and local_secret(path) == first
    assert path.stat().st_mode & 0o777 == 0o600
