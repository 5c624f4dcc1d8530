"""Backend URLs: the scheme picks the backend; ``file://`` URLs name local folders.

Shared by the three transports (archive, mail, SMS), whose embedded defaults are local
folders (``file://var/archive``, ``file://var/outbox``, ``file://var/sms``).
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TypeVar
from urllib.parse import unquote, urlsplit

__all__ = ["TMP_TOKEN", "by_scheme", "fsync_dir", "left_by_a_dead_writer", "local_path",
           "temp_tail"]

T = TypeVar("T")


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


def by_scheme(url: str, backends: Mapping[str, Callable[[str], T]], what: str) -> T:
    """Open ``url`` with the ``from_url`` its scheme maps to in ``backends``.

    Configuration names a URL, never a class path: each transport keeps a small dict
    from scheme to constructor. ``ValueError`` naming ``what`` (e.g. "archive") and the
    known schemes for any other.
    """
    scheme = urlsplit(url).scheme
    try:
        open_url = backends[scheme]
    except KeyError:
        raise ValueError(
            f"unknown {what} scheme {scheme!r} in {url!r}; known: {sorted(backends)}"
        ) from None
    return open_url(url)


def fsync_dir(path: Path) -> None:
    """Make the entries of folder ``path`` durable (a new file's name, a new folder).

    A file written and fsynced is only found after a crash once its directory entry is
    synced too: the ledger records "archived" or "sent" right after a backend returns.
    """
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


#: This process's token in temporary names: tells a reused pid apart after a crash.
TMP_TOKEN = os.urandom(4).hex()
_tmp_counter = itertools.count()


def temp_tail() -> str:
    """``{pid}.{token}.{n}.tmp``: the end of a temporary file's name, unique per process
    and call without ``tempfile``'s random-name loop (a third of a small archive put's
    time). The archive and the e-mail outbox name their temporaries with it, hidden
    (a leading dot) and never linked once their writer is dead."""
    return f"{os.getpid()}.{TMP_TOKEN}.{next(_tmp_counter)}.tmp"


def left_by_a_dead_writer(pid: int, token: str) -> bool:
    """Whether a temporary named with ``pid`` and ``token`` (:func:`temp_tail`) was left
    by a writer that is gone: a process that no longer runs, or an earlier process that
    had this one's pid. Another user's live process is alive; one host only."""
    if pid == os.getpid():
        return token != TMP_TOKEN
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # another user's live process
        return False
    return False
