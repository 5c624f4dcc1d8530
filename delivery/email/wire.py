"""An e-mail as it travels: its bytes (CRLF, no ``Bcc``), its envelope, its Message-ID.

What every mailer hands over, so the file outbox holds exactly what SMTP would carry.
"""

from __future__ import annotations

import re
from email import policy as email_policy
from email.message import EmailMessage
from email.utils import getaddresses
from typing import Any

from invoicer.delivery.email._email import payload, raw_headers
from invoicer.delivery.email.message import MESSAGE_ID_RE

__all__ = ["envelope", "message_id_of", "serialize"]


def serialize(message: EmailMessage) -> bytes:
    """The message as it goes on the wire and into the outbox: CRLF, ``Bcc`` removed.

    The same message serializes to the same bytes every time (boundaries are fixed
    when it is built), which a DKIM signature relies on. Messages made of plain
    multiparts and ASCII-encoded leaves (all that
    :func:`~invoicer.delivery.email.message.build_invoice_message` makes)
    take a fast path with output identical to ``BytesGenerator`` (checked by the
    tests), without its line-by-line writes; anything else goes through the generator.
    """
    policy = message.policy
    if policy.linesep != "\r\n":
        policy = policy.clone(linesep="\r\n")
    if "Bcc" in message or "Resent-Bcc" in message:
        # A blind copy must not show its recipients to the others.
        import copy

        message = copy.copy(message)
        del message["Bcc"]
        del message["Resent-Bcc"]
    out: list[bytes] = []
    if _flatten(message, policy, out):
        return b"".join(out)
    return message.as_bytes(policy=policy)


# The multiparts build_invoice_message() makes. Others (another boundary style,
# multipart/signed, digests) go through the generator, which knows their special cases.
_OWN_MULTIPART = re.compile(r'multipart/(?:mixed|alternative|related); boundary="(=_[0-9a-f]{32})"')


def _flatten(part: Any, policy: email_policy.EmailPolicy, out: list[bytes]) -> bool:
    """Append the generator's bytes for ``part`` to ``out``; False when the part is of
    a kind only the generator handles (then ``out`` is to be discarded).

    Reads the raw Content-Type rather than get_content_type()/get_boundary(), which
    parse the header anew on every call (a third of the serialization time)."""
    if part.preamble is not None or part.epilogue is not None:
        return False
    headers = raw_headers(part)
    ctype = next((v for n, v in headers if n.lower() == "content-type"), None)
    body = payload(part)  # what the generator reads too: no decoding, no copy
    if isinstance(body, list):
        own = _OWN_MULTIPART.fullmatch(ctype) if isinstance(ctype, str) else None
        if own is None:
            return False
        boundary = own.group(1)
        out.extend(policy.fold_binary(name, value) for name, value in headers)
        out.append(b"\r\n")
        delimiter = f"--{boundary}\r\n".encode("ascii")
        for i, sub in enumerate(body):
            out.append(delimiter if i == 0 else b"\r\n" + delimiter)
            if not _flatten(sub, policy, out):
                return False
        out.append(f"\r\n--{boundary}--\r\n".encode("ascii"))
        return True
    if ctype is None:
        maintype = "text"
    elif isinstance(ctype, str):  # raw text, or a header object (a str subclass)
        maintype = ctype.split("/", 1)[0].strip().lower()
    else:  # a compat32 Header object: leave it to the generator
        return False
    if (not isinstance(body, str) or not body.isascii() or "\r" in body
            or maintype in ("message", "multipart")):
        return False
    out.extend(policy.fold_binary(name, value) for name, value in headers)
    out.append(b"\r\n")
    out.append(body.replace("\n", "\r\n").encode("ascii"))
    return True


# A one-mailbox value as build_invoice_message writes it (message._mailbox): an optional
# plain or RFC 2047 encoded phrase, then <addr-spec>; or a bare addr-spec. Nothing in
# such a value can be read two ways, so its address is taken without the header
# parser (a quarter of building and writing an invoice e-mail). Anything else (quoted
# names, groups, comments, several addresses) goes through the parser.
_SPEC = r'[^<>\s"@,;:()\\\[\]]+@[^<>\s"@,;:()\\\[\]]+'
_OWN_MAILBOX = re.compile(rf'(?:[^<>"@,;:()\\\[\]]*\s)?<({_SPEC})>|({_SPEC})')


def _addresses(message: EmailMessage, name: str) -> list[str]:
    wanted = name.lower()
    values = [v for n, v in raw_headers(message) if n.lower() == wanted]
    if all(type(v) is str for v in values):
        own = [_OWN_MAILBOX.fullmatch(v) for v in values]
        if all(own):
            return [m.group(1) or m.group(2) for m in own if m]
    specs: list[str] = []
    for header in message.get_all(name, []):
        addresses = getattr(header, "addresses", None)
        if addresses is not None:
            specs.extend(a.addr_spec for a in addresses if a.addr_spec and a.addr_spec != "<>")
        else:  # a message built with the compat32 policy
            specs.extend(spec for _, spec in getaddresses([str(header)]) if spec)
    return specs


def envelope(message: EmailMessage, envelope_from: str | None = None) -> tuple[str, list[str]]:
    """``(MAIL FROM, [RCPT TO...])``: ``envelope_from`` or the Sender/From address,
    and every To, Cc and Bcc address once, in order."""
    if envelope_from is None:
        senders = _addresses(message, "Sender") or _addresses(message, "From")
        if not senders:
            raise ValueError("the message has no From address")
        envelope_from = senders[0]
    recipients = list(dict.fromkeys(
        _addresses(message, "To") + _addresses(message, "Cc") + _addresses(message, "Bcc")))
    if not recipients:
        raise ValueError("the message has no recipient")
    return envelope_from, recipients


def message_id_of(message: EmailMessage) -> str:
    """The message's ``Message-ID`` (``<local@domain>``); ``ValueError`` without one."""
    # The raw value: message["Message-ID"] would run the header parser on every call.
    raw = next((v for n, v in raw_headers(message) if n.lower() == "message-id"), None)
    value = "".join(str(raw).split()) if raw is not None else ""
    if not MESSAGE_ID_RE.fullmatch(value):
        # Idempotence (outbox file names, the ledger, the receiver's duplicate check)
        # rests on a stable ID, so a message without one is refused, not given a random one.
        raise ValueError(f"the message needs a Message-ID like <local@domain>: {raw!r}")
    return value
