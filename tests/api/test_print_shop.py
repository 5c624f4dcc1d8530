"""The print shop's HTTP API, over a real uvicorn server, on a file archive and on S3.

Refusals (no key, a wrong, revoked or other-role key, another shop's batch, made-up
ids) must say nothing beyond the status; downloads must resume mid-file to the same
bytes; the acknowledgement must mark the batch's invoices printed, once.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json

import pikepdf
import pytest

from invoicer.workflows.printing import batch_name
from tests.api.conftest import OTHER, auth

BASE = "/v1/print-shop"
PROBLEM = "application/problem+json"


def url(batch_id: int, tail: str = "") -> str:
    return f"{BASE}/batches/{batch_name(batch_id)}{tail}"


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def counts(closed) -> dict[str, int]:
    return {"documents": closed.documents, "pages": closed.pages, "sheets": closed.sheets}


def print_states(ledger, batch_id: int) -> set[str]:
    return {d.state for item, _ in ledger.print_batches.documents(batch_id)
            for d in ledger.deliveries.for_invoice(item.invoice_id) if d.channel == "print"}


# ---------------------------------------------------------------------------- listing


def test_a_shop_lists_only_its_operators_ready_batches(shop):
    got = shop.http.get(f"{BASE}/batches", headers=auth(shop.tokens["oi"]))
    assert got.status_code == 200, got.text
    (batch,) = got.json()["batches"]
    assert batch["batch"] == batch_name(shop.batch.batch_id) and batch["operator"] == "oi"
    assert batch["state"] == "closed"
    assert (batch["documents"], batch["pages"], batch["sheets"]) == (
        shop.batch.documents, shop.batch.pages, shop.batch.sheets)
    assert batch["pdf"] == {"url": url(shop.batch.batch_id, "/pdf"),
                            "media_type": "application/pdf",
                            "sha256": shop.batch.pdf_sha256, "size": shop.batch.pdf_size}
    both = shop.http.get(f"{BASE}/batches", headers=auth(shop.tokens["both"])).json()
    assert [b["operator"] for b in both["batches"]] == ["oi", OTHER]
    only = shop.http.get(f"{BASE}/batches", params={"operator": OTHER},
                         headers=auth(shop.tokens["both"])).json()
    assert [b["operator"] for b in only["batches"]] == [OTHER]
    # Asking for an operator the key does not have is an empty list, not a hint.
    none = shop.http.get(f"{BASE}/batches", params={"operator": OTHER},
                         headers={"X-API-Key": shop.tokens["oi"]})
    assert none.status_code == 200 and none.json() == {"batches": []}


def test_batch_detail_has_every_files_checksum(shop):
    got = shop.http.get(url(shop.batch.batch_id), headers=auth(shop.tokens["oi"])).json()
    for name in ("manifest_json", "manifest_csv"):
        body = shop.http.get(got[name]["url"], headers=auth(shop.tokens["oi"]))
        assert body.status_code == 200
        assert sha(body.content) == got[name]["sha256"] == body.headers["etag"].strip('"')
        assert len(body.content) == got[name]["size"]
    manifest = json.loads(shop.http.get(got["manifest_json"]["url"],
                                        headers=auth(shop.tokens["oi"])).content)
    assert manifest["pdf"]["sha256"] == got["pdf"]["sha256"] == shop.batch.pdf_sha256
    assert manifest["totals"]["pages"] == got["pages"]
    rows = list(csv.DictReader(io.StringIO(shop.http.get(
        got["manifest_csv"]["url"], headers=auth(shop.tokens["oi"])).text)))
    assert rows[-1]["record"] == "batch" and rows[-1]["sha256"] == shop.batch.pdf_sha256


# ---------------------------------------------------------------------------- refusals


def test_refusals_say_nothing_beyond_the_status(shop):
    """401 for no, a malformed, a wrong or a revoked key (one body); 403 for a key of
    another role; 404 with one body for another shop's batch and any made-up id."""
    mine, theirs = shop.batch.batch_id, shop.other.batch_id
    real = shop.tokens["oi"]
    wrong = real[:-4] + ("AAAA" if not real.endswith("AAAA") else "BBBB")
    paths = [f"{BASE}/batches", url(mine), url(mine, "/pdf"), url(mine, "/manifest.csv")]
    unauthenticated = []
    for headers in ({}, auth("nonsense"), auth(wrong), auth(shop.tokens["revoked"]),
                    {"X-API-Key": wrong}, {"Authorization": f"Basic {real}"}):
        for path in paths:
            got = shop.http.get(path, headers=headers)
            assert got.status_code == 401, (headers, path)
            assert got.headers["content-type"] == PROBLEM
            assert got.headers["www-authenticate"].startswith("Bearer")
            assert real not in got.text and wrong not in got.text
            unauthenticated.append(got.json())
    # A malformed, a wrong and a revoked key cannot be told apart (cases 2 to 5; the
    # first and the last send no bearer token at all).
    wrong_keys = unauthenticated[len(paths):5 * len(paths)]
    assert len({json.dumps(b, sort_keys=True) for b in wrong_keys}) == 1
    forbidden = shop.http.get(f"{BASE}/batches", headers=auth(shop.tokens["billing"]))
    assert forbidden.status_code == 403 and forbidden.json()["type"].endswith("wrong-role")
    ack = shop.http.post(url(mine, "/ack"), json=counts(shop.batch),
                         headers=auth(shop.tokens["billing"]))
    assert ack.status_code == 403

    made_up = [batch_name(theirs), batch_name(mine + theirs + 100), "B0", f"B{mine}x",
               f"{mine}%20", "B-1", "B" + "9" * 30, "%2e%2e", "B1%00", "<script>", "B٣"]
    bodies = set()
    for batch in made_up:
        for tail, method, body in (("", "GET", None), ("/pdf", "GET", None),
                                   ("/manifest.json", "HEAD", None),
                                   ("/ack", "POST", counts(shop.other))):
            got = shop.http.request(method, f"{BASE}/batches/{batch}{tail}", json=body,
                                    headers=auth(shop.tokens["oi"]))
            assert got.status_code == 404, (batch, tail, got.text)
            if method != "HEAD":
                assert got.headers["content-type"] == PROBLEM
                assert "vivo" not in got.text and str(theirs) not in got.text
                bodies.add(got.content)
    assert len(bodies) == 1, bodies
    # The other shop's batch was not touched, and its own shop still sees it.
    assert shop.ledger.print_batches.get(theirs).state == "closed"
    assert shop.http.get(url(theirs), headers=auth(shop.tokens["vivo"])).status_code == 200


def test_an_unknown_route_and_a_bad_body_are_problems_too(shop):
    got = shop.http.get(f"{BASE}/nothing-here", headers=auth(shop.tokens["oi"]))
    assert got.status_code == 404 and got.headers["content-type"] == PROBLEM
    for body in ({"documents": -1, "pages": 2, "sheets": 1}, {"documents": 1},
                 {"documents": 1, "pages": 2, "sheets": 1, "extra": "<b>x</b>"}, [1, 2]):
        bad = shop.http.post(url(shop.batch.batch_id, "/ack"), json=body,
                             headers=auth(shop.tokens["oi"]))
        assert bad.status_code == 422 and bad.headers["content-type"] == PROBLEM
        assert "<b>" not in bad.text  # the input is not echoed
    assert shop.ledger.print_batches.get(shop.batch.batch_id).state == "closed"


# ---------------------------------------------------------------------------- downloads


def test_a_download_broken_off_resumes_to_the_same_bytes(shop):
    pdf_url, headers = url(shop.batch.batch_id, "/pdf"), auth(shop.tokens["oi"])
    size = shop.batch.pdf_size
    whole = shop.http.get(pdf_url, headers=headers)
    assert whole.status_code == 200
    assert whole.headers["accept-ranges"] == "bytes"
    assert whole.headers["etag"] == f'"{shop.batch.pdf_sha256}"'
    assert int(whole.headers["content-length"]) == size == len(whole.content)
    assert sha(whole.content) == shop.batch.pdf_sha256

    # The connection breaks after a part of the file ...
    got = bytearray()
    with shop.http.stream("GET", pdf_url, headers=headers) as response:
        for chunk in response.iter_bytes(4096):
            got += chunk
            if len(got) >= size // 3:
                break
    cut = len(got)
    assert 0 < cut < size
    # ... and resumes from there, on condition the file is still the same one.
    rest = shop.http.get(pdf_url, headers={**headers, "Range": f"bytes={cut}-",
                                            "If-Range": whole.headers["etag"]})
    assert rest.status_code == 206
    assert rest.headers["content-range"] == f"bytes {cut}-{size - 1}/{size}"
    assert int(rest.headers["content-length"]) == size - cut
    assert sha(bytes(got) + rest.content) == shop.batch.pdf_sha256
    assert len(pikepdf.open(io.BytesIO(bytes(got) + rest.content)).pages) == shop.batch.pages


def test_ranges_the_way_http_defines_them(shop):
    pdf_url, headers = url(shop.batch.batch_id, "/pdf"), auth(shop.tokens["oi"])
    size = shop.batch.pdf_size
    whole = shop.http.get(pdf_url, headers=headers).content
    etag = f'"{shop.batch.pdf_sha256}"'
    for spec, start, end in (("0-0", 0, 1), ("10-19", 10, 20), ("-100", size - 100, size),
                             (f"{size - 5}-{size + 500}", size - 5, size),
                             (f"-{size + 9}", 0, size), ("100-", 100, size)):
        got = shop.http.get(pdf_url, headers={**headers, "Range": f"bytes={spec}"})
        assert got.status_code == 206, spec
        assert got.content == whole[start:end], spec
        assert got.headers["content-range"] == f"bytes {start}-{end - 1}/{size}"
    for spec in (f"{size}-", f"{size + 10}-{size + 20}", "20-10", "abc", "-0", "-", ""):
        got = shop.http.get(pdf_url, headers={**headers, "Range": f"bytes={spec}"})
        assert got.status_code == 416, spec
        assert got.headers["content-range"] == f"bytes */{size}"
        assert got.headers["content-type"] == PROBLEM and got.json()["size"] == size
    # Served whole: a stale If-Range, another unit, several ranges.
    for extra in ({"Range": "bytes=10-", "If-Range": '"0000"'},
                  {"Range": "bytes=10-", "If-Range": f"W/{etag}"},
                  {"Range": "items=1-2"}, {"Range": "bytes=0-1,5-6"}):
        got = shop.http.get(pdf_url, headers={**headers, **extra})
        assert got.status_code == 200 and got.content == whole, extra
    head = shop.http.head(pdf_url, headers={**headers, "Range": "bytes=5-"})
    assert head.status_code == 206 and head.content == b""
    assert int(head.headers["content-length"]) == size - 5
    assert shop.http.get(pdf_url, headers={**headers, "If-None-Match": etag}
                         ).status_code == 304


def test_a_file_missing_from_the_archive_is_a_503_not_a_broken_download(shop, tmp_path):
    batch = shop.ledger.print_batches.get(shop.batch.batch_id)
    if shop.backend == "file":
        path = shop.archive.root / batch.pdf_key
        path.rename(tmp_path / "away.pdf")
    else:
        shop.archive.client.delete_object(Bucket=shop.archive.bucket,
                                          Key=shop.archive.prefix + batch.pdf_key)
    got = shop.http.get(url(batch.id, "/pdf"), headers=auth(shop.tokens["oi"]))
    assert got.status_code == 503 and got.headers["content-type"] == PROBLEM


# ---------------------------------------------------------------------------- acknowledging


def test_acknowledging_marks_every_invoice_printed_once(shop):
    batch_id, headers = shop.batch.batch_id, auth(shop.tokens["oi"])
    assert print_states(shop.ledger, batch_id) == {"sending"}
    first = shop.http.post(url(batch_id, "/ack"), json=counts(shop.batch), headers=headers)
    assert first.status_code == 200, first.text
    body = first.json()
    assert body["batch"] == batch_name(batch_id) and body["state"] == "printed"
    assert body["invoices_printed"] == shop.batch.documents
    assert print_states(shop.ledger, batch_id) == {"sent"}
    printed_at = shop.ledger.print_batches.get(batch_id).printed_at
    again = shop.http.post(url(batch_id, "/ack"), json=counts(shop.batch), headers=headers)
    assert again.status_code == 200 and again.json() == body
    assert shop.ledger.print_batches.get(batch_id).printed_at == printed_at
    # Gone from the ready list; still there to look at and download.
    listed = shop.http.get(f"{BASE}/batches", headers=headers).json()
    assert listed == {"batches": []}
    detail = shop.http.get(url(batch_id), headers=headers).json()
    assert detail["state"] == "printed" and detail["printed"]["documents"] == (
        shop.batch.documents)
    assert shop.http.get(url(batch_id, "/pdf"), headers=headers).status_code == 200
    # The other operator's batch is untouched.
    assert print_states(shop.ledger, shop.other.batch_id) == {"sending"}


@pytest.mark.parametrize("field", ["documents", "pages", "sheets"])
def test_wrong_counts_are_refused_and_change_nothing(shop, field):
    batch_id, headers = shop.batch.batch_id, auth(shop.tokens["oi"])
    wrong = counts(shop.batch)
    wrong[field] += 1
    got = shop.http.post(url(batch_id, "/ack"), json=wrong, headers=headers)
    assert got.status_code == 409 and got.headers["content-type"] == PROBLEM
    problem = got.json()
    assert problem["type"].endswith("count-mismatch")
    assert problem["expected"] == counts(shop.batch) and problem["received"] == wrong
    assert "Nothing was recorded" in problem["detail"]
    assert shop.ledger.print_batches.get(batch_id).state == "closed"
    assert print_states(shop.ledger, batch_id) == {"sending"}
    # Once printed, other counts are still refused (and still change nothing).
    assert shop.http.post(url(batch_id, "/ack"), json=counts(shop.batch),
                          headers=headers).status_code == 200
    assert shop.http.post(url(batch_id, "/ack"), json=wrong,
                          headers=headers).status_code == 409
