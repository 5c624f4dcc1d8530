"""Where a bill run's records are: a path, a ``file://`` URL or an ``s3://`` object.

Runs handed to workers name their source by URL (``s3://bucket/key?endpoint=…&region=…``
or ``file:///abs/run.jsonl``) so that any machine can read it; the CLI's runs keep the
path they were given, which this module reads the same way. Sources are read whole, as
a stream of blocks (the planner), or by byte range (one chunk at a time). A missing
source is a permanent error, a storage hiccup a transient one (``delivery.errors``).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from urllib.parse import unquote, urlsplit

from invoicer.delivery.errors import PermanentDeliveryError, TransientDeliveryError
from invoicer.delivery.s3 import S3Object

__all__ = ["read_blocks", "read_range", "size", "source_url"]

#: Bytes read at a time when a source is streamed.
BLOCK = 1 << 20


def source_url(path_or_url: str) -> str:
    """A run's source as a URL: ``s3://…`` and ``file://…`` as given, a path made
    absolute (``file:///abs/run.jsonl``). Runs enqueued for workers keep the URL."""
    if "://" in path_or_url:
        scheme = urlsplit(path_or_url).scheme
        if scheme not in ("file", "s3"):
            raise ValueError(f"a bill run's source is a path, file:// or s3:// URL, "
                             f"not {scheme}://")
        return path_or_url
    return Path(path_or_url).resolve().as_uri()


def _file_path(source: str) -> Path:
    """The local file of a ``file://`` URL or a plain path."""
    if "://" not in source:
        return Path(source)
    return Path(unquote(urlsplit(source).path))


def read_range(source: str, start: int, end: int) -> bytes:
    """Bytes ``[start, end)`` of a source."""
    if source.startswith("s3://"):
        return S3Object.from_url(source).read_range(start, end)
    try:
        with open(_file_path(source), "rb") as f:
            f.seek(start)
            data = f.read(end - start)
    except FileNotFoundError as exc:
        raise PermanentDeliveryError(f"source {source} is gone: {exc}") from exc
    except OSError as exc:
        raise TransientDeliveryError(f"cannot read {source}: {exc}") from exc
    if len(data) != end - start:
        raise PermanentDeliveryError(f"source {source} is shorter than when it was split")
    return data


def read_blocks(source: str) -> Iterator[bytes]:
    """The whole source, block after block."""
    if source.startswith("s3://"):
        yield from S3Object.from_url(source).blocks(BLOCK)
        return
    try:
        with open(_file_path(source), "rb") as f:
            while block := f.read(BLOCK):
                yield block
    except FileNotFoundError as exc:
        raise PermanentDeliveryError(f"source {source} not found") from exc


def size(source: str) -> int:
    """The source's size in bytes."""
    if source.startswith("s3://"):
        return S3Object.from_url(source).size()
    return _file_path(source).stat().st_size
