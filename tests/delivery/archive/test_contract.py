"""The archive contract, run over every backend: a folder, S3 on moto's real server,
and the in-memory fake; and how a URL picks the backend."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import threading
import urllib.request
from datetime import date
from urllib.parse import parse_qs, urlsplit

import pytest

from invoicer.delivery.archive import (
    CHUNK_SIZE,
    DEFAULT_ARCHIVE_URL,
    MAX_URL_EXPIRES,
    META_XATTR,
    Archive,
    FileArchive,
    account_prefix,
    archive_from_url,
    invoice_key,
)
from invoicer.delivery.errors import (
    ArchiveConflictError,
    ArchiveNotFoundError,
    PermanentDeliveryError,
)
from tests.support.servers import REGION

KEY = invoice_key("oi", "1234567890", date(2026, 10, 1), "OI-2026-11-0000123", "pdf")
PDF = b"%PDF-1.7\n" + b"itemized invoice, page 1 of 1\n" * 200 + b"%%EOF\n"
SHA = hashlib.sha256(PDF).hexdigest()
META = {"renderer-version": "1.0.0"}


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def run_together(n: int, work) -> list:
    """Run ``work(i)`` in n threads released at once; return results or exceptions."""
    barrier = threading.Barrier(n)
    results: list = [None] * n

    def run(i: int) -> None:
        barrier.wait()
        try:
            results[i] = work(i)
        except Exception as exc:
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    return results


# --- the contract, over every backend -------------------------------------------------


def test_backends_are_archives(archive):
    assert isinstance(archive, Archive)


def test_put_then_read_back(archive):
    result = archive.put(KEY, PDF, sha256=SHA, metadata=META)
    assert (result.key, result.sha256, result.size, result.created) == (KEY, SHA, len(PDF),
                                                                        True)
    assert archive.get(KEY) == PDF
    assert archive.exists(KEY)
    assert not archive.exists(KEY.replace(".pdf", ".json"))
    info = archive.stat(KEY)
    assert (info.key, info.size, info.sha256, info.content_type) == (
        KEY, len(PDF), SHA, "application/pdf")
    assert dict(info.metadata) == META


def test_canonical_record_is_json(archive):
    key = KEY.replace(".pdf", ".json")
    archive.put(key, b'{"schema": "billing-record/1"}')  # sha256 computed when not given
    assert archive.stat(key).content_type == "application/json"
    assert archive.stat(key).sha256 == sha(b'{"schema": "billing-record/1"}')


def test_same_bytes_again_is_a_noop_success(archive):
    first = archive.put(KEY, PDF, metadata=META)
    again = archive.put(KEY, PDF, sha256=SHA, metadata=META)
    assert first.created and not again.created and again.already_there
    assert again.sha256 == SHA
    assert archive.list() == [KEY]
    assert archive.get(KEY) == PDF


def test_different_bytes_are_a_conflict_never_an_overwrite(archive):
    archive.put(KEY, PDF, metadata=META)
    other = PDF.replace(b"page 1", b"page 2", 1)
    with pytest.raises(ArchiveConflictError) as caught:
        archive.put(KEY, other, metadata={"renderer-version": "2.0.0"})
    err = caught.value
    assert isinstance(err, PermanentDeliveryError) and not err.transient
    assert (err.key, err.existing_sha256, err.new_sha256) == (KEY, SHA, sha(other))
    assert archive.get(KEY) == PDF
    assert archive.stat(KEY).metadata == META


def test_a_wrong_sha256_from_the_caller_is_refused(archive):
    with pytest.raises(ValueError, match="does not match"):
        archive.put(KEY, PDF, sha256=sha(b"something else"))
    assert not archive.exists(KEY)
    assert archive.put(KEY, PDF, sha256=SHA.upper()).created


def test_checksum_is_stored_with_the_object(archive, backend, request):
    archive.put(KEY, PDF, metadata=META)
    if backend == "s3":
        head = request.getfixturevalue("s3_admin").head_object(
            Bucket=archive.bucket, Key=f"archive/{KEY}", ChecksumMode="ENABLED")
        assert head["ChecksumSHA256"] == base64.b64encode(bytes.fromhex(SHA)).decode()
        assert head["Metadata"] == {"sha256": SHA, **META}
        assert head["ContentType"] == "application/pdf"
    elif backend == "memory":
        stored = archive.objects[KEY]
        assert (stored.info.sha256, stored.info.size, stored.info.content_type,
                dict(stored.info.metadata)) == (SHA, len(PDF), "application/pdf", META)
        assert sha(stored.data) == SHA
    else:
        path = archive.root / KEY
        stored = json.loads(os.getxattr(path, META_XATTR))
        assert stored == {"sha256": SHA, "size": len(PDF), "content_type": "application/pdf",
                          "metadata": META}
        assert sha(path.read_bytes()) == SHA


def test_list_holds_one_account_only(archive):
    keys = [
        invoice_key("oi", "123", date(2026, 9, 1), "A-1", "pdf"),
        invoice_key("oi", "123", date(2026, 10, 1), "A-2", "pdf"),
        invoice_key("oi", "123", date(2026, 10, 1), "A-2", "json"),
        invoice_key("oi", "1234", date(2026, 10, 1), "B-1", "pdf"),  # "123" is its prefix
        invoice_key("vivo", "123", date(2026, 10, 1), "C-1", "pdf"),
    ]
    for key in keys:
        archive.put(key, key.encode())
    assert archive.list(account_prefix("oi", "123")) == sorted(keys[:3])
    assert archive.list("oi/123") == sorted(keys[:3])
    assert archive.list("oi/123/2026-10/") == sorted(keys[1:3])
    assert archive.list("") == sorted(keys)
    assert archive.list("nobody/") == []


def test_url_fetches_the_bytes_and_lives_at_most_15_minutes(archive, backend):
    archive.put(KEY, PDF)
    link = archive.url(KEY, expires=24 * 3600)
    with urllib.request.urlopen(link, timeout=10) as response:
        assert response.read() == PDF
    if backend == "s3":
        query = parse_qs(urlsplit(link).query)
        assert query["X-Amz-Algorithm"] == ["AWS4-HMAC-SHA256"]  # SigV4
        assert int(query["X-Amz-Expires"][0]) == MAX_URL_EXPIRES == 900
        assert f"/{REGION}/s3/aws4_request" in query["X-Amz-Credential"][0]
        assert parse_qs(urlsplit(archive.url(KEY, 60)).query)["X-Amz-Expires"] == ["60"]
    elif backend == "memory":  # a fake has no server: the link carries the bytes
        assert link.startswith("data:application/pdf;base64,")
    else:
        assert link == (archive.root / KEY).as_uri()
    for bad in (0, -5, 1.5, True):
        with pytest.raises(ValueError, match="expires"):
            archive.url(KEY, bad)


def test_missing_objects(archive):
    assert not archive.exists(KEY)
    with pytest.raises(ArchiveNotFoundError):
        archive.get(KEY)
    with pytest.raises(ArchiveNotFoundError):
        archive.stat(KEY)
    assert archive.list() == []


# --- streaming: put_file and open_range ------------------------------------------------

BIG = b"".join(b"%08d big batch line\n" % i for i in range(200_000))  # 5.4 MB: 6 chunks


def test_put_file_streams_a_file_in_and_reads_back(archive, tmp_path):
    source = tmp_path / "batch.pdf"
    source.write_bytes(BIG)
    result = archive.put_file(KEY, source, sha256=sha(BIG), metadata=META)
    assert (result.key, result.sha256, result.size, result.created) == (
        KEY, sha(BIG), len(BIG), True)
    info = archive.stat(KEY)
    assert (info.size, info.sha256, info.content_type, dict(info.metadata)) == (
        len(BIG), sha(BIG), "application/pdf", META)
    assert b"".join(archive.open_range(KEY)) == BIG
    # Without a checksum from the caller the file is hashed.
    other = KEY.replace(".pdf", ".json")
    source.write_bytes(b"{}")
    assert archive.put_file(other, source).sha256 == sha(b"{}")


def test_put_file_conflicts_and_no_ops_like_put(archive, tmp_path):
    same, different = tmp_path / "same.pdf", tmp_path / "different.pdf"
    same.write_bytes(PDF)
    different.write_bytes(PDF.replace(b"page 1", b"page 2", 1))
    archive.put(KEY, PDF, metadata=META)
    again = archive.put_file(KEY, same, sha256=SHA, metadata=META)
    assert again.already_there and again.size == len(PDF)
    with pytest.raises(ArchiveConflictError) as caught:
        archive.put_file(KEY, different, metadata=META)
    assert (caught.value.existing_sha256, caught.value.new_sha256) == (
        SHA, sha(different.read_bytes()))
    # ... and put after put_file, the other way round.
    second = KEY.replace("0000123", "0000124")
    assert archive.put_file(second, same, metadata=META).created
    assert archive.put(second, PDF, metadata=META).already_there
    with pytest.raises(ArchiveConflictError):
        archive.put(second, different.read_bytes())
    assert archive.get(KEY) == archive.get(second) == PDF


def test_put_file_refuses_a_wrong_sha256_and_stores_nothing(archive, tmp_path):
    source = tmp_path / "batch.pdf"
    source.write_bytes(BIG)
    with pytest.raises(ValueError, match="does not match"):
        archive.put_file(KEY, source, sha256=sha(b"something else"))
    assert not archive.exists(KEY)
    assert archive.list() == []
    archive.put_file(KEY, source)
    # Already there, and the caller's checksum is still not the file's: still refused.
    with pytest.raises(ValueError, match="does not match"):
        archive.put_file(KEY, source, sha256=sha(b"something else"))


@pytest.mark.parametrize(("start", "end"), [
    (0, None), (0, 1), (1, 2), (17, 4097), (len(BIG) - 1, None), (len(BIG) - 10, len(BIG)),
    (5, 5), (len(BIG), None), (len(BIG), len(BIG)), (1 << 20, (1 << 20) * 3 + 5),
    (0, len(BIG) + 100),
])
def test_open_range_reads_slices_in_bounded_chunks(archive, tmp_path, start, end):
    source = tmp_path / "batch.pdf"
    source.write_bytes(BIG)
    archive.put_file(KEY, source)
    chunks = list(archive.open_range(KEY, start, end))
    assert b"".join(chunks) == BIG[start:end]
    assert all(0 < len(c) <= CHUNK_SIZE for c in chunks)


def test_open_range_finds_missing_objects_before_the_first_chunk(archive):
    with pytest.raises(ArchiveNotFoundError):
        archive.open_range(KEY, 0, 10)
    archive.put(KEY, PDF)
    for start, end in ((-1, None), (5, 4), ("0", None), (0, 1.5)):
        with pytest.raises(ValueError):
            archive.open_range(KEY, start, end)


def test_open_range_stopped_early_releases_the_object(archive):
    archive.put(KEY, BIG)
    chunks = archive.open_range(KEY, 3)
    assert next(chunks) == BIG[3:3 + CHUNK_SIZE]
    chunks.close()
    # Many abandoned reads must not exhaust file handles or the S3 connection pool.
    for _ in range(40):
        it = archive.open_range(KEY, 0)
        next(it)
        it.close()
    assert b"".join(archive.open_range(KEY, 10, 20)) == BIG[10:20]


BAD_KEYS = ["../x.pdf", "oi/../../etc/passwd", "/abs.pdf", "a//b.pdf", "a/./b.pdf", "a/",
            "", ".hidden", "a/.x.pdf.meta.json", "a\\b.pdf", "a/b.pdf\n", "a b.pdf",
            "ä.pdf", "a..b/c.pdf", "x" * 129, None]


@pytest.mark.parametrize("key", BAD_KEYS, ids=repr)
def test_keys_cannot_escape_and_fail_before_any_io(unreachable_archive, backend, key,
                                                   tmp_path):
    # The store behind unreachable_archive turns any I/O into a DeliveryError (or a
    # folder that appears): a ValueError proves the key was refused first.
    source = tmp_path / "source.pdf"
    source.write_bytes(PDF)
    calls = [
        lambda: unreachable_archive.put(key, PDF),
        lambda: unreachable_archive.put_file(key, source),
        lambda: unreachable_archive.open_range(key),
        lambda: unreachable_archive.get(key),
        lambda: unreachable_archive.exists(key),
        lambda: unreachable_archive.stat(key),
        lambda: unreachable_archive.url(key),
    ]
    for call in calls:
        with pytest.raises(ValueError):
            call()
    if key not in ("", "a/", None):  # "" and "a/" are fine folder-like prefixes
        with pytest.raises(ValueError):
            unreachable_archive.list(key)
    assert not (tmp_path / "must-not-exist").exists()


def test_metadata_must_fit_http_headers(unreachable_archive):
    for metadata in ({"Renderer": "1"}, {"sha256": "x"}, {"note": "não"}, {"a_b": "1"},
                     {"x": "line\nbreak"}, {"x": 1}):
        with pytest.raises(ValueError, match="metadata"):
            unreachable_archive.put(KEY, PDF, metadata=metadata)


def test_eight_writers_same_bytes_one_creates(archive):
    results = run_together(8, lambda i: archive.put(KEY, PDF, sha256=SHA, metadata=META))
    assert all(not isinstance(r, BaseException) for r in results), results
    assert sum(r.created for r in results) == 1
    assert sum(r.already_there for r in results) == 7
    assert archive.list() == [KEY]
    assert archive.get(KEY) == PDF
    assert archive.stat(KEY).sha256 == SHA


def test_eight_writers_different_bytes_one_wins_the_rest_conflict(archive):
    versions = [PDF + f"% version {i}\n".encode() for i in range(8)]
    results = run_together(8, lambda i: archive.put(KEY, versions[i]))
    winners = [i for i, r in enumerate(results) if not isinstance(r, BaseException)]
    assert len(winners) == 1 and results[winners[0]].created
    assert sum(isinstance(r, ArchiveConflictError) for r in results) == 7
    assert archive.get(KEY) == versions[winners[0]]


# --- choosing a backend by URL ---------------------------------------------------------


def test_file_urls_relative_and_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    default = archive_from_url(DEFAULT_ARCHIVE_URL)
    assert isinstance(default, FileArchive) and default.root == tmp_path / "var" / "archive"
    assert archive_from_url("file://./x/y").root == tmp_path / "x" / "y"
    assert archive_from_url("file:rel").root == tmp_path / "rel"
    assert archive_from_url(f"file://{tmp_path}/abs").root == tmp_path / "abs"
    monkeypatch.chdir("/")  # the root was made absolute when opened
    assert default.root == tmp_path / "var" / "archive"


@pytest.mark.parametrize("url", ["ftp://host/x", "memory://", "/plain/path", "file://x?y=1",
                                 "s3://Bad_Bucket/x", "s3://b-1/x?endpoint=ftp://h",
                                 "s3://b-1/x?timeout=3", "s3://key:secret@b-1/x",
                                 "s3://b-1/x?create_only=yolo"])
def test_bad_archive_urls(url):
    with pytest.raises(ValueError):
        archive_from_url(url)
