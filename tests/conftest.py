"""Shared fixtures: the spec's example record; the real peers every test folder may
start: moto's S3 server (one per session, a bucket per test), a misbehaving proxy in
front of it, an SMS gateway and an SMTP server on loopback (``tests/support/servers.py``);
the ledger's databases (SQLite and PostgreSQL); and helpers for races.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import secrets
import threading
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import boto3
import pytest
import sqlalchemy as sa
from botocore.config import Config
from hypothesis import settings

from invoicer.ledger import Ledger
from tests.support.servers import REGION, FaultProxy, SmsGatewayServer, SmtpServer

# No per-example deadline for property tests (hypothesis's default is 200 ms): what they
# check is what the code answers, and on a busy CI machine one example stalled past the
# deadline while its replay is not fails the test as "unreliable test timings". Tests
# that bound their time say so with their own assertion.
settings.register_profile("invoicer", deadline=None)
settings.load_profile("invoicer")

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "samples"

# The example of shared/spec/billing-record.md, verbatim.
SPEC_EXAMPLE = json.loads(r"""
{
  "schema": "billing-record/1",
  "invoice": {
    "number": "OI-2026-11-0000123",
    "kind": "original",
    "issue_date": "2026-11-05",
    "due_date": "2026-11-20",
    "period": {"start": "2026-10-01", "end": "2026-10-31"},
    "currency": "BRL",
    "locale": "pt_BR"
  },
  "operator": {
    "id": "oi",
    "name": "Oi S.A.",
    "tax_id": "76.535.764/0001-43",
    "address": {"lines": ["Rua Humberto de Campos, 425"], "postal_code": "22430-190",
                "city": "Rio de Janeiro", "country": "BR"},
    "support": {"phone": "*144", "web": "https://www.oi.com.br"}
  },
  "account": {
    "number": "1234567890",
    "segment": "consumer",
    "customer": {
      "name": "Maria da Conceição Souza",
      "tax_id": "123.456.789-09",
      "address": {"lines": ["Av. Atlântica, 1702", "Apto 501"], "postal_code": "22021-001",
                  "city": "Rio de Janeiro", "country": "BR"}
    }
  },
  "delivery": {
    "mode": "electronic",
    "email": "maria@example.com",
    "phone": "+5521987654321",
    "sms_notice": true,
    "attach_pdf": true
  },
  "balance": {
    "previous": "120.50",
    "payments": [{"date": "2026-10-18", "amount": "120.50", "method": "barcode"}],
    "adjustments": [{"date": "2026-10-20", "description": "Promised payment fee", "amount": "1.00"}]
  },
  "services": [
    {
      "id": "+5521987654321",
      "label": "Oi Mobile — Plano Controle 20GB",
      "charges": [
        {"code": "SUB", "description": "Monthly subscription", "category": "subscription",
         "quantity": "1", "amount": "59.90", "tax": "ICMS"},
        {"code": "LDI", "description": "International calls", "category": "international",
         "quantity": "14", "unit": "min", "amount": "23.10", "tax": "ICMS"}
      ],
      "usage": [
        {"start": "2026-10-03T14:22:05-03:00", "type": "local", "called": "+552133334444",
         "destination": "Rio de Janeiro", "duration_s": 125, "amount": "0.00"},
        {"start": "2026-10-04T09:01:00-03:00", "type": "sms", "called": "+5511999998888",
         "destination": "São Paulo", "amount": "0.25"},
        {"start": "2026-10-04T10:00:00-03:00", "type": "data", "volume_kb": 524288,
         "destination": "Internet", "amount": "0.00"}
      ]
    }
  ],
  "taxes": [{"code": "ICMS", "rate": "0.25", "base": "83.00", "amount": "20.75"}],
  "totals": {"charges": "83.00", "taxes": "20.75", "adjustments": "1.00",
             "total_due": "104.75"},
  "payment": {
    "method": "barcode",
    "scheme": "febraban",
    "code": "84680000001047501080000001234567890202611200"
  },
  "history": [{"period": "2026-09", "amount": "118.20"}, {"period": "2026-10", "amount": "120.50"}]
}
""")


@pytest.fixture
def record() -> dict:
    """A fresh, mutable copy of the spec's example record."""
    return copy.deepcopy(SPEC_EXAMPLE)


# --- S3: moto's real server ------------------------------------------------------------


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
    from moto.server import ThreadedMotoServer  # heavy: only for the tests that use S3

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



@pytest.fixture
def fault_proxy(moto_endpoint: str) -> Iterator[FaultProxy]:
    """A :class:`~tests.support.servers.FaultProxy` in front of moto; ``.url`` is its
    endpoint."""
    with FaultProxy(moto_endpoint) as proxy:
        yield proxy


# --- an SMS gateway and an SMTP server -------------------------------------------------


@pytest.fixture
def sms_gateway_server() -> Iterator[SmsGatewayServer]:
    """A running :class:`~tests.support.servers.SmsGatewayServer`; ``.url`` is its base."""
    with SmsGatewayServer() as server:
        yield server


@pytest.fixture(scope="module")
def _smtp_server_module() -> Iterator[SmtpServer]:
    logging.getLogger("mail.log").setLevel(logging.WARNING)  # aiosmtpd: a line per command
    with SmtpServer() as server:
        yield server


@pytest.fixture
def smtp_server(_smtp_server_module: SmtpServer) -> SmtpServer:
    """A running aiosmtpd on loopback, shared by a module, reset for every test."""
    _smtp_server_module.handler.reset()
    return _smtp_server_module


# ---------------------------------------------------------------------------- databases
#
# Ledger tests run on SQLite (a temporary file) and on the machine's PostgreSQL, reached
# at 127.0.0.1:5432 as ``postgres`` or ``root`` (trust auth), database ``test``, or at
# ``INVOICER_TEST_PG_URL``; each test gets a fresh schema (named after this session)
# that is dropped afterwards. Without PostgreSQL the PostgreSQL half is skipped, except
# under ``CI``, where it fails.

PG_CANDIDATES = (
    "postgresql+psycopg://postgres@127.0.0.1:5432/test",
    "postgresql+psycopg://root@127.0.0.1:5432/test",
)

_schemas = iter(range(1_000_000))
_session_tag = f"ledger_{os.getpid()}_{secrets.token_hex(3)}_"


@pytest.fixture(scope="session")
def pg_admin() -> Iterator[tuple[sa.Engine, str]]:
    """An autocommit engine on the test database and its URL."""
    candidates = [os.environ["INVOICER_TEST_PG_URL"]] if os.environ.get(
        "INVOICER_TEST_PG_URL") else list(PG_CANDIDATES)
    problems = []
    for url in candidates:
        engine = sa.create_engine(url, isolation_level="AUTOCOMMIT",
                                  connect_args={"connect_timeout": 3})
        try:
            with engine.connect() as conn:
                conn.execute(sa.text("SELECT 1"))
        except sa.exc.OperationalError as e:
            problems.append(f"{sa.make_url(url).render_as_string()}: {e.orig}")
            engine.dispose()
            continue
        yield engine, url
        # Sweep whatever a failed test left behind.
        with engine.connect() as conn:
            left = conn.execute(
                sa.text("SELECT nspname FROM pg_namespace WHERE nspname LIKE :p"),
                {"p": _session_tag.replace("_", r"\_") + "%"},
            ).scalars().all()
            for name in left:
                conn.execute(sa.text(f'DROP SCHEMA "{name}" CASCADE'))
        engine.dispose()
        return
    reason = "PostgreSQL not reachable: " + "; ".join(problems)
    if os.environ.get("CI"):
        pytest.fail(reason + " (CI is set: PostgreSQL is required)")
    pytest.skip(reason)


@pytest.fixture
def pg_url(pg_admin: tuple[sa.Engine, str]) -> Iterator[str]:
    """A URL to a fresh, empty PostgreSQL schema of this test's own."""
    admin, url = pg_admin
    schema = f"{_session_tag}{next(_schemas)}"
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    try:
        # libpq's options put every connection of the ledger in the schema.
        yield f"{url}?options=-csearch_path%3D{schema}"
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A URL to an empty database: a SQLite file, or a fresh PostgreSQL schema."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'ledger.db'}"
    return request.getfixturevalue("pg_url")


@pytest.fixture
def fresh(db_url: str) -> Iterator[Ledger]:
    """A ledger on an empty database (not migrated)."""
    led = Ledger.from_url(db_url)
    try:
        yield led
    finally:
        led.close()


@pytest.fixture
def led(fresh: Ledger) -> Ledger:
    """A ledger on a freshly migrated database."""
    fresh.migrate()
    return fresh


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A SQLite file, for what only SQLite has (pragmas, several processes on one file)."""
    return f"sqlite:///{tmp_path / 'only.db'}"


@pytest.fixture
def sqlite_led(sqlite_url: str) -> Iterator[Ledger]:
    """A migrated ledger on a SQLite file."""
    with Ledger.from_url(sqlite_url) as one:
        one.migrate()
        yield one


def _race(n: int, fn: Callable[[int], Any]) -> list[Any]:
    """Run ``fn(i)`` in ``n`` threads released together, so they really collide."""
    gate = threading.Barrier(n)

    def go(i: int) -> Any:
        gate.wait()
        return fn(i)

    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(go, range(n)))


@pytest.fixture
def race() -> Callable[[int, Callable[[int], Any]], list[Any]]:
    """``race(n, fn)``: ``fn(0..n-1)`` in ``n`` threads released at once; the results."""
    return _race


def _facts(**over: Any) -> dict[str, Any]:
    base: dict[str, Any] = dict(
        account="1234567890", period_start=date(2026, 10, 1), period_end=date(2026, 10, 31),
        issue_date=date(2026, 11, 5), due_date=date(2026, 11, 20), total=Decimal("104.75"),
        currency="BRL", locale="pt_BR", delivery_mode="electronic", postal_code="22021-001",
        country="BR", phone="+5521987654321",
    )
    base.update(over)
    return base


@pytest.fixture
def facts() -> Callable[..., dict[str, Any]]:
    """``facts(**over)``: the keyword arguments of ``ledger.invoices.claim`` for a
    plausible invoice, with ``over`` changed."""
    return _facts


@pytest.fixture(scope="session")
def templates() -> list:
    """Real rendered paper invoices of 1 to 5+ pages (``tests.workflows.print_world``),
    rendered once per session."""
    from tests.workflows.print_world import make_templates

    return make_templates()
