"""The streaming JSON Lines reader: one line at a time, a bad line never stops the rest."""

from __future__ import annotations

import io
import json
import random
import tracemalloc

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from invoicer.billing import RecordError
from invoicer.billing.reader import iter_lines, read_records
from tests.conftest import SPEC_EXAMPLE


def _jsonl(*lines: str | bytes) -> io.BytesIO:
    return io.BytesIO(b"".join((x.encode() if isinstance(x, str) else x) + b"\n"
                               for x in lines))


GOOD = json.dumps(SPEC_EXAMPLE, ensure_ascii=False)


def test_bad_lines_are_errors_and_reading_goes_on():
    stream = _jsonl(GOOD, "not json", "", "[]", GOOD, b"\xff\xfe{}", GOOD[: len(GOOD) // 2])
    lines = list(read_records(stream))
    assert [line.number for line in lines] == [1, 2, 4, 5, 6, 7]  # blank line 3 skipped
    assert [line.ok for line in lines] == [True, False, False, True, False, False]
    reasons = [line.error.reason for line in lines if line.error]
    assert reasons == ["not_json", "not_object", "not_utf8", "truncated"]
    assert all(line.error.line == line.number for line in lines if line.error)
    assert lines[1].raw == b"not json"


def test_bom_crlf_and_missing_final_newline():
    stream = io.BytesIO(b"\xef\xbb\xbf" + GOOD.encode() + b"\r\n" + GOOD.encode())
    lines = list(read_records(stream))
    assert [line.ok for line in lines] == [True, True]


def test_invoice_number_is_reported_when_readable():
    bad = dict(SPEC_EXAMPLE, totals=dict(SPEC_EXAMPLE["totals"], total_due="1.00"))
    (line,) = read_records(_jsonl(json.dumps(bad)))
    assert line.error.invoice_number == "OI-2026-11-0000123"
    assert line.error.path == "totals.total_due"


def test_a_long_line_is_one_record_and_memory_stays_flat():
    # 100,000 CDRs in one line: it parses as one record.
    usage = SPEC_EXAMPLE["services"][0]["usage"][0]
    big = json.loads(GOOD)
    big["services"][0]["usage"] = [usage] * 100_000
    (line,) = read_records(_jsonl(json.dumps(big)))
    assert line.ok and len(line.record.services[0].usage) == 100_000

    # Many small records: the reader holds one at a time, not the file's worth.
    class Source(io.RawIOBase):
        """A 20,000-line stream generated on the fly, so the test holds no file either."""

        def __init__(self) -> None:
            self.left = 20_000

        def readable(self) -> bool:
            return True

        def readinto(self, buffer) -> int:
            if self.left == 0:
                return 0
            self.left -= 1
            data = b'{"schema": "billing-record/1"}\n'
            buffer[: len(data)] = data
            return len(data)

    tracemalloc.start()
    count = 0
    for line in read_records(io.BufferedReader(Source())):
        count += 1
        assert not line.ok
        if count == 1_000:
            base = tracemalloc.get_traced_memory()[0]
    grown = tracemalloc.get_traced_memory()[0] - base
    tracemalloc.stop()
    assert count == 20_000
    assert grown < 2_000_000, f"reader memory grew by {grown} bytes over 19,000 records"


def test_iter_lines_numbers_physical_lines():
    assert list(iter_lines(io.BytesIO(b"a\n\n  \nb"))) == [(1, b"a"), (4, b"b")]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=2_000))
def test_fuzz_arbitrary_bytes_never_crash(data):
    for line in read_records(io.BytesIO(data)):
        assert line.ok or isinstance(line.error, RecordError)


def _mutations(rng: random.Random, text: str) -> str:
    """Byte-level damage: delete, duplicate, flip or insert characters."""
    chars = list(text)
    for _ in range(rng.randint(1, 6)):
        i = rng.randrange(len(chars))
        op = rng.randrange(4)
        if op == 0:
            del chars[i]
        elif op == 1:
            chars.insert(i, chars[i])
        elif op == 2:
            chars[i] = rng.choice('{}[]":,0123456789.-eE\\u202e\x00ab ')
        else:
            chars.insert(i, rng.choice(['"', "null", "1e999", "true", "[]", "{}", "NaN"]))
    return "".join(chars)


def _structural(rng: random.Random, value):
    """Replace one node of the record with a value of another type."""
    if isinstance(value, dict) and value:
        key = rng.choice(list(value))
        if rng.random() < 0.3:
            return {k: v for k, v in value.items() if k != key}
        return {**value, key: _structural(rng, value[key])}
    if isinstance(value, list) and value:
        i = rng.randrange(len(value))
        return [*value[:i], _structural(rng, value[i]), *value[i + 1:]]
    return rng.choice([None, True, 0, -1, 1.5, 10**30, "", "x" * 500, [], {}, "NaN",
                       "\u202e", "<b>x</b>"])


@settings(max_examples=400, deadline=None)
@given(st.randoms(use_true_random=False))
def test_fuzz_mutated_valid_records_never_crash(rng):
    damaged = [_mutations(rng, GOOD) for _ in range(3)]
    damaged += [json.dumps(_structural(rng, SPEC_EXAMPLE)) for _ in range(3)]
    for line in read_records(_jsonl(*damaged)):
        assert line.ok or isinstance(line.error, RecordError)
        if line.error:
            assert line.error.line == line.number
            assert all(isinstance(i.path, str) and i.message for i in line.error.issues)


def test_large_lines_take_the_streaming_path_with_the_same_results(monkeypatch):
    """Above LARGE_LINE, CDRs are validated while decoded; outcomes must not change."""
    import invoicer.billing.record as record_module
    from invoicer.billing import parse_record

    big = json.loads(GOOD)
    big["services"][0]["usage"] = big["services"][0]["usage"] * 50
    bad = json.loads(json.dumps(big))
    bad["services"][0]["usage"][100]["amount"] = "0.255"       # too precise for BRL
    worse = json.loads(json.dumps(big))
    worse["services"][0]["usage"][7]["duration_s"] = -3
    results = {}
    for limit in (10**9, 100):  # the normal path, then the streaming one
        monkeypatch.setattr(record_module, "LARGE_LINE", limit)
        ok = parse_record(json.dumps(big))
        errors = []
        for rec in (bad, worse):
            try:
                parse_record(json.dumps(rec))
            except RecordError as exc:
                errors.append((exc.path, exc.reason, exc.message))
        results[limit] = (ok, errors)
    assert results[100] == results[10**9]
    assert results[100][1][0][:2] == ("services[0].usage[100].amount", "money_precision")
    assert results[100][1][1][:2] == ("services[0].usage[7].duration_s", "negative")
