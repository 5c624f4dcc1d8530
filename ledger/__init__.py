"""The ledger: what was issued, archived, rejected and delivered, in SQL.

Small stores over one database (:mod:`ledger.db`: engine, transactions, clock, column
types, migrations; :mod:`ledger.schema`: the tables), each owning its tables' queries:

    ledger.invoices        claimed once, archived once; payment status   (invoices.py)
    ledger.runs            bill runs, their chunks and counts, dead letters  (runs.py)
    ledger.deliveries      one row per (invoice, channel), a state machine  (deliveries.py)
    ledger.print_batches   paper invoices in batches, join/seal/close/ack  (print_batches.py)
    ledger.api_keys        the HTTP API's keys                              (api_keys.py)
    ledger.access          SMS codes, rate limits, second copies            (access.py)
    ledger.detailed_bills  call details on demand, once per invoice and line (detailed_bills.py)
    ledger.fleet           business accounts' fleet managers and lines      (fleet.py)
    ledger.preferences     subscribers' e-invoice/paper choices        (preferences.py)
    ledger.webhooks        the events outbox, endpoints, attempts          (webhooks.py)
    ledger.reports         read-only views for the CLI and the operations API (reports.py)

A store works only through the :class:`~ledger.db.Database` it is given and the public
row types of the others; none reaches into another's internals. :class:`Ledger` puts
them together over one engine::

    with Ledger.from_url("sqlite:///var/ledger.db") as ledger:
        ledger.migrate()
        claim = ledger.invoices.claim("oi", "OI-1", ...)
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy.engine import URL, Engine

from invoicer.ledger.access import MAX_CODE_ATTEMPTS, AccessStore, SecondCopy, SmsCode
from invoicer.ledger.api_keys import ApiKey, ApiKeyStore
from invoicer.ledger.db import (
    DEFAULT_URL,
    LOOP_STATEMENT_TIMEOUT_MS,
    Database,
    LedgerConflict,
    alembic_config,
    make_async_reader,
    make_engine,
    utcnow,
)
from invoicer.ledger.deliveries import DELIVERY_EVENTS, TRANSITIONS, Delivery, DeliveryStore
from invoicer.ledger.detailed_bills import DetailedBill, DetailedBillStore
from invoicer.ledger.fleet import FleetStore, Manager
from invoicer.ledger.invoices import Claim, Invoice, InvoiceStore, PaymentEvent
from invoicer.ledger.preferences import Preference, PreferenceStore
from invoicer.ledger.print_batches import (
    BatchLimits,
    PrintBatch,
    PrintBatchItem,
    PrintBatchStore,
    PrintCountMismatch,
    print_sort_key,
    sheets_for,
)
from invoicer.ledger.reports import Reports, RunProgress
from invoicer.ledger.runs import Reject, Run, RunChunk, RunStore
from invoicer.ledger.schema import (
    API_KEY_ROLES,
    CHANNELS,
    CHUNK_STATES,
    DELIVERY_MODES,
    DELIVERY_STATES,
    INVOICE_STATUSES,
    PAYMENT_STATUSES,
    PRINT_BATCH_STATES,
    TERMINAL_CHUNK_STATES,
    metadata,
)
from invoicer.ledger.webhooks import (
    EVENT_TYPES,
    MIN_SECRET_BYTES,
    Attempt,
    Due,
    Endpoint,
    Event,
    WebhookStore,
    new_secret,
)

__all__ = [
    "API_KEY_ROLES",
    "CHANNELS",
    "CHUNK_STATES",
    "DEFAULT_URL",
    "DELIVERY_EVENTS",
    "DELIVERY_MODES",
    "DELIVERY_STATES",
    "EVENT_TYPES",
    "INVOICE_STATUSES",
    "MAX_CODE_ATTEMPTS",
    "MIN_SECRET_BYTES",
    "PAYMENT_STATUSES",
    "PRINT_BATCH_STATES",
    "TERMINAL_CHUNK_STATES",
    "TRANSITIONS",
    "AccessStore",
    "ApiKey",
    "ApiKeyStore",
    "Attempt",
    "BatchLimits",
    "Claim",
    "Database",
    "Delivery",
    "DeliveryStore",
    "DetailedBill",
    "DetailedBillStore",
    "Due",
    "Endpoint",
    "Event",
    "FleetStore",
    "Invoice",
    "InvoiceStore",
    "Ledger",
    "LedgerConflict",
    "Manager",
    "PaymentEvent",
    "Preference",
    "PreferenceStore",
    "PrintBatch",
    "PrintBatchItem",
    "PrintBatchStore",
    "PrintCountMismatch",
    "Reject",
    "Reports",
    "Run",
    "RunChunk",
    "RunProgress",
    "RunStore",
    "SecondCopy",
    "SmsCode",
    "WebhookStore",
    "alembic_config",
    "metadata",
    "new_secret",
    "print_sort_key",
    "sheets_for",
]


#: Connections each process keeps for reads on PostgreSQL (:meth:`Ledger.from_url`).
READ_POOL_SIZE = 10

#: Connections each event loop (each API process) keeps for its asynchronous reads on
#: PostgreSQL (:meth:`Database.read_async`); requests beyond them wait for one, in turn,
#: without blocking the loop. Under load a connection stays taken until its request's
#: task runs again, one turn of a busy loop later: with 4 a history's throughput fell
#: by a third against 16 (docs/performance.md).
ASYNC_READ_POOL_SIZE = 16


class Ledger:
    """The service's ledger: its stores over one database.

    ``Ledger(engine)`` takes a ready engine (tests, or an app that owns its pool);
    ``Ledger.from_url(url)`` builds one with the settings the ledger relies on. Call
    :meth:`migrate` once before use (the CLI and workers do at start-up).
    """

    def __init__(self, engine: Engine, *, reader: Engine | None = None,
                 loop_reader: Engine | None = None,
                 async_reader: Any = None,
                 clock: Callable[[], datetime] = utcnow) -> None:
        self.db = Database(engine, reader=reader, loop_reader=loop_reader,
                           async_reader=async_reader, clock=clock)
        self.invoices = InvoiceStore(self.db)
        self.runs = RunStore(self.db)
        self.deliveries = DeliveryStore(self.db)
        self.print_batches = PrintBatchStore(self.db)
        self.api_keys = ApiKeyStore(self.db)
        self.access = AccessStore(self.db)
        self.detailed_bills = DetailedBillStore(self.db)
        self.fleet = FleetStore(self.db)
        self.preferences = PreferenceStore(self.db)
        self.reports = Reports(self.db)
        self.webhooks = WebhookStore(self.db)

    @classmethod
    def from_url(cls, url: str | URL | None = None, *, busy_timeout_ms: int = 30_000,
                 clock: Callable[[], datetime] = utcnow, **engine_kwargs: Any) -> Ledger:
        """A ledger on ``url`` (default ``sqlite:///var/ledger.db``).

        SQLite: the file's folder is created; WAL, foreign keys and a busy timeout are
        set on every connection. ``postgresql://`` means psycopg 3.
        """
        engine = make_engine(url, busy_timeout_ms=busy_timeout_ms, **engine_kwargs)
        if engine.dialect.name == "postgresql":
            # Reads in autocommit on a pool of their own (Database.read): one round trip.
            # A fixed pool: the API's forty request threads share READ_POOL_SIZE
            # connections and queue for one, instead of opening and closing "overflow"
            # connections under load (a PostgreSQL connection is a server process,
            # milliseconds to open: it was a sixth of a history request's time).
            reader = make_engine(url, reader=True, **{
                "pool_size": READ_POOL_SIZE, "max_overflow": 0, **engine_kwargs})
            # The event loop's own (Database.read): one thread, one connection; more
            # only where a process runs several loops (tests' servers in threads).
            loop_reader = make_engine(
                url, reader=True, statement_timeout_ms=LOOP_STATEMENT_TIMEOUT_MS,
                **{"pool_size": 1, "max_overflow": 3, "pool_timeout": 5, **engine_kwargs})
            # The API's hot reads, awaited on the loop (Database.read_async).
            async_reader = make_async_reader(
                url, pool_size=ASYNC_READ_POOL_SIZE, pool_timeout=5,
                statement_timeout_ms=LOOP_STATEMENT_TIMEOUT_MS)
            return cls(engine, reader=reader, loop_reader=loop_reader,
                       async_reader=async_reader, clock=clock)
        return cls(engine, clock=clock)

    @property
    def engine(self) -> Engine:
        """The SQLAlchemy engine (tests and tools; the stores are the API)."""
        return self.db.engine

    @property
    def dialect(self) -> str:
        """``sqlite`` or ``postgresql``."""
        return self.db.dialect

    @property
    def clock(self) -> Callable[[], datetime]:
        """The clock every timestamp comes from."""
        return self.db.clock

    def together(self) -> contextlib.AbstractContextManager[None]:
        """The stores' writes of this thread inside the block commit together when it
        ends, or not at all (:meth:`Database.together`)."""
        return self.db.together()

    def migrate(self, revision: str = "head") -> None:
        """Create the schema or upgrade it to ``revision``; idempotent, and safe from
        several processes at once (see :meth:`Database.migrate`)."""
        self.db.migrate(revision)

    def schema_revision(self) -> str | None:
        """The migration the database is at (``None`` before the first migrate)."""
        return self.db.schema_revision()

    def ping(self) -> None:
        """Reach the database once (readiness probes); raises if it cannot."""
        self.db.ping()

    def close(self) -> None:
        """Close the pool's connections."""
        self.db.close()

    async def aclose(self) -> None:
        """Close the pools' connections, the running event loop's asynchronous ones
        included (an app's shutdown)."""
        await self.db.aclose()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
