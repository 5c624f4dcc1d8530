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
:class:`~billing.models.BillingRecord` takes about a second before the first row could
go, so this reads the archived canonical record (written by the service itself after
validation) with :func:`json.loads` and validates **each usage row** as it goes
(:class:`~billing.models.Usage`, the contract's own validators): the first bytes leave
after the JSON parse, the rest in chunks of :data:`ROWS_PER_CHUNK` rows.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterator
from typing import Any

from pydantic import TypeAdapter

from invoicer.billing.models import Usage

__all__ = ["COLUMNS", "ROWS_PER_CHUNK", "call_rows", "csv_chunks", "neutralise"]

COLUMNS = ("line", "date", "time", "number", "destination", "type", "duration_s",
           "volume_kb", "cost", "currency")
ROWS_PER_CHUNK = 2000
BOM = "\ufeff"

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_NUMBER = re.compile(r"-?[0-9]+(\.[0-9]+)?")
_usage = TypeAdapter(Usage)


def neutralise(cell: str) -> str:
    """``cell`` as a spreadsheet must show it: text that would start a formula gets a
    leading ``'``."""
    if cell.startswith(_FORMULA_START):
        return "'" + cell
    return cell


def call_rows(record: dict[str, Any], line: str | None = None) -> Iterator[list[str]]:
    """The rows (without the header) of a canonical record already parsed from JSON,
    of its line ``line`` only if given; each usage row validated as the contract says
    (``pydantic.ValidationError`` for one that does not)."""
    currency = record["invoice"]["currency"]
    for service in record.get("services", ()):
        if line is not None and service.get("id") != line:
            continue
        service_id = neutralise(str(service.get("id", "")))
        for raw in service.get("usage", ()):
            u = _usage.validate_python(raw)
            cost = format(u.amount, "f")
            yield [service_id, u.start.date().isoformat(), u.start.strftime("%H:%M:%S"),
                   neutralise(u.called or ""), neutralise(u.destination), u.type.value,
                   "" if u.duration_s is None else str(u.duration_s),
                   "" if u.volume_kb is None else str(u.volume_kb),
                   cost if _NUMBER.fullmatch(cost) else neutralise(cost), currency]


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
        if count % ROWS_PER_CHUNK == 0:
            yield buffer.getvalue().encode("utf-8")
            buffer.seek(0)
            buffer.truncate()
    if buffer.tell():
        yield buffer.getvalue().encode("utf-8")
