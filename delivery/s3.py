"""S3 through boto3, made one way for the whole service.

Every S3 client (the archive's, the bill-run sources' the workers and the API read) is
built here from an ``s3://bucket/path?options`` URL (:func:`parse_s3_url`,
:func:`make_client`), with the same timeouts and retries, and every botocore error
leaves through :func:`s3_errors` as a :mod:`delivery.errors` class:

- throttling, server trouble, timeouts, dropped or refused connections, a checksum
  that did not match on the way: :class:`~delivery.errors.TransientDeliveryError`;
- the rest (403, a missing bucket, no credentials, a bad parameter):
  :class:`~delivery.errors.PermanentDeliveryError`; a missing key is
  :class:`~delivery.errors.ArchiveNotFoundError` where the caller names the key.

URL options: ``endpoint`` (an S3-compatible store; implies path-style addressing),
``region``, ``connect_timeout`` (s, default 5), ``read_timeout`` (s, default 30),
``max_attempts`` (tries in all, the first included; default 5; botocore ``standard``
retry mode), ``addressing`` (``path``/``virtual``/``auto``). Credentials come from
boto3's usual chain (environment, shared files, instance role), never from the URL.
"""

from __future__ import annotations

import contextlib
import functools
import re
import threading
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    FlexibleChecksumError,
    HTTPClientError,
    IncompleteReadError,
)
from botocore.exceptions import ConnectionError as BotoConnectionError

from invoicer.delivery.errors import (
    ArchiveNotFoundError,
    DeliveryError,
    PermanentDeliveryError,
    TransientDeliveryError,
    is_transient_status,
)

__all__ = [
    "CLIENT_OPTIONS",
    "S3Location",
    "S3Object",
    "error_code",
    "http_status",
    "make_client",
    "parse_s3_url",
    "s3_errors",
]

CLIENT_OPTIONS = frozenset(
    {"endpoint", "region", "connect_timeout", "read_timeout", "max_attempts", "addressing"}
)
"""The query options of an ``s3://`` URL that shape the client (see the module)."""

BLOCK_SIZE = 1 << 20
"""Bytes per read when an object is read as a stream of blocks (1 MiB)."""

# S3 error codes worth retrying whatever their status: throttling, server trouble,
# timeouts, and a concurrent conditional write that has not finished yet.
_TRANSIENT_CODES = frozenset({
    "SlowDown", "RequestTimeout", "InternalError", "ServiceUnavailable", "Throttling",
    "ThrottlingException", "RequestThrottled", "TooManyRequestsException",
    "RequestLimitExceeded", "BandwidthLimitExceeded", "OperationAborted",
    "ConditionalRequestConflict",
    # We compute the checksum from the bytes we send, so a mismatch at S3 means the
    # bytes changed on the way: sending them again is the cure.
    "BadDigest", "XAmzContentSHA256Mismatch",
})
_NOT_FOUND_CODES = frozenset({"NoSuchKey", "404", "NotFound"})
_TRANSIENT_BOTO_ERRORS = (
    BotoConnectionError,  # refused, connect timeout, DNS, TLS hiccups
    HTTPClientError,  # read timeout, connection closed, response streaming cut
    IncompleteReadError,
    FlexibleChecksumError,  # the downloaded bytes do not match: fetch them again
)


# --- errors ----------------------------------------------------------------------------


def http_status(exc: ClientError) -> int:
    """The HTTP status of a botocore ``ClientError`` (0 when there was none)."""
    return int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)


def error_code(exc: ClientError) -> str:
    """The S3 error code of a botocore ``ClientError`` (``NoSuchKey``, ``SlowDown``...)."""
    return str(exc.response.get("Error", {}).get("Code", ""))


def _client_error(exc: ClientError, what: str, key: str | None) -> DeliveryError:
    code, status = error_code(exc), http_status(exc)
    if key is not None and (code in _NOT_FOUND_CODES or (status == 404 and code != "NoSuchBucket")):
        return ArchiveNotFoundError(key)
    message = f"{what}: S3 {code or status}: {exc.response.get('Error', {}).get('Message', exc)}"
    if code in _TRANSIENT_CODES or is_transient_status(status):
        return TransientDeliveryError(message)
    return PermanentDeliveryError(message)


@contextlib.contextmanager
def s3_errors(what: str, key: str | None = None) -> Iterator[None]:
    """Translate botocore's errors (after its own retries) into delivery errors.

    ``what`` says what was being done (``"reading s3://bucket/key"``); with ``key``, a
    missing object is ``ArchiveNotFoundError(key)``. Delivery errors pass unchanged.
    """
    try:
        yield
    except DeliveryError:
        raise
    except ClientError as exc:
        raise _client_error(exc, what, key) from exc
    except _TRANSIENT_BOTO_ERRORS as exc:
        raise TransientDeliveryError(f"{what}: {exc}") from exc
    except BotoCoreError as exc:  # no credentials, bad parameters, bad config
        raise PermanentDeliveryError(f"{what}: {exc}") from exc


# --- URLs and clients ------------------------------------------------------------------

_BUCKET_RE = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")


@dataclass(frozen=True, slots=True)
class S3Location:
    """What an ``s3://`` URL names: a bucket, a key or prefix, and its options."""

    bucket: str
    path: str
    """The key or prefix, percent-decoded, without its leading ``/``."""
    options: Mapping[str, str]


def parse_s3_url(url: str, *, extra: Iterable[str] = (), what: str = "s3") -> S3Location:
    """Check and split ``s3://bucket[/path][?options]``.

    Options are :data:`CLIENT_OPTIONS` plus ``extra`` (a backend's own, such as the
    archive's ``create_only``); any other is a ``ValueError``, so a typo cannot drop a
    setting silently. Credentials in the URL are refused (and not repeated in the
    error): they come from boto3's chain.
    """
    parts = urlsplit(url)
    if parts.scheme != "s3" or parts.fragment or parts.username or parts.password:
        raise ValueError(f"not an {what} URL (credentials never go in it): "
                         f"{parts.scheme}://{parts.hostname}{parts.path}")
    bucket = parts.netloc
    if not _BUCKET_RE.fullmatch(bucket) or ".." in bucket:
        raise ValueError(f"not a valid bucket name: {bucket!r}")
    known = CLIENT_OPTIONS | frozenset(extra)
    query = parse_qs(parts.query, keep_blank_values=True)
    unknown = set(query) - known
    if unknown:
        raise ValueError(f"unknown {what} option(s) {sorted(unknown)}; known: {sorted(known)}")
    options = {name: values[-1] for name, values in query.items()}
    endpoint = options.get("endpoint") or None
    if endpoint is not None and urlsplit(endpoint).scheme not in ("http", "https"):
        raise ValueError(f"endpoint must be an http(s) URL: {endpoint!r}")
    addressing = options.get("addressing", "path" if endpoint else "virtual")
    if addressing not in ("path", "virtual", "auto"):
        raise ValueError(f"addressing must be path, virtual or auto: {addressing!r}")
    return S3Location(bucket, unquote(parts.path).lstrip("/"), options)


_SESSION_LOCK = threading.Lock()


@functools.cache
def _boto_session() -> Any:
    # One boto3 session per process: it loads the S3 service model once (a fresh
    # session costs ~0.1 s per client). Used only under _SESSION_LOCK.
    import boto3

    return boto3.session.Session()


def make_client(options: Mapping[str, str]) -> Any:
    """A boto3 S3 client for the options of a checked URL (:func:`parse_s3_url`)."""
    from botocore.config import Config

    endpoint = options.get("endpoint") or None
    config = Config(
        signature_version="s3v4",
        # "standard" retries 500/502/503/504, throttling (SlowDown), RequestTimeout
        # and connection/read errors with jittered exponential backoff (at most
        # 1+2+4+8 s over 5 attempts); whatever is left becomes a
        # TransientDeliveryError for the task queue's slower retry.
        # total_max_attempts counts the first try (Config's "max_attempts" would
        # count retries only, one more than it reads).
        retries={"mode": "standard",
                 "total_max_attempts": int(options.get("max_attempts", 5))},
        # Explicit, short of botocore's 60 s: a connect to a healthy store takes
        # milliseconds, and a stuck worker costs a whole bill run's throughput.
        connect_timeout=float(options.get("connect_timeout", 5)),
        read_timeout=float(options.get("read_timeout", 30)),
        s3={"addressing_style": options.get("addressing", "path" if endpoint else "virtual")},
    )
    with _SESSION_LOCK:  # creating clients from one session is not thread-safe
        return _boto_session().client(
            "s3", endpoint_url=endpoint, region_name=options.get("region") or None,
            config=config,
        )


# --- one object ------------------------------------------------------------------------


class S3Object:
    """One object, read whole, by byte range, as blocks, or into a file: a bill run's
    source (``s3://bucket/key?region=...``), which workers split and read by ranges."""

    def __init__(self, client: Any, bucket: str, key: str) -> None:
        self.client = client
        self.bucket = bucket
        self.key = key
        self.where = f"s3://{bucket}/{key}"

    @classmethod
    def from_url(cls, url: str, *, endpoint: str | None = None) -> S3Object:
        """``s3://bucket/key[?options]``; ``endpoint`` is used when the URL has none."""
        location = parse_s3_url(url, what="s3 object")
        if not location.path:
            raise ValueError(f"an s3 object URL names a key: {location.bucket!r} has none")
        options = dict(location.options)
        if endpoint and not options.get("endpoint"):
            options["endpoint"] = endpoint
        return cls(make_client(options), location.bucket, location.path)

    def __repr__(self) -> str:
        return f"S3Object({self.where!r})"

    def size(self) -> int:
        """One HEAD request: the object's size in bytes."""
        with s3_errors(f"checking {self.where}"):
            head = self.client.head_object(Bucket=self.bucket, Key=self.key)
        return int(head["ContentLength"])

    def read_range(self, start: int, end: int) -> bytes:
        """Bytes ``[start, end)`` (``end > start``), in one ranged GET."""
        with s3_errors(f"reading {self.where}"):
            body = self.client.get_object(Bucket=self.bucket, Key=self.key,
                                          Range=f"bytes={start}-{end - 1}")["Body"]
            return body.read()

    def blocks(self, size: int = BLOCK_SIZE) -> Iterator[bytes]:
        """The whole object as blocks of at most ``size`` bytes, from one GET."""
        what = f"reading {self.where}"
        with s3_errors(what):
            body = self.client.get_object(Bucket=self.bucket, Key=self.key)["Body"]
        try:
            while True:
                with s3_errors(what):
                    block = body.read(size)
                if not block:
                    return
                yield block
        finally:
            body.close()

    def download(self, dest: str | Path) -> None:
        """Copy the object into the file ``dest`` (boto3's managed, parallel download)."""
        with s3_errors(f"downloading {self.where}"):
            self.client.download_file(self.bucket, self.key, str(dest))
