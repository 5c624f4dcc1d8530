"""The content hash is the one contract 1.1 fixed: SHA-256 of ``json.dumps(content(r),
sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)``. It is
computed without that walk (the C encoder asks only for what JSON cannot hold), so it
is checked against the formula itself: a different hash would make every invoice
issued before it look like a conflict when its record comes again."""

from __future__ import annotations

import hashlib
import json

from invoicer.billing import parse_record
from invoicer.billing.content import content, content_sha256
from invoicer.billing.synthetic import generate


def _by_the_formula(record) -> str:
    text = json.dumps(content(record), sort_keys=True, separators=(",", ":"),
                      ensure_ascii=False, allow_nan=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def test_the_content_hash_is_the_formula_s_on_records_of_every_shape():
    records = [parse_record(json.dumps(r).encode())
               for n, cdrs, seed in ((60, 20, 11), (4, 800, 12), (40, 3, 99))
               for r in generate(n, cdrs, seed)]
    assert len({content_sha256(r) for r in records}) == len(records)
    for record in records:
        assert content_sha256(record) == _by_the_formula(record)


def test_how_the_invoice_travels_does_not_change_its_content_hash():
    raw = next(iter(generate(1, 5, 3)))
    record = parse_record(json.dumps(raw).encode())
    raw["delivery"]["email"] = "someone.else@example.org"
    again = parse_record(json.dumps(raw, indent=1).encode())
    assert content_sha256(again) == content_sha256(record) == _by_the_formula(again)


# --- the call-detail rows, written without the encoder --------------------------------

from hypothesis import given  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from invoicer.billing import RecordError  # noqa: E402
from invoicer.billing.content import _usage_text, content_text  # noqa: E402
from tests.billing.test_cdr import BOUNDED, valid_rows  # noqa: E402

#: Destinations a producer sends: quotes, backslashes, controls the text rules clean,
#: escapes, scripts and symbols outside the Basic Multilingual Plane.
hostile_places = st.one_of(
    st.sampled_from(['say "hi"', "back\\slash", "tab\tbed", "\u2028line", "</script>",
                     "Zürich", "Москва", "تهران", "東京", "\U0001f4de call", "a\u0301"]),
    st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=12))


#: Amounts of a two-decimal currency, written every way the contract allows.
amounts = st.builds(lambda sign, units, frac: f"{sign}{units}{frac}", st.sampled_from(["", "-"]),
                    st.sampled_from(["0", "1", "12", "100", "1000000", "999999999999"]),
                    st.sampled_from(["", ".0", ".00", ".5", ".50", ".05", ".10", ".99"]))


@BOUNDED
@given(rows=st.lists(valid_rows, max_size=12),
       places=st.lists(hostile_places, min_size=12, max_size=12),
       money=st.lists(amounts, min_size=12, max_size=12))
def test_call_rows_written_directly_hash_as_the_formula_does(rows, places, money):
    raw = next(iter(generate(1, 0, 21)))  # EUR: two decimals
    assert raw["invoice"]["currency"] == "EUR"
    for row, amount in zip(rows, money, strict=False):
        row["amount"] = amount
    raw["services"][0]["usage"] = [{**row, "destination": place}
                                   for row, place in zip(rows, places, strict=False)]
    try:
        record = parse_record(json.dumps(raw).encode())
    except RecordError as err:
        # Only a destination the text rules refuse (blank once cleaned) may fail it:
        # then the same rows with a plain one are checked.
        assert all(".destination" in issue.path for issue in err.issues), err
        raw["services"][0]["usage"] = rows
        record = parse_record(json.dumps(raw).encode())
    assert _usage_text(record.services[0].usage) is not None
    assert content_sha256(record) == _by_the_formula(record)


def test_a_row_of_an_unexpected_shape_takes_the_encoder_s_way():
    record = parse_record(json.dumps(next(iter(generate(1, 4, 7)))).encode())
    usage = next(s.usage for s in record.services if s.usage)
    odd = type(usage[0]).__new__(type(usage[0]))
    for name in type(usage[0]).__slots__:
        object.__setattr__(odd, name, getattr(usage[0], name))
    object.__setattr__(odd, "duration_s", True)  # a bool is JSON's true, not 1
    usage[0] = odd
    assert _usage_text(usage) is None
    assert content_text(record).count('"duration_s":true') == 1
    assert content_sha256(record) == _by_the_formula(record)
