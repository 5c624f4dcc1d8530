"""``file://`` URLs of the local backends (archive, mail outbox, SMS outbox)."""

from __future__ import annotations

from urllib.parse import unquote, urlsplit

__all__ = ["local_path"]


def local_path(url: str, what: str) -> str:
    """The path of ``file:///abs/path``, ``file://relative/path`` or ``file:relative``.

    ``file://var/archive`` reads as relative: its "host" is the first folder of the path
    (what a person writes for the embedded defaults). ``ValueError`` naming ``what``
    (e.g. "file archive") for another scheme, a query or fragment, or no path.
    """
    parts = urlsplit(url)
    if parts.scheme != "file" or parts.query or parts.fragment:
        raise ValueError(f"not a {what} URL: {url!r}")
    local = parts.netloc in ("", "localhost")
    path = parts.path if local else parts.netloc + parts.path
    if not path:
        raise ValueError(f"{what} URL without a path: {url!r}")
    return unquote(path)
