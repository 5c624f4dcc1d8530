"""What an invoice *says*: the content an invoice number is issued with, and its hash.

Contract 1.1: "an invoice number is issued once, with one content". The content is
the record's meaning, not its bytes: every field but ``delivery`` (how the invoice
travels — a changed e-mail address is the same invoice) and ``schema`` (the envelope's
version: a 1.0 record and the same record sent as 1.1 mean exactly the same invoice),
after parsing, so that key order, whitespace, escapes, omitted defaults and ``"10.5"``
against ``"10.50"`` do not make two contents of one invoice.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from datetime import date, datetime
from decimal import Decimal
from json.encoder import encode_basestring
from typing import Any

from invoicer.billing.errors import format_path
from invoicer.billing.models import BillingRecord, Usage, UsageType

__all__ = ["EXCLUDED", "content", "content_sha256", "content_text", "first_difference"]

#: Top-level fields that are not the invoice's content.
EXCLUDED = frozenset({"delivery", "schema_version"})


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, Decimal):
        # The number, whatever its written scale: 10.5 and 10.50 are one amount.
        return format(value.normalize(), "f") if value else "0"
    if isinstance(value, date):
        return value.isoformat()
    if hasattr(value, "value") and not isinstance(value, str | int | float | bool):
        return _plain(value.value)  # enums
    return value


def content(record: BillingRecord) -> dict[str, Any]:
    """The record's content as plain JSON-ready data (see the module's docstring)."""
    return _plain(record.model_dump(mode="python", by_alias=True,
                                    exclude=set(EXCLUDED)))


def _leaf(value: Any) -> Any:
    """What :func:`_plain` makes of a value JSON cannot hold as it is (a Decimal, a
    date, an enum that is not a str or int): the encoder asks only for those."""
    kind = type(value)
    if kind is Decimal:  # most of them (every amount): as _plain writes it, inline
        return format(value.normalize(), "f") if value else "0"
    if kind is date:
        return value.isoformat()
    if isinstance(value, Decimal | date) or (
            hasattr(value, "value") and not isinstance(value, str | int | float | bool)):
        return _plain(value)
    raise TypeError(f"{type(value).__name__} is not content")


#: The one encoder of the content: sorted keys, no spaces, UTF-8 as is. Its C
#: implementation walks the dump and calls :func:`_leaf` only for the values JSON has no
#: form for, which is exactly what :func:`_plain` changes (a tuple becomes an array
#: either way; str and int enums are their values to both): the same text as
#: ``json.dumps(content(record), ...)``, without a Python call for each of the ~1,000
#: values of an invoice (that walk cost more than the hash's whole rest).
_ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                            allow_nan=False, default=_leaf)


def content_sha256(record: BillingRecord) -> str:
    """Hex SHA-256 of the record's canonical content (sorted keys, no spaces, UTF-8):
    of ``json.dumps(content(record), sort_keys=True, separators=(",", ":"),
    ensure_ascii=False, allow_nan=False)``, which is what contract 1.1 fixed."""
    return hashlib.sha256(content_text(record).encode("utf-8")).hexdigest()


#: What the dump leaves out for :func:`content_text`: what is not content, and the
#: call-detail rows, which are written by :func:`_usage_text`.
_WITHOUT_USAGE: dict[str, Any] = {**dict.fromkeys(EXCLUDED, True),
                                  "services": {"__all__": {"usage"}}}


def content_text(record: BillingRecord) -> str:
    """The text :func:`content_sha256` hashes.

    The call-detail rows are most of a large record (3,500 rows: ~20 ms of its 30 ms
    hash went to pydantic dumping each row to a dict and the encoder sorting it and
    calling back for each amount and instant), so
    they are written straight from the ``Usage`` objects (:func:`_usage_text`) and the
    rest of the record is dumped without them; the pieces are joined in sorted key
    order exactly as the encoder joins them. A row that is not the plain shape the fast
    path knows makes the whole record take the encoder's way, as before.
    """
    services = record.services
    rows = [_usage_text(s.usage) for s in services]
    if any(text is None for text in rows):
        dumped = record.model_dump(mode="python", by_alias=True, exclude=set(EXCLUDED))
        return _ENCODER.encode(dumped)
    dumped = record.model_dump(mode="python", by_alias=True, exclude=_WITHOUT_USAGE)
    encode = _ENCODER.encode
    listed = []
    for service, usage in zip(dumped["services"], rows, strict=True):
        fields = {key: encode(value) for key, value in service.items()}
        fields["usage"] = usage
        listed.append(_joined(fields))
    top = {key: encode(value) for key, value in dumped.items() if key != "services"}
    top["services"] = "[" + ",".join(listed) + "]"
    return _joined(top)


def _joined(fields: dict[str, str]) -> str:
    """A JSON object of already encoded values, keys sorted (``sort_keys=True``)."""
    return "{" + ",".join(f"{encode_basestring(key)}:{fields[key]}"
                          for key in sorted(fields)) + "}"


_USAGE_KEYS = ("amount", "called", "destination", "duration_s", "start", "type", "volume_kb")
if tuple(sorted(Usage.__slots__)) != _USAGE_KEYS:
    raise ImportError("billing.content writes Usage rows field by field: follow its fields")


#: One row's content: its keys in sorted order, as the encoder separates them.
_ROW = ('{"amount":"%s","called":%s,"destination":%s,"duration_s":%s,"start":"%s",'
        '"type":%s,"volume_kb":%s}')
_TYPE_TEXT = {t: encode_basestring(t.value) for t in UsageType}


def _usage_text(rows: Sequence[Usage]) -> str | None:
    """``rows`` as the encoder writes their content (keys sorted, amounts normalized,
    instants in ISO 8601), or None if a row holds a type this does not expect.

    Amounts and destinations repeat within a record, so their text is remembered for
    it: an amount's text depends on its value alone (``normalize`` gives equal values
    one form, and zero of either sign is ``"0"``), and ``Decimal`` hashes by value.
    """
    quote, parts = encode_basestring, []
    amounts: dict[Decimal, str] = {}
    places: dict[str, str] = {}
    types = _TYPE_TEXT
    for u in rows:
        amount, called, duration, volume = u.amount, u.called, u.duration_s, u.volume_kb
        start, destination = u.start, u.destination
        if not (type(amount) is Decimal and type(start) is datetime
                and type(destination) is str
                and (called is None or type(called) is str)
                and (duration is None or type(duration) is int)
                and (volume is None or type(volume) is int)):
            return None
        money = amounts.get(amount)
        if money is None:
            money = amounts[amount] = format(amount.normalize(), "f") if amount else "0"
        place = places.get(destination)
        if place is None:
            place = places[destination] = quote(destination)
        kind = types.get(u.type)
        if kind is None:
            return None
        parts.append(_ROW % (
            money, "null" if called is None else quote(called), place,
            "null" if duration is None else duration, start.isoformat(), kind,
            "null" if volume is None else volume))
    return "[" + ",".join(parts) + "]"


def first_difference(issued: BillingRecord, record: BillingRecord) -> str | None:
    """The field path (``services[0].charges[1].amount``) of the first place, in key
    order, where two records' contents differ; None when they say the same."""
    return _walk(content(issued), content(record), ())


def _walk(a: Any, b: Any, path: tuple) -> str | None:
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b)):
            if key not in a or key not in b:
                return format_path((*path, key))
            found = _walk(a[key], b[key], (*path, key))
            if found:
                return found
        return None
    if isinstance(a, list) and isinstance(b, list):
        for i, (x, y) in enumerate(zip(a, b, strict=False)):
            found = _walk(x, y, (*path, i))
            if found:
                return found
        return format_path(path) if len(a) != len(b) else None
    return None if a == b else format_path(path) or None
