"""S3 clients made one way: URL options, and one object read whole, by range, as blocks
or into a file, against moto's real server and a proxy that fails on purpose."""

from __future__ import annotations

import pytest

from invoicer.delivery.errors import (
    ArchiveNotFoundError,
    PermanentDeliveryError,
    TransientDeliveryError,
)
from invoicer.delivery.s3 import S3Object, make_client, parse_s3_url
from tests.support.servers import REGION

DATA = b"".join(b'{"line": %d}\n' % i for i in range(100_000))  # ~1.4 MB: two blocks


def url(bucket: str, endpoint: str, key: str = "in/run.jsonl", **options) -> str:
    query = "&".join(f"{k}={v}" for k, v in {"endpoint": endpoint, "region": REGION,
                                             **options}.items())
    return f"s3://{bucket}/{key}?{query}"


def test_urls_are_checked_before_any_client_is_made():
    location = parse_s3_url("s3://billing-exports/2026-11/run%201.jsonl?region=eu-west-1")
    assert (location.bucket, location.path, dict(location.options)) == (
        "billing-exports", "2026-11/run 1.jsonl", {"region": "eu-west-1"})
    for bad in ("s3://Bad_Bucket/k", "s3://key:secret@bucket/k", "s3://bucket/k?timeout=3",
                "s3://bucket/k?endpoint=ftp://h", "s3://bucket/k?addressing=sideways",
                "https://bucket/k"):
        with pytest.raises(ValueError) as caught:
            parse_s3_url(bad)
        assert "secret" not in str(caught.value)
    with pytest.raises(ValueError, match="names a key"):
        S3Object.from_url("s3://bucket-1/?region=eu-west-1")


def test_every_client_has_the_same_timeouts_and_retries(aws_env):
    config = make_client({"endpoint": "http://127.0.0.1:9", "max_attempts": "2"}).meta.config
    assert (config.connect_timeout, config.read_timeout) == (5, 30)
    assert config.retries == {"mode": "standard", "total_max_attempts": 2}
    assert config.s3["addressing_style"] == "path"
    source = S3Object.from_url("s3://bucket-1/k", endpoint="http://127.0.0.1:9")
    assert source.client.meta.endpoint_url == "http://127.0.0.1:9"  # the default endpoint
    named = S3Object.from_url("s3://bucket-1/k?endpoint=http://127.0.0.1:8",
                              endpoint="http://127.0.0.1:9")
    assert named.client.meta.endpoint_url == "http://127.0.0.1:8"  # the URL's wins


def test_one_object_read_every_way(s3_admin, bucket, moto_endpoint, tmp_path):
    s3_admin.put_object(Bucket=bucket, Key="in/run.jsonl", Body=DATA)
    source = S3Object.from_url(url(bucket, moto_endpoint))
    assert source.size() == len(DATA)
    assert source.read_range(10, 4000) == DATA[10:4000]
    blocks = list(source.blocks(1 << 20))
    assert b"".join(blocks) == DATA and [len(b) for b in blocks] == [1 << 20,
                                                                       len(DATA) - (1 << 20)]
    source.download(tmp_path / "copy.jsonl")
    assert (tmp_path / "copy.jsonl").read_bytes() == DATA


def test_a_missing_object_or_bucket_is_permanent(s3_admin, bucket, moto_endpoint, tmp_path):
    gone = S3Object.from_url(url(bucket, moto_endpoint, key="nope.jsonl"))
    nobucket = S3Object.from_url(url("no-such-bucket-here", moto_endpoint))
    for call in (gone.size, lambda: gone.read_range(0, 10), lambda: list(gone.blocks()),
                 lambda: gone.download(tmp_path / "x"), nobucket.size):
        with pytest.raises(PermanentDeliveryError) as caught:
            call()
        assert not isinstance(caught.value, ArchiveNotFoundError)  # no key named
        assert caught.value.__cause__ is not None  # botocore's error, kept as the cause


def test_a_struggling_store_is_transient(fault_proxy, s3_admin, bucket):
    s3_admin.put_object(Bucket=bucket, Key="in/run.jsonl", Body=DATA)
    fault_proxy.inject(method="GET", status=503, code="SlowDown", times=None)
    source = S3Object.from_url(url(bucket, fault_proxy.url, max_attempts=2))
    with pytest.raises(TransientDeliveryError, match="SlowDown"):
        source.read_range(0, 10)
    assert fault_proxy.count("GET") == 2
    fault_proxy.faults.clear()
    fault_proxy.inject(method="HEAD", stall=1.0, times=None)
    with pytest.raises(TransientDeliveryError):
        S3Object.from_url(url(bucket, fault_proxy.url, max_attempts=1,
                              read_timeout=0.3)).size()
