"""A real API server for the tests: uvicorn on 127.0.0.1 (a free port) in a thread.

The tests talk HTTP to it with httpx, exactly as a print shop would: headers, status
lines, streamed bodies and broken-off downloads are the real ones, not a test client's
imitation. Behind it: a SQLite ledger and either a file archive or S3 on moto's real
server, with two operators' closed print batches and keys of every kind.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest
import uvicorn

from api import create_app
from api.keys import create_key
from delivery import printing
from delivery.archive import FileArchive, S3Archive
from ledger import ApiKeyStore, Ledger
from settings import Settings
from tests.delivery.conftest import aws_env, bucket, moto_endpoint, s3_admin, s3_url  # noqa: F401
from tests.delivery.test_printing import queue, templates  # noqa: F401 - shared fixture

OTHER = "vivo"


class LiveServer:
    """uvicorn serving ``app`` on a socket of our own (port chosen by the kernel)."""

    def __init__(self, app) -> None:
        self._socket = socket.socket()
        self._socket.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._socket.getsockname()[1]}"
        config = uvicorn.Config(app, log_level="warning", lifespan="on", access_log=False)
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
def shop(request: pytest.FixtureRequest, tmp_path: Path, templates  # noqa: F811
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
    ApiKeyStore(ledger).revoke(keys["revoked"].key.id)
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
