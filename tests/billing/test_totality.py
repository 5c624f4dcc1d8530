"""The reader and the contract are total: whatever bytes a line holds, it ends as a
record or as a :class:`RecordError` with a reason, never as another exception.

Class of failure covered (issue 13, "Every line processed or dead-lettered"): *an
exception escapes the reader* (``RecursionError`` from a deeply nested line, numbers
too long to convert, a lone surrogate that passes validation and breaks archiving,
odd encodings). The two regressions named in the issue first, then a seeded,
time-bounded hypothesis fuzz over :func:`parse_record` and the reader.
"""

from __future__ import annotations

import io
import json
import time

from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

from invoicer.billing import BillingRecord, RecordError, parse_record
from invoicer.billing.reader import read_records
from tests.conftest import SPEC_EXAMPLE

GOOD = json.dumps(SPEC_EXAMPLE, ensure_ascii=False).encode()
DEEP = b'{"a":' * 1000 + b"1" + b"}" * 1000  # 6 KB, a thousand levels
DEEP_ARRAY = b"[" * 100_000 + b"]" * 100_000


def test_a_deeply_nested_line_is_dead_lettered_and_reading_goes_on():
    """Regression: RecursionError escaped the reader; good lines after it were lost."""
    lines = list(read_records(io.BytesIO(b"\n".join([GOOD, DEEP, DEEP_ARRAY, GOOD]))))
    assert [line.ok for line in lines] == [True, False, False, True]
    assert [line.error.reason for line in lines if line.error] == ["too_deep", "too_deep"]
    assert "too deeply" in lines[1].error.message


def test_a_lone_surrogate_is_rejected_before_it_reaches_the_archive():
    """Regression: "\\ud800" passed validation, then failed at archiving on every run."""
    doc = json.loads(GOOD)
    doc["account"]["customer"]["name"] = "Maria \ud800"
    raw = json.dumps(doc).encode()  # ensure_ascii: the surrogate travels as \\ud800
    (line,) = read_records(io.BytesIO(raw))
    assert line.error is not None and "surrogate" in line.error.message
    stored = json.dumps(line.error.to_dict(), ensure_ascii=False).encode("utf-8")
    assert b"\\ud800" in stored or b"surrogate" in stored


def test_huge_numbers_are_refused_not_converted():
    """Class: an exception (or a 5,000-digit number) reaching the renderer."""
    for value in (b"9" * 5000, b"1e99999", b"-1e99999", b"1" * 19):
        doc = GOOD.replace(b'"duration_s": 125', b'"duration_s": ' + value)
        assert doc != GOOD
        try:
            parse_record(doc)
        except RecordError as exc:
            assert exc.reason in ("not_json", "too_large", "whole_number"), exc
        else:
            raise AssertionError(f"duration_s {value[:20]!r} accepted")


# ---------------------------------------------------------------- the fuzz

_LEAF = "\x00LEAF\x00"


def _paths(node, path=()):
    yield path
    if isinstance(node, dict):
        for key, child in node.items():
            yield from _paths(child, (*path, key))
    elif isinstance(node, list):
        for i, child in enumerate(node[:3]):
            yield from _paths(child, (*path, i))


PATHS = list(_paths(json.loads(GOOD)))[1:]

#: Raw JSON texts put in place of one value: what a broken or hostile producer sends.
hostile_json = st.one_of(
    st.integers(min_value=1, max_value=1500).map(lambda n: '{"a":' * n + "0" + "}" * n),
    st.integers(min_value=1, max_value=1500).map(lambda n: "[" * n + "]" * n),
    st.sampled_from(['"\\ud800"', '"\\udfff x"', '"a\\ud83d"', '"\\u0000"', '"\\u202e1"',
                     "1e99999", "-1e99999", "9" * 5000, "1" * 19, "-0", "0.1e-400",
                     "1.5", "true", "null", "[]", "{}", '""', '"\\uffff"', '"\\ud83d\\ude00"',
                     '"' + "x" * 100_000 + '"', "NaN", "Infinity"]),
    st.integers().map(str),
    st.text(max_size=40).map(lambda t: json.dumps(t)),
)


@st.composite
def hostile_lines(draw) -> bytes:
    """A line: the spec's example with one value replaced, then perhaps re-encoded,
    prefixed, cut or corrupted; or bytes out of nowhere."""
    kind = draw(st.sampled_from(["value", "value", "value", "encoding", "bytes", "cut"]))
    if kind == "bytes":
        return draw(st.binary(max_size=300))
    doc = json.loads(GOOD)
    path = draw(st.sampled_from(PATHS))
    node = doc
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = _LEAF
    text = json.dumps(doc, ensure_ascii=draw(st.booleans()))
    text = text.replace(json.dumps(_LEAF), draw(hostile_json))
    if kind == "value":
        return text.encode("utf-8", "surrogatepass")
    if kind == "cut":
        raw = text.encode("utf-8", "surrogatepass")
        return raw[:draw(st.integers(0, len(raw)))]
    encoding = draw(st.sampled_from(["utf-16", "utf-16-le", "utf-32", "latin-1", "cp1252",
                                     "utf-8-sig", "utf-7"]))
    raw = text.encode(encoding, "replace")
    if draw(st.booleans()):  # a byte flipped somewhere
        at = draw(st.integers(0, len(raw) - 1))
        raw = raw[:at] + bytes([raw[at] ^ 0x80]) + raw[at + 1:]
    return raw


@seed(13)
@settings(max_examples=400, deadline=None, derandomize=False,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(hostile_lines())
def test_fuzz_every_line_is_a_record_or_a_reason(raw):
    """Class: an exception escapes the reader (fuzzed: nesting, surrogates, huge numbers,
    odd encodings, cut lines, random bytes). Bounded: 400 examples, ~10 s."""
    try:
        record = parse_record(raw, line=7)
    except RecordError as exc:
        assert exc.reason and exc.line == 7
        entry = exc.to_dict()
        # A dead letter must be storable anywhere: UTF-8 files, PostgreSQL text.
        text = json.dumps(entry, ensure_ascii=False)
        text.encode("utf-8")
        assert "\x00" not in text
        return
    assert isinstance(record, BillingRecord)
    # An accepted record archives: its canonical form is UTF-8 (no lone surrogate).
    record.model_dump_json(by_alias=True).encode("utf-8")


def test_fuzz_the_reader_keeps_going_over_a_hostile_file():
    """Class: an exception escapes the reader, over a whole file of hostile lines: every
    line comes back, the good ones parsed, in time linear in the input."""
    lines = [GOOD, DEEP, b"\xff\xfe\x00{", DEEP_ARRAY, b'{"a":"\\ud800"}', GOOD,
             b"9" * 5000, "{}".encode("utf-16"), GOOD]
    started = time.monotonic()
    got = list(read_records(io.BytesIO(b"\n".join(lines))))
    assert [g.number for g in got] == list(range(1, len(lines) + 1))
    assert [g.ok for g in got] == [True, False, False, False, False, True, False, False, True]
    assert time.monotonic() - started < 10
