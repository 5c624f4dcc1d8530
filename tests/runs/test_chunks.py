"""The one chunker: every executor's runs are cut the same way, and cut right."""

from __future__ import annotations

import hashlib
import io
import re

from hypothesis import given, settings
from hypothesis import strategies as st

from invoicer.billing.reader import iter_lines
from invoicer.runs.chunks import _lines, chunk_lines, split_source


def _check(src, data: bytes, chunk_lines_: int, chunk_bytes: int) -> None:
    """Every chunk is whole records, in order, read back exactly as the line reader
    reads the file, within its limits, with the right hashes."""
    split = split_source(str(src), chunk_lines_, chunk_bytes)
    chunks = list(split)
    expected = list(iter_lines(io.BytesIO(data)))
    assert split.sha256 == hashlib.sha256(data).hexdigest()
    assert split.records == len(expected) and split.chunks == len(chunks)
    got = []
    for seq, chunk in enumerate(chunks):
        assert chunk.seq == seq
        assert hashlib.sha256(data[chunk.start:chunk.end]).hexdigest() == chunk.sha256
        part = list(chunk_lines(data[chunk.start:chunk.end], chunk.first_line,
                                chunk.start == 0))
        assert len(part) == chunk.lines <= chunk_lines_
        # Closed at the size: only its last record may take it past chunk_bytes.
        assert sum(len(r) for _, r in part[:-1]) < chunk_bytes
        got += part
    assert got == expected
    assert [c.start for c in chunks[1:]] >= [c.end for c in chunks[:-1]]


def test_split_source_and_chunk_lines_agree_with_the_reader(tmp_path):
    src = tmp_path / "s.jsonl"
    src.write_bytes(b"\xef\xbb\xbf{\"a\":1}\r\n\n  \n" + b"".join(
        b'{"n":%d}\n\n' % i for i in range(20)) + b'{"last":true}\n\n\n')
    data = src.read_bytes()
    _check(src, data, 7, 4 << 20)
    _check(src.as_uri(), data, 7, 4 << 20)  # a file:// URL reads the same
    assert next(iter(split_source(str(src), 7))).lines == 7


def test_a_long_record_closes_its_chunk(tmp_path):
    src = tmp_path / "long.jsonl"
    data = b'{"a":1}\n' + b'{"cdrs":"' + b"x" * 5000 + b'"}\n' + b'{"b":2}\n{"c":3}\n'
    src.write_bytes(data)
    chunks = list(split_source(str(src), chunk_lines=16, chunk_bytes=1000))
    assert [c.lines for c in chunks] == [2, 2]
    _check(src, data, 16, 1000)


lines = st.lists(st.one_of(
    st.just(b""), st.just(b"  "), st.just(b"\r"),
    st.binary(min_size=1, max_size=40).map(lambda b: b.replace(b"\n", b"")),
), max_size=40)


@settings(max_examples=150, deadline=None)
@given(lines, st.booleans(), st.booleans(), st.integers(1, 6), st.integers(1, 64))
def test_any_file_is_cut_into_whole_records(tmp_path_factory, parts, bom, final_newline,
                                             per_chunk, chunk_bytes):
    data = (b"\xef\xbb\xbf" if bom else b"") + b"\n".join(parts)
    if final_newline and data:
        data += b"\n"
    src = tmp_path_factory.mktemp("split") / "f.jsonl"
    src.write_bytes(data)
    _check(src, data, per_chunk, chunk_bytes)


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=300), st.lists(st.integers(1, 50), max_size=20))
def test_lines_are_the_same_whatever_the_block_boundaries(data, cuts):
    blocks, at = [], 0
    for n in cuts:
        blocks.append(data[at:at + n])
        at += n
    blocks.append(data[at:])
    # Split on \n only (not on \r, unlike bytes.splitlines), each line with its end.
    assert list(_lines(blocks)) == re.findall(rb"[^\n]*\n|[^\n]+\Z", data)
