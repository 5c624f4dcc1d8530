"""What a message to the bounce address says: a bounce (RFC 3464), a complaint
(RFC 5965), or nothing we act on.

Parsed with the standard library's ``email`` package. The rules are strict on purpose:
only a ``multipart/report`` with a per-recipient ``Status`` is a bounce, hard when the
status is ``5.x.x`` and the action ``failed``, soft when ``4.x.x`` (or the action
``delayed``); only a ``multipart/report; report-type=feedback-report`` is a complaint.
An out-of-office reply, a human's answer, a positive DSN or anything malformed is
``kind="none"`` and never taken for a bounce. Text from the far end (the diagnostic)
is data: control characters are removed and it is cut to a sane length.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import Message
from email.utils import getaddresses
from typing import Literal

__all__ = ["Report", "clean", "parse_report"]

Kind = Literal["bounce", "complaint", "none"]

_STATUS = re.compile(r"([245])\.(\d{1,3})\.(\d{1,3})")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]+")
_MESSAGE_ID = re.compile(r"<[^<>\s]{1,250}>")


def clean(text: object, limit: int = 500) -> str | None:
    """Outside text made safe to keep and show: one line, no control or bidi
    characters, at most ``limit`` characters; None when nothing is left."""
    if text is None:
        return None
    value = " ".join(_CONTROL.sub(" ", str(text)).split())[:limit]
    return value or None


@dataclass(frozen=True, slots=True)
class Report:
    """One message to the bounce address, read.

    ``hard``: a permanent failure (bounces only). ``status``: the DSN status
    (``5.1.1``) or the complaint's feedback type. ``addresses``: where the message was
    sent to and the return path it names (candidates for :class:`~.verp.Verp`);
    ``message_id``: the Message-ID of the message it reports on, when it quotes it.
    """

    kind: Kind
    hard: bool = False
    status: str | None = None
    diagnostic: str | None = None
    recipient: str | None = None
    message_id: str | None = None
    addresses: tuple[str, ...] = field(default_factory=tuple)
    why: str | None = None
    """Why it is ``none``, for the log."""


def parse_report(raw: bytes, *, envelope_to: tuple[str, ...] = ()) -> Report:
    """Read one message; never raises (a message we cannot read is ``none``)."""
    try:
        msg = message_from_bytes(raw, policy=policy.compat32)
        return _read(msg, envelope_to)
    except Exception as exc:  # hostile input must never stop the receiver
        return Report("none", addresses=envelope_to, why=f"unreadable: {type(exc).__name__}")


def _addrs(values: list[str]) -> list[str]:
    out = []
    for _, spec in getaddresses([v for v in values if v]):
        # "rfc822; user@example" (DSN and ARF address fields) leaves the type behind
        spec = spec.split(";")[-1].strip()
        if "@" in spec:
            out.append(spec)
    return out


def _field(block: Message, name: str) -> str | None:
    value = block.get(name)
    if value is None:
        return None
    value = str(value)
    return value.split(";", 1)[1].strip() if ";" in value else value.strip()


def _read(msg: Message, envelope_to: tuple[str, ...]) -> Report:
    addresses = list(envelope_to) + _addrs(
        msg.get_all("Delivered-To", []) + msg.get_all("X-Original-To", [])
        + msg.get_all("To", []))
    if msg.get_content_type() != "multipart/report":
        auto = str(msg.get("Auto-Submitted", "")).lower()
        why = "an automatic reply (out of office)" if auto.startswith("auto-replied") or \
            msg.get("X-Autoreply") or msg.get("X-Autorespond") else "not a report"
        return Report("none", addresses=tuple(addresses), why=why)
    report_type = (msg.get_param("report-type") or "").lower()
    parts = msg.get_payload()
    if not isinstance(parts, list):
        return Report("none", addresses=tuple(addresses), why="an empty report")
    original = next((p for p in parts[1:] if p.get_content_type() in
                     ("text/rfc822-headers", "message/rfc822")), None)
    message_id, return_paths, original_to = _original(original)
    addresses += [a for a in return_paths if a not in addresses]
    if report_type == "delivery-status":
        return _dsn(parts, addresses, message_id)
    if report_type == "feedback-report":
        return _arf(parts, addresses, message_id, original_to)
    return Report("none", addresses=tuple(addresses), why=f"report type {report_type!r}")


def _original(part: Message | None) -> tuple[str | None, list[str], list[str]]:
    """The reported message's Message-ID, return path and To addresses."""
    if part is None:
        return None, [], []
    if part.get_content_type() == "message/rfc822":
        inner = part.get_payload()
        headers = inner[0] if isinstance(inner, list) and inner else None
    else:
        text = part.get_payload(decode=True) or b""
        headers = message_from_bytes(text.split(b"\r\n\r\n")[0].split(b"\n\n")[0],
                                     policy=policy.compat32)
    if not isinstance(headers, Message):
        return None, [], []
    mid = _MESSAGE_ID.search("".join(str(headers.get("Message-ID", "")).split()))
    return ((mid.group(0) if mid else None), _addrs(headers.get_all("Return-Path", [])),
            _addrs(headers.get_all("To", [])))


def _blocks(part: Message) -> list[Message]:
    payload = part.get_payload()
    if isinstance(payload, list):
        return [p for p in payload if isinstance(p, Message)]
    text = payload if isinstance(payload, str) else ""
    return [message_from_bytes(b.strip().encode("utf-8", "replace") + b"\n",
                               policy=policy.compat32)
            for b in re.split(r"\r?\n\r?\n", text) if b.strip()]


def _dsn(parts: list[Message], addresses: list[str], message_id: str | None) -> Report:
    status_part = next((p for p in parts[1:] if p.get_content_type() in
                        ("message/delivery-status", "message/global-delivery-status")), None)
    if status_part is None:
        return Report("none", addresses=tuple(addresses), why="no delivery-status part")
    blocks = _blocks(status_part)
    recipients = blocks[1:]
    found: Report | None = None
    for block in recipients:
        action = (_field(block, "Action") or "").lower()
        m = _STATUS.fullmatch((_field(block, "Status") or "").split()[0]
                              if _field(block, "Status") else "")
        if m is None or action in ("delivered", "relayed", "expanded"):
            continue
        hard = m.group(1) == "5" and action == "failed"
        soft = m.group(1) == "4" or action == "delayed"
        if not hard and not soft:
            continue
        recipient = (_addrs([str(block.get("Final-Recipient", ""))])
                     or _addrs([str(block.get("Original-Recipient", ""))]) or [None])[0]
        report = Report("bounce", hard, m.group(0), clean(block.get("Diagnostic-Code")),
                        recipient, message_id, tuple(addresses))
        if hard:
            return report
        found = found or report
    return found or Report("none", addresses=tuple(addresses), message_id=message_id,
                           why="no failed or delayed recipient with a status")


def _arf(parts: list[Message], addresses: list[str], message_id: str | None,
         original_to: list[str]) -> Report:
    feedback = next((p for p in parts[1:] if p.get_content_type() == "message/feedback-report"),
                    None)
    if feedback is None:
        return Report("none", addresses=tuple(addresses), why="no feedback-report part")
    blocks = _blocks(feedback)
    if not blocks or not blocks[0].get("Feedback-Type"):
        return Report("none", addresses=tuple(addresses), why="no Feedback-Type")
    block = blocks[0]
    kind = clean(block.get("Feedback-Type"), 32)
    addresses += _addrs(block.get_all("Original-Mail-From", []))
    recipient = (_addrs(block.get_all("Original-Rcpt-To", [])) or original_to or [None])[0]
    return Report("complaint", True, kind, clean(block.get("User-Agent")), recipient,
                  message_id, tuple(addresses))
