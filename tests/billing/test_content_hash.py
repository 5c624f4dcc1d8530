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
