"""An invoice e-mail as a MIME message that no billing record can add a header to.

:func:`build_invoice_message` makes ``multipart/alternative`` (text + HTML) plus the
PDF as an ``application/pdf`` attachment, or a download link when the subscriber asked
for no attachment or the PDF is over the size limit. Names are flattened to one line,
addresses are parsed by ``email.headerregistry.Address``, display names travel as
RFC 2047 encoded words (immune to CPython's quote-dropping folder, gh-80222), the
subject is folded by the ``EmailMessage`` policy when it is plain ASCII words and written
as encoded words otherwise (so a client shows exactly the template's text), and the
remaining headers are composed from checked tokens. An e-invoice XML travels as a
second attachment. ``Message-ID`` is deterministic (:func:`message_id`); DKIM and
``List-Unsubscribe`` are optional.
"""

from __future__ import annotations

import binascii
import hashlib
import re
import secrets
from collections.abc import Sequence
from datetime import UTC, datetime
from email import policy as email_policy
from email.headerregistry import Address
from email.message import EmailMessage, MIMEPart
from email.utils import format_datetime
from typing import TYPE_CHECKING

from invoicer.billing.models import BillingRecord
from invoicer.delivery.email._email import set_raw_header
from invoicer.delivery.email.render import check_url, one_line, render_invoice_email

if TYPE_CHECKING:
    from invoicer.delivery.email.dkim import DkimSigner

__all__ = [
    "DEFAULT_MAX_ATTACHMENT",
    "MESSAGE_ID_RE",
    "AddressLike",
    "build_invoice_message",
    "check_domain",
    "message_id",
    "should_attach",
]

DEFAULT_MAX_ATTACHMENT = 10 * 1024 * 1024
"""PDFs above this many bytes go as a link: base64 makes them a third larger, and many
providers refuse messages over 20-25 MB."""


# --- Message-ID ------------------------------------------------------------------------

_NOT_ATEXT = re.compile(r"[^A-Za-z0-9_-]+")
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HOSTNAME = re.compile(rf"{_LABEL}(?:\.{_LABEL})*")
MESSAGE_ID_RE = re.compile(r"<[\x21-\x3b\x3d\x3f-\x7e]+@[\x21-\x3b\x3d\x3f-\x7e]+>")


def check_domain(domain: str) -> str:
    """``domain`` in lower-case ASCII (IDNA); ``ValueError`` if it is not a host name."""
    try:
        ascii_domain = domain.strip().encode("idna").decode("ascii")
    except (UnicodeError, AttributeError):
        raise ValueError(f"not a domain name: {domain!r}") from None
    if not _HOSTNAME.fullmatch(ascii_domain) or len(ascii_domain) > 253:
        raise ValueError(f"not a domain name: {domain!r}")
    return ascii_domain.lower()


def message_id(operator: str, number: str, series: int, domain: str, *,
               channel: str = "email") -> str:
    """The ``Message-ID`` of one invoice's e-mail, the same every time it is built.

    ``series`` is the attempt series: 0 for the first dispatch, then one more for each
    deliberate re-send (``invoicer resend``). Retries inside a series keep the ID, so
    the file outbox keeps one copy and a receiving system can spot a duplicate.

    ``<OI-2026-11-0000123.oi.email.0.1f3a...@mail.oi.example>``: the readable part is
    for people grepping logs; the 16 hex digits of SHA-256 over the exact values keep
    two invoices apart even when their readable parts collide (``a.b``+``c`` versus
    ``a``+``b.c``).
    """
    if isinstance(series, bool) or not isinstance(series, int) or series < 0:
        raise ValueError(f"series must be a whole number >= 0, not {series!r}")
    parts = (number, operator, channel, str(series))
    for name, value in zip(("number", "operator", "channel"), parts, strict=False):
        if not isinstance(value, str) or not value or one_line(value) != value:
            raise ValueError(f"{name} must be a non-empty single-line string, not {value!r}")
    digest = hashlib.sha256("\0".join(parts).encode("utf-8")).hexdigest()[:16]
    readable = ".".join(_NOT_ATEXT.sub("-", part).strip("-") or "x" for part in parts)
    return f"<{readable}.{digest}@{check_domain(domain)}>"


# --- the message -----------------------------------------------------------------------


def should_attach(record: BillingRecord, pdf_size: int | None, *,
                  max_attachment: int = DEFAULT_MAX_ATTACHMENT) -> bool:
    """Whether the PDF goes inside the e-mail; when False the caller makes a link.

    The subscriber's ``attach_pdf`` choice, and a size limit (``pdf_size`` None: no
    PDF at hand, so a link).
    """
    return bool(record.delivery.attach_pdf) and pdf_size is not None and (
        pdf_size <= max_attachment)


AddressLike = Address | str | tuple[str, str]

# An addr-spec of two RFC 5322 dot-atoms of ASCII atext ("a.b+c@mail.example"): what
# nearly every address is. Anything else (quoted local parts, domain literals, CFWS,
# non-ASCII) goes through the header registry's parser.
_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_PLAIN_SPEC = re.compile(rf"({_ATEXT}(?:\.{_ATEXT})*)@({_ATEXT}(?:\.{_ATEXT})*)")


def _address(value: AddressLike, default_name: str = "") -> Address:
    """An :class:`Address` with a one-line display name, from an Address, a bare
    ``addr_spec`` (display name ``default_name``) or a ``(name, addr_spec)`` pair.

    ``addr_spec`` is parsed by the header registry, which rejects anything that is
    not exactly one address (``"a@b\\r\\nBcc: c@d"`` raises).
    """
    if isinstance(value, Address):
        name, spec = value.display_name, value.addr_spec
    elif isinstance(value, tuple):
        name, spec = value
    elif isinstance(value, str):
        name, spec = default_name, value
    else:
        raise TypeError(f"an address is an Address, a str or a (name, addr) pair: {value!r}")
    if one_line(spec) != spec or not spec:
        raise ValueError(f"not an e-mail address: {spec!r}")
    plain = _PLAIN_SPEC.fullmatch(spec)
    if plain is not None:
        # Nothing but dot-atoms: the header parser would take exactly these two parts,
        # with no defect (checked by the tests); skipping it is a sixth of the build.
        return Address(display_name=one_line(name or ""), username=plain[1],
                       domain=plain[2])
    return Address(display_name=one_line(name or ""), addr_spec=spec)


# Address headers are written here, not folded by the policy: CPython's folder drops
# the quotes of a display name it has to fold (gh-80222, fixed only in 2025 releases),
# so a long name holding <x@evil.example> would read as that address. A display name
# that is not plain words becomes RFC 2047 encoded words, which carry any character
# and have no quotes to lose. The message policy's refold_source="none" prints these
# values as written; headers set the ordinary way are still folded by the policy.
_SMTP = email_policy.SMTP.clone(refold_source="none")
_SMTPUTF8 = email_policy.SMTPUTF8.clone(refold_source="none")
_PLAIN_PHRASE = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?: [A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*")
_EW_BYTES = 36  # 36 bytes -> 48 base64 chars -> a 60-char word: lines stay under 78


def _encoded_words(text: str) -> list[str]:
    """``text`` as RFC 2047 "B" encoded words of whole characters, each under 75
    characters. Readers join adjacent encoded words without the space between them
    (RFC 2047 §6.2), so splitting anywhere keeps the text exact."""
    # Cut every _EW_BYTES bytes, moved back to the first byte of the character the cut
    # falls in: the longest run of whole characters that fits, as a character-by-
    # character loop gives it, without the loop (it was half of the subject's time).
    data = text.encode("utf-8")
    words, start = [], 0
    while len(data) - start > _EW_BYTES:
        cut = start + _EW_BYTES
        while data[cut] & 0xC0 == 0x80:  # a UTF-8 continuation byte
            cut -= 1
        words.append(data[start:cut])
        start = cut
    words.append(data[start:])
    return [f"=?utf-8?b?{binascii.b2a_base64(w, newline=False).decode('ascii')}?="
            for w in words]


def _mailbox(address: Address) -> str:
    """An address header value for one mailbox, folded, safe whatever the name."""
    spec = address.addr_spec  # parsed and checked by the header registry
    name = address.display_name
    if not name:
        return spec
    if _PLAIN_PHRASE.fullmatch(name) and len(name) + len(spec) <= 60:
        return f"{name} <{spec}>"
    words = _encoded_words(name)
    tail = f" <{spec}>"
    if len(words[-1]) + len(tail) <= 76:
        words[-1] += tail
    else:
        words.append(tail.strip())
    return "\n ".join(words)


# A subject of plain ASCII words folds at its spaces and unfolds to the same text. Any
# other is written here as RFC 2047 encoded words: CPython's folder drops the space
# between an encoded word and the next word in some folds (a fa_IR subject read
# "ارتباطاتسیار"), and text that merely looks like an encoded word ("=?utf-8?b?...?=")
# would be decoded by the reader into something the template never said.
_PLAIN_SUBJECT = re.compile(r"[\x21-\x7e]{1,70}(?: [\x21-\x7e]{1,70})*")


def _subject(text: str) -> str | None:
    """The Subject header value as written on the wire, or None when the policy's own
    folding keeps ``text`` exact (plain ASCII words, no encoded-word lookalike)."""
    if _PLAIN_SUBJECT.fullmatch(text) and "=?" not in text:
        return None
    # Each word holds its own spaces: readers join adjacent encoded words without the
    # whitespace between them (RFC 2047 §6.2), so the folds add and lose nothing.
    return "\n ".join(_encoded_words(text))


def _unsubscribe_urls(value: str | Sequence[str] | None) -> list[str]:
    urls = [value] if isinstance(value, str) else list(value or ())
    return [check_url(u, ("https", "http", "mailto"), "List-Unsubscribe") for u in urls]


# The MIME parts are assembled by hand rather than with set_content/add_attachment:
# those encode in pure Python (quoted-printable char by char, base64 line by line), let
# the generator scan for a free boundary with a fresh regex per try, and parse every
# Content-* header they set; several milliseconds per message with a 50 KB PDF, which
# capped the service at 40 % of what the SMTP server takes (bench/mail.py). Here
# binascii does the encodings in C and the structural headers, composed from
# constants and checked tokens, are stored as written (see _set).


_B64_LINES = re.compile(rb".{1,76}", re.DOTALL)


def _base64_lines(data: bytes) -> str:
    """MIME base64 (76-character lines, LF ends), as ``base64.encodebytes`` gives but
    without its Python loop over 57-byte chunks."""
    if not data:
        return ""
    b64 = binascii.b2a_base64(data, newline=False)
    # The regex engine cuts the lines in C: half the time of a list of slices.
    return b"\n".join(_B64_LINES.findall(b64)).decode("ascii") + "\n"


def _base64_length(size: int) -> int:
    """``len(_base64_lines(data))`` for ``size`` bytes of data, without encoding them."""
    if not size:
        return 0
    chars = 4 * -(-size // 3)
    return chars + -(-chars // 76)  # one LF per line


def _body_encoding(data: bytes) -> tuple[str, str]:
    """(Content-Transfer-Encoding, encoded text with LF line ends) for a text body:
    7bit when it is short-lined ASCII, else the shorter of quoted-printable and base64
    (as the stdlib chooses, without computing both in Python)."""
    if data.isascii() and max(map(len, data.split(b"\n"))) <= 900:
        return "7bit", data.decode("ascii")
    qp = binascii.b2a_qp(data, istext=True)
    if len(qp) <= _base64_length(len(data)):  # base64 is encoded only if it is chosen
        return "quoted-printable", qp.decode("ascii")
    return "base64", _base64_lines(data)


def _set(part: MIMEPart, name: str, value: str) -> None:
    """Set a header whose value this module composed from constants and checked
    tokens (types, boundaries, dates, IDs): stored as written, printed verbatim."""
    if not value.isascii() or not value.isprintable():
        raise ValueError(f"{name} value must be one line of printable ASCII: {value!r}")
    set_raw_header(part, name, value)


_FILENAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,100}")


def _text_part(text: str, subtype: str, policy: email_policy.EmailPolicy) -> MIMEPart:
    data = text.replace("\r\n", "\n").encode("utf-8")
    if not data.endswith(b"\n"):
        data += b"\n"
    cte, payload = _body_encoding(data)
    part = MIMEPart(policy=policy)
    _set(part, "Content-Type", f'text/{subtype}; charset="utf-8"')
    _set(part, "Content-Transfer-Encoding", cte)
    part.set_payload(payload)
    return part


def _file_part(pdf: bytes, filename: str, policy: email_policy.EmailPolicy,
              content_type: str = "application/pdf") -> MIMEPart:
    part = MIMEPart(policy=policy)
    _set(part, "Content-Type", content_type)
    _set(part, "Content-Transfer-Encoding", "base64")
    if _FILENAME.fullmatch(filename):  # invoice numbers are identifiers: no quoting needed
        _set(part, "Content-Disposition", f'attachment; filename="{filename}"')
    else:  # the policy quotes or RFC 2231-encodes anything else
        part.add_header("Content-Disposition", "attachment", filename=filename)
    part.set_payload(_base64_lines(pdf))
    return part


def _multipart(part: MIMEPart, subtype: str, parts: list[MIMEPart]) -> MIMEPart:
    """Make ``part`` (a new part, or the message itself) a multipart of ``parts``."""
    # "=_" cannot occur in base64 or quoted-printable, and 128 random bits cannot be
    # guessed by the text of a 7-bit part.
    _set(part, "Content-Type", f'multipart/{subtype}; boundary="=_{secrets.token_hex(16)}"')
    part.set_payload(list(parts))
    return part


def build_invoice_message(
    record: BillingRecord,
    *,
    pdf: bytes | None,
    link: str | None,
    sender: AddressLike,
    reply_to: AddressLike | None,
    message_id: str,
    list_unsubscribe: str | Sequence[str] | None = None,
    dkim: DkimSigner | None = None,
    max_attachment: int = DEFAULT_MAX_ATTACHMENT,
    date: datetime | None = None,
    xml: bytes | None = None,
) -> EmailMessage:
    """The "invoice issued" e-mail for ``record``, ready for any :class:`Mailer`.

    Structure: ``multipart/mixed`` [``multipart/alternative`` [text, HTML], the PDF as
    ``application/pdf`` named ``<invoice number>.pdf``]; or only the alternative part
    with ``link`` in the text when :func:`should_attach` says no (the subscriber's
    ``attach_pdf`` is false, ``pdf`` is None, or it is over ``max_attachment``). Then
    ``link`` (http/https) is required: the caller makes it (a signed token or a
    presigned URL), this module never signs anything.

    ``sender``/``reply_to``: an :class:`~email.headerregistry.Address`, a
    ``(name, addr)`` pair, or a bare address that gets the operator's name. Display
    names (the operator's, the customer's) are flattened to one line and handed to the
    header registry, which quotes and RFC 2047-encodes them: CR/LF, quotes, ``<>`` or
    non-ASCII in a name can never start a header of their own.

    ``message_id`` comes from :func:`message_id`. ``list_unsubscribe``: one or more
    https/mailto URLs for ``List-Unsubscribe`` (with ``List-Unsubscribe-Post:
    List-Unsubscribe=One-Click`` when one is https, RFC 8058). ``dkim`` signs the
    result last, so it must be the final change to the message. ``date`` defaults to
    now (UTC).

    ``xml``: the e-invoice that travels beside the PDF (XRechnung, Peppol BIS 3,
    RO_CIUS), attached as ``application/xml`` named ``<invoice number>.xml`` after the
    PDF, or alone beside the text when the PDF goes as a link: it is the invoice the
    buyer's system books, and a few kilobytes. (Factur-X is inside the PDF.)
    """
    to_spec = record.delivery.email
    if not to_spec:
        raise ValueError(f"invoice {record.invoice.number} has no e-mail address: "
                         "route it to paper")
    attach = should_attach(record, None if pdf is None else len(pdf),
                           max_attachment=max_attachment)
    if not attach and link is None:
        raise ValueError(f"the PDF of {record.invoice.number} is not attached "
                         "(attach_pdf false, no PDF, or over the size limit): pass a link")
    if not isinstance(message_id, str) or not MESSAGE_ID_RE.fullmatch(message_id):
        raise ValueError(f"Message-ID must look like <local@domain>: {message_id!r}")
    unsubscribe = _unsubscribe_urls(list_unsubscribe)
    web_unsubscribe = next((u for u in unsubscribe if not u.startswith("mailto:")), None)
    rendered = render_invoice_email(record, link=None if attach else link,
                                    unsubscribe=web_unsubscribe)

    operator = record.operator.name
    from_addr = _address(sender, operator)
    to_addr = _address((record.account.customer.name, to_spec))
    reply_addr = _address(reply_to, operator) if reply_to is not None else None
    specs = [a.addr_spec for a in (from_addr, to_addr, reply_addr) if a is not None]
    # An internationalised address (ü@example.com) can only travel as SMTPUTF8.
    policy = _SMTP if all(s.isascii() for s in specs) else _SMTPUTF8

    msg = EmailMessage(policy=policy)
    set_raw_header(msg, "From", _mailbox(from_addr))
    set_raw_header(msg, "To", _mailbox(to_addr))
    if reply_addr is not None:
        set_raw_header(msg, "Reply-To", _mailbox(reply_addr))
    subject = _subject(rendered.subject)  # one_line() already; no CR/LF can reach it
    if subject is not None:
        set_raw_header(msg, "Subject", subject)
    elif len(rendered.subject) <= 78 - len("Subject: "):
        # Plain ASCII words on one line: what the policy would write, without parsing
        # it again to fold it at serialization.
        _set(msg, "Subject", rendered.subject)
    else:
        msg["Subject"] = rendered.subject  # the policy folds plain words exactly
    _set(msg, "Date", format_datetime(date or datetime.now(UTC)))
    _set(msg, "Message-ID", message_id)  # checked against MESSAGE_ID_RE above
    # RFC 3834: vacation responders and auto-repliers stay quiet.
    _set(msg, "Auto-Submitted", "auto-generated")
    if unsubscribe:
        msg["List-Unsubscribe"] = ", ".join(f"<{u}>" for u in unsubscribe)
        if web_unsubscribe:
            _set(msg, "List-Unsubscribe-Post", "List-Unsubscribe=One-Click")
    _set(msg, "MIME-Version", "1.0")
    texts = [_text_part(rendered.text, "plain", policy),
             _text_part(rendered.html, "html", policy)]
    files = []
    if attach:
        assert pdf is not None
        files.append(_file_part(bytes(pdf), f"{record.invoice.number}.pdf", policy))
    if xml is not None:
        files.append(_file_part(bytes(xml), f"{record.invoice.number}.xml", policy,
                               "application/xml"))
    if files:
        alternative = _multipart(MIMEPart(policy=policy), "alternative", texts)
        _multipart(msg, "mixed", [alternative, *files])
    else:
        _multipart(msg, "alternative", texts)
    _set(msg, "Content-Language", rendered.locale.replace("_", "-"))
    if dkim is not None:
        dkim.sign(msg)
    return msg
