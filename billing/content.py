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
from datetime import date
from decimal import Decimal
from typing import Any

from invoicer.billing.errors import format_path
from invoicer.billing.models import BillingRecord

__all__ = ["EXCLUDED", "content", "content_sha256", "first_difference"]

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
    dumped = record.model_dump(mode="python", by_alias=True, exclude=set(EXCLUDED))
    return hashlib.sha256(_ENCODER.encode(dumped).encode("utf-8")).hexdigest()


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
