"""The SMS notice: its text per locale, and the gateways that send it.

Text. :func:`render_sms` fills ``templates/sms/<message>/<locale>.txt`` (Jinja2, plain
text, no autoescape) with values already formatted for the locale (amount, due date,
the FEBRABAN typeable line or a payment reference, a short link) and reports the
encoding and segment count (:mod:`delivery.gsm`). Every value is cleaned on its way into
the text: control characters, bidi overrides and line breaks removed, typographic
spaces, quotes and dashes folded to their GSM-7 equivalents (a no-break space in
``R$ 104,75`` would otherwise turn a whole SMS into UCS-2 and more than double its parts).

Sending. One small Protocol, :class:`SmsGateway`, with one verb, ``send``; backends are
picked by URL (:func:`gateway_from_url`, ``INVOICER_SMS_URL``):

- ``file://PATH`` -> :class:`FileSmsOutbox`: ``PATH/outbox.jsonl``, one JSON line per
  message (the embedded default, ``file://var/sms``);
- ``http://`` / ``https://`` -> :class:`HttpSmsGateway`: a JSON API with a bearer token;
- ``memory://`` -> :class:`MemorySmsGateway`: a list in memory, for tests of callers.

Every backend is **idempotent per reference**: a second ``send`` with a reference
already sent sends nothing and returns the first result (the HTTP gateway is asked to
do the same through the ``Idempotency-Key`` header). A deliberate re-send therefore
uses a new reference (e.g. ``{invoice}:sms:{attempt}``). Failures leave as
:class:`~delivery.errors.TransientDeliveryError` (retry; ``retry_after`` seconds when
the gateway said so) or :class:`~delivery.errors.PermanentDeliveryError` (report).

Receipts. :func:`parse_receipt` reads the delivery report a gateway posts back, for the
HTTP API to expose; its docstring documents the JSON expected.
"""

from __future__ import annotations

import contextlib
import email.utils
import errno
import fcntl
import functools
import hashlib
import http.client
import json
import logging
import os
import random
import re
import ssl
import threading
import time
import tomllib
import unicodedata
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal, Protocol, TypeVar, runtime_checkable
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

import jinja2

from invoicer.billing.models import BillingRecord, PaymentMethod, PaymentScheme
from invoicer.billing.paycodes import febraban
from invoicer.delivery import gsm
from invoicer.delivery.errors import (
    DeliveryError,
    PermanentDeliveryError,
    TransientDeliveryError,
    error_for_status,
)
from invoicer.delivery.fileurl import local_path
from invoicer.renderer.i18n import for_locale
from invoicer.resources import package_path

__all__ = [
    "DEFAULT_SMS_URL",
    "MAX_SEGMENTS",
    "FileSmsOutbox",
    "HttpSmsGateway",
    "MemorySmsGateway",
    "Receipt",
    "SmsGateway",
    "SmsMessage",
    "SmsResult",
    "SmsText",
    "gateway_from_url",
    "operator_short_name",
    "parse_receipt",
    "render_sms",
    "retry_transient",
]

log = logging.getLogger(__name__)

DEFAULT_SMS_URL = "file://var/sms"
"""Where SMS go when nothing is configured: ``./var/sms/outbox.jsonl``."""

MAX_SEGMENTS = 10
"""The longest SMS any backend sends. Our notices take 1 to 3 parts; a text beyond 10
is a template or data bug, and most gateways refuse it anyway."""

SMS_TEMPLATES_DIR = package_path("templates", "sms")
FALLBACK_LOCALE = "en"


# --- text ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SmsText:
    """A rendered SMS: the text, its encoding and how many parts it is sent as."""

    text: str
    encoding: gsm.Encoding
    segments: int

    @property
    def parts(self) -> list[str]:
        """The parts as the network carries them (see :func:`delivery.gsm.segments`)."""
        return gsm.segments(self.text)


# Typographic characters with a GSM-7 twin of the same meaning. CLDR puts no-break and
# narrow no-break spaces in amounts (R$ 104,75, 2 850,80 ₽) and a right single quote as
# the Swiss thousands separator (CHF 4’537.69): left alone, any one of them makes the
# whole SMS UCS-2. Folding them changes no meaning in any language, so it applies to
# every value; dropping diacritics does change spelling, so that is the templates'
# choice (the ``gsm`` filter).
_FOLD = str.maketrans({
    "\u2018": "'", "\u2019": "'", "\u201a": "'", "\u201b": "'", "\u2032": "'",
    "\u201c": '"', "\u201d": '"', "\u201e": '"', "\u201f": '"', "\u2033": '"',
    "\u2010": "-", "\u2011": "-", "\u2012": "-", "\u2013": "-", "\u2014": "-",
    "\u2015": "-", "\u2212": "-",
    "\u2026": "...",
})
# Zero-width non-joiner and joiner are part of how Persian words and emoji are spelled;
# every other format character (bidi marks, embeddings, overrides, isolates, BOM) can
# only reorder or hide what the subscriber reads.
_KEEP_FORMAT = frozenset("\u200c\u200d")
_SPACES = re.compile(r"\s+")


def _clean_value(value: Any) -> str:
    """Jinja ``finalize``: every ``{{ value }}`` becomes one clean line of text."""
    if value is None:
        return ""
    text = unicodedata.normalize("NFC", str(value))
    out = []
    for ch in text:
        if ch.isspace():
            out.append(" ")  # line breaks, tabs, NEL, LS/PS, no-break spaces: a space
            continue
        category = unicodedata.category(ch)
        if category in ("Cc", "Cs") or (category == "Cf" and ch not in _KEEP_FORMAT):
            continue
        out.append(ch)
    return _SPACES.sub(" ", "".join(out).translate(_FOLD)).strip()


def _to_gsm(value: Any) -> str:
    """Jinja filter ``gsm``: spell a value in GSM-7 letters where a close one exists.

    Characters GSM 03.38 has stay (é, ü, ñ, Ç ...); others lose their diacritics when
    what is left is GSM (ș->s, ț->t, ă->a, ã->a, ç->c); guillemets become quotes.
    Anything else stays as it is (and makes the text UCS-2) rather than turn into a
    guess. For names and formatted values; never for a code the subscriber must type
    exactly, which the templates print as it is.
    """
    text = _clean_value(value)
    out = []
    for ch in text:
        if ch in gsm.BASIC or ch in gsm.EXTENSION:
            out.append(ch)
        elif ch in "«»":
            out.append('"')
        else:
            base = "".join(c for c in unicodedata.normalize("NFD", ch)
                           if not unicodedata.combining(c))
            out.append(base if base and gsm.encoding(base) == gsm.GSM7 else ch)
    return "".join(out)


@functools.cache
def _environment() -> jinja2.Environment:
    # Plain text, never HTML: autoescape would print "&lt;" in an SMS. Values cannot
    # inject anything but characters (they are data, not template source), and
    # ``finalize`` keeps them on one line without control characters.
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(SMS_TEMPLATES_DIR),
        autoescape=False,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        finalize=_clean_value,
        auto_reload=False,  # shipped files: no stat() per message
    )
    env.filters["gsm"] = _to_gsm
    return env


_MESSAGE_RE = re.compile(r"[a-z][a-z0-9_]{0,63}")


@functools.cache
def _template_name(message: str, locale_id: str) -> str:
    """``message/<locale>.txt``: the exact locale, another of its language, else English."""
    if not _MESSAGE_RE.fullmatch(message) or not (SMS_TEMPLATES_DIR / message).is_dir():
        raise ValueError(f"no SMS message {message!r} under {SMS_TEMPLATES_DIR}")
    available = sorted(p.stem for p in (SMS_TEMPLATES_DIR / message).glob("*.txt"))
    language = locale_id.split("_")[0]
    if locale_id in available:
        chosen = locale_id
    else:
        same_language = [a for a in available if a.split("_")[0] == language]
        chosen = same_language[0] if same_language else FALLBACK_LOCALE
    return f"{message}/{chosen}.txt"


@functools.cache
def _short_names() -> dict[str, dict[str, str]]:
    with open(SMS_TEMPLATES_DIR / "operators.toml", "rb") as f:
        return tomllib.load(f)


# Legal forms say nothing to a subscriber and cost room in every SMS.
_LEGAL_FORMS = re.compile(
    r"(?:^|\s)(?:s\.?\s?a\.?|b\.?v\.?|n\.?v\.?|ltd\.?|limited|inc\.?|llc|plc|gmbh|ag|"
    r"s\.?r\.?l\.?|co\.|corp\.?|пао|оао|ао|ооо)(?=\s|$|,)",
    re.IGNORECASE,
)
_MAX_SHORT_NAME = 24


def operator_short_name(operator_id: str, name: str, locale_id: str) -> str:
    """The name an SMS opens with: ``templates/sms/operators.toml``, else derived.

    The table gives a name per operator (``default``) and optionally per locale or
    language. Without an entry the record's name is used without its legal form
    (``Lakeshore Wireless Inc.`` -> ``Lakeshore Wireless``), cut at a word to at most
    24 characters.
    """
    names = _short_names().get(operator_id, {})
    chosen = (names.get(locale_id) or names.get(locale_id.split("_")[0])
              or names.get("default"))
    if chosen:
        return _clean_value(chosen)
    short = _clean_value(_LEGAL_FORMS.sub(" ", _clean_value(name))).strip(" ,-")
    short = short or _clean_value(name)
    if len(short) > _MAX_SHORT_NAME:
        cut = short[:_MAX_SHORT_NAME + 1].rsplit(" ", 1)[0]
        short = cut if cut and len(cut) <= _MAX_SHORT_NAME else short[:_MAX_SHORT_NAME]
    return short.strip(" ,-")


# Printable ASCII without spaces: a URL a phone recognises as one link. Long enough for
# a signed download link (delivery.links, ~160 characters), though a link that long
# costs a part of its own; a short one is what an SMS wants.
_LINK_RE = re.compile(r"https?://[!-~]{1,500}")


def _check_link(link: str | None) -> str | None:
    if link is None:
        return None
    if not isinstance(link, str) or not _LINK_RE.fullmatch(link):
        raise ValueError(f"link must be an http(s) URL of printable ASCII without spaces "
                         f"(at most 508 characters), not {link!r:.80}")
    return link


def render_sms(record: BillingRecord, link: str | None = None, *,
               message: str = "invoice_issued") -> SmsText:
    """Render the SMS ``message`` for ``record`` in the record's locale.

    ``link`` is an optional link to the invoice (``https://...``, printable ASCII
    without spaces); the shorter, the fewer parts. The templates get: ``operator``
    (short name), ``amount`` and ``due_date`` (formatted for the locale), ``to_pay``
    (anything to pay, by hand or by debit), ``credit`` (the credit, formatted, when the
    total is negative), ``direct_debit``, ``typeable_line`` (FEBRABAN,
    ``84680000001-6 ...``), ``reference`` (a Code 128 payment reference), ``link`` and
    ``invoice_number``.
    Runs of whitespace in the rendered template become one space: an SMS is one
    paragraph, and the templates stay readable.
    """
    loc = for_locale(record.invoice.locale)
    currency = record.invoice.currency
    due: Decimal = record.totals.total_due
    payment = record.payment
    barcode = payment.method is PaymentMethod.barcode
    typeable = reference = None
    if barcode and payment.scheme is PaymentScheme.febraban and payment.code:
        typeable = febraban.parse(payment.code).formatted
    elif barcode and payment.scheme is PaymentScheme.code128 and payment.code:
        reference = payment.code
    context = {
        "operator": operator_short_name(record.operator.id, record.operator.name,
                                        record.invoice.locale),
        "amount": loc.money(due, currency),
        "due_date": loc.date(record.invoice.due_date),
        "to_pay": due > 0,
        "credit": loc.money(-due, currency) if due < 0 else None,
        "direct_debit": payment.method is PaymentMethod.direct_debit,
        "typeable_line": typeable,
        "reference": reference,
        "link": _check_link(link),
        "invoice_number": record.invoice.number,
    }
    template = _environment().get_template(_template_name(message, record.invoice.locale))
    text = _SPACES.sub(" ", template.render(context)).strip()
    described = gsm.describe(text)
    return SmsText(text, described.encoding, described.count)


def render_access_code(operator_id: str, locale_id: str, code: str, minutes: int) -> SmsText:
    """The SMS carrying a subscriber's access code (``templates/sms/access_code/``).

    Only the operator's short name (``operators.toml``, else its id), the six digits and
    the validity: an access code never travels with account data.
    """
    if not re.fullmatch(r"[0-9]{6}", code):
        raise ValueError("an access code is six digits")
    context = {"operator": operator_short_name(operator_id, operator_id, locale_id),
               "code": code, "minutes": int(minutes)}
    template = _environment().get_template(_template_name("access_code", locale_id))
    text = _SPACES.sub(" ", template.render(context)).strip()
    described = gsm.describe(text)
    return SmsText(text, described.encoding, described.count)


# --- the Protocol ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SmsResult:
    """What ``send`` did: the gateway's message id and the parts billed.

    ``already_sent`` is True when the reference had been sent before and nothing was
    sent this time (the first send's id and count are returned).
    """

    message_id: str
    segments: int
    already_sent: bool = False


@runtime_checkable
class SmsGateway(Protocol):
    """Sends SMS. Implementations are safe to share between threads.

    ``send`` raises ``ValueError`` for arguments no gateway could take (checked before
    any I/O): ``to`` not E.164, an empty text or one beyond :data:`MAX_SEGMENTS`
    parts, a reference that is not 1 to 128 of ``A-Z a-z 0-9 . _ : / -``.
    """

    def send(self, to: str, text: str, *, reference: str) -> SmsResult:
        """Send ``text`` to ``to`` (E.164) once per ``reference``.

        A reference already sent returns the first result and sends nothing. Raises
        ``TransientDeliveryError`` (retry later, same reference) or
        ``PermanentDeliveryError``.
        """
        ...


@dataclass(frozen=True, slots=True)
class SmsMessage:
    """One message as the outbox backends keep it (one JSON line in the file outbox)."""

    message_id: str
    reference: str
    to: str
    text: str
    encoding: gsm.Encoding
    segments: int
    at: str  # ISO 8601, UTC

    def result(self, *, already_sent: bool = False) -> SmsResult:
        return SmsResult(self.message_id, self.segments, already_sent)


# Same pattern as the billing contract's Phone; repeated because this is the edge where
# a number leaves the service, whoever called.
_E164_RE = re.compile(r"\+[1-9][0-9]{1,14}")
# References travel as an HTTP header and a JSON field: no spaces, no line breaks.
_REFERENCE_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/-]{0,127}")


def _check_message(to: str, text: str, reference: str) -> gsm.Segmentation:
    if not isinstance(to, str) or not _E164_RE.fullmatch(to):
        raise ValueError(f"to must be an E.164 number (+ and up to 15 digits), not {to!r}")
    if not isinstance(reference, str) or not _REFERENCE_RE.fullmatch(reference):
        raise ValueError(f"reference must be 1 to 128 of A-Z a-z 0-9 . _ : / - "
                         f"(starting with a letter or digit), not {reference!r}")
    if not isinstance(text, str) or not text.strip():
        raise ValueError("an SMS text cannot be empty")
    described = gsm.describe(text)
    if described.count > MAX_SEGMENTS:
        raise ValueError(f"the text takes {described.count} SMS parts, more than "
                         f"{MAX_SEGMENTS}")
    return described


def _message_id(reference: str) -> str:
    # Derived from the reference so that a retried send reports the same id.
    return "sms-" + hashlib.sha256(reference.encode()).hexdigest()[:24]


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


# --- memory:// -------------------------------------------------------------------------


class MemorySmsGateway:
    """Keeps sent messages in a list: a fake that keeps the real promises."""

    def __init__(self, *, clock: Callable[[], datetime] = _utc_now) -> None:
        self.messages: list[SmsMessage] = []
        self._by_reference: dict[str, SmsMessage] = {}
        self._clock = clock
        self._lock = threading.Lock()

    @classmethod
    def from_url(cls, url: str) -> MemorySmsGateway:
        """``memory://`` (nothing else in the URL)."""
        parts = urlsplit(url)
        if parts.scheme != "memory" or parts.netloc or parts.path or parts.query:
            raise ValueError(f"not a memory SMS URL: {url!r} (use memory://)")
        return cls()

    def send(self, to: str, text: str, *, reference: str) -> SmsResult:
        """Append to :attr:`messages` unless ``reference`` is there already."""
        described = _check_message(to, text, reference)
        with self._lock:
            seen = self._by_reference.get(reference)
            if seen is not None:
                return seen.result(already_sent=True)
            message = SmsMessage(_message_id(reference), reference, to, text,
                                 described.encoding, described.count, _iso(self._clock()))
            self.messages.append(message)
            self._by_reference[reference] = message
            return message.result()

    def __repr__(self) -> str:
        return f"MemorySmsGateway({len(self.messages)} messages)"


# --- file:// ---------------------------------------------------------------------------


class FileSmsOutbox:
    """A JSON Lines outbox: ``root/outbox.jsonl``, one line per message sent.

    Idempotent per reference across threads and processes: an exclusive ``flock`` on
    the file covers "is this reference there?" and the append, so two workers sending
    the same reference write one line. Each line is written with one ``write`` and
    fsynced before ``send`` returns (the ledger records "sent" right after). The
    references already in the file are indexed in memory as the file is read, so each
    send reads only what other processes appended since.
    """

    FILENAME = "outbox.jsonl"

    def __init__(self, root: str | os.PathLike[str], *,
                 clock: Callable[[], datetime] = _utc_now, fsync: bool = True) -> None:
        self.root = Path(root)
        self.path = self.root / self.FILENAME
        self._clock = clock
        self._fsync = fsync
        self._lock = threading.Lock()
        self._index: dict[str, SmsResult] = {}
        self._offset = 0  # bytes of the file already indexed
        self._inode: tuple[int, int] | None = None

    @classmethod
    def from_url(cls, url: str) -> FileSmsOutbox:
        """``file:///abs/path``, ``file://relative/path`` or ``file:relative`` (to cwd)."""
        return cls(local_path(url, "file SMS outbox"))

    def __repr__(self) -> str:
        return f"FileSmsOutbox({str(self.root)!r})"

    def send(self, to: str, text: str, *, reference: str) -> SmsResult:
        """Append one JSON line unless ``reference`` is in the outbox already."""
        described = _check_message(to, text, reference)
        with self._lock, self._locked_file() as f:
            self._catch_up(f)
            seen = self._index.get(reference)
            if seen is not None:
                return SmsResult(seen.message_id, seen.segments, already_sent=True)
            message = SmsMessage(_message_id(reference), reference, to, text,
                                 described.encoding, described.count, _iso(self._clock()))
            line = json.dumps(asdict(message), ensure_ascii=False, separators=(",", ":"))
            data = line.encode() + b"\n"
            size = os.fstat(f.fileno()).st_size
            if size and self._last_byte(f, size) != b"\n":
                # A line torn by a crash: start on a fresh line, the torn one is skipped.
                data = b"\n" + data
            try:
                f.seek(0, os.SEEK_END)
                f.write(data)
                f.flush()
                if self._fsync:
                    os.fsync(f.fileno())
            except OSError as exc:
                raise _os_error(exc, f"writing {self.path}") from exc
            self._offset = size + len(data)
            result = message.result()
            self._index[reference] = result
            return result

    def messages(self) -> list[SmsMessage]:
        """Every message in the outbox, oldest first (torn lines skipped)."""
        try:
            with open(self.path, "rb") as f:
                return [SmsMessage(**doc) for doc in _read_lines(f.read(), self.path)]
        except FileNotFoundError:
            return []

    @contextlib.contextmanager
    def _locked_file(self) -> Iterator[Any]:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            f = open(self.path, "a+b")  # noqa: SIM115 - closed below, after the unlock
        except OSError as exc:
            raise _os_error(exc, f"opening {self.path}") from exc
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX)
            try:
                yield f
            finally:
                fcntl.flock(f.fileno(), fcntl.LOCK_UN)
        finally:
            f.close()

    def _catch_up(self, f: Any) -> None:
        stat = os.fstat(f.fileno())
        inode = (stat.st_dev, stat.st_ino)
        if inode != self._inode or stat.st_size < self._offset:
            # Another file now (rotated, or replaced by an operator): index it afresh.
            self._index.clear()
            self._offset = 0
            self._inode = inode
        if stat.st_size == self._offset:
            return
        f.seek(self._offset)
        chunk = f.read(stat.st_size - self._offset)
        # Index whole lines only: a partial last line is a torn write, or (never under
        # the lock) one still being written.
        complete = chunk[: chunk.rfind(b"\n") + 1]
        for doc in _read_lines(complete, self.path):
            self._index[doc["reference"]] = SmsResult(doc["message_id"], doc["segments"])
        self._offset += len(complete)

    @staticmethod
    def _last_byte(f: Any, size: int) -> bytes:
        f.seek(size - 1)
        return f.read(1)


def _read_lines(data: bytes, path: Path) -> Iterator[dict[str, Any]]:
    # JSON Lines split on "\n" only: str.splitlines() would also split at U+2028 in text.
    for number, raw in enumerate(data.split(b"\n"), 1):
        if not raw.strip():
            continue
        try:
            doc = json.loads(raw)
            if not isinstance(doc, dict) or not isinstance(doc.get("reference"), str):
                raise ValueError("not an outbox message")
        except ValueError:
            log.warning("%s: skipping unreadable line %d", path, number)
            continue
        yield doc


# A disk that is full or busy may recover; a path we may not write to will not.
_TRANSIENT_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EAGAIN,
                               errno.EBUSY, errno.EINTR})


def _os_error(exc: OSError, what: str) -> DeliveryError:
    cls = TransientDeliveryError if exc.errno in _TRANSIENT_ERRNOS else PermanentDeliveryError
    return cls(f"{what}: {exc.strerror or exc}")


# --- http:// and https:// --------------------------------------------------------------

_MAX_RESPONSE = 64 * 1024  # a JSON answer; anything bigger is not one


class HttpSmsGateway:
    """An SMS gateway's JSON API: one ``POST`` per message.

    The request::

        POST {endpoint}
        Authorization: Bearer {token}
        Idempotency-Key: {reference}
        Content-Type: application/json; charset=utf-8

        {"to": "+5521987654321", "text": "...", "reference": "OI-2026-11-0000123:sms:1",
         "encoding": "gsm7", "segments": 1}

    A 2xx answer may carry ``{"message_id": "..."}`` (or ``"id"``) and ``"segments"``;
    without an id the reference stands in for it. 429 and 5xx (but 501/505) raise
    ``TransientDeliveryError`` with ``retry_after`` (seconds, from ``Retry-After``, or
    None); any other status raises ``PermanentDeliveryError``; refused or dropped
    connections and timeouts are transient. A timeout after the request went out leaves
    it unknown whether the gateway took it: retrying is safe only because the gateway
    de-duplicates on ``Idempotency-Key``, which this backend requires of it.
    """

    def __init__(self, endpoint: str, token: str | None, *, timeout: float = 10.0,
                 connect_timeout: float = 5.0,
                 ssl_context: ssl.SSLContext | None = None) -> None:
        parts = urlsplit(endpoint)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) endpoint: {endpoint!r}")
        if parts.username or parts.password or parts.fragment:
            raise ValueError("the endpoint carries no credentials or fragment; "
                             "pass the token separately")
        if token is not None and not re.fullmatch(r"[!-~]+", token):
            raise ValueError("the token must be printable ASCII without spaces")
        self.endpoint = endpoint
        self.token = token
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self._https = parts.scheme == "https"
        self._host = parts.hostname
        self._port = parts.port
        self._target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self._ssl_context = ssl_context
        if not self._https and self._host not in ("127.0.0.1", "::1", "localhost"):
            log.warning("SMS gateway %s is plain HTTP: the token travels in clear", endpoint)

    @classmethod
    def from_url(cls, url: str) -> HttpSmsGateway:
        """``https://[:TOKEN@]host[:port]/path[?token=...&timeout=...&connect_timeout=...]``.

        The token comes from the URL's password or its ``token`` parameter (both masked
        by ``invoicer config``), else from ``INVOICER_SMS_TOKEN``; one is required.
        ``timeout`` (seconds to wait for the answer, default 10) and ``connect_timeout``
        (default 5) are options; other query parameters stay part of the endpoint.
        """
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.fragment:
            raise ValueError(f"not an http(s) SMS gateway URL: {parts.scheme}://"
                             f"{parts.hostname}{parts.path}")
        if parts.username and not parts.password:
            # A bare "user@" would be printed unmasked by `invoicer config`.
            raise ValueError("put the SMS token in the URL's password (https://:TOKEN@host) "
                             "or in ?token=, not in the user name")
        options: dict[str, str] = {}
        rest: list[tuple[str, str]] = []
        for name, value in parse_qsl(parts.query, keep_blank_values=True):
            if name in ("token", "timeout", "connect_timeout"):
                options[name] = value
            else:
                rest.append((name, value))
        token = (options.get("token") or (unquote(parts.password) if parts.password else None)
                 or os.environ.get("INVOICER_SMS_TOKEN") or None)
        if not token:
            raise ValueError("the SMS gateway needs a token: https://:TOKEN@host/..., "
                             "?token=..., or INVOICER_SMS_TOKEN")
        netloc = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
        if parts.port:
            netloc += f":{parts.port}"
        endpoint = urlunsplit((parts.scheme, netloc, parts.path or "/", urlencode(rest), ""))
        kwargs = {}
        for name in ("timeout", "connect_timeout"):
            if name in options:
                try:
                    kwargs[name] = float(options[name])
                except ValueError:
                    raise ValueError(f"{name} must be a number of seconds, "
                                     f"not {options[name]!r}") from None
                if not kwargs[name] > 0:
                    raise ValueError(f"{name} must be positive, not {options[name]!r}")
        return cls(endpoint, token, **kwargs)

    def __repr__(self) -> str:
        return f"HttpSmsGateway({self.endpoint!r})"  # never the token

    def send(self, to: str, text: str, *, reference: str) -> SmsResult:
        """``POST`` the message; see the class for statuses and errors."""
        described = _check_message(to, text, reference)
        body = json.dumps({"to": to, "text": text, "reference": reference,
                           "encoding": described.encoding, "segments": described.count},
                          ensure_ascii=False).encode()
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            "Accept": "application/json",
            "Idempotency-Key": reference,
            "User-Agent": "invoicer-sms/1",
        }
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        status, response_headers, data = self._post(body, headers, reference)
        if 200 <= status <= 299:
            return self._result(data, reference, described.count)
        error = error_for_status(status, f"SMS gateway refused {reference}: {_detail(data)}")
        if isinstance(error, TransientDeliveryError):
            error.retry_after = _retry_after(response_headers.get("retry-after"))
        raise error

    def _connection(self) -> http.client.HTTPConnection:
        if self._https:
            return http.client.HTTPSConnection(
                self._host, self._port, timeout=self.connect_timeout,
                context=self._ssl_context or ssl.create_default_context())
        return http.client.HTTPConnection(self._host, self._port, timeout=self.connect_timeout)

    def _post(self, body: bytes, headers: Mapping[str, str],
              reference: str) -> tuple[int, dict[str, str], bytes]:
        # One connection per message: a kept-alive connection the gateway closed in the
        # meantime would fail the next send half-way, and SMS volumes (one per invoice,
        # a few per second per worker) do not need the saved handshake.
        conn = self._connection()
        what = f"sending {reference} to {self.endpoint}"
        try:
            conn.connect()
            if conn.sock is not None:  # connected within connect_timeout; now the answer
                conn.sock.settimeout(self.timeout)
            conn.request("POST", self._target, body=body, headers=dict(headers))
            response = conn.getresponse()
            data = response.read(_MAX_RESPONSE)
            return (response.status, {k.lower(): v for k, v in response.getheaders()},
                    data)
        except ssl.SSLCertVerificationError as exc:
            # A certificate that does not verify will not verify on a retry either.
            raise PermanentDeliveryError(f"{what}: {exc.verify_message or exc}") from exc
        except TimeoutError as exc:
            raise TransientDeliveryError(f"{what}: timed out") from exc
        except (OSError, http.client.HTTPException) as exc:
            raise TransientDeliveryError(f"{what}: {type(exc).__name__}: {exc}") from exc
        finally:
            conn.close()

    @staticmethod
    def _result(data: bytes, reference: str, segments: int) -> SmsResult:
        try:
            doc = json.loads(data) if data.strip() else {}
        except ValueError:
            doc = {}
        if not isinstance(doc, dict):
            doc = {}
        raw_id = doc.get("message_id", doc.get("id"))
        message_id = str(raw_id) if isinstance(raw_id, str | int) else ""
        if not re.fullmatch(r"[!-~]{1,128}", message_id):
            # The gateway took the message (2xx) but gave no usable id: failing now
            # would make a retry look like a second message. Our reference names it.
            message_id = reference
        counted = doc.get("segments")
        if isinstance(counted, int) and not isinstance(counted, bool) and counted > 0:
            segments = counted  # the gateway bills its own count; record that one
        return SmsResult(message_id, segments)


def _detail(data: bytes) -> str:
    """A short, printable excerpt of a gateway's error answer."""
    text = data[:2000].decode("utf-8", "replace")
    with contextlib.suppress(ValueError):
        doc = json.loads(text)
        if isinstance(doc, dict):
            for key in ("error", "message", "detail", "title"):
                if isinstance(doc.get(key), str):
                    text = doc[key]
                    break
    text = _clean_value(text)
    return (text[:200] + "…") if len(text) > 200 else (text or "(no details)")


def _retry_after(value: str | None, now: Callable[[], datetime] = _utc_now) -> float | None:
    """Seconds from a ``Retry-After`` header: delta-seconds or an HTTP date; else None."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(int(value))
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now()).total_seconds())


# --- by URL ----------------------------------------------------------------------------

# Scheme -> class; configuration names a URL, never a class path.
_BACKENDS: Mapping[str, type[FileSmsOutbox] | type[HttpSmsGateway] | type[MemorySmsGateway]] = {
    "file": FileSmsOutbox,
    "http": HttpSmsGateway,
    "https": HttpSmsGateway,
    "memory": MemorySmsGateway,
}


def gateway_from_url(url: str | None = None) -> SmsGateway:
    """Open the gateway a URL names (default: ``INVOICER_SMS_URL``, else ``file://var/sms``).

    ``file://PATH``, ``https://[:TOKEN@]host/path[?token=...]`` (or ``http://``), or
    ``memory://``.
    """
    if url is None:
        url = os.environ.get("INVOICER_SMS_URL") or DEFAULT_SMS_URL
    scheme = urlsplit(url).scheme
    try:
        backend = _BACKENDS[scheme]
    except KeyError:
        raise ValueError(
            f"unknown SMS scheme {scheme!r}; known: {sorted(_BACKENDS)}"
        ) from None
    return backend.from_url(url)


# --- retries ---------------------------------------------------------------------------

T = TypeVar("T")


def retry_transient(call: Callable[[], T], *, attempts: int = 4, base_delay: float = 0.5,
                    max_delay: float = 30.0, sleep: Callable[[float], None] = time.sleep,
                    rand: Callable[[], float] = random.random) -> T:
    """Run ``call``, retrying it on ``TransientDeliveryError`` only, ``attempts`` in all.

    The e-mail channel's :func:`delivery.email.retry` does the work (one retry loop in
    the service): waits grow exponentially from ``base_delay``, half of each random,
    capped at ``max_delay``. What the SMS gateway adds is ``Retry-After``: an error's
    ``retry_after`` is waited when it is longer than the backoff, and one beyond
    ``max_delay`` is not waited in-process at all: the error is raised at once, for a
    queue to retry later. Permanent errors are raised at once.

    ``retry_transient(lambda: gateway.send(to, text, reference=ref))`` is safe with any
    backend because every backend is idempotent per reference.
    """
    # Imported here: the SMS path should not load the SMTP client until it retries.
    from invoicer.delivery.email import Backoff, retry

    if attempts < 1:
        raise ValueError("attempts must be at least 1")
    asked: list[float | None] = [None]

    def note(attempt: int, error: DeliveryError, delay: float) -> None:
        # ``retry`` tells this before each wait, with the error that caused it.
        wanted = getattr(error, "retry_after", None)
        if wanted is not None and wanted > max_delay:
            raise error
        asked[0] = wanted

    def wait(delay: float) -> None:
        sleep(delay if asked[0] is None else max(delay, asked[0]))

    backoff = Backoff(attempts=attempts, base=base_delay, factor=2.0, cap=max_delay)
    return retry(call, backoff=backoff, sleep=wait, rand=rand, on_retry=note)


# --- delivery receipts -----------------------------------------------------------------

ReceiptStatus = Literal["delivered", "failed", "expired"]

# Our words, then the SMPP delivery-receipt "stat" values gateways pass through.
_RECEIPT_STATUSES: Mapping[str, ReceiptStatus] = {
    "delivered": "delivered", "delivrd": "delivered",
    "failed": "failed", "undeliverable": "failed", "undeliv": "failed",
    "rejected": "failed", "rejectd": "failed", "deleted": "failed",
    "expired": "expired",
}


@dataclass(frozen=True, slots=True)
class Receipt:
    """A gateway's final word on one message."""

    status: ReceiptStatus
    at: datetime  # timezone-aware
    reference: str | None
    message_id: str | None
    error: str | None = None


def parse_receipt(body: Mapping[str, Any]) -> Receipt:
    """Read a delivery receipt a gateway posts back; raise ``ValueError`` if malformed.

    Expected JSON (one receipt per request)::

        {
          "reference": "OI-2026-11-0000123:sms:1",   # ours, as sent; or/and
          "message_id": "gw-8f3a",                   # the gateway's, from send()
          "status": "delivered",                     # | "failed" | "expired"
          "at": "2026-11-05T10:15:30Z",              # ISO 8601 with an offset
          "error": "absent subscriber"               # optional, for failed/expired
        }

    At least one of ``reference`` and ``message_id`` is required. ``status`` is
    case-insensitive and also takes SMPP receipt states (``DELIVRD``, ``UNDELIV``,
    ``REJECTD``, ``DELETED`` -> failed, ``EXPIRED``). Interim states (``ENROUTE``,
    ``ACCEPTD``, ``UNKNOWN``) are not receipts and raise ``ValueError``: the endpoint
    should acknowledge and ignore them.
    """
    if not isinstance(body, Mapping):
        raise ValueError("a receipt is a JSON object")
    reference = body.get("reference")
    message_id = body.get("message_id")
    if reference is not None and (not isinstance(reference, str)
                                  or not _REFERENCE_RE.fullmatch(reference)):
        raise ValueError(f"reference {reference!r} is not one we send")
    if message_id is not None and (not isinstance(message_id, str)
                                   or not re.fullmatch(r"[!-~]{1,128}", message_id)):
        raise ValueError("message_id must be 1 to 128 printable ASCII characters")
    if reference is None and message_id is None:
        raise ValueError("a receipt names the message: reference or message_id")
    raw_status = body.get("status")
    status = _RECEIPT_STATUSES.get(raw_status.lower()) if isinstance(raw_status, str) else None
    if status is None:
        raise ValueError(f"status {raw_status!r} is not delivered, failed or expired")
    raw_at = body.get("at")
    try:
        at = datetime.fromisoformat(raw_at) if isinstance(raw_at, str) else None
    except ValueError:
        at = None
    if at is None or at.tzinfo is None:
        raise ValueError(f"at {raw_at!r} is not an ISO 8601 time with an offset")
    error = body.get("error")
    if error is not None:
        error = _clean_value(error)[:200] if isinstance(error, str) else None
    return Receipt(status, at, reference, message_id, error or None)
