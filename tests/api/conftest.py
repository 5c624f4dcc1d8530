"""A real API server for the tests: uvicorn on 127.0.0.1 (a free port) in a thread.

The tests talk HTTP to it with httpx, exactly as a print shop would: headers, status
lines, streamed bodies and broken-off downloads are the real ones, not a test client's
imitation. Behind it: a SQLite ledger and either a file archive or S3 on moto's real
server, with two operators' closed print batches and keys of every kind.
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest
import uvicorn

from invoicer.api import UVICORN_OPTIONS, create_app
from invoicer.api.keys import create_key
from invoicer.delivery.archive import FileArchive, S3Archive
from invoicer.ledger import Ledger
from invoicer.settings import Settings
from invoicer.workflows import printing
from tests.api.fleet_world import populate_business
from tests.support.servers import s3_url
from tests.workflows.print_world import queue

OTHER = "vivo"


class LiveServer:
    """uvicorn serving ``app`` on a socket of our own (port chosen by the kernel)."""

    def __init__(self, app) -> None:
        # IPPROTO_TCP spelled out: asyncio sets TCP_NODELAY only on sockets whose proto
        # says TCP, and without it every response waits 40 ms for a delayed ACK.
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        self._socket.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._socket.getsockname()[1]}"
        # As `invoicer serve` runs it (uvicorn's own X-Forwarded-For handling off).
        config = uvicorn.Config(app, log_level="warning", lifespan="on", access_log=False,
                                **UVICORN_OPTIONS)
        self.server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self.server.run,
                                        kwargs={"sockets": [self._socket]}, daemon=True)

    def __enter__(self) -> LiveServer:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self._thread.join(10)
        self._socket.close()


@pytest.fixture(params=["file", "s3"])
def shop(request: pytest.FixtureRequest, tmp_path: Path, templates
         ) -> Iterator[SimpleNamespace]:
    """Two operators' closed batches behind a running API; keys for every case.

    ``oi`` has its batch, ``vivo`` its own; ``keys``: ``oi`` (print shop of oi),
    ``vivo`` (print shop of vivo), ``both`` (one shop printing for both), ``billing``
    (oi, the wrong role) and ``revoked`` (was oi's print shop).
    """
    ledger = Ledger.from_url(f"sqlite:///{tmp_path / 'ledger.db'}")
    ledger.migrate()
    if request.param == "file":
        archive = FileArchive(tmp_path / "archive")
    else:
        archive = S3Archive.from_url(s3_url(request.getfixturevalue("bucket"),
                                            request.getfixturevalue("moto_endpoint")))
    queue(ledger, archive, templates, 9, seed=31)
    queue(ledger, archive, templates, 4, seed=32, prefix="VV", operator=OTHER)
    report = printing.close(ledger, archive)
    assert report.failed == [] and len(report.closed) == 2
    batches = {c.operator_id: c for c in report.closed}
    keys = {
        "oi": create_key(ledger, role="print_shop", operators=["oi"], name="Gráfica Rio"),
        "vivo": create_key(ledger, role="print_shop", operators=[OTHER], name="Print SP"),
        "both": create_key(ledger, role="print_shop", operators=["oi", OTHER], name="Both"),
        "billing": create_key(ledger, role="billing", operators=["oi"], name="Billing"),
        "revoked": create_key(ledger, role="print_shop", operators=["oi"], name="Old shop"),
    }
    ledger.api_keys.revoke(keys["revoked"].key.id)
    settings = Settings(db_url="sqlite:///unused", archive_url="file:///unused")
    app = create_app(settings, ledger=ledger, archive=archive)
    with LiveServer(app) as server, httpx.Client(base_url=server.url, timeout=30) as http:
        yield SimpleNamespace(
            backend=request.param, ledger=ledger, archive=archive, http=http, url=server.url,
            batch=batches["oi"], other=batches[OTHER],
            tokens={name: issued.token for name, issued in keys.items()},
            keys={name: issued.key for name, issued in keys.items()},
        )
    ledger.close()


def auth(token: str) -> dict[str, str]:
    """The Authorization header for ``token``."""
    return {"Authorization": f"Bearer {token}"}


# ---------------------------------------------------------------------------- subscribers


class Clock:
    """A settable clock for the ledger and the access service (codes, tokens, windows)."""

    def __init__(self) -> None:
        from datetime import UTC, datetime

        self.now = datetime.now(UTC)

    def __call__(self):
        return self.now

    def advance(self, seconds: float) -> None:
        from datetime import timedelta

        self.now += timedelta(seconds=seconds)


SECRET = b"subscriber-tests-link-secret-0123456789"


@pytest.fixture
def sub(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SimpleNamespace]:
    """The subscriber world (``tests/api/world.py``) behind a running API, on SQLite
    and a file archive, with an SMS outbox file, a settable clock and billing keys.

    ``@pytest.mark.parametrize("sub", ["sqlite", "postgresql", "postgresql-s3"],
    indirect=True)`` runs a test on PostgreSQL too (a schema of its own): there the
    subscriber's hot reads are awaited on the event loop
    (``ledger.db.Database.read_async``), not read inline; ``-s3``: the archive in S3
    (moto's server), which the async downloads read in the thread pool."""
    from invoicer.api.access import AccessLimits
    from invoicer.api.billrun import ThreadBillRunQueue
    from invoicer.delivery.sms import FileSmsOutbox
    from tests.api.world import populate

    clock = Clock()
    kind = getattr(request, "param", "sqlite")
    if kind.startswith("postgresql"):
        db = request.getfixturevalue("pg_url")
    else:
        db = f"sqlite:///{tmp_path / 'ledger.db'}"
    ledger = Ledger.from_url(db, clock=clock)
    ledger.migrate()
    if kind.endswith("-s3"):
        archive_url = s3_url(request.getfixturevalue("bucket"),
                             request.getfixturevalue("moto_endpoint"))
        archive = S3Archive.from_url(archive_url)
    else:
        archive_url = f"file://{tmp_path / 'archive'}"
        archive = FileArchive(tmp_path / "archive")
    issued = populate(ledger, archive)
    outbox = FileSmsOutbox(tmp_path / "sms")
    settings = Settings(db_url=db, archive_url=archive_url,
                        sms_url=f"file://{tmp_path / 'sms'}",
                        mail_url=f"file://{tmp_path / 'outbox'}",
                        link_secret=SECRET.decode())
    runs = ThreadBillRunQueue(settings, tmp_path / "spool", workers=1)
    # Generous per-client limits: every test calls from 127.0.0.1.
    limits = AccessLimits(codes_per_client=10_000, tries_per_client=10_000)
    keys = {
        "billing": create_key(ledger, role="billing", operators=["oi"], name="Billing oi"),
        "billing_vivo": create_key(ledger, role="billing", operators=[OTHER], name="B vivo"),
        "shop": create_key(ledger, role="print_shop", operators=["oi"], name="Shop"),
    }
    app = create_app(settings, ledger=ledger, archive=archive, sms=outbox, link_secret=SECRET,
                     limits=limits, bill_runs=runs)
    with LiveServer(app) as server, client(server.url) as http:
        yield SimpleNamespace(http=http, url=server.url, ledger=ledger, archive=archive,
                              clock=clock, outbox=outbox, access=app.state.access,
                              issued=issued, settings=settings, app=app, runs=runs,
                              tokens={name: k.token for name, k in keys.items()},
                              tmp=tmp_path)
    ledger.close()


def sms_code(outbox, phone: str, *, after: int = 0, timeout: float = 10.0) -> str:
    """The code in the newest SMS to ``phone`` beyond the first ``after`` messages."""
    import re

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        mine = [m for m in outbox.messages() if m.to == phone]
        if len(mine) > after:
            return re.search(r"\b([0-9]{6})\b", mine[-1].text).group(1)
        time.sleep(0.02)
    raise AssertionError(f"no SMS to {phone} within {timeout} s")


def client(base_url: str) -> httpx.Client:
    """An HTTP client with TCP_NODELAY: httpcore writes a POST's headers and body
    separately, and Nagle plus the server's delayed ACK would add 40 ms to each."""
    transport = httpx.HTTPTransport(
        socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)])
    return httpx.Client(base_url=base_url, timeout=30, transport=transport)


# --- shared by the page tests and the detailed-bill tests ---------------------------

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


@pytest.fixture(scope="module")
def browser():
    if not os.path.exists(CHROMIUM):
        reason = "chromium is not installed (scripts/install --test installs it)"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, headless=True,
                                     args=["--no-sandbox"])
        yield chromium
        chromium.close()


@pytest.fixture
def fleet(sub):
    """The subscriber world plus the business accounts, and a billing key for both
    operators."""
    sub.numbers = populate_business(sub.ledger, sub.archive)
    sub.billing = create_key(sub.ledger, role="billing", operators=["oi", "norrsken"],
                             name="Billing fleet").token
    return sub
