"""A short plain-text service e-mail (an address confirmation), built as safely as an
invoice e-mail: the same header handling (:mod:`.message`), one ``text/plain`` part."""

from __future__ import annotations

from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime

from invoicer.delivery.email._email import set_raw_header
from invoicer.delivery.email.message import (
    _SMTP,
    _SMTPUTF8,
    MESSAGE_ID_RE,
    AddressLike,
    _address,
    _body_encoding,
    _mailbox,
    _set,
)
from invoicer.delivery.email.render import one_line

__all__ = ["build_notice_message"]


def build_notice_message(*, to: str, subject: str, text: str, sender: AddressLike,
                         sender_name: str, message_id: str, locale: str,
                         date: datetime | None = None) -> EmailMessage:
    """A ``text/plain`` message to ``to`` (a bare address) from ``sender`` (named
    ``sender_name`` when it is a bare address). The subject and names are flattened
    to one line; the text is the body, as it is (plain text carries no markup)."""
    if not isinstance(message_id, str) or not MESSAGE_ID_RE.fullmatch(message_id):
        raise ValueError(f"Message-ID must look like <local@domain>: {message_id!r}")
    from_addr = _address(sender, sender_name)
    to_addr = _address(("", to))
    policy = _SMTP if all(a.addr_spec.isascii() for a in (from_addr, to_addr)) else _SMTPUTF8
    msg = EmailMessage(policy=policy)
    set_raw_header(msg, "From", _mailbox(from_addr))
    set_raw_header(msg, "To", _mailbox(to_addr))
    msg["Subject"] = one_line(subject)
    _set(msg, "Date", format_datetime(date or datetime.now(UTC)))
    _set(msg, "Message-ID", message_id)
    _set(msg, "Auto-Submitted", "auto-generated")
    _set(msg, "MIME-Version", "1.0")
    data = text.replace("\r\n", "\n").encode("utf-8")
    if not data.endswith(b"\n"):
        data += b"\n"
    cte, payload = _body_encoding(data)
    _set(msg, "Content-Type", 'text/plain; charset="utf-8"')
    _set(msg, "Content-Transfer-Encoding", cte)
    _set(msg, "Content-Language", locale.replace("_", "-"))
    msg.set_payload(payload)
    return msg
