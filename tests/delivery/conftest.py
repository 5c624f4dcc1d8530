"""Real peers for the delivery tests: moto's S3 server, and a proxy that misbehaves.

moto's ``ThreadedMotoServer`` is a real HTTP server on loopback, started once per
session; every test gets its own bucket. :class:`FaultProxy` is a small real HTTP
server in front of it that answers chosen requests with S3 errors, stalls them, strips
a header or corrupts a body, and forwards the rest untouched: the client under test
talks HTTP to it exactly as it would to a misbehaving store.
"""

from __future__ import annotations

import http.client
import logging
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import boto3
import pytest
from botocore.config import Config
from moto.server import ThreadedMotoServer

from delivery.archive import FileArchive, S3Archive

REGION = "eu-west-1"


@pytest.fixture(scope="session")
def aws_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Fake credentials for moto, and no host AWS config leaking into the tests."""
    home = tmp_path_factory.mktemp("aws")
    with pytest.MonkeyPatch.context() as mp:
        for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL",
                     "AWS_ENDPOINT_URL_S3", "AWS_DEFAULT_REGION"):
            mp.delenv(name, raising=False)
        mp.setenv("AWS_ACCESS_KEY_ID", "testing")
        mp.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        mp.setenv("AWS_CONFIG_FILE", str(home / "config"))
        mp.setenv("AWS_SHARED_CREDENTIALS_FILE", str(home / "credentials"))
        mp.setenv("AWS_EC2_METADATA_DISABLED", "true")
        yield


@pytest.fixture(scope="session")
def moto_endpoint(aws_env: None) -> Iterator[str]:
    """``http://127.0.0.1:PORT`` of a moto S3 server running for the whole session."""
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per request
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture(scope="session")
def s3_admin(moto_endpoint: str):
    """A plain boto3 client straight to moto, for set-up and for looking behind the API."""
    return boto3.session.Session().client(
        "s3", endpoint_url=moto_endpoint, region_name=REGION,
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}),
    )


@pytest.fixture
def bucket(s3_admin) -> str:
    """A fresh, empty bucket for one test."""
    name = f"invoices-{uuid.uuid4().hex[:16]}"
    s3_admin.create_bucket(Bucket=name,
                           CreateBucketConfiguration={"LocationConstraint": REGION})
    return name


def closed_port() -> int:
    """A loopback port where nothing listens (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def s3_url(bucket: str, endpoint: str, **options: object) -> str:
    query = "&".join(f"{k}={v}" for k, v in {"endpoint": endpoint, "region": REGION,
                                             **options}.items())
    return f"s3://{bucket}/archive?{query}"


@pytest.fixture(params=["file", "s3"])
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def archive(backend: str, request: pytest.FixtureRequest, tmp_path: Path):
    """The archive under contract: a folder on tmp_path, or a bucket on moto."""
    if backend == "file":
        return FileArchive(tmp_path / "archive")
    bucket = request.getfixturevalue("bucket")
    endpoint = request.getfixturevalue("moto_endpoint")
    return S3Archive.from_url(s3_url(bucket, endpoint))


@pytest.fixture
def unreachable_archive(backend: str, tmp_path: Path, aws_env: None):
    """An archive whose store any I/O would notice: a folder that must stay absent, or
    an S3 endpoint where nothing listens (an attempt would raise a delivery error)."""
    if backend == "file":
        return FileArchive(tmp_path / "must-not-exist")
    return S3Archive.from_url(s3_url("nobucket", f"http://127.0.0.1:{closed_port()}",
                                     max_attempts=1, connect_timeout=0.5))


# --- fault injection -------------------------------------------------------------------


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


@pytest.fixture
def fault_proxy(moto_endpoint: str) -> Iterator[FaultProxy]:
    """A :class:`FaultProxy` in front of moto; ``fault_proxy.url`` is its endpoint."""
    with FaultProxy(moto_endpoint) as proxy:
        yield proxy
