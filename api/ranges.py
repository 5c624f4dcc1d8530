"""Downloads from the archive with HTTP range requests (RFC 9110 §14), streamed.

A print shop's connection may break 300 MB into a batch PDF; it resumes with
``Range: bytes=<what it has>-`` and ``If-Range: <the ETag>``, and gets exactly the
missing bytes (206), or the whole file again (200) if the file is not the one it
started (which, for an archive that never overwrites, does not happen; If-Range is
still honoured). The ETag is the object's SHA-256, so a finished download can be
checked against it, and against the manifest.

One range per request: a multi-range request (rare, and only useful to PDF viewers
that a print shop does not use here) is answered with the whole file, as RFC 9110
permits. A range that cannot be served (past the end, or malformed) is 416 with
``Content-Range: bytes */<size>``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from fastapi import Request
from fastapi.responses import Response, StreamingResponse

from invoicer.api.problems import Problem
from invoicer.delivery.archive import Archive, FileArchive, MemoryArchive

__all__ = ["Download", "parse_range", "ranged_response", "reads_inline"]

_SPEC = re.compile(r"\s*(\d*)\s*-\s*(\d*)\s*")


@dataclass(frozen=True, slots=True)
class Download:
    """An archived object as a download: where it is and what it is."""

    key: str
    size: int
    sha256: str
    media_type: str
    filename: str

    @property
    def etag(self) -> str:
        """A strong validator: the SHA-256, quoted."""
        return f'"{self.sha256}"'


def parse_range(header: str, size: int) -> tuple[int, int] | None:
    """``Range`` header -> ``(start, end)`` (end exclusive) to serve, or ``None`` to serve
    the whole object (another unit, several ranges). Raises ``ValueError`` for a byte
    range that is malformed or not satisfiable on an object of ``size`` bytes."""
    unit, _, specs = header.partition("=")
    if unit.strip().lower() != "bytes":
        return None  # an unknown unit is ignored (RFC 9110 §14.2)
    parts = specs.split(",")
    if len(parts) != 1:
        return None
    match = _SPEC.fullmatch(parts[0])
    if not match or not (match.group(1) or match.group(2)):
        raise ValueError(f"malformed range {header!r}")
    first, last = match.groups()
    if not first:  # "-N": the last N bytes
        count = int(last)
        if count == 0 or size == 0:
            raise ValueError("empty suffix range")
        return max(size - count, 0), size
    start = int(first)
    end = size if not last else min(int(last) + 1, size)
    if last and int(last) < start:
        raise ValueError(f"range ends before it starts: {header!r}")
    if start >= size:
        raise ValueError(f"range starts at or past the end ({size} bytes)")
    return start, end


def _matches(header: str | None, etag: str) -> bool:
    # Strong comparison for If-Range (a weak tag never matches), any for If-None-Match.
    return header is not None and any(
        tag.strip() in (etag, "*") for tag in header.split(","))


#: Bodies up to this size are read whole and sent in one piece; larger ones stream.
WHOLE_BODY = 1 << 20


def reads_inline(archive: Archive) -> bool:
    """Whether an ``async`` route may read ``archive`` on the event loop: a local file
    (or memory) of tens of kB reads in less time than a hop to the thread pool costs;
    a remote archive (S3) is a network round trip that would stop the loop."""
    return isinstance(archive, FileArchive | MemoryArchive)


def ranged_response(request: Request, archive: Archive, download: Download) -> Response:
    """Answer a GET or HEAD for ``download``: 200, 206, 304 or 416, body streamed."""
    headers = {
        "Accept-Ranges": "bytes",
        "ETag": download.etag,
        "Content-Disposition": f'attachment; filename="{download.filename}"',
        # Private: these are one print shop's files. no-transform: a proxy that
        # recompresses would break ranges and the SHA-256.
        "Cache-Control": "private, no-transform",
    }
    if _matches(request.headers.get("if-none-match"), download.etag):
        return Response(status_code=304, headers=headers)
    start, end, status = 0, download.size, 200
    wanted = request.headers.get("range")
    if_range = request.headers.get("if-range")
    if wanted is not None and (if_range is None or if_range.strip() == download.etag):
        try:
            span = parse_range(wanted, download.size)
        except ValueError as exc:
            raise Problem(416, "range-not-satisfiable", "Range Not Satisfiable",
                          detail=f"{exc}; the file has {download.size} bytes.",
                          headers={"Accept-Ranges": "bytes", "ETag": download.etag,
                                   "Content-Range": f"bytes */{download.size}"},
                          size=download.size) from None
        if span is not None:
            start, end, status = span[0], span[1], 206
            headers["Content-Range"] = f"bytes {start}-{end - 1}/{download.size}"
    headers["Content-Length"] = str(end - start)
    if request.method == "HEAD":
        return Response(status_code=status, headers=headers, media_type=download.media_type)
    # Opened here, before the status line goes out: a missing object is still a clean
    # error rather than a response cut short.
    chunks = archive.open_range(download.key, start, end)
    if end - start <= WHOLE_BODY:
        # An invoice (tens of kB) goes out in one piece, read here in the request's
        # thread: streaming it cost a hop to the thread pool per chunk, and more CPU
        # than reading the file.
        return Response(b"".join(chunks), status_code=status, headers=headers,
                        media_type=download.media_type)
    return StreamingResponse(chunks, status_code=status, headers=headers,
                             media_type=download.media_type)
