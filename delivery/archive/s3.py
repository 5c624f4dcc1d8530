"""``s3://bucket/prefix``: the archive in AWS S3 or any S3-compatible store (boto3).

The client is made, and botocore's errors translated, the one way every S3 client of
the service is (:mod:`invoicer.delivery.s3`).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import logging
import os
import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, BinaryIO, Literal

from botocore.exceptions import ClientError

from invoicer.delivery.archive.base import CHUNK_SIZE, MAX_URL_EXPIRES, ObjectInfo, PutResult
from invoicer.delivery.archive.keys import (
    check_expires,
    check_key,
    check_metadata,
    check_prefix,
    check_range,
    content_type_for,
    file_sha256,
    hashed,
)
from invoicer.delivery.errors import (
    ArchiveConflictError,
    ArchiveNotFoundError,
    TransientDeliveryError,
    os_errors,
)
from invoicer.delivery.s3 import error_code, http_status, make_client, parse_s3_url, s3_errors

__all__ = ["CreateOnly", "S3Archive"]

log = logging.getLogger(__name__)

_PRECONDITION_CODES = frozenset({"PreconditionFailed", "412"})

CreateOnly = Literal["if-none-match", "head-then-put"]
"""How "never overwrite" is enforced (see :class:`S3Archive`)."""


class S3Archive:
    """Objects in an S3 bucket under ``prefix``, written create-only and checksummed.

    ``create_only`` says how "never overwrite" is enforced:

    - ``"if-none-match"`` (default; AWS S3, MinIO, moto): ``PutObject`` with
      ``If-None-Match: *``, atomic in the store. A 412 means the key exists: its
      SHA-256 is compared with ours (same: ``created=False``; different: conflict).
      A store that answers 501 to the header switches this archive to the mode below.
    - ``"head-then-put"``, for stores that ignore the header (they would silently
      overwrite): ``HeadObject`` first, compare if present, ``PutObject`` if not.
      Two writers racing between the HEAD and the PUT can both write; with the same
      bytes that is harmless, with different bytes the later one stands.

    Every upload carries ``x-amz-checksum-sha256`` (S3 rejects bytes that do not
    match), the hex SHA-256 in metadata ``sha256`` plus the caller's metadata, and
    ``Content-Type`` from the extension. Downloads ask for the stored checksum so
    botocore verifies what arrives.
    """

    #: Keys per ListObjectsV2 page (S3's maximum); a test lowers it to see paging work.
    list_page_size = 1000

    def __init__(
        self,
        client: Any,
        bucket: str,
        prefix: str = "",
        *,
        create_only: CreateOnly = "if-none-match",
    ) -> None:
        if create_only not in ("if-none-match", "head-then-put"):
            raise ValueError(f"create_only must be 'if-none-match' or 'head-then-put': "
                             f"{create_only!r}")
        self.client = client
        self.bucket = bucket
        self.prefix = check_prefix(prefix)
        self.create_only: CreateOnly = create_only
        self._mode_lock = threading.Lock()

    @classmethod
    def from_url(cls, url: str) -> S3Archive:
        """Build the boto3 client from ``s3://bucket[/prefix][?options]``.

        Options: those of every S3 client (:mod:`invoicer.delivery.s3`: ``endpoint``,
        ``region``, ``connect_timeout``, ``read_timeout``, ``max_attempts``,
        ``addressing``) and ``create_only`` (see the class). Credentials come from
        boto3's usual chain (environment, shared files, instance role), never from the
        URL.
        """
        location = parse_s3_url(url, extra=("create_only",), what="s3 archive")
        create_only = location.options.get("create_only", "if-none-match")
        return cls(make_client(location.options), location.bucket, location.path.strip("/"),
                   create_only=create_only)  # type: ignore[arg-type]  # checked there

    def __repr__(self) -> str:
        return (f"S3Archive(bucket={self.bucket!r}, prefix={self.prefix!r}, "
                f"create_only={self.create_only!r})")

    def _key(self, key: str) -> str:
        return self.prefix + check_key(key)

    # -- put --

    def put(
        self,
        key: str,
        data: bytes,
        *,
        sha256: str | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> PutResult:
        """Create the object unless it exists (see the class for how)."""
        full = self._key(key)
        meta = check_metadata(metadata)
        data, digest = hashed(data, sha256)
        info = ObjectInfo(key, len(data), digest, content_type_for(key), meta)
        if self.create_only == "head-then-put":
            return self._head_then_put(full, data, info)
        return self._conditional_put(full, data, info)

    def put_file(
        self,
        key: str,
        path: str | os.PathLike[str],
        *,
        sha256: str | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> PutResult:
        """Create the object from a file: one ``PutObject`` whose body is read from disk
        as it is sent (up to S3's 5 GB single-upload limit; a batch PDF is far below).

        The file is hashed first, locally: a wrong ``sha256`` is the caller's bug
        (``ValueError``), and must not reach S3 as a "BadDigest" that looks retryable.
        """
        full = self._key(key)
        meta = check_metadata(metadata)
        source = Path(path)
        with os_errors(f"archiving {key} from {source}"):
            actual = file_sha256(source)
            size = source.stat().st_size
            if sha256 is not None and sha256.lower() != actual:
                raise ValueError(f"sha256 {sha256} does not match the file {source} "
                                 f"(sha256 {actual})")
            info = ObjectInfo(key, size, actual, content_type_for(key), meta)
            with source.open("rb") as body:
                if self.create_only == "head-then-put":
                    return self._head_then_put(full, body, info)
                return self._conditional_put(full, body, info)

    def _put_object(self, full: str, data: bytes | BinaryIO, info: ObjectInfo,
                    **extra: Any) -> None:
        if not isinstance(data, bytes):
            data.seek(0)  # a file body: every attempt sends it from the start
        self.client.put_object(
            Bucket=self.bucket,
            Key=full,
            Body=data,
            ContentType=info.content_type,
            ChecksumAlgorithm="SHA256",
            ChecksumSHA256=base64.b64encode(bytes.fromhex(info.sha256)).decode(),
            Metadata={"sha256": info.sha256, **info.metadata},
            **extra,
        )

    def _conditional_put(self, full: str, data: bytes | BinaryIO, info: ObjectInfo) -> PutResult:
        what = f"archiving {info.key} to s3://{self.bucket}/{full}"
        # AWS answers 409 ConditionalRequestConflict while another conditional write of
        # the key is in flight; once it lands we get 412 and compare. botocore does not
        # retry 409, so a short loop here does.
        for attempt in range(4):
            with s3_errors(what):
                try:
                    self._put_object(full, data, info, IfNoneMatch="*")
                except ClientError as exc:
                    code, status = error_code(exc), http_status(exc)
                    if code in _PRECONDITION_CODES or status == 412:
                        outcome = "exists"
                    elif status == 501 or code == "NotImplemented":
                        outcome = "unsupported"
                    elif code == "ConditionalRequestConflict" and attempt < 3:
                        outcome = "busy"
                    else:
                        raise
                else:
                    return PutResult(info.key, info.sha256, info.size, created=True)
            # Acted on outside the except block, so that a conflict raised from here
            # does not carry the 412 along as its context.
            if outcome == "exists":
                return self._compare_existing(full, info, what)
            if outcome == "unsupported":
                return self._fall_back(full, data, info)
            time.sleep(0.05 * 2**attempt)
        raise AssertionError("unreachable")  # pragma: no cover

    def _fall_back(self, full: str, data: bytes | BinaryIO, info: ObjectInfo) -> PutResult:
        with self._mode_lock:
            if self.create_only != "head-then-put":
                log.warning("s3://%s does not implement If-None-Match on PutObject; "
                            "falling back to head-then-put (not atomic)", self.bucket)
                self.create_only = "head-then-put"
        return self._head_then_put(full, data, info)

    def _head_then_put(self, full: str, data: bytes | BinaryIO, info: ObjectInfo) -> PutResult:
        what = f"archiving {info.key} to s3://{self.bucket}/{full}"
        with s3_errors(what):
            if self._head(full) is not None:
                return self._compare_existing(full, info, what)
            self._put_object(full, data, info)
        return PutResult(info.key, info.sha256, info.size, created=True)

    def _head(self, full: str) -> dict[str, Any] | None:
        try:
            return self.client.head_object(Bucket=self.bucket, Key=full, ChecksumMode="ENABLED")
        except ClientError as exc:
            if http_status(exc) == 404:
                return None
            raise

    def _compare_existing(self, full: str, info: ObjectInfo, what: str) -> PutResult:
        with s3_errors(what):
            head = self._head(full)
            if head is None:
                # 412 said it exists, HEAD says it does not: someone deleted it in
                # between (archives are not meant to be). Let the caller try again.
                raise TransientDeliveryError(f"{what}: object vanished after 412")
            stored = self._stored_sha256(full, head)
        if stored != info.sha256:
            raise ArchiveConflictError(info.key, stored, info.sha256)
        return PutResult(info.key, info.sha256, info.size, created=False)

    def _stored_sha256(self, full: str, head: Mapping[str, Any]) -> str:
        sha = head.get("Metadata", {}).get("sha256")
        if sha:
            return str(sha).lower()
        checksum = head.get("ChecksumSHA256")
        # "xxx-3" is a checksum of part checksums (multipart), not of the object.
        if checksum and "-" not in checksum:
            with contextlib.suppress(binascii.Error, ValueError):
                return base64.b64decode(checksum, validate=True).hex()
        # Written by something else: the bytes decide.
        body = self.client.get_object(Bucket=self.bucket, Key=full)["Body"]
        return hashlib.sha256(body.read()).hexdigest()

    # -- reads --

    def get(self, key: str) -> bytes:
        """Download the object; botocore checks it against the stored checksum."""
        full = self._key(key)
        with s3_errors(f"reading s3://{self.bucket}/{full}", key):
            response = self.client.get_object(
                Bucket=self.bucket, Key=full, ChecksumMode="ENABLED"
            )
            return response["Body"].read()

    def open_range(self, key: str, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        """One ``GetObject`` (with ``Range`` unless the whole object is asked for), its
        body read in chunks as it is iterated. A whole-object read asks for the stored
        checksum, so botocore verifies the bytes once the last chunk is in."""
        check_range(start, end)
        if end == start:
            return iter(())  # S3 cannot express an empty range; nothing to fetch
        full = self._key(key)
        what = f"reading s3://{self.bucket}/{full}"
        request: dict[str, Any] = {"Bucket": self.bucket, "Key": full}
        if start or end is not None:
            request["Range"] = f"bytes={start}-{'' if end is None else end - 1}"
        else:
            request["ChecksumMode"] = "ENABLED"
        with s3_errors(what, key):
            try:
                body = self.client.get_object(**request)["Body"]
            except ClientError as exc:
                if error_code(exc) == "InvalidRange":  # start at or past the end: no bytes
                    return iter(())
                raise
        return _s3_chunks(body, what, key)

    def exists(self, key: str) -> bool:
        """One HEAD request."""
        full = self._key(key)
        with s3_errors(f"checking s3://{self.bucket}/{full}"):
            return self._head(full) is not None

    def stat(self, key: str) -> ObjectInfo:
        """One HEAD request: size, metadata ``sha256`` (or the S3 checksum), type."""
        full = self._key(key)
        what = f"reading s3://{self.bucket}/{full}"
        with s3_errors(what, key):
            head = self._head(full)
            if head is None:
                raise ArchiveNotFoundError(key)
            sha = self._stored_sha256(full, head)
        metadata = {k: v for k, v in head.get("Metadata", {}).items() if k != "sha256"}
        return ObjectInfo(key, int(head["ContentLength"]), sha,
                          head.get("ContentType", "application/octet-stream"), metadata)

    def url(self, key: str, expires: int = MAX_URL_EXPIRES) -> str:
        """A SigV4 presigned GET, valid ``min(expires, 900)`` seconds. No request."""
        full = self._key(key)
        seconds = check_expires(expires)
        with s3_errors(f"signing s3://{self.bucket}/{full}"):
            return self.client.generate_presigned_url(
                "get_object", Params={"Bucket": self.bucket, "Key": full}, ExpiresIn=seconds
            )

    def list(self, prefix: str = "") -> list[str]:
        """``ListObjectsV2`` under ``prefix``, every page."""
        full = self.prefix + check_prefix(prefix)
        keys = []
        with s3_errors(f"listing s3://{self.bucket}/{full}"):
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=full,
                PaginationConfig={"PageSize": self.list_page_size},
            )
            for page in pages:
                keys.extend(obj["Key"][len(self.prefix):] for obj in page.get("Contents", ()))
        return sorted(keys)


def _s3_chunks(body: Any, what: str, key: str) -> Iterator[bytes]:
    """A ``StreamingBody`` in chunks, errors translated; the connection is released
    however the iteration ends."""
    try:
        with s3_errors(what, key):
            yield from body.iter_chunks(CHUNK_SIZE)
    finally:
        body.close()
