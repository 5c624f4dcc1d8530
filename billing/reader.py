"""Streaming JSON Lines reader for bill runs.

One line is read, parsed and handed on at a time: a 100,000-CDR record is one long
line, and a file of millions of records never sits in memory. A line that fails is an
error for that line only; the reader goes on with the next.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from invoicer.billing.errors import RecordError
from invoicer.billing.models import BillingRecord
from invoicer.billing.record import parse_record


@dataclass(frozen=True, slots=True)
class Line:
    """One non-blank line of the input and what became of it."""

    number: int
    raw: bytes
    record: BillingRecord | None = None
    error: RecordError | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def iter_lines(stream: BinaryIO) -> Iterator[tuple[int, bytes]]:
    """``(line number, bytes)`` for every non-blank line, 1-based, BOM and EOL removed."""
    for number, raw in enumerate(stream, start=1):
        if number == 1 and raw.startswith(b"\xef\xbb\xbf"):
            raw = raw[3:]
        raw = raw.rstrip(b"\r\n")
        if raw.strip():
            yield number, raw


def read_records(stream: BinaryIO) -> Iterator[Line]:
    """Parse each line of a JSON Lines stream; errors are returned, never raised."""
    for number, raw in iter_lines(stream):
        try:
            yield Line(number, raw, record=parse_record(raw, line=number))
        except RecordError as exc:
            yield Line(number, raw, error=exc)


def open_input(path: str | Path) -> BinaryIO:
    """Open a JSON Lines source for binary reading; ``-`` is standard input."""
    if str(path) == "-":
        return sys.stdin.buffer
    return open(path, "rb")
