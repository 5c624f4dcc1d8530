"""Real protocol peers on loopback for the tests: misbehaving S3, an SMS gateway, SMTP.

Plain classes and helpers, no fixtures (those are in ``tests/conftest.py``): import them
from here, never from a test module or a conftest.

- :class:`FaultProxy`: a small real HTTP server in front of moto's S3 server that
  answers chosen requests with S3 errors, stalls them, strips a header or corrupts a
  body, and forwards the rest untouched: the client under test talks HTTP to it exactly
  as it would to a misbehaving store.
- :class:`SmsGatewayServer`: a real HTTP SMS gateway with scripted replies.
- :class:`SmtpServer`: aiosmtpd with a scripted handler (:class:`ScriptedHandler`),
  restartable on the same port.
- :class:`WebhookReceiver`: a billing system's webhook endpoint that fails, stalls past
  the client's timeout, goes down and comes back on the same port, as scripted.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import json
import socket
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP as _AiosmtpdSMTP

REGION = "eu-west-1"
"""The region of every test bucket (moto keeps it, presigned URLs carry it)."""


def closed_port() -> int:
    """A loopback port where nothing listens (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def s3_url(bucket: str, endpoint: str, **options: object) -> str:
    """The archive URL of ``bucket`` (prefix ``archive``) on the S3 server at ``endpoint``."""
    query = "&".join(f"{k}={v}" for k, v in {"endpoint": endpoint, "region": REGION,
                                             **options}.items())
    return f"s3://{bucket}/archive?{query}"


# --- a misbehaving S3 -------------------------------------------------------------------


@dataclass
class Fault:
    """What to do to matching requests (``times=None``: to all of them)."""

    method: str | None = None
    times: int | None = 1
    status: int = 0  # answer with this S3 error ...
    code: str = ""
    after: bool = False  # ... after forwarding (the store did the work, the answer is lost)
    stall: float = 0.0  # hold the request this long, then hang up without an answer
    strip_header: str = ""  # forward without this request header
    corrupt: bool = False  # forward, then flip a byte of the response body
    only_with_header: str = ""  # match only requests carrying this header

    def matches(self, method: str, headers) -> bool:
        if self.times is not None and self.times <= 0:
            return False
        if self.method and self.method != method:
            return False
        return not self.only_with_header or self.only_with_header in headers


_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "proxy-connection", "te",
               "upgrade", "content-length"}


class FaultProxy:
    """A loopback HTTP proxy to an upstream server, with a list of :class:`Fault`."""

    def __init__(self, upstream: str) -> None:
        host, _, port = upstream.removeprefix("http://").partition(":")
        self.upstream = (host, int(port))
        self.faults: list[Fault] = []
        self.seen: list[tuple[str, str]] = []  # (method, path) of every request received
        self._lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as urllib3 expects

            def log_message(self, format, *args):  # requests are counted, not logged
                pass

            def do_GET(self):
                proxy._handle(self)

            do_PUT = do_POST = do_HEAD = do_DELETE = do_GET

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        # A short poll so that shutdown() at teardown does not wait half a second.
        self._thread = threading.Thread(target=self.server.serve_forever, args=(0.02,),
                                        daemon=True)

    def inject(self, **fault) -> Fault:
        f = Fault(**fault)
        with self._lock:
            self.faults.append(f)
        return f

    def count(self, method: str) -> int:
        with self._lock:
            return sum(1 for m, _ in self.seen if m == method)

    def _take(self, method: str, path: str, headers) -> Fault | None:
        with self._lock:
            self.seen.append((method, path))
            for fault in self.faults:
                if fault.matches(method, headers):
                    if fault.times is not None:
                        fault.times -= 1
                    return fault
        return None

    def _handle(self, req: BaseHTTPRequestHandler) -> None:
        length = int(req.headers.get("Content-Length") or 0)
        body = req.rfile.read(length) if length else b""
        fault = self._take(req.command, req.path, req.headers)
        if fault and fault.stall:
            time.sleep(fault.stall)
            req.close_connection = True
            return
        if fault and fault.status and not fault.after:
            self._error(req, fault)
            return
        headers = {k: v for k, v in req.headers.items() if k.lower() not in _HOP_BY_HOP}
        if fault and fault.strip_header:
            headers = {k: v for k, v in headers.items()
                       if k.lower() != fault.strip_header.lower()}
        conn = http.client.HTTPConnection(*self.upstream, timeout=30)
        try:
            conn.request(req.command, req.path, body=body, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
            resp_headers = resp.getheaders()
            upstream_length = resp.getheader("Content-Length", "0")
        finally:
            conn.close()
        if fault and fault.status:  # after=True: the work is done, the answer is lost
            self._error(req, fault)
            return
        if fault and fault.corrupt and data:
            data = bytes([data[0] ^ 0xFF]) + data[1:]
        req.send_response(resp.status)
        for name, value in resp_headers:
            if name.lower() not in _HOP_BY_HOP:
                req.send_header(name, value)
        req.send_header("Content-Length",
                        upstream_length if req.command == "HEAD" else str(len(data)))
        req.end_headers()
        if req.command != "HEAD":
            req.wfile.write(data)

    @staticmethod
    def _error(req: BaseHTTPRequestHandler, fault: Fault) -> None:
        body = (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            f"<Error><Code>{fault.code}</Code><Message>injected by the test proxy</Message>"
            "<RequestId>fault</RequestId></Error>"
        ).encode()
        req.send_response(fault.status)
        req.send_header("Content-Type", "application/xml")
        req.send_header("Content-Length", "0" if req.command == "HEAD" else str(len(body)))
        req.end_headers()
        if req.command != "HEAD":
            req.wfile.write(body)

    def __enter__(self) -> FaultProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join()


# --- an SMS gateway --------------------------------------------------------------------


@dataclass
class SmsReply:
    """One scripted answer of :class:`SmsGatewayServer`.

    ``body=None`` answers like a gateway that took the message: ``{"message_id": ...}``
    (the same id again for an ``Idempotency-Key`` it already took). ``stall`` holds the
    request that long, then hangs up without an answer.
    """

    status: int = 200
    body: bytes | str | dict | None = None
    headers: dict[str, str] | None = None
    stall: float = 0.0


@dataclass
class ReceivedRequest:
    """What the gateway received: header names lower-cased, the body as sent."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self):
        return json.loads(self.body)


def _to(body: bytes) -> str | None:
    try:
        return json.loads(body).get("to")
    except (ValueError, AttributeError):
        return None


class SmsGatewayServer:
    """A real HTTP SMS gateway on 127.0.0.1: scripted replies first, then 200s.

    Like the gateways the service requires, it de-duplicates on ``Idempotency-Key``:
    ``accepted`` maps each key it took (2xx) to its message id, once.
    """

    def __init__(self) -> None:
        self.script: list[SmsReply] = []
        self.refuse: set[str] = set()
        """Numbers answered 400 (an unknown subscriber), whatever the script says."""
        self.received: list[ReceivedRequest] = []
        self.accepted: dict[str, str] = {}
        self._lock = threading.Lock()
        self._closing = threading.Event()
        gateway = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format, *args):  # requests are recorded, not logged
                pass

            def do_POST(self):
                gateway._handle(self)

            do_GET = do_PUT = do_POST

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, args=(0.02,),
                                        daemon=True)

    def reply(self, *replies: SmsReply) -> None:
        """Queue answers for the next requests, in order."""
        with self._lock:
            self.script.extend(replies)

    def _handle(self, req: BaseHTTPRequestHandler) -> None:
        length = int(req.headers.get("Content-Length") or 0)
        body = req.rfile.read(length) if length else b""
        with self._lock:
            self.received.append(ReceivedRequest(
                req.command, req.path, {k.lower(): v for k, v in req.headers.items()}, body))
            reply = self.script.pop(0) if self.script else SmsReply()
            if self.refuse and _to(body) in self.refuse:
                reply = SmsReply(400, {"error": "unknown subscriber"})
            key = req.headers.get("Idempotency-Key", "")
            if 200 <= reply.status <= 299 and reply.body is None:
                message_id = self.accepted.setdefault(key, f"gw-{len(self.accepted) + 1}")
                payload: bytes = json.dumps({"message_id": message_id}).encode()
            else:
                if 200 <= reply.status <= 299:
                    self.accepted.setdefault(key, "")
                raw = reply.body if reply.body is not None else b""
                payload = (json.dumps(raw).encode() if isinstance(raw, dict)
                           else raw.encode() if isinstance(raw, str) else raw)
        if reply.stall:
            self._closing.wait(reply.stall)
            req.close_connection = True
            return
        req.send_response(reply.status)
        req.send_header("Content-Type", "application/json")
        for name, value in (reply.headers or {}).items():
            req.send_header(name, value)
        req.send_header("Content-Length", str(len(payload)))
        req.end_headers()
        req.wfile.write(payload)

    def __enter__(self) -> SmsGatewayServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._closing.set()
        self.server.shutdown()
        self.server.server_close()
        self._thread.join()


# --- an SMTP server ---------------------------------------------------------------------


class ScriptedHandler:
    """An aiosmtpd handler that answers from a script and keeps what it accepted.

    ``data_script`` holds one action per DATA received, used in order (then
    ``"accept"``): ``"accept"``, an SMTP reply such as ``"451 4.3.0 Try later"``, or
    ``"drop"`` (close the connection after the whole message arrived, before any
    reply), ``"stall"`` (reply after 3 s). ``rcpt_script`` works the same for RCPT TO
    (``"accept"`` or a reply).
    """

    def __init__(self) -> None:
        self.data_script: list[str] = []
        self.rcpt_script: list[str] = []
        self.received: list[tuple[str, list[str], bytes]] = []  # accepted messages
        self.data_attempts = 0  # DATA payloads received, whatever the answer
        self.connections = 0  # opened since the last reset
        self.open_now = self.max_open = 0  # connections open at once
        self.drop_at_data_command = 0  # hang up this many times on "DATA", before 354
        self._lock = threading.Lock()

    def reset(self) -> None:
        with self._lock:
            self.data_script.clear()
            self.rcpt_script.clear()
            self.received.clear()
            self.data_attempts = self.connections = self.drop_at_data_command = 0
            self.max_open = self.open_now

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        with self._lock:
            action = self.rcpt_script.pop(0) if self.rcpt_script else "accept"
        if action != "accept":
            return action
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server, session, envelope):
        with self._lock:
            self.data_attempts += 1
            action = self.data_script.pop(0) if self.data_script else "accept"
        if action == "drop":
            # The message is fully received; the client never hears the verdict.
            server.transport.close()
            return "250 2.0.0 never seen"
        if action == "stall":  # answer much later than any client waits
            await asyncio.sleep(3)
            return "250 2.0.0 too late"
        if action != "accept":
            return action
        with self._lock:
            self.received.append((envelope.mail_from, list(envelope.rcpt_tos),
                                  bytes(envelope.original_content)))
            n = len(self.received)
        return f"250 2.0.0 Ok: queued as M{n}"


class _CountingSMTP(_AiosmtpdSMTP):
    """aiosmtpd's SMTP session, counting connections and able to hang up on DATA."""

    def connection_made(self, transport):
        handler = self.event_handler
        with handler._lock:
            handler.connections += 1
            handler.open_now += 1
            handler.max_open = max(handler.max_open, handler.open_now)
        super().connection_made(transport)

    def connection_lost(self, error):
        with self.event_handler._lock:
            self.event_handler.open_now -= 1
        super().connection_lost(error)

    async def smtp_DATA(self, arg):
        handler = self.event_handler
        with handler._lock:
            drop = handler.drop_at_data_command > 0
            if drop:
                handler.drop_at_data_command -= 1
        if drop:  # before the 354: nothing of the message can have arrived
            self.transport.close()
            return
        await super().smtp_DATA(arg)


class SmtpServer:
    """An aiosmtpd server on 127.0.0.1 that can be started, stopped and restarted on
    the same port (``url`` stays valid across restarts). ``ssl_context`` makes it an
    implicit-TLS (smtps) server; other keywords go to aiosmtpd's ``SMTP``
    (``tls_context`` for STARTTLS, ``authenticator``, ``timeout``...)."""

    def __init__(self, port: int | None = None, *, ssl_context=None, **smtp_kwargs) -> None:
        self.handler = ScriptedHandler()
        self.port = port or closed_port()
        self.ssl_context = ssl_context
        self.smtp_kwargs = smtp_kwargs
        self._controller: Controller | None = None

    @property
    def url(self) -> str:
        scheme = "smtps" if self.ssl_context else "smtp"
        return f"{scheme}://127.0.0.1:{self.port}?timeout=5&local_hostname=client.test"

    def start(self) -> SmtpServer:
        handler, kwargs = self.handler, self.smtp_kwargs

        class _Controller(Controller):
            def factory(self):
                return _CountingSMTP(handler, **self.SMTP_kwargs)

        self._controller = _Controller(handler, hostname="127.0.0.1", port=self.port,
                                       server_hostname="smtp.test", ready_timeout=5,
                                       ssl_context=self.ssl_context, **kwargs)
        self._controller.start()
        # start() opens one connection itself to check the server is up.
        self.handler.reset()
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def __enter__(self) -> SmtpServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


# --- a webhook receiver -----------------------------------------------------------------


@dataclass
class Hook:
    """One webhook request as the receiver saw it; ``status`` is what it answered
    (``None``: it stalled past the client's patience, or dropped the connection)."""

    headers: dict
    body: bytes
    status: int | None

    @property
    def event_id(self) -> str:
        return json.loads(self.body)["id"]

    def json(self):
        return json.loads(self.body)


class WebhookReceiver:
    """A real HTTP webhook endpoint on 127.0.0.1, restartable on the same port.

    ``script`` answers the next requests in order: an int is a status, ``("stall", s)``
    holds the request ``s`` seconds then drops it; when the script is empty every request
    gets ``200`` (after ``delay`` seconds). Every request is kept in ``received``.
    """

    def __init__(self, port: int = 0) -> None:
        self.script: list = []
        self.received: list[Hook] = []
        self.delay = 0.0
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._port = port
        self._server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._port}/hooks"

    def start(self) -> WebhookReceiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format, *args):  # requests are recorded, not logged
                pass

            def setup(self):
                super().setup()
                with receiver._lock:
                    receiver._connections.add(self.connection)

            def do_POST(self):
                receiver._handle(self)

        self._closing.clear()
        self._connections: set[socket.socket] = set()
        self._server = ThreadingHTTPServer(("127.0.0.1", self._port), Handler)
        self._server.daemon_threads = True
        self._port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.02,),
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Go down: the port refuses connections until :meth:`start`."""
        if self._server is not None:
            self._closing.set()
            self._server.shutdown()
            self._server.server_close()
            self._thread.join()
            with self._lock:  # kept-alive connections die with the server
                for conn in self._connections:
                    with contextlib.suppress(OSError):
                        conn.shutdown(socket.SHUT_RDWR)
                self._connections.clear()
            self._server = None

    def _handle(self, req: BaseHTTPRequestHandler) -> None:
        length = int(req.headers.get("Content-Length") or 0)
        body = req.rfile.read(length) if length else b""
        with self._lock:
            reply = self.script.pop(0) if self.script else 200
            hook = Hook({k.lower(): v for k, v in req.headers.items()}, body,
                        reply if isinstance(reply, int) else None)
            self.received.append(hook)
        if not isinstance(reply, int):
            self._closing.wait(reply[1])
            req.close_connection = True
            return
        if self.delay:
            time.sleep(self.delay)
        req.send_response(reply)
        req.send_header("Content-Length", "0")
        req.end_headers()

    def __enter__(self) -> WebhookReceiver:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
