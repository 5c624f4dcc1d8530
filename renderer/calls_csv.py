"""The detailed bill as CSV: one row per call, SMS or data session, streamed.

Columns (a header row first; UTF-8 with a byte-order mark, so that spreadsheet programs
read Persian, Cyrillic and accents right; comma-separated, RFC 4180 quoting)::

    line, date, time, number, destination, type, duration_s, volume_kb, cost, currency

``date`` and ``time`` are the wall-clock time of the record (the operator's time zone,
as printed on the invoice); ``duration_s`` is empty except for calls, ``volume_kb``
except for data; ``cost`` is a plain decimal with a point (``0.25``, never ``0,25``),
``type`` the contract's code (``local``, ``sms``, ``data``...). The rows come in the
record's order, line by line.

**Hostile text stays data** (CSV/formula injection, OWASP): a cell that starts with
``=``, ``+``, ``-``, ``@``, a tab or a carriage return is prefixed with ``'`` so that a
spreadsheet shows it instead of evaluating it, unless it is one of the numbers this
module wrote itself. So a called number ``+5521…`` reads ``'+5521…`` (which also keeps
a spreadsheet from turning it into 5.52E+12).

Speed: a record with 100,000 calls is 14 MB of JSON. Validating all of it as a
:class:`~billing.models.BillingRecord` takes a second or more before the first row
could go, and validating each row with the contract's validators makes the whole CSV
take six. The CSV is made from the **canonical record**, which the service itself wrote
(``model_dump_json``) after validating it and archived create-only: this reads it with
:func:`json.loads` and checks only each row's shape (an ISO instant, a decimal amount,
whole-number quantities, strings for text; :class:`CanonicalRecordError` otherwise), so
the header leaves at once, the first :data:`FIRST_CHUNK` rows right after the JSON
parse, the rest in chunks of :data:`ROWS_PER_CHUNK`.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterator
from typing import Any

__all__ = ["COLUMNS", "FIRST_CHUNK", "ROWS_PER_CHUNK", "CanonicalRecordError", "call_rows",
           "csv_chunks", "neutralise"]

COLUMNS = ("line", "date", "time", "number", "destination", "type", "duration_s",
           "volume_kb", "cost", "currency")
ROWS_PER_CHUNK = 2000
FIRST_CHUNK = 100  # the first rows go as soon as they are read
BOM = "\ufeff"

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_NUMBER = re.compile(r"-?[0-9]+(\.[0-9]+)?")
# The instant as the canonical record writes it: the wall-clock date and time, then
# fractions and the offset, which the CSV does not show (the invoice does not either).
_INSTANT = re.compile(r"([0-9]{4}-[0-9]{2}-[0-9]{2})T([0-9]{2}:[0-9]{2}:[0-9]{2})"
                      r"(?:\.[0-9]+)?(?:Z|[+-][0-9]{2}:[0-9]{2})")
_TYPES = frozenset({"local", "long_distance", "intrazonal", "international", "roaming",
                    "sms", "mms", "data"})


class CanonicalRecordError(ValueError):
    """A canonical record whose call rows are not what the service writes."""


def _count(value: Any) -> str:
    if value is None:
        return ""
    if type(value) is not int or value < 0:
        raise CanonicalRecordError(f"not a whole number: {value!r}")
    return str(value)


def _text(value: Any) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise CanonicalRecordError(f"not text: {value!r}")
    return neutralise(value)


def neutralise(cell: str) -> str:
    """``cell`` as a spreadsheet must show it: text that would start a formula gets a
    leading ``'``."""
    if cell.startswith(_FORMULA_START):
        return "'" + cell
    return cell


def call_rows(record: dict[str, Any], line: str | None = None) -> Iterator[list[str]]:
    """The rows (without the header) of a canonical record already parsed from JSON, of
    its line ``line`` only if given. :class:`CanonicalRecordError` for a row whose shape
    is not the one the service writes."""
    currency = record["invoice"]["currency"]
    for service in record.get("services", ()):
        if line is not None and service.get("id") != line:
            continue
        service_id = _text(service.get("id"))
        for u in service.get("usage", ()):
            start = u.get("start")
            when = _INSTANT.fullmatch(start) if isinstance(start, str) else None
            cost = u.get("amount")
            if when is None or not isinstance(cost, str) or not _NUMBER.fullmatch(cost) \
                    or u.get("type") not in _TYPES:
                raise CanonicalRecordError(f"not a call detail record: {u!r:.200}")
            yield [service_id, when[1], when[2], _text(u.get("called")),
                   _text(u.get("destination")), u["type"], _count(u.get("duration_s")),
                   _count(u.get("volume_kb")), cost, currency]


def csv_chunks(canonical: bytes, line: str | None = None) -> Iterator[bytes]:
    """The CSV of a canonical record's call details, in UTF-8 chunks: the header (with
    the byte-order mark) first, then :data:`ROWS_PER_CHUNK` rows a chunk."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    buffer.write(BOM)
    writer.writerow(COLUMNS)
    yield buffer.getvalue().encode("utf-8")
    record = json.loads(canonical)
    buffer.seek(0)
    buffer.truncate()
    for count, row in enumerate(call_rows(record, line), start=1):
        writer.writerow(row)
        if count % ROWS_PER_CHUNK == 0 or count == FIRST_CHUNK:
            yield buffer.getvalue().encode("utf-8")
            buffer.seek(0)
            buffer.truncate()
    if buffer.tell():
        yield buffer.getvalue().encode("utf-8")
