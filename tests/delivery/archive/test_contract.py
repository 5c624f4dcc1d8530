"""The archive contract, run over every backend (a folder, and S3 on moto's real server),
then each backend's own promises: file atomicity, S3 checksums, retries and fallbacks."""

from __future__ import annotations

import base64
import errno
import hashlib
import json
import logging
import os
import pickle
import stat
import subprocess
import threading
import urllib.request
from datetime import date
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from botocore.exceptions import ClientError

from invoicer.delivery.archive import (
    CHUNK_SIZE,
    DEFAULT_ARCHIVE_URL,
    MAX_URL_EXPIRES,
    META_XATTR,
    Archive,
    FileArchive,
    S3Archive,
    account_prefix,
    archive_from_url,
    invoice_key,
)
from invoicer.delivery.errors import (
    ArchiveConflictError,
    ArchiveNotFoundError,
    DeliveryError,
    PermanentDeliveryError,
    TransientDeliveryError,
)
from tests.delivery.conftest import REGION, closed_port, s3_url

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


# --- keys ------------------------------------------------------------------------------


def test_invoice_key_is_operator_account_month_invoice():
    assert KEY == "oi/1234567890/2026-10/OI-2026-11-0000123.pdf"
    assert invoice_key("vodafone.ro", "RO_77-1", date(2026, 1, 31), "F.1", ".json") == (
        "vodafone.ro/RO_77-1/2026-01/F.1.json")
    assert account_prefix("oi", "1234567890") == "oi/1234567890/"
    assert KEY.startswith(account_prefix("oi", "1234567890"))


UNSAFE = ["..", "../x", "x/..", "a/b", "/abs", "a..b", "", ".hidden", "-x", "_x", "x\n",
          "a b", "a\\b", "ä", "x" * 65, "a\x00b", None, 42]


@pytest.mark.parametrize("bad", UNSAFE, ids=repr)
@pytest.mark.parametrize("position", ["operator", "account", "invoice_number"])
def test_invoice_key_rejects_unsafe_identifiers(position, bad):
    parts = {"operator": "oi", "account": "1234567890", "invoice_number": "OI-1"}
    parts[position] = bad
    with pytest.raises(ValueError, match=position):
        invoice_key(parts["operator"], parts["account"], date(2026, 10, 1),
                    parts["invoice_number"], "pdf")


@pytest.mark.parametrize("ext", ["exe", "pdf/../x", "", "PDF"])
def test_invoice_key_names_only_pdf_and_json(ext):
    with pytest.raises(ValueError, match="ext"):
        invoice_key("oi", "1", date(2026, 10, 1), "OI-1", ext)


# --- the contract, over both backends --------------------------------------------------


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


def test_s3_url_builds_the_client(aws_env):
    archive = archive_from_url(
        "s3://my-bucket/tenant/a?endpoint=http://127.0.0.1:9000&region=eu-west-1"
        "&connect_timeout=2&read_timeout=7&max_attempts=3&create_only=head-then-put")
    assert isinstance(archive, S3Archive)
    assert (archive.bucket, archive.prefix, archive.create_only) == (
        "my-bucket", "tenant/a/", "head-then-put")
    config = archive.client.meta.config
    assert archive.client.meta.endpoint_url == "http://127.0.0.1:9000"
    assert archive.client.meta.region_name == "eu-west-1"
    assert (config.connect_timeout, config.read_timeout) == (2, 7)
    assert config.retries == {"mode": "standard", "total_max_attempts": 3}
    assert config.signature_version == "s3v4"
    assert config.s3["addressing_style"] == "path"
    defaults = S3Archive.from_url("s3://my-bucket").client.meta.config
    assert (defaults.connect_timeout, defaults.read_timeout) == (5, 30)
    assert defaults.retries == {"mode": "standard", "total_max_attempts": 5}


# --- file backend ----------------------------------------------------------------------


def test_file_objects_are_read_only_and_leave_no_temp_files(tmp_path):
    archive = FileArchive(tmp_path)
    archive.put(KEY, PDF, metadata=META)
    path = tmp_path / KEY
    assert stat.S_IMODE(path.stat().st_mode) == 0o444
    assert os.listdir(path.parent) == [path.name]  # metadata in the attribute, no sidecar


def test_file_metadata_lost_by_a_copy_is_recomputed_and_repaired(tmp_path):
    archive = FileArchive(tmp_path / "a")
    archive.put(KEY, PDF, metadata=META)
    # A plain `cp -r` (no -a / -X) drops extended attributes.
    subprocess.run(["cp", "-r", str(tmp_path / "a"), str(tmp_path / "b")], check=True)
    copy = FileArchive(tmp_path / "b")
    with pytest.raises(OSError):
        os.getxattr(copy.root / KEY, META_XATTR)
    info = copy.stat(KEY)
    assert (info.sha256, dict(info.metadata)) == (SHA, {})  # hashed from the bytes
    assert copy.put(KEY, PDF, metadata=META).already_there
    assert copy.stat(KEY).metadata == META  # kept in a sidecar from now on
    path = copy.root / KEY
    assert (path.parent / f".{path.name}.meta.json").is_file()


def test_file_system_without_xattrs_uses_sidecars(tmp_path, monkeypatch):
    # No file system on this machine refuses user attributes; make setxattr answer as
    # one that has none does (vfat, some network mounts).
    def refuse(*args, **kwargs):
        raise OSError(errno.ENOTSUP, "Operation not supported")

    monkeypatch.setattr(os, "setxattr", refuse)
    archive = FileArchive(tmp_path)
    assert archive.put(KEY, PDF, metadata=META).created
    assert archive.xattrs is False  # not asked again for the next objects
    path = tmp_path / KEY
    sidecar = json.loads(path.with_name(f".{path.name}.meta.json").read_bytes())
    assert sidecar == {"sha256": SHA, "size": len(PDF), "content_type": "application/pdf",
                       "metadata": META}
    assert archive.stat(KEY).metadata == META
    assert archive.list() == [KEY]
    assert archive.put(KEY, PDF, metadata=META).already_there
    with pytest.raises(ArchiveConflictError):
        archive.put(KEY, PDF + b"x", metadata=META)


def test_file_torn_sidecar_is_ignored_and_rewritten(tmp_path):
    archive = FileArchive(tmp_path, xattrs=False)
    archive.put(KEY, PDF, metadata=META)
    path = tmp_path / KEY
    sidecar = path.with_name(f".{path.name}.meta.json")
    sidecar.write_bytes(sidecar.read_bytes()[:17])  # a crash mid-write
    assert archive.stat(KEY).sha256 == SHA  # hashed from the bytes
    assert archive.put(KEY, PDF, metadata=META).already_there
    assert archive.stat(KEY).metadata == META


def test_file_leftover_temp_file_is_invisible(tmp_path):
    archive = FileArchive(tmp_path)
    folder = tmp_path / "oi/1234567890/2026-10"
    folder.mkdir(parents=True)
    (folder / ".OI-2026-11-0000123.pdf.k3j2.tmp").write_bytes(PDF[:10])  # killed mid-write
    assert archive.list() == []
    assert not archive.exists(KEY)
    assert archive.put(KEY, PDF).created
    assert archive.list() == [KEY]


def test_file_disk_errors_are_translated(tmp_path):
    archive = FileArchive(tmp_path)
    (tmp_path / "oi").write_bytes(b"a file where a folder should be")
    with pytest.raises(PermanentDeliveryError):
        archive.put(KEY, PDF)


# --- S3: what moto does, and faults in front of it -------------------------------------


def test_moto_honours_if_none_match(s3_admin, bucket):
    s3_admin.put_object(Bucket=bucket, Key="k", Body=b"1", IfNoneMatch="*")
    with pytest.raises(ClientError) as caught:
        s3_admin.put_object(Bucket=bucket, Key="k", Body=b"2", IfNoneMatch="*")
    assert caught.value.response["Error"]["Code"] == "PreconditionFailed"
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 412
    assert s3_admin.get_object(Bucket=bucket, Key="k")["Body"].read() == b"1"


def proxied(proxy, bucket, **options) -> S3Archive:
    return S3Archive.from_url(s3_url(bucket, proxy.url, **options))


def stored(s3_admin, bucket) -> bytes:
    return s3_admin.get_object(Bucket=bucket, Key=f"archive/{KEY}")["Body"].read()


@pytest.mark.parametrize(("status", "code", "times"),
                         [(500, "InternalError", 1), (503, "SlowDown", 2)])
def test_s3_5xx_are_retried_until_the_put_lands(fault_proxy, bucket, s3_admin, status,
                                                 code, times):
    fault_proxy.inject(method="PUT", status=status, code=code, times=times)
    result = proxied(fault_proxy, bucket).put(KEY, PDF, metadata=META)
    assert result.created
    assert fault_proxy.count("PUT") == times + 1
    assert stored(s3_admin, bucket) == PDF


def test_s3_lost_answer_retried_finds_its_own_object(fault_proxy, bucket, s3_admin):
    # The store wrote the object but the answer became a 500: the retry meets
    # If-None-Match, and the checksum comparison turns it into "already there".
    fault_proxy.inject(method="PUT", status=500, code="InternalError", after=True)
    result = proxied(fault_proxy, bucket).put(KEY, PDF)
    assert result.already_there and result.sha256 == SHA
    assert fault_proxy.count("PUT") == 2
    assert stored(s3_admin, bucket) == PDF


def test_s3_persistent_503_ends_transient(fault_proxy, bucket, s3_admin):
    fault_proxy.inject(method="PUT", status=503, code="ServiceUnavailable", times=None)
    with pytest.raises(TransientDeliveryError, match="ServiceUnavailable"):
        proxied(fault_proxy, bucket, max_attempts=2).put(KEY, PDF)
    assert fault_proxy.count("PUT") == 2
    assert s3_admin.list_objects_v2(Bucket=bucket)["KeyCount"] == 0


def test_s3_403_is_permanent_and_not_retried(fault_proxy, bucket):
    fault_proxy.inject(method="PUT", status=403, code="AccessDenied")
    fault_proxy.inject(method="GET", status=403, code="AccessDenied")
    archive = proxied(fault_proxy, bucket)
    with pytest.raises(PermanentDeliveryError, match="AccessDenied"):
        archive.put(KEY, PDF)
    with pytest.raises(PermanentDeliveryError, match="AccessDenied") as caught:
        archive.get(KEY)
    assert not isinstance(caught.value, ArchiveNotFoundError)
    assert fault_proxy.count("PUT") == 1 and fault_proxy.count("GET") == 1


def test_s3_read_timeout_is_retried(fault_proxy, bucket, s3_admin):
    fault_proxy.inject(method="PUT", stall=1.0)
    assert proxied(fault_proxy, bucket, read_timeout=0.3).put(KEY, PDF).created
    assert fault_proxy.count("PUT") == 2
    assert stored(s3_admin, bucket) == PDF


def test_s3_timeouts_and_refused_connections_end_transient(fault_proxy, bucket, aws_env):
    fault_proxy.inject(method="HEAD", stall=1.0, times=None)
    with pytest.raises(TransientDeliveryError):
        proxied(fault_proxy, bucket, read_timeout=0.3, max_attempts=1).exists(KEY)
    nobody = S3Archive.from_url(s3_url(bucket, f"http://127.0.0.1:{closed_port()}",
                                       max_attempts=2))
    with pytest.raises(TransientDeliveryError):
        nobody.put(KEY, PDF)


def test_s3_missing_bucket_is_permanent(moto_endpoint):
    archive = S3Archive.from_url(s3_url("no-such-bucket-here", moto_endpoint))
    with pytest.raises(PermanentDeliveryError, match="NoSuchBucket") as caught:
        archive.put(KEY, PDF)
    assert not isinstance(caught.value, ArchiveNotFoundError)


def test_s3_corrupted_download_is_caught_and_transient(fault_proxy, bucket):
    archive = proxied(fault_proxy, bucket)
    archive.put(KEY, PDF)
    fault_proxy.inject(method="GET", corrupt=True)
    with pytest.raises(TransientDeliveryError):
        archive.get(KEY)
    assert archive.get(KEY) == PDF


def test_s3_409_conditional_conflict_is_retried(fault_proxy, bucket):
    fault_proxy.inject(method="PUT", status=409, code="ConditionalRequestConflict")
    assert proxied(fault_proxy, bucket).put(KEY, PDF).created
    assert fault_proxy.count("PUT") == 2


def test_s3_store_rejecting_if_none_match_falls_back_to_head_then_put(
        fault_proxy, bucket, s3_admin, caplog):
    fault_proxy.inject(method="PUT", status=501, code="NotImplemented",
                       only_with_header="If-None-Match", times=None)
    archive = proxied(fault_proxy, bucket)
    with caplog.at_level(logging.WARNING, logger="invoicer.delivery.archive"):
        assert archive.put(KEY, PDF).created
    assert archive.create_only == "head-then-put"
    assert "If-None-Match" in caplog.text
    assert archive.put(KEY, PDF).already_there
    with pytest.raises(ArchiveConflictError):
        archive.put(KEY, PDF + b"x")
    assert stored(s3_admin, bucket) == PDF


def test_s3_store_ignoring_if_none_match_needs_head_then_put(fault_proxy, bucket,
                                                             s3_admin):
    # A store that drops the header would let a conditional put overwrite silently;
    # nothing in its answer tells, so the mode is chosen in the URL.
    fault_proxy.inject(method="PUT", strip_header="If-None-Match", times=None)
    trusting = proxied(fault_proxy, bucket)
    trusting.put(KEY, PDF)
    assert trusting.put(KEY, PDF + b"x").created  # the hazard: overwritten
    assert stored(s3_admin, bucket) == PDF + b"x"

    careful = proxied(fault_proxy, bucket, create_only="head-then-put")
    with pytest.raises(ArchiveConflictError):
        careful.put(KEY, PDF)
    assert careful.put(KEY, PDF + b"x").already_there
    other = KEY.replace(".pdf", ".json")
    assert careful.put(other, b"{}").created
    assert careful.list() == sorted([KEY, other])


def test_s3_object_written_by_someone_else_is_compared_by_its_bytes(s3_admin, bucket,
                                                                    moto_endpoint):
    s3_admin.put_object(Bucket=bucket, Key=f"archive/{KEY}", Body=PDF)  # no checksum
    archive = S3Archive.from_url(s3_url(bucket, moto_endpoint))
    assert archive.stat(KEY).sha256 == SHA
    assert archive.put(KEY, PDF).already_there
    with pytest.raises(ArchiveConflictError):
        archive.put(KEY, PDF + b"x")


def test_s3_list_reads_every_page(fault_proxy, bucket):
    archive = proxied(fault_proxy, bucket)
    archive.list_page_size = 2
    keys = [invoice_key("oi", "123", date(2026, m, 1), f"I-{m}", "pdf") for m in range(1, 6)]
    for key in keys:
        archive.put(key, key.encode())
    assert archive.list(account_prefix("oi", "123")) == keys
    assert sum(1 for m, path in fault_proxy.seen if m == "GET" and "list-type=2" in path) == 3


def test_delivery_errors_say_whether_to_retry():
    assert TransientDeliveryError("x").transient
    assert not PermanentDeliveryError("x").transient
    assert issubclass(ArchiveConflictError, PermanentDeliveryError)
    assert issubclass(ArchiveNotFoundError, PermanentDeliveryError)
    assert all(issubclass(c, DeliveryError) for c in (TransientDeliveryError,
                                                     PermanentDeliveryError))


def test_delivery_errors_survive_pickling():
    # The CLI's process pool and Celery ship exceptions between processes.
    for err in (ArchiveConflictError(KEY, SHA, sha(b"x")), ArchiveNotFoundError(KEY),
                TransientDeliveryError("503"), PermanentDeliveryError("403")):
        copy = pickle.loads(pickle.dumps(err))
        assert type(copy) is type(err) and str(copy) == str(err)
        assert vars(copy) == vars(err)


@pytest.mark.parametrize(("status", "transient"), [
    (408, True), (429, True), (500, True), (502, True), (503, True), (504, True),
    (400, False), (403, False), (404, False), (412, False), (501, False), (505, False),
])
def test_http_status_classification(status, transient):
    from invoicer.delivery.errors import error_for_status, is_transient_status

    assert is_transient_status(status) is transient
    err = error_for_status(status, "boom")
    assert isinstance(err, TransientDeliveryError if transient else PermanentDeliveryError)
    assert str(status) in str(err)


def test_unused_path_is_untouched(tmp_path: Path):
    # Opening an archive does no I/O: a URL can be checked before the folder exists.
    archive = FileArchive(tmp_path / "later")
    assert archive.list() == [] and not (tmp_path / "later").exists()
