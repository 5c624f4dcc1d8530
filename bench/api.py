"""Subscriber API under load: 200 concurrent history requests and PDF downloads.

    python bench/api.py [--concurrency 200] [--rounds 5] [--pg URL]

A real ``uvicorn`` (one process, started here as ``invoicer serve`` starts it) on 127.0.0.1,
the ledger in PostgreSQL (127.0.0.1:5432, trust, database ``test``; a schema of its
own, dropped afterwards), a file archive holding the subscriber world of the tests
(``tests/api/world.py``). Each round sends ``concurrency`` requests at once, half
``GET /v1/subscriber/invoices`` (a link grant) and half ``GET /invoices/<token>.pdf``;
prints p50/p99 latency and requests/s. Loopback only; bounded in count and time.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
import sqlalchemy as sa  # noqa: E402

from invoicer.delivery import links  # noqa: E402
from invoicer.delivery.archive import FileArchive  # noqa: E402
from invoicer.delivery.links import LinkClaims  # noqa: E402
from invoicer.ledger import Invoice, Ledger  # noqa: E402
from tests.api.world import MAIN, populate  # noqa: E402

PG = ("postgresql+psycopg://postgres@127.0.0.1:5432/test",
      "postgresql+psycopg://root@127.0.0.1:5432/test")


def _admin(url: str | None) -> tuple[sa.Engine, str]:
    for candidate in ([url] if url else PG):
        engine = sa.create_engine(candidate, isolation_level="AUTOCOMMIT")
        try:
            with engine.connect():
                return engine, candidate
        except sa.exc.OperationalError:
            engine.dispose()
    raise SystemExit("PostgreSQL is not reachable on 127.0.0.1:5432")


def start_api(tmp: str, db_url: str, secret: str, *, workers: int = 1,
              wait: float = 30) -> tuple[subprocess.Popen, str]:
    """``invoicer serve``'s app under uvicorn on a free loopback port, over the ledger at
    ``db_url`` and an archive under ``tmp``; returns the process and its base URL once it
    answers."""
    port = _free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "INVOICER_DB_URL": db_url,
           "INVOICER_ARCHIVE_URL": f"file://{tmp}/archive",
           "INVOICER_SMS_URL": f"file://{tmp}/sms", "INVOICER_LINK_SECRET": secret}
    # As `invoicer serve` runs it (api.served_app, api.UVICORN_OPTIONS: httptools, ...),
    # without the access log.
    serve = ("import uvicorn\nfrom invoicer.api import UVICORN_OPTIONS\n"
             "uvicorn.run('invoicer.api:served_app', factory=True, host='127.0.0.1', "
             f"port={port}, workers={workers}, log_level='warning', access_log=False, "
             "**UVICORN_OPTIONS)")
    server = subprocess.Popen([sys.executable, "-c", serve], cwd=tmp, env=env)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + wait
    while True:
        try:
            httpx.get(f"{base}/openapi.json", timeout=2)
            return server, base
        except httpx.TransportError:
            if time.monotonic() > deadline or server.poll() is not None:
                server.kill()
                raise SystemExit("the server did not start") from None
            time.sleep(0.2)


@contextlib.contextmanager
def served_world(pg: str | None, *, workers: int = 1, wait: float = 30
                 ) -> Iterator[tuple[subprocess.Popen, str, str, Invoice]]:
    """The subscriber world of the tests in a PostgreSQL schema of its own and a file
    archive, served by ``start_api``: yields (server, base URL, a link token for the
    main account's invoice, that invoice); the server stops and the schema is dropped
    afterwards."""
    admin, pg_url = _admin(pg)
    schema = f"bench_api_{os.getpid()}_{secrets.token_hex(3)}"
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    db_url = f"{pg_url}?options=-csearch_path%3D{schema}"
    secret = secrets.token_hex(32)
    server = None
    try:
        with tempfile.TemporaryDirectory() as tmp:
            ledger = Ledger.from_url(db_url)
            ledger.migrate()
            populate(ledger, FileArchive(Path(tmp) / "archive"))
            invoice = ledger.invoices.get(MAIN[0], "OI-2026-11-0000123")
            ledger.close()
            token = links.sign(LinkClaims(MAIN[0], MAIN[1], invoice.number,
                                          int(time.time() + 3600)), secret.encode())
            server, base = start_api(tmp, db_url, secret, workers=workers, wait=wait)
            yield server, base, token, invoice
    finally:
        if server is not None:
            server.terminate()
            server.wait(15)
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def _one(client: httpx.AsyncClient, method: str, url: str, headers: dict) -> float:
    start = time.perf_counter()
    response = await client.request(method, url, headers=headers)
    await response.aread()
    if response.status_code != 200:
        raise RuntimeError(f"{url}: {response.status_code} {response.text[:200]}")
    return time.perf_counter() - start


async def _load(base: str, token: str, document: str, concurrency: int, rounds: int
                ) -> tuple[list[float], float, int]:
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=60) as client:
        # Warm-up: connections, the server's pools and caches.
        await asyncio.gather(*(_one(client, "GET", document, {}) for _ in range(10)))
        latencies: list[float] = []
        started = time.perf_counter()
        for _ in range(rounds):
            jobs = []
            for i in range(concurrency):
                if i % 2:
                    jobs.append(_one(client, "GET", document, {}))
                else:
                    jobs.append(_one(client, "GET", "/v1/subscriber/invoices",
                                     {"Authorization": f"Bearer {token}"}))
            latencies += await asyncio.gather(*jobs)
        elapsed = time.perf_counter() - started
    return latencies, elapsed, len(latencies)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--concurrency", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--pg", default=None, help="PostgreSQL URL (default: local trust)")
    args = parser.parse_args()

    with served_world(args.pg) as (_server, base, token, invoice):
        latencies, elapsed, count = asyncio.run(
            _load(base, token, f"/invoices/{token}.pdf", args.concurrency, args.rounds))
    ms = sorted(x * 1000 for x in latencies)
    p99 = ms[min(len(ms) - 1, int(len(ms) * 0.99))]
    print(f"{count} requests ({args.rounds} rounds of {args.concurrency} concurrent: half "
          f"history, half PDF downloads of {invoice.size:,} bytes), PostgreSQL ledger, "
          "1 uvicorn process")
    print(f"p50 {statistics.median(ms):.1f} ms  p99 {p99:.1f} ms  "
          f"{count / elapsed:.0f} requests/s")


if __name__ == "__main__":
    main()
