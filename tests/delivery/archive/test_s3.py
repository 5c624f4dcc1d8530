"""The S3 archive's own promises, against moto's real server and a proxy in front of it
that fails on purpose: retries, checksums, conditional writes and their fallbacks."""

from __future__ import annotations

import hashlib
import logging
from datetime import date

import pytest
from botocore.exceptions import ClientError

from invoicer.delivery.archive import (
    S3Archive,
    account_prefix,
    archive_from_url,
    invoice_key,
)
from invoicer.delivery.errors import (
    ArchiveConflictError,
    ArchiveNotFoundError,
    PermanentDeliveryError,
    TransientDeliveryError,
)
from tests.support.servers import closed_port, s3_url

KEY = invoice_key("oi", "1234567890", date(2026, 10, 1), "OI-2026-11-0000123", "pdf")
PDF = b"%PDF-1.7\n" + b"itemized invoice, page 1 of 1\n" * 200 + b"%%EOF\n"
SHA = hashlib.sha256(PDF).hexdigest()
META = {"renderer-version": "1.0.0"}


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
