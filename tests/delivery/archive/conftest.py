"""The archive under contract, once per backend: a folder, a bucket on moto's real S3
server, and the in-memory fake."""

from __future__ import annotations

from pathlib import Path

import pytest

from invoicer.delivery.archive import FileArchive, MemoryArchive, S3Archive
from invoicer.delivery.errors import TransientDeliveryError
from tests.support.servers import closed_port, s3_url


@pytest.fixture(params=["file", "s3", "memory"])
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def archive(backend: str, request: pytest.FixtureRequest, tmp_path: Path):
    """The archive under contract: a folder on tmp_path, a bucket on moto, or a dict."""
    if backend == "file":
        return FileArchive(tmp_path / "archive")
    if backend == "memory":
        return MemoryArchive()
    bucket = request.getfixturevalue("bucket")
    endpoint = request.getfixturevalue("moto_endpoint")
    return S3Archive.from_url(s3_url(bucket, endpoint))


@pytest.fixture
def unreachable_archive(backend: str, tmp_path: Path, request: pytest.FixtureRequest):
    """An archive whose store any I/O would notice: a folder that must stay absent, an
    S3 endpoint where nothing listens, or a memory archive that is down (an attempt
    would raise a delivery error)."""
    if backend == "file":
        return FileArchive(tmp_path / "must-not-exist")
    if backend == "memory":
        down = MemoryArchive()
        down.outage = TransientDeliveryError("the memory archive is down")
        return down
    request.getfixturevalue("aws_env")
    return S3Archive.from_url(s3_url("nobucket", f"http://127.0.0.1:{closed_port()}",
                                     max_attempts=1, connect_timeout=0.5))
