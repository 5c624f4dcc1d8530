"""The one place that reaches inside the standard library's ``email`` package.

Invoice e-mails are built and serialised with three of its internals, for safety and
for speed (see :mod:`~invoicer.delivery.email.message` and
:mod:`~invoicer.delivery.email.wire`):

- ``Message.set_raw(name, value)``: store a header value exactly as composed, so the
  policy prints it verbatim (with ``refold_source="none"``) instead of re-folding it.
  CPython's folder drops the quotes of a display name it has to fold (gh-80222), and
  re-parsing every structural header costs milliseconds per message.
- ``Message.raw_items()``: the ``(name, value)`` pairs as stored, without the header
  parser running on every read.
- ``Message._payload``: a leaf's encoded body (``str``) or a multipart's list of
  parts, as the generator itself reads it: no decoding, no copy.

CPython documents the first two as "internal" APIs (for parsers and generators) and the
third is private. ``tests/delivery/email/test_internals.py`` checks each behaviour
relied on here and names it when an upgrade changes it; nothing else in the service
touches them.
"""

from __future__ import annotations

from email.message import Message
from typing import Any

__all__ = ["payload", "raw_headers", "set_raw_header"]


def set_raw_header(part: Message, name: str, value: str) -> None:
    """Add header ``name`` with ``value`` stored (and later printed) as it is.

    The caller vouches for ``value``: one line, or lines folded with CRLF/LF + space,
    of printable characters the message's policy can carry.
    """
    part.set_raw(name, value)


def raw_headers(part: Message) -> list[tuple[str, Any]]:
    """The part's headers as stored, in order: ``str`` for raw ones, header objects (a
    ``str`` subclass) for those set with ``part[name] = value``."""
    return list(part.raw_items())


def payload(part: Message) -> Any:
    """A leaf's body as stored (``str``, already transfer-encoded) or a multipart's
    ``list`` of parts; never decoded or copied."""
    return part._payload
