"""The CDR fast path (billing/cdr.py) against the model it stands in for (issue 18).

The fast path may leave any row to the model, but a row it builds must be one the model
accepts, built exactly alike; and a whole large line must end as it did when every CDR
went through the model: the same record, or the same issues (reason, field path such as
``services[0].usage[12].duration_s``, message). Seeded, bounded hypothesis runs over
valid and broken rows check both.
"""

from __future__ import annotations

import json
from datetime import datetime
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter, ValidationError

import invoicer.billing.cdr as cdr_module
import invoicer.billing.record as record_module
from invoicer.billing import RecordError, parse_record
from invoicer.billing.cdr import UsageReader
from invoicer.billing.models import Usage
from tests.conftest import SPEC_EXAMPLE

ADAPTER = TypeAdapter(Usage)
SLOW = object()  # what the test's "model" answers: the row was left to the model
BOUNDED = settings(max_examples=300, derandomize=True, deadline=None,
                   suppress_health_check=[HealthCheck.too_slow,
                                          HealthCheck.function_scoped_fixture])

# --- rows: plain valid ones, and every field broken in the ways a producer breaks it ---

_digits = st.text("0123456789", min_size=1, max_size=3)
valid_instants = st.builds(
    lambda d, frac, off: d.strftime("%Y-%m-%dT%H:%M:%S") + frac + off,
    st.datetimes(min_value=datetime(1900, 1, 1), max_value=datetime(2100, 1, 1)),
    st.sampled_from(["", ".5", ".12", ".1234", ".123456", ".000000"]),
    st.sampled_from(["Z", "-03:00", "+00:00", "+05:30", "-00:00", "+14:00", "-12:45"]),
)
odd_instants = st.one_of(
    st.sampled_from([
        "2026-10-03T14:22:05", "2026-10-03 14:22:05-03:00", "2026-02-30T10:00:00Z",
        "2026-10-03T24:00:00Z", "2026-10-03T23:60:00Z", "2026-10-03T23:59:60Z",
        "2026-10-03T10:00:00+24:00", "2026-10-03T10:00:00+23:59", "2026-10-03T10:00:00+03:75",
        "2026-10-03T10:00:00.1234567Z", "2026-10-03T10:00:00.Z", "2026-10-03T10:00Z",
        "2026-W40-1T10:00:00Z", "20261003T100000Z", "2026-10-03T10:00:00z",
        "２026-10-03T10:00:00Z", "2026-10-03T10:00:0５Z", "0000-01-01T00:00:00Z",
        "0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00", "", "Z", "-03:00",
        "2026-10-03T10:00:00-03:00\n", " 2026-10-03T10:00:00Z", "2026-10-03T10:00:00+0300",
    ]),
    st.text(alphabet="0123456789-:T.Z+ ", max_size=30),
    st.integers(), st.none(), st.booleans(), st.lists(st.just("Z"), max_size=2),
)
types_ = st.sampled_from(["local", "long_distance", "intrazonal", "international",
                          "roaming", "sms", "mms", "data"])
odd_types = st.one_of(st.sampled_from(["video", "LOCAL", "local ", "", "Local"]),
                      st.integers(0, 3), st.none(), st.booleans(), st.lists(types_, max_size=1))
phones = st.builds(lambda a, b: f"+{a}{b}", st.sampled_from("123456789"),
                   st.text("0123456789", min_size=1, max_size=14))
odd_phones = st.one_of(st.sampled_from(["+0123", "+1", "5521987654321", "+55 21 98765",
                                        "+5521987654321\n", "+١٢٣٤٥", "+1234567890123456",
                                        ""]),
                       st.integers(), st.booleans(), st.lists(phones, max_size=1))
places = st.sampled_from(["Rio de Janeiro", "São Paulo", "Internet", "Москва", "تهران",
                          "Zürich  ", "a" * 70, "b" * 64])
odd_places = st.one_of(
    st.sampled_from(["", "   ", "\u202eevil", "tab\tbed", "new\nline", "nul\x00", "\ud800",
                     "x\udfff", "\u0085", "e\u0301", "\u202a\u202c"]),
    st.text(max_size=20), st.integers(), st.none(), st.booleans(),
)
counts = st.integers(0, 10**6)
odd_counts = st.one_of(st.sampled_from([-1, 10**18, 10**18 - 1, 2**70, -(10**20)]),
                       st.booleans(), st.floats(allow_nan=False, allow_infinity=False),
                       st.text("0123456789", min_size=1, max_size=3), st.lists(counts, max_size=1))
amounts = st.builds(lambda units, frac: f"{units}{frac}", st.sampled_from(["0", "12", "-5"]),
                    st.sampled_from(["", ".0", ".00", ".25", ".125", ".1234"]))
odd_amounts = st.one_of(
    st.sampled_from(["1e3", "12,30", "+5", ".5", "5.", "NaN", "Infinity", "", " 1.00",
                     "1.00 ", "１.00", "-", "1234567890123456789", "0.1234567890123456789"]),
    st.integers(), st.floats(allow_nan=False, allow_infinity=False), st.none(), st.booleans(),
)


_ODD = {"start": odd_instants, "type": odd_types, "destination": odd_places,
        "amount": odd_amounts, "called": odd_phones, "duration_s": odd_counts,
        "volume_kb": odd_counts}
_MISSING = object()

valid_rows = st.fixed_dictionaries(
    {"start": valid_instants, "type": types_, "destination": places, "amount": amounts},
    optional={"called": st.one_of(phones, st.none()), "duration_s": st.one_of(counts, st.none()),
              "volume_kb": st.one_of(counts, st.none()), "cell_id": st.just("A17")})


def _broken(row: dict) -> st.SearchStrategy[dict]:
    """``row`` with one or two fields given an odd value, or missing."""
    def change(changes: dict) -> dict:
        out = dict(row, **changes)
        return {k: v for k, v in out.items() if v is not _MISSING}

    field = st.sampled_from(sorted(_ODD))
    one = field.flatmap(lambda f: st.one_of(_ODD[f], st.just(_MISSING)).map(lambda v: {f: v}))
    return st.lists(one, min_size=1, max_size=2).map(
        lambda changes: change({k: v for c in changes for k, v in c.items()}))


broken_rows = valid_rows.flatmap(_broken)
rows = st.one_of(valid_rows, broken_rows, broken_rows)


def _same_usage(fast: Usage, model: Usage) -> None:
    assert type(fast) is Usage and fast == model and repr(fast) == repr(model)
    for name in Usage.__slots__:
        a, b = getattr(fast, name), getattr(model, name)
        assert type(a) is type(b), name
        if isinstance(a, Decimal):
            assert a.as_tuple() == b.as_tuple()
        if isinstance(a, datetime):
            assert (a.tzinfo, a.fold, a.isoformat()) == (b.tzinfo, b.fold, b.isoformat())


def _model_answer(row: dict) -> Usage | None:
    try:
        return ADAPTER.validate_python(row)
    except ValidationError:
        return None


# --- one row ------------------------------------------------------------------------


@pytest.mark.parametrize("limit", [4096, 1])  # the caches full from the first row on
@BOUNDED
@given(rows=st.lists(rows, min_size=1, max_size=8))
def test_a_row_the_fast_path_builds_is_the_models_row(rows, limit, monkeypatch):
    monkeypatch.setattr(cdr_module, "CACHE_LIMIT", limit)
    hook = UsageReader(lambda row: SLOW).hook
    for row in rows:
        obj = dict(row)
        built = hook(obj)
        model = _model_answer(dict(row))
        if not {"start", "type", "destination"} <= row.keys():
            assert built is obj  # not a CDR: the model of the record judges it in place
            continue
        if built is SLOW:
            continue
        assert model is not None, f"the fast path accepted a row the model refuses: {row!r}"
        _same_usage(built, model)


@BOUNDED
@given(row=valid_rows)
def test_plain_valid_rows_take_the_fast_path(row):
    reader = UsageReader(lambda row: SLOW)
    built = reader.hook(dict(row))
    model = _model_answer(dict(row))
    assert model is not None
    assert built is not SLOW, f"a plain valid row left to the model: {row!r}"
    _same_usage(built, model)
    assert reader.slow == 0


def test_objects_that_are_not_cdrs_pass_through():
    hook = UsageReader(lambda row: SLOW).hook
    for obj in ({}, {"start": "x", "type": "local"}, {"code": "SUB", "amount": "1.00"}):
        assert hook(obj) is obj


def test_the_most_decimal_places_are_noted_for_the_precision_check():
    reader = UsageReader(lambda row: SLOW)
    row = {"start": "2026-10-03T14:22:05-03:00", "type": "sms", "destination": "Rio"}
    for amount in ("0.00", "1.5", "-2"):
        reader.hook(dict(row, amount=amount))
    assert not reader.precision_unknown(2)
    reader.hook(dict(row, amount="0.125"))
    assert reader.precision_unknown(2) and not reader.precision_unknown(3)
    # A row the model took is not known: the record is scanned then.
    reader.hook(dict(row, amount="0.1", start="not an instant"))
    assert reader.slow == 1 and reader.precision_unknown(3)


# --- whole large lines: the fast path against the model-only decoder of before ---------


class ModelOnly(UsageReader):
    """The decoder as it was before the fast path: every CDR row through the model."""

    def _make_hook(self, model: Any) -> Any:
        def hook(obj: dict) -> Any:
            if "start" in obj and "destination" in obj and "type" in obj:
                self.slow += 1
                return model(obj)
            return obj

        return hook


def _outcome(text: str) -> tuple:
    try:
        record = parse_record(text, line=3)
    except RecordError as exc:
        return ("rejected", exc.line, exc.invoice_number,
                [(i.path, i.reason, i.message) for i in exc.issues])
    return ("ok", repr(record), record.model_dump_json())


@BOUNDED
@given(usage=st.lists(st.one_of(valid_rows, valid_rows, valid_rows, broken_rows),
                            max_size=30),
       service=st.sampled_from([0, 0, 0, 1]))
def test_large_lines_end_as_they_did_before_the_fast_path(usage, service, monkeypatch):
    # (Patched per example: hypothesis runs them all within one function-scoped fixture.)
    doc = json.loads(json.dumps(SPEC_EXAMPLE))
    if service:
        doc["services"].append({"id": "+5521900000000", "label": "Second line",
                                "charges": []})
    doc["services"][service]["usage"] = usage
    text = json.dumps(doc)
    with monkeypatch.context() as patch:
        patch.setattr(record_module, "LARGE_LINE", 0)  # every line takes the hook path
        fast = _outcome(text)
        patch.setattr(record_module, "UsageReader", ModelOnly)
        assert fast == _outcome(text)


def test_errors_name_the_row_and_field_on_the_fast_path(monkeypatch):
    monkeypatch.setattr(record_module, "LARGE_LINE", 0)
    doc = json.loads(json.dumps(SPEC_EXAMPLE))
    good = doc["services"][0]["usage"]
    doc["services"][0]["usage"] = good * 50
    doc["services"][0]["usage"][123] = dict(good[0], duration_s=-1)
    doc["services"][0]["usage"][130] = dict(good[1], amount="0.255")
    with pytest.raises(RecordError) as err:
        parse_record(json.dumps(doc), line=9)
    assert [(i.path, i.reason) for i in err.value.issues] == [
        ("services[0].usage[123].duration_s", "negative")]
    assert err.value.invoice_number == SPEC_EXAMPLE["invoice"]["number"]
    doc["services"][0]["usage"][123] = good[0]
    with pytest.raises(RecordError) as err:
        parse_record(json.dumps(doc), line=9)
    assert [(i.path, i.reason) for i in err.value.issues] == [
        ("services[0].usage[130].amount", "money_precision")]


# --- long lines decoded narrow: the same record or the same error as the text as written --

texts = st.text(st.characters(exclude_categories=["Cs"]), max_size=12)
wide_texts = st.text(st.sampled_from("aé\\\"—€😀Жت\x85\u2028ÿĀ"), max_size=12)


@BOUNDED
@given(value=st.recursive(st.one_of(texts, wide_texts, st.integers()),
                          lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                  st.dictionaries(wide_texts, inner, max_size=4)),
                          max_leaves=12),
       piece=st.sampled_from([1, 2, 3, 5, 64, 1 << 18]))
def test_narrow_decoding_reads_the_same_json(value, piece, monkeypatch):
    monkeypatch.setattr(record_module, "_PIECE", piece)
    raw = json.dumps(value, ensure_ascii=False).encode()
    narrow = record_module._narrow_utf8(raw)
    if narrow is None:
        return
    text, chars = narrow
    assert chars == len(raw.decode()) and all(c <= "\xff" for c in text)
    assert json.loads(text) == value


def _mangle(text: str, where: float, what: str) -> str:
    at = int(where * len(text))
    return text[:at] + what + text[at:]


#: Where in the line (as a share of its length): errors after its em dash quote columns
#: that differ between the narrow text and the text as written.
shares = st.one_of(st.sampled_from([0.0, 0.6, 0.8, 0.95, 1.0]), st.floats(0, 1))


@BOUNDED
@given(usage=st.lists(valid_rows, max_size=3),
       label=wide_texts, mangle=st.none() | st.tuples(shares, st.sampled_from(
           ["—", "\\—", "\\\\—", "\\u", "\\ud83d", "\\ud83d😀", "😀", "\\", '"', "{", "NaN",
            "\udcff"])),
       piece=st.sampled_from([1, 3, 64, 1 << 18]), cut=st.none() | shares)
def test_long_lines_end_alike_decoded_narrow_or_as_written(usage, label, mangle, piece, cut,
                                                           monkeypatch):
    doc = json.loads(json.dumps(SPEC_EXAMPLE))
    doc["services"][0]["usage"] = usage
    doc["services"][0]["label"] = "Plano — " + label
    text = json.dumps(doc, ensure_ascii=False)
    if mangle is not None:
        text = _mangle(text, *mangle)
    raw = text.encode("utf-8", "surrogateescape")  # "\udcff" becomes the invalid byte 0xff
    if cut is not None:
        raw = raw[: int(cut * len(raw))]
    with monkeypatch.context() as patch:
        patch.setattr(record_module, "LARGE_LINE", 0)
        patch.setattr(record_module, "_PIECE", piece)
        narrow = _outcome_bytes(raw)
        patch.setattr(record_module, "_narrow_utf8", lambda raw: None)
        assert narrow == _outcome_bytes(raw)


def _outcome_bytes(raw: bytes) -> tuple:
    try:
        record = parse_record(raw, line=3)
    except RecordError as exc:
        return ("rejected", [(i.path, i.reason, i.message) for i in exc.issues])
    return ("ok", repr(record))


@pytest.mark.parametrize("piece", [1, 2, 3, 4, 1 << 18])
def test_an_escape_is_never_written_after_a_backslash(piece, monkeypatch):
    """``"\\—"`` is not JSON; ``"\\\\u2014"`` would be: never narrow that, whatever the
    piece boundaries (here the backslash ends a piece and the dash starts the next)."""
    monkeypatch.setattr(record_module, "_PIECE", piece)
    assert record_module._narrow_utf8('["\\—"]'.encode()) is None
    assert record_module._narrow_utf8('["\\\\—"]'.encode()) is None  # (valid: left as is too)
    assert record_module._narrow_utf8('["a—"]'.encode()) == ('["a\\u2014"]', 6)


def test_many_characters_past_latin1_are_decoded_as_written():
    raw = json.dumps({"a": "Ж" * 100}, ensure_ascii=False).encode()
    assert record_module._narrow_utf8(raw) is None  # more than _WIDE_PER_PIECE to escape
    assert record_module._narrow_utf8(b'{"a": "\xff"}') is None  # invalid UTF-8
    assert record_module._narrow_utf8('{"a": "\\—"}'.encode()) is None  # escape after \
    assert record_module._narrow_utf8('{"a": "—"}'.encode()) == ('{"a": "\\u2014"}', 10)
