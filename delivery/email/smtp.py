"""``smtp://`` and ``smtps://``: SMTP submission through aiosmtplib, pooled.

The service's pipeline is synchronous (process pool, Celery tasks), aiosmtplib is
asyncio: :class:`SmtpMailer` runs one event loop in a daemon thread of its own and keeps
a small pool of reused connections there. SMTP replies and connection failures leave as
:mod:`invoicer.delivery.errors` classes (4xx and lost connections transient, 5xx
permanent, a connection lost after the payload "unknown").
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import dataclasses
import os
import re
import socket
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any, ClassVar
from urllib.parse import parse_qs, unquote, urlsplit

import aiosmtplib

from invoicer.delivery.email._aiosmtplib import read_reply, write_payload
from invoicer.delivery.email.mailer import BatchSending, SendResult
from invoicer.delivery.email.wire import envelope, message_id_of, serialize
from invoicer.delivery.errors import (
    PermanentDeliveryError,
    TransientDeliveryError,
    UnknownDeliveryError,
    error_for_smtp_reply,
)

__all__ = ["SmtpMailer"]

_PERIOD_AT_LINE_START = re.compile(rb"(?m)^\.")
_BARE_LINE_END = re.compile(rb"\r\n|\r|\n")


@dataclass(frozen=True, slots=True)
class _Outgoing:
    """A message ready for the wire: envelope, and the DATA payload dot-stuffed."""

    message_id: str
    sender: str
    recipients: tuple[str, ...]
    payload: bytes
    utf8: bool
    before_data: Callable[[], None] | None = None


def _prepare(message: EmailMessage, envelope_from: str | None) -> _Outgoing:
    mid = message_id_of(message)
    sender, recipients = envelope(message, envelope_from)
    data = serialize(message)
    # A lone CR or LF (from a hand-made part) would be read differently by different
    # servers: normalise, but only when one is there (counting is cheap, rewriting
    # 70 KB is not).
    crlf = data.count(b"\r\n")
    if data.count(b"\n") != crlf or data.count(b"\r") != crlf:
        data = _BARE_LINE_END.sub(b"\r\n", data)
    if not data.endswith(b"\r\n"):
        data += b"\r\n"
    if data.startswith(b".") or b"\n." in data:  # base64 lines never start with a dot
        data = _PERIOD_AT_LINE_START.sub(b"..", data)  # RFC 5321 §4.5.2
    payload = data + b".\r\n"
    utf8 = bool(getattr(message.policy, "utf8", False)) or not all(
        a.isascii() for a in (sender, *recipients))
    return _Outgoing(mid, sender, tuple(recipients), payload, utf8)


class _StaleConnection(Exception):
    """A pooled connection turned out to be closed before this message started."""


@dataclass(eq=False)
class _Connection:
    smtp: aiosmtplib.SMTP
    sent: int = 0


class SmtpMailer(BatchSending):
    """SMTP submission through aiosmtplib, with a synchronous face.

    The service's pipeline is synchronous (process pool, Celery tasks), aiosmtplib is
    asyncio: the mailer runs one event loop in a daemon thread of its own, and
    ``send`` / ``send_many`` hand coroutines to it. The loop keeps a pool of at most
    ``concurrency`` connections, reused across messages (``max_messages`` each, then a
    fresh one: many providers cap messages per connection), so connection set-up,
    STARTTLS and AUTH are paid once per connection, not per message. Messages are
    serialized in the caller's thread, keeping the loop free for I/O.

    Outcomes: 250 -> :class:`SendResult`; 4xx, refused/lost connections, timeouts ->
    ``TransientDeliveryError``; 5xx -> ``SmtpPermanentError``; the connection lost or
    timed out after the payload was written and before the final reply ->
    ``UnknownDeliveryError``. A pooled connection that the server closed while idle
    is replaced once, transparently: nothing of the message had been sent.

    Safe to share between threads; after ``os.fork`` the child starts its own loop.
    """

    def __init__(
        self,
        host: str,
        port: int | None = None,
        *,
        username: str | None = None,
        password: str | None = None,
        use_tls: bool = False,
        starttls: bool | None = None,
        timeout: float = 30.0,
        data_timeout: float = 600.0,
        concurrency: int = 4,
        max_messages: int = 100,
        local_hostname: str | None = None,
        envelope_from: str | None = None,
        tls_context: ssl.SSLContext | None = None,
        cafile: str | None = None,
    ) -> None:
        """``starttls``: True requires it, False never, None (default) requires it
        when a password is configured (never send one in clear) and uses it when
        offered otherwise. ``timeout`` bounds connect and each command; the final
        reply to DATA gets ``data_timeout`` (RFC 5321 §4.5.3.2.6 suggests 10 minutes:
        giving up earlier turns a slow accept into an "unknown")."""
        if use_tls and starttls:
            raise ValueError("smtps (implicit TLS) and STARTTLS exclude each other")
        if concurrency < 1 or max_messages < 1:
            raise ValueError("concurrency and max_messages must be at least 1")
        self.host = host
        self.port = port or (465 if use_tls else 25)
        self.username = username
        self._password = password
        self.use_tls = use_tls
        if starttls is None and password is not None and not use_tls:
            starttls = True
        self.starttls = starttls
        self.timeout = timeout
        self.data_timeout = data_timeout
        self.concurrency = concurrency
        self.max_messages = max_messages
        self.local_hostname = local_hostname
        self.envelope_from = envelope_from
        if tls_context is None and cafile:
            tls_context = ssl.create_default_context(cafile=cafile)
        self.tls_context = tls_context
        # Two per connection: one on the wire, one serialized and waiting, so a
        # connection never idles while the caller builds the next message.
        self.window = concurrency * 2
        self._lock = threading.Lock()
        self._pid: int | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._idle: list[_Connection] = []
        self._slots: asyncio.Semaphore | None = None
        self.connections_opened = 0
        """Connections opened so far (for metrics and the benchmark)."""

    # -- configuration --

    _PARAMS: ClassVar[dict[str, Callable[[str], Any]]] = {
        "starttls": lambda v: _parse_bool("starttls", v),
        "timeout": float,
        "data_timeout": float,
        "concurrency": int,
        "max_messages": int,
        "local_hostname": str,
        "envelope_from": str,
        "cafile": str,
    }

    @classmethod
    def from_url(cls, url: str) -> SmtpMailer:
        """``smtp://[user[:password]@]host[:port][?starttls=true|false&timeout=30&
        data_timeout=600&concurrency=4&max_messages=100&local_hostname=..&
        envelope_from=..&cafile=..]``, or ``smtps://`` for implicit TLS (port 465).

        User and password are percent-decoded. Unknown parameters are an error, so a
        typo cannot silently drop a setting.
        """
        parts = urlsplit(url)
        if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
            raise ValueError(f"not an smtp:// or smtps:// URL with a host: {url!r}")
        options: dict[str, Any] = {}
        for key, values in parse_qs(parts.query, keep_blank_values=True,
                                    strict_parsing=bool(parts.query)).items():
            if key not in cls._PARAMS:
                raise ValueError(f"unknown SMTP URL parameter {key!r}; known: "
                                 f"{sorted(cls._PARAMS)}")
            try:
                options[key] = cls._PARAMS[key](values[-1])
            except ValueError as exc:
                raise ValueError(f"bad value for {key!r} in SMTP URL: {exc}") from None
        use_tls = parts.scheme == "smtps"
        if use_tls and options.get("starttls"):
            raise ValueError("smtps:// is implicit TLS; starttls=true needs smtp://")
        return cls(
            parts.hostname,
            parts.port,
            username=unquote(parts.username) if parts.username is not None else None,
            password=unquote(parts.password) if parts.password is not None else None,
            use_tls=use_tls,
            **options,
        )

    def __repr__(self) -> str:
        scheme = "smtps" if self.use_tls else "smtp"
        user = f"{self.username}:***@" if self.username else ""
        return (f"SmtpMailer({scheme}://{user}{self.host}:{self.port}, "
                f"concurrency={self.concurrency}, starttls={self.starttls})")

    # -- synchronous face --

    def send(self, message: EmailMessage, *,
             before_data: Callable[[], None] | None = None,
             return_path: str | None = None) -> SendResult:
        """Send one message and wait for the server's verdict (see the class and
        :meth:`Mailer.send` for ``before_data`` and ``return_path``)."""
        return self._submit(message, before_data, return_path).result()

    async def asend(self, message: EmailMessage) -> SendResult:
        """``send`` for callers that run their own event loop."""
        return await asyncio.wrap_future(self._submit(message))

    def _submit(self, message: EmailMessage, before_data: Callable[[], None] | None = None,
                return_path: str | None = None) -> concurrent.futures.Future[SendResult]:
        # CPU work stays in the caller's thread
        out = _prepare(message, return_path or self.envelope_from)
        if before_data is not None:
            out = dataclasses.replace(out, before_data=before_data)
        loop = self._ensure_loop()
        return asyncio.run_coroutine_threadsafe(self._deliver(out), loop)

    def _ensure_loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None or self._pid != os.getpid():
                # First use, or a forked child: the parent's loop thread and sockets
                # do not exist here, so start afresh (the parent keeps its own).
                loop = asyncio.new_event_loop()
                thread = threading.Thread(target=loop.run_forever, daemon=True,
                                          name=f"smtp-{self.host}:{self.port}")
                thread.start()
                self._loop, self._thread, self._pid = loop, thread, os.getpid()
                self._idle = []
                self._slots = asyncio.Semaphore(self.concurrency)
            return self._loop

    def close(self) -> None:
        """Let messages in flight finish (``timeout`` seconds at most; those still
        going then end as ``TransientDeliveryError``, or ``UnknownDeliveryError`` once
        their data went out), say QUIT on idle connections and stop the loop thread.
        The mailer can be used again afterwards."""
        with self._lock:
            loop, thread, pid = self._loop, self._thread, self._pid
            self._loop = self._thread = None
        if loop is None or thread is None or pid != os.getpid():
            return
        future = asyncio.run_coroutine_threadsafe(self._shutdown(), loop)
        with contextlib.suppress(Exception):
            future.result(timeout=2 * self.timeout + 5)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=self.timeout + 5)
        if not thread.is_alive():
            loop.close()

    def __enter__(self) -> SmtpMailer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- inside the loop thread --

    async def _shutdown(self) -> None:
        current = asyncio.current_task()
        pending = [t for t in asyncio.all_tasks() if t is not current]
        if pending:
            _, late = await asyncio.wait(pending, timeout=self.timeout)
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)
        await self._quit_all()

    async def _quit_all(self) -> None:
        idle, self._idle = self._idle, []
        for conn in idle:
            with contextlib.suppress(Exception):
                await conn.smtp.quit(timeout=min(self.timeout, 5))
            conn.smtp.close()

    async def _deliver(self, out: _Outgoing) -> SendResult:
        try:
            return await self._deliver_in_slot(out)
        except asyncio.CancelledError:
            # close() gave up waiting before this message's data went out (after
            # that, _transaction reports "unknown" itself).
            raise TransientDeliveryError(
                f"{out.message_id}: the mailer was closed before it was sent") from None

    async def _deliver_in_slot(self, out: _Outgoing) -> SendResult:
        assert self._slots is not None
        async with self._slots:
            for _ in range(2):
                conn = self._idle.pop() if self._idle else None
                reused = conn is not None
                if conn is None:
                    conn = await self._open()
                try:
                    reply = await self._transaction(conn, out, reused=reused)
                except _StaleConnection:
                    continue  # the next round opens a fresh connection
                if conn.sent >= self.max_messages:
                    await self._quit(conn)
                else:
                    self._idle.append(conn)
                return SendResult(out.message_id, out.recipients, f"{reply.code} {reply.message}")
        raise AssertionError("unreachable")  # pragma: no cover

    async def _open(self) -> _Connection:
        if self.local_hostname is None:
            # aiosmtplib would look the FQDN up (in a thread) for every connection.
            self.local_hostname = await asyncio.to_thread(socket.getfqdn)
        smtp = aiosmtplib.SMTP(
            hostname=self.host, port=self.port, username=self.username,
            password=self._password, local_hostname=self.local_hostname,
            timeout=self.timeout, use_tls=self.use_tls, start_tls=self.starttls,
            tls_context=self.tls_context,
        )
        where = f"connecting to {self.host}:{self.port}"
        try:
            await smtp.connect()
        except aiosmtplib.SMTPResponseException as exc:
            # A greeting, EHLO, STARTTLS or AUTH refused: 4xx later, 5xx for good
            # (535 bad credentials, 554 no service).
            smtp.close()
            raise error_for_smtp_reply(exc.code, exc.message, where) from exc
        except OSError as exc:  # refused, reset, timeouts (aiosmtplib's are OSErrors too)
            smtp.close()
            if _caused_by(exc, ssl.SSLCertVerificationError):
                # An untrusted or mismatched certificate stays so until someone acts.
                raise PermanentDeliveryError(f"{where}: TLS certificate rejected: "
                                             f"{exc}") from exc
            raise TransientDeliveryError(f"{where}: {exc}") from exc
        except aiosmtplib.SMTPException as exc:
            # No STARTTLS offered although required, no usable AUTH mechanism: a
            # configuration mismatch that waiting will not fix.
            smtp.close()
            raise PermanentDeliveryError(f"{where}: {exc}") from exc
        self.connections_opened += 1
        return _Connection(smtp)

    async def _quit(self, conn: _Connection) -> None:
        with contextlib.suppress(Exception):
            await conn.smtp.quit(timeout=min(self.timeout, 5))
        conn.smtp.close()

    async def _transaction(self, conn: _Connection, out: _Outgoing, *,
                           reused: bool) -> aiosmtplib.SMTPResponse:
        """One MAIL/RCPT/DATA exchange. On success the caller keeps the connection;
        on failure this returns it to the pool (after RSET) or closes it."""
        smtp = conn.smtp
        stage = "MAIL FROM"
        options = ["SMTPUTF8", "BODY=8BITMIME"] if out.utf8 else []
        encoding = "utf-8" if out.utf8 else "ascii"
        try:
            if out.utf8 and not smtp.supports_extension("smtputf8"):
                self._idle.append(conn)  # nothing was started on it
                raise PermanentDeliveryError(
                    f"{out.message_id}: an internationalised address needs SMTPUTF8, which "
                    f"{self.host}:{self.port} does not offer")
            if smtp.supports_extension("size"):
                # A message over the server's limit is refused now, not after upload.
                options.append(f"SIZE={len(out.payload)}")
            await smtp.mail(out.sender, options=options, encoding=encoding,
                            timeout=self.timeout)
            stage = "RCPT TO"
            for rcpt in out.recipients:
                await smtp.rcpt(rcpt, encoding=encoding, timeout=self.timeout)
            stage = "DATA"
            start = await smtp.execute_command(b"DATA", timeout=self.timeout)
            if start.code != 354:
                raise aiosmtplib.SMTPDataError(start.code, start.message)
            if out.before_data is not None:
                # The caller records "outcome unknown from here" (a ledger write: in a
                # thread, not on the loop). If that fails, the data is not sent.
                try:
                    await asyncio.get_running_loop().run_in_executor(None, out.before_data)
                except Exception as exc:
                    smtp.close()  # mid-DATA: the only clean way out is to hang up
                    raise TransientDeliveryError(
                        f"{out.message_id}: not sent, recording the hand-off failed: "
                        f"{type(exc).__name__}: {exc}") from exc
            # aiosmtplib's data() sends DATA and the payload in one call, so a lost
            # connection there could be before the 354 (nothing sent: retry) or after
            # the payload (maybe delivered: unknown). Doing the two halves here keeps
            # that difference (see _aiosmtplib).
            write_payload(smtp, out.payload)  # raises before a byte is out, or not at all
            stage = "end of data"
            reply = await read_reply(smtp, timeout=self.data_timeout)
            if reply.code != 250:
                raise aiosmtplib.SMTPDataError(reply.code, reply.message)
        except aiosmtplib.SMTPResponseException as exc:
            if reused and stage == "MAIL FROM" and exc.code == 421:
                smtp.close()  # "closing channel" on a pooled connection: it was stale
                raise _StaleConnection from exc
            if exc.code == 421 or not smtp.is_connected:
                smtp.close()
            else:
                await self._reset(conn)
            raise error_for_smtp_reply(exc.code, exc.message, stage) from exc
        except OSError as exc:  # lost connection, timeout, reset (aiosmtplib's included)
            smtp.close()
            if stage == "end of data":
                raise UnknownDeliveryError(
                    f"{out.message_id}: no reply from {self.host}:{self.port} after the "
                    f"message was sent ({type(exc).__name__}: {exc}); it may have been "
                    "delivered, so it is not sent again automatically") from exc
            if reused and stage == "MAIL FROM" and not isinstance(exc, TimeoutError):
                raise _StaleConnection from exc
            raise TransientDeliveryError(
                f"{out.message_id}: connection to {self.host}:{self.port} lost during "
                f"{stage}: {exc}") from exc
        except aiosmtplib.SMTPException as exc:
            smtp.close()
            raise TransientDeliveryError(
                f"{out.message_id}: SMTP error during {stage}: {exc}") from exc
        except asyncio.CancelledError:  # close() is giving up on this message
            smtp.close()
            if stage == "end of data":
                raise UnknownDeliveryError(
                    f"{out.message_id}: the mailer was closed while waiting for the reply "
                    "to the message data; it may have been delivered") from None
            raise TransientDeliveryError(
                f"{out.message_id}: the mailer was closed during {stage}") from None
        conn.sent += 1
        return reply

    async def _reset(self, conn: _Connection) -> None:
        """RSET after a refused transaction and keep the connection, or drop it."""
        try:
            await conn.smtp.rset(timeout=self.timeout)
        except Exception:
            conn.smtp.close()
        else:
            self._idle.append(conn)


def _caused_by(exc: BaseException | None, kind: type[BaseException]) -> bool:
    """Whether ``exc`` or anything in its cause/context chain is a ``kind``."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, kind):
            return True
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return False


def _parse_bool(name: str, value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in ("true", "1", "yes", "on"):
        return True
    if lowered in ("false", "0", "no", "off"):
        return False
    raise ValueError(f"{name} must be true or false, not {value!r}")
