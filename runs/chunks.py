"""The one chunker: a JSON Lines source cut into chunks of whole lines, by byte range.

Whoever executes a bill run (the CLI's process pool, the Celery workers), its source is
cut here, once: a chunk is at most ``chunk_lines`` records and is closed early at
:data:`CHUNK_BYTES` (a 100,000-CDR record is one long line; a chunk never carries
several). A chunk is a byte range ``[start, end)`` plus the number of its first line
and the SHA-256 of its bytes, so any process can read exactly it later and notice a
source rewritten since. Lines are split on ``\\n`` only; a blank line is no record;
the source's byte-order mark and each line's end are not part of the record.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from typing import NamedTuple

from invoicer.runs.sources import read_blocks

__all__ = ["CHUNK_BYTES", "Chunk", "Split", "chunk_lines", "split_source"]

#: A chunk is closed at this size even short of its records.
CHUNK_BYTES = 4 << 20

_BOM = b"\xef\xbb\xbf"


class Chunk(NamedTuple):
    """Bytes ``[start, end)`` of a source: ``lines`` records from line ``first_line`` on
    (blank lines between them included in the range), whose SHA-256 is ``sha256``."""

    seq: int
    start: int
    end: int
    first_line: int
    lines: int
    sha256: str


def _record(raw: bytes, first: bool) -> bytes | None:
    """A line as a record: the BOM (on a source's first line) and the line end removed;
    ``None`` for a blank line."""
    if first and raw.startswith(_BOM):
        raw = raw[3:]
    raw = raw.rstrip(b"\r\n")
    return raw if raw.strip() else None


def _lines(blocks: Iterable[bytes]) -> Iterator[bytes]:
    """Lines of a byte stream, each with its ``\\n`` (the last one may have none)."""
    pending: list[bytes] = []
    for block in blocks:
        at = 0
        while (nl := block.find(b"\n", at)) >= 0:
            pending.append(block[at:nl + 1])
            yield b"".join(pending)
            pending, at = [], nl + 1
        if at < len(block):
            pending.append(block[at:])
    if pending:
        yield b"".join(pending)


class Split:
    """A source cut into chunks as it is read, once: iterate for the :class:`Chunk` s;
    afterwards :attr:`sha256` is the whole source's SHA-256 and :attr:`records` its
    number of records. Nothing but the chunk being gathered is held in memory."""

    def __init__(self, source: str, chunk_lines: int, chunk_bytes: int = CHUNK_BYTES) -> None:
        if chunk_lines < 1 or chunk_bytes < 1:
            raise ValueError("chunks need at least one line and one byte")
        self.source = source
        self.chunk_lines = chunk_lines
        self.chunk_bytes = chunk_bytes
        self.sha256: str | None = None
        self.records = 0
        self.chunks = 0

    def _blocks(self, whole: hashlib._Hash) -> Iterator[bytes]:
        for block in read_blocks(self.source):
            whole.update(block)
            yield block

    def __iter__(self) -> Iterator[Chunk]:
        whole = hashlib.sha256()
        part = hashlib.sha256()  # of the chunk being gathered, blank lines inside included
        pos = line_no = records = seq = 0
        start = first = n = size = end = 0
        blanks: list[bytes] = []
        for raw in _lines(self._blocks(whole)):
            line_no += 1
            at, pos = pos, pos + len(raw)
            if _record(raw, line_no == 1) is None:
                blanks.append(raw)  # inside the chunk only if another record follows
                continue
            records += 1
            if n == 0:
                start, first, size, part = at, line_no, 0, hashlib.sha256()
            else:
                for blank in blanks:
                    part.update(blank)
            blanks = []
            part.update(raw)
            n, size, end = n + 1, size + len(raw), pos
            if n >= self.chunk_lines or size >= self.chunk_bytes:
                yield Chunk(seq, start, end, first, n, part.hexdigest())
                seq, n = seq + 1, 0
        if n:
            yield Chunk(seq, start, end, first, n, part.hexdigest())
            seq += 1
        self.sha256, self.records, self.chunks = whole.hexdigest(), records, seq


def split_source(source: str, chunk_lines: int, chunk_bytes: int = CHUNK_BYTES) -> Split:
    """The source (path, ``file://`` or ``s3://``) cut into chunks: see :class:`Split`."""
    return Split(source, chunk_lines, chunk_bytes)


def chunk_lines(data: bytes, first_line: int, at_start: bool) -> Iterator[tuple[int, bytes]]:
    """``(line number, record)`` of a chunk's non-blank lines, numbered as in the whole
    source (``at_start``: the chunk begins the source, which may have a BOM)."""
    for offset, raw in enumerate(data.split(b"\n")):
        record = _record(raw, at_start and offset == 0)
        if record is not None:
            yield first_line + offset, record
