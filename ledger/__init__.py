"""The ledger: what was issued, archived, rejected and delivered, in SQL.

One database, chosen by URL (``sqlite:///var/ledger.db`` on one machine,
``postgresql+psycopg://...`` at scale), holds:

- ``runs``: one row per bill run (source, start, finish), with counters;
- ``invoices``: one row per (operator, invoice number) and the facts the API, the print
  batches and the subscriber pages need without opening the archive;
- ``rejects``: dead letters, one per (source, line);
- ``deliveries``: one row per (invoice, channel), a small state machine;
- ``print_batches`` and ``print_batch_items``: the batches paper invoices are printed in
  (open -> closing -> closed -> printed) and which invoice is in which (at most one).

Idempotency lives in the database, never in memory: every "do this once" is a unique
constraint plus ``INSERT ... ON CONFLICT DO NOTHING``, and every state change is a
compare-and-set ``UPDATE ... WHERE state IN (...)``, so two processes (or two machines)
racing on the same record agree on one winner, on SQLite and on PostgreSQL alike.

SQLAlchemy Core, not the ORM: the ledger is a handful of exact statements (upserts,
compare-and-set updates, batch lookups) whose atomicity is the whole point; Core states
them literally, with no session or identity map to reason about across a process pool,
and hands back frozen dataclasses like the rest of the pipeline.

The schema is created and upgraded only by the Alembic migrations in ``migrations/``
(:meth:`Ledger.migrate`); the tables below describe the schema at head for the queries
and are checked against the migrations by the tests.

Each process must use its own connections: a :class:`Ledger` made before a ``fork``
drops its inherited pool in the child by itself (the parent's connections stay the
parent's), but the simplest pattern for a pool is ``Ledger.from_url(url)`` in each
worker's initializer.
"""

from __future__ import annotations

import os
import sqlite3
import time
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, fields
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL, Connection, Engine, make_url

from invoicer.resources import package_path

__all__ = [
    "CHANNELS",
    "DEFAULT_URL",
    "DELIVERY_MODES",
    "DELIVERY_STATES",
    "INVOICE_STATUSES",
    "PAYMENT_STATUSES",
    "PRINT_BATCH_STATES",
    "TRANSITIONS",
    "Claim",
    "Delivery",
    "Invoice",
    "Ledger",
    "LedgerConflict",
    "PrintBatch",
    "PrintBatchItem",
    "PrintCountMismatch",
    "Reject",
    "Run",
    "RunCounts",
    "alembic_config",
    "metadata",
    "print_sort_key",
    "sheets_for",
]

DEFAULT_URL = "sqlite:///var/ledger.db"
MIGRATIONS = package_path("migrations")

#: ``claimed``: the number is taken and someone is (or was) rendering it;
#: ``archived``: the PDF is in the archive and its checksum is recorded: done.
INVOICE_STATUSES = ("claimed", "archived")
PAYMENT_STATUSES = ("unpaid", "paid", "overdue", "partially_paid")
DELIVERY_MODES = ("electronic", "paper", "both")
CHANNELS = ("email", "sms", "print")
DELIVERY_STATES = ("pending", "sending", "sent", "failed_permanent", "unknown")

#: The delivery state machine. ``sending -> pending`` is a transient failure put back for
#: a retry; leaving ``sent``, ``failed_permanent`` or ``unknown`` is a deliberate re-send
#: by an operator (a new attempt), never an automatic one.
TRANSITIONS: Mapping[str, frozenset[str]] = {
    "pending": frozenset({"sending"}),
    "sending": frozenset({"sent", "failed_permanent", "unknown", "pending"}),
    "sent": frozenset({"sending"}),
    "failed_permanent": frozenset({"sending"}),
    "unknown": frozenset({"sending"}),
}

# SQLite's default limit on bound parameters was 999 until 3.32; stay well below it.
_IN_CHUNK = 500

# ---------------------------------------------------------------------------- types


class Money(sa.TypeDecorator):
    """Exact money: ``NUMERIC`` on PostgreSQL, decimal text on SQLite.

    SQLite has no decimal type: a ``NUMERIC`` column there keeps only 15 significant
    digits (12345678901234.56 comes back as ...234.6), so SQLite stores the canonical
    decimal string instead. Floats are refused at the door: money is ``Decimal`` in and
    ``Decimal`` out, with the scale it was given (``Decimal("104.75")`` stays two places).
    """

    impl = sa.Numeric
    cache_ok = True

    def load_dialect_impl(self, dialect: sa.Dialect) -> sa.types.TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(sa.String(40))
        return dialect.type_descriptor(sa.Numeric(asdecimal=True))

    def process_bind_param(self, value: Any, dialect: sa.Dialect) -> Any:
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, Decimal | int):
            raise TypeError(f"money must be Decimal, not {type(value).__name__}: {value!r}")
        value = Decimal(value)
        if not value.is_finite():
            raise ValueError(f"money must be finite: {value!r}")
        return format(value, "f") if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: sa.Dialect) -> Decimal | None:
        if value is None:
            return None
        return value if isinstance(value, Decimal) else Decimal(str(value))


class UTCDateTime(sa.TypeDecorator):
    """An instant, always timezone-aware UTC in Python.

    PostgreSQL keeps ``timestamptz``; SQLite keeps naive ISO text, so values are stored
    in UTC there and tagged UTC when read back. Naive datetimes are refused: a local
    time without an offset is a bug waiting for the next DST change.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: sa.Dialect) -> Any:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime: {value!r}")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# Integer on SQLite so that the id is the rowid (autoincrementing); 64-bit on PostgreSQL,
# because ten million invoices a month outgrow 32 bits within a working life.
BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _in(values: Iterable[str]) -> str:
    return ", ".join(f"'{v}'" for v in values)


# ---------------------------------------------------------------------------- schema

metadata = sa.MetaData(
    # Named constraints, because SQLite's batch migrations can only drop what has a name.
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

runs = sa.Table(
    "runs",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("source", sa.Text, nullable=False),
    sa.Column("source_sha256", sa.String(64)),
    sa.Column("expected", sa.Integer),
    sa.Column("started_at", UTCDateTime, nullable=False),
    sa.Column("finished_at", UTCDateTime),
)

# Outcomes that leave no row of their own (already done, repeated in the file...), kept
# as counters that are only ever incremented by a single atomic upsert.
run_counters = sa.Table(
    "run_counters",
    metadata,
    sa.Column("run_id", BigId, sa.ForeignKey("runs.id"), primary_key=True),
    sa.Column("outcome", sa.String(64), primary_key=True),
    sa.Column("n", sa.BigInteger, nullable=False),
)

invoices = sa.Table(
    "invoices",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("operator_id", sa.String(64), nullable=False),
    sa.Column("number", sa.String(64), nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("account", sa.String(64), nullable=False),
    sa.Column("period_start", sa.Date, nullable=False),
    sa.Column("period_end", sa.Date, nullable=False),
    sa.Column("issue_date", sa.Date, nullable=False),
    sa.Column("due_date", sa.Date, nullable=False),
    sa.Column("total", Money, nullable=False),
    sa.Column("currency", sa.String(3), nullable=False),
    sa.Column("locale", sa.String(35), nullable=False),
    sa.Column("delivery_mode", sa.String(16), nullable=False),
    sa.Column("postal_code", sa.String(32)),
    sa.Column("country", sa.String(2)),
    sa.Column("phone", sa.String(16)),
    sa.Column("record_sha256", sa.String(64)),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("sha256", sa.String(64)),
    sa.Column("archive_key", sa.String(512)),
    sa.Column("renderer_version", sa.String(64)),
    sa.Column("pages", sa.Integer),
    sa.Column("size", sa.BigInteger),
    sa.Column("payment_status", sa.String(16), nullable=False),
    sa.Column("paid_amount", Money),
    sa.Column("paid_on", sa.Date),
    sa.Column("run_id", BigId, sa.ForeignKey("runs.id")),
    sa.Column("source_line", sa.Integer),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.Column("archived_at", UTCDateTime),
    sa.UniqueConstraint("operator_id", "number"),
    sa.CheckConstraint(f"status IN ({_in(INVOICE_STATUSES)})", name="status"),
    sa.CheckConstraint(f"payment_status IN ({_in(PAYMENT_STATUSES)})", name="payment_status"),
    sa.CheckConstraint(f"delivery_mode IN ({_in(DELIVERY_MODES)})", name="delivery_mode"),
    sa.CheckConstraint("kind IN ('original', 'duplicate')", name="kind"),
    sa.Index(None, "operator_id", "account", "issue_date"),
    sa.Index(None, "phone"),
    sa.Index(None, "run_id", "status"),
)

rejects = sa.Table(
    "rejects",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("run_id", BigId, sa.ForeignKey("runs.id"), nullable=False),
    # The source's SHA-256 when known (so a resumed run of the same file dead-letters a
    # line once, whatever run sees it), else "run:<id>".
    sa.Column("source_key", sa.String(80), nullable=False),
    sa.Column("line", sa.Integer, nullable=False),
    sa.Column("invoice_number", sa.Text),
    sa.Column("reason", sa.String(64), nullable=False),
    sa.Column("path", sa.Text, nullable=False),
    sa.Column("message", sa.Text, nullable=False),
    sa.Column("issues", sa.JSON, nullable=False),
    sa.Column("raw", sa.LargeBinary, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.UniqueConstraint("source_key", "line"),
    sa.Index(None, "run_id", "reason"),
)

deliveries = sa.Table(
    "deliveries",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("invoice_id", BigId, sa.ForeignKey("invoices.id"), nullable=False),
    sa.Column("channel", sa.String(16), nullable=False),
    sa.Column("state", sa.String(20), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("last_error", sa.Text),
    sa.Column("message_id", sa.String(255)),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.Column("sent_at", UTCDateTime),
    sa.Column("handed_off_at", UTCDateTime),
    sa.UniqueConstraint("invoice_id", "channel"),
    sa.CheckConstraint(f"channel IN ({_in(CHANNELS)})", name="channel"),
    sa.CheckConstraint(f"state IN ({_in(DELIVERY_STATES)})", name="state"),
    sa.Index(None, "state", "updated_at"),
)

#: A print batch's life: ``open`` takes paper invoices; ``closing`` has its membership
#: and order frozen (sealed by size or on demand) while its PDF is made; ``closed`` is
#: archived and handed to the print shop; ``printed`` is acknowledged by the shop.
PRINT_BATCH_STATES = ("open", "closing", "closed", "printed")

print_batches = sa.Table(
    "print_batches",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("operator_id", sa.String(64), nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("max_documents", sa.Integer, nullable=False),
    sa.Column("max_sheets", sa.Integer, nullable=False),
    sa.Column("documents", sa.Integer, nullable=False),
    sa.Column("sheets", sa.Integer, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("sealed_at", UTCDateTime),
    sa.Column("closed_at", UTCDateTime),
    sa.Column("printed_at", UTCDateTime),
    sa.Column("closer", sa.String(64)),
    sa.Column("closer_since", UTCDateTime),
    sa.Column("last_error", sa.Text),
    sa.Column("pdf_key", sa.String(512)),
    sa.Column("pdf_sha256", sa.String(64)),
    sa.Column("pdf_size", sa.BigInteger),
    sa.Column("csv_key", sa.String(512)),
    sa.Column("json_key", sa.String(512)),
    sa.Column("printed_documents", sa.Integer),
    sa.Column("printed_sheets", sa.Integer),
    sa.CheckConstraint(f"state IN ({_in(PRINT_BATCH_STATES)})", name="state"),
    sa.CheckConstraint("max_documents > 0 AND max_sheets > 0", name="limits"),
    # At most one open batch per operator: where concurrent joiners meet.
    sa.Index(None, "operator_id", unique=True, sqlite_where=sa.text("state = 'open'"),
             postgresql_where=sa.text("state = 'open'")),
    sa.Index(None, "state", "operator_id"),
)

# The primary key is the invoice: an invoice is in at most one batch, whoever races.
print_batch_items = sa.Table(
    "print_batch_items",
    metadata,
    sa.Column("invoice_id", BigId, sa.ForeignKey("invoices.id"), primary_key=True,
              autoincrement=False),
    sa.Column("batch_id", BigId, sa.ForeignKey("print_batches.id"), nullable=False),
    sa.Column("delivery_id", BigId, sa.ForeignKey("deliveries.id"), nullable=False),
    sa.Column("pages", sa.Integer, nullable=False),
    sa.Column("sheets", sa.Integer, nullable=False),
    sa.Column("seq", sa.Integer),
    sa.Column("first_page", sa.Integer),
    sa.Column("joined_at", UTCDateTime, nullable=False),
    sa.UniqueConstraint("batch_id", "seq"),
)


# ---------------------------------------------------------------------------- rows


@dataclass(frozen=True, slots=True)
class Invoice:
    """One ``invoices`` row. Money is ``Decimal``; instants are UTC-aware."""

    id: int
    operator_id: str
    number: str
    kind: str
    account: str
    period_start: date
    period_end: date
    issue_date: date
    due_date: date
    total: Decimal
    currency: str
    locale: str
    delivery_mode: str
    postal_code: str | None
    country: str | None
    phone: str | None
    record_sha256: str | None
    status: str
    sha256: str | None
    archive_key: str | None
    renderer_version: str | None
    pages: int | None
    size: int | None
    payment_status: str
    paid_amount: Decimal | None
    paid_on: date | None
    run_id: int | None
    source_line: int | None
    created_at: datetime
    updated_at: datetime
    archived_at: datetime | None


@dataclass(frozen=True, slots=True)
class Claim:
    """The answer to :meth:`Ledger.claim_invoice`.

    ``created`` is true for exactly one caller per (operator, number), however many race.
    When it is false, ``invoice`` is the row that was already there: ``status`` says
    whether it is done (``archived``) or still ``claimed`` (in progress, or abandoned by
    a crashed worker: rendering is deterministic and archiving create-only, so redoing
    it is safe), and ``run_id``/``source_line`` tell a repeat within the same file
    (same run, other line) from a redelivery (same run, same line).
    """

    created: bool
    invoice: Invoice

    @property
    def status(self) -> str:
        return self.invoice.status

    @property
    def done(self) -> bool:
        return self.invoice.status == "archived"


@dataclass(frozen=True, slots=True)
class Run:
    """One ``runs`` row."""

    id: int
    source: str
    source_sha256: str | None
    expected: int | None
    started_at: datetime
    finished_at: datetime | None


@dataclass(frozen=True, slots=True)
class RunCounts:
    """What a run did, derived from its rows plus its counters.

    ``invoices``: invoices this run created, by status; ``rejected``: dead letters this
    run recorded, by reason; ``counters``: outcomes added with :meth:`Ledger.add_counts`.
    """

    invoices: Mapping[str, int]
    rejected: Mapping[str, int]
    counters: Mapping[str, int]

    @property
    def total_rejected(self) -> int:
        return sum(self.rejected.values())


@dataclass(frozen=True, slots=True)
class Reject:
    """One dead letter: the errors and the line exactly as it came."""

    id: int
    run_id: int
    line: int
    invoice_number: str | None
    reason: str
    path: str
    message: str
    issues: list[dict[str, Any]]
    raw: bytes
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Delivery:
    """One ``deliveries`` row: an (invoice, channel) and where it stands."""

    id: int
    invoice_id: int
    channel: str
    state: str
    attempts: int
    last_error: str | None
    message_id: str | None
    created_at: datetime
    updated_at: datetime
    sent_at: datetime | None
    handed_off_at: datetime | None = None
    """When this attempt's message data went to the server (see :meth:`Ledger.hand_off`)."""


class LedgerConflict(Exception):
    """The ledger already holds something else under the same key (never overwritten)."""


class PrintCountMismatch(ValueError):
    """A print shop acknowledged other counts than the batch's manifest holds."""


@dataclass(frozen=True, slots=True)
class PrintBatch:
    """One ``print_batches`` row (see :data:`PRINT_BATCH_STATES`)."""

    id: int
    operator_id: str
    state: str
    max_documents: int
    max_sheets: int
    documents: int
    sheets: int
    created_at: datetime
    sealed_at: datetime | None
    closed_at: datetime | None
    printed_at: datetime | None
    closer: str | None
    closer_since: datetime | None
    last_error: str | None
    pdf_key: str | None
    pdf_sha256: str | None
    pdf_size: int | None
    csv_key: str | None
    json_key: str | None
    printed_documents: int | None
    printed_sheets: int | None

    @property
    def pages(self) -> int:
        """Pages of the batch PDF: every document is padded to whole duplex sheets."""
        return 2 * self.sheets


@dataclass(frozen=True, slots=True)
class PrintBatchItem:
    """One invoice's place in a batch. ``seq`` and ``first_page`` (1-based, in the batch
    PDF) are ``None`` until the batch is sealed; ``pages`` are the invoice's own."""

    invoice_id: int
    batch_id: int
    delivery_id: int
    pages: int
    sheets: int
    seq: int | None
    first_page: int | None
    joined_at: datetime


def _utcnow() -> datetime:
    return datetime.now(UTC)


# ---------------------------------------------------------------------------- engine


def _normalize_url(url: str | URL) -> URL:
    u = make_url(url)
    # DESIGN.md spells it postgresql://; psycopg 3 is the driver we ship, not psycopg2.
    if u.drivername in ("postgresql", "postgres"):
        u = u.set(drivername="postgresql+psycopg")
    return u


def _set_wal(cursor: Any, timeout_s: float) -> None:
    """Switch the file to WAL: readers never block the writer, nor the writer readers.

    The switch is persistent and happens once per file, but it needs an exclusive lock
    and SQLite answers "database is locked" at once, without the busy handler, when
    another connection is opening the new file at that moment (several workers starting
    on a fresh database), so it is retried here.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as e:
            if "locked" not in str(e) or time.monotonic() > deadline:
                raise
            time.sleep(0.005)


def _configure_sqlite(engine: Engine, busy_timeout_ms: int) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transactions out of the driver's hands: pysqlite's implicit BEGIN comes
        # too late (after a read) for writers to queue on the busy timeout, so BEGIN is
        # emitted below instead.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            # A process pool writes concurrently: wait for the lock, don't fail.
            cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
            _set_wal(cursor, busy_timeout_ms / 1000)
            # NORMAL is durable across process crashes in WAL mode; a power cut may lose
            # the last commits, which a resumed run simply redoes (all steps idempotent).
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        # Writers take the write lock up front (BEGIN IMMEDIATE) so they wait on the busy
        # timeout; a deferred transaction that reads and then writes would instead fail
        # with SQLITE_BUSY when another writer committed in between.
        mode = conn.get_execution_options().get("invoicer_sqlite_begin", "DEFERRED")
        conn.exec_driver_sql(f"BEGIN {mode}")


def _dispose_after_fork(ref: weakref.ReferenceType[Ledger]) -> None:
    ledger = ref()
    if ledger is not None:
        # close=False: the parent still owns those sockets/file handles; the child only
        # forgets them and opens its own.
        ledger.engine.dispose(close=False)


def alembic_config(url: str | URL | None = None, connection: Connection | None = None) -> Any:
    """An Alembic ``Config`` for ``migrations/``, built in code (no ``alembic.ini``).

    For writing the next migration::

        python -c "from alembic import command; import ledger; \\
            command.revision(ledger.alembic_config('sqlite:///var/dev.db'), \\
            'add print batches', autogenerate=True, rev_id='0002')"
    """
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("file_template", "%%(rev)s_%%(slug)s")
    if url is not None:
        rendered = _normalize_url(url).render_as_string(hide_password=False)
        cfg.set_main_option("sqlalchemy.url", rendered.replace("%", "%%"))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


# ============================================================================ run chunks
# Bill runs on Celery workers (worker.py). Everything of that feature in this module is
# inside this section, plus the one base class of ``Ledger`` below.
#
# A coordinating task splits a run's source (a JSON Lines file on a path or in S3) into
# chunks of whole lines by byte offsets; one row per chunk says where it stands:
#
#   planned -> queued -> running -> done | failed
#                ^___________|   (retry after a transient error; the reconciler)
#
# ``planned``: the row is written, its task not yet sent (the coordinator sends in
# batches); ``queued``: a task is on the broker (or should be); ``running``: a worker
# took it (``attempts`` counts how often); ``done``: every record reached an end state
# (``outcomes`` holds its counts, written in the same statement, so progress is exact
# however often a chunk ran); ``failed``: a permanent problem a person must look at.
# Chunks not terminal and untouched for a while belong to a dead worker or a lost
# message: the reconciler re-enqueues them (compare-and-set, so two reconcilers agree).

CHUNK_STATES = ("planned", "queued", "running", "done", "failed")
TERMINAL_CHUNK_STATES = ("done", "failed")

run_chunks = sa.Table(
    "run_chunks",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("run_id", BigId, sa.ForeignKey("runs.id"), nullable=False),
    sa.Column("seq", sa.Integer, nullable=False),
    sa.Column("start_byte", sa.BigInteger, nullable=False),
    sa.Column("end_byte", sa.BigInteger, nullable=False),
    sa.Column("first_line", sa.Integer, nullable=False),
    sa.Column("lines", sa.Integer, nullable=False),
    sa.Column("sha256", sa.String(64)),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("last_error", sa.Text),
    sa.Column("outcomes", sa.JSON),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.UniqueConstraint("run_id", "seq"),
    sa.CheckConstraint(f"state IN ({_in(CHUNK_STATES)})", name="state"),
    sa.CheckConstraint("start_byte >= 0 AND end_byte > start_byte AND lines > 0",
                       name="range"),
    sa.Index(None, "state", "updated_at"),
    sa.Index(None, "run_id", "state"),
)


@dataclass(frozen=True, slots=True)
class RunChunk:
    """One ``run_chunks`` row: bytes ``[start_byte, end_byte)`` of the run's source,
    ``lines`` non-blank lines from line ``first_line`` on, whose SHA-256 is ``sha256``
    (a worker checks it: a source rewritten since it was split is refused)."""

    id: int
    run_id: int
    seq: int
    start_byte: int
    end_byte: int
    first_line: int
    lines: int
    sha256: str | None
    state: str
    attempts: int
    last_error: str | None
    outcomes: dict[str, int] | None
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class RunProgress:
    """Where a bill run stands, from its chunk rows: chunks and lines by state, and
    record outcomes summed over finished chunks."""

    run: Run
    chunks: Mapping[str, int]
    lines: Mapping[str, int]
    outcomes: Mapping[str, int]
    last_change: datetime | None

    @property
    def planned(self) -> bool:
        """The coordinator has split the whole source (``expected`` is set)."""
        return self.run.expected is not None

    @property
    def total_chunks(self) -> int:
        return sum(self.chunks.values())

    @property
    def records_done(self) -> int:
        return sum(n for s, n in self.lines.items() if s in TERMINAL_CHUNK_STATES)

    @property
    def finished(self) -> bool:
        """Planned and every chunk terminal."""
        return self.planned and self.total_chunks > 0 and all(
            s in TERMINAL_CHUNK_STATES for s, n in self.chunks.items() if n)


class _RunChunkQueries:
    """The ``run_chunks`` statements; mixed into :class:`Ledger`."""

    engine: Engine
    _clock: Callable[[], datetime]
    _insert: Any
    _source_keys: dict[int, str]
    _write: Callable[[], Any]

    def plan_run(self, run_id: int, *, source_sha256: str | None) -> None:
        """Record what the coordinator found in the source: its SHA-256 (so that dead
        letters are kept once per line of the same file, whichever run sees them).
        Call before the first chunk task is sent."""
        with self._write() as conn:
            conn.execute(runs.update().where(runs.c.id == run_id)
                         .values(source_sha256=sa.func.coalesce(runs.c.source_sha256,
                                                                source_sha256)))
            self._source_keys.pop(run_id, None)

    def finish_planning(self, run_id: int, expected: int) -> None:
        """The whole source is split: ``expected`` records in all."""
        with self._write() as conn:
            conn.execute(runs.update().where(runs.c.id == run_id).values(expected=expected))

    def add_chunks(self, run_id: int, chunks: Iterable[tuple]) -> list[int]:
        """Write chunk rows ``(seq, start_byte, end_byte, first_line, lines[, sha256])``
        as ``planned`` (existing ones are left alone) and return the sequence numbers
        among them still ``planned``: those whose task must be sent now."""
        now = self._clock()
        rows = [{"run_id": run_id, "seq": c[0], "start_byte": c[1], "end_byte": c[2],
                 "first_line": c[3], "lines": c[4], "sha256": c[5] if len(c) > 5 else None,
                 "state": "planned", "attempts": 0, "created_at": now, "updated_at": now}
                for c in chunks]
        if not rows:
            return []
        with self._write() as conn:
            conn.execute(self._insert(run_chunks).on_conflict_do_nothing(
                index_elements=[run_chunks.c.run_id, run_chunks.c.seq]), rows)
            return list(conn.execute(
                sa.select(run_chunks.c.seq)
                .where(run_chunks.c.run_id == run_id, run_chunks.c.state == "planned",
                       run_chunks.c.seq.in_([r["seq"] for r in rows]))
                .order_by(run_chunks.c.seq)).scalars())

    def mark_chunks_queued(self, run_id: int, seqs: Iterable[int]) -> None:
        """Their tasks are on the broker (only ``planned`` rows move)."""
        seqs = list(seqs)
        with self._write() as conn:
            for i in range(0, len(seqs), _IN_CHUNK):
                conn.execute(run_chunks.update()
                             .where(run_chunks.c.run_id == run_id,
                                    run_chunks.c.seq.in_(seqs[i:i + _IN_CHUNK]),
                                    run_chunks.c.state == "planned")
                             .values(state="queued", updated_at=self._clock()))

    def start_chunk(self, run_id: int, seq: int) -> RunChunk | None:
        """A worker takes the chunk: ``running``, one more attempt. ``None`` when it is
        already terminal (a redelivered or re-enqueued task: nothing to do) or unknown."""
        with self._write() as conn:
            row = conn.execute(
                run_chunks.update()
                .where(run_chunks.c.run_id == run_id, run_chunks.c.seq == seq,
                       run_chunks.c.state.not_in(TERMINAL_CHUNK_STATES))
                .values(state="running", attempts=run_chunks.c.attempts + 1,
                        updated_at=self._clock())
                .returning(*run_chunks.c)
            ).one_or_none()
        return RunChunk(**row._mapping) if row else None

    def end_chunk(self, run_id: int, seq: int, state: str, *,
                  outcomes: Mapping[str, int] | None = None, error: str | None = None
                  ) -> bool:
        """Leave ``running``: ``done`` / ``failed`` (terminal) or back to ``queued`` (a
        retry is scheduled, or the reconciler will re-enqueue it). A terminal chunk
        never changes again; True if this call changed the row."""
        if state not in ("done", "failed", "queued"):
            raise ValueError(f"a chunk cannot end in {state!r}")
        values: dict[str, Any] = {"state": state, "updated_at": self._clock(),
                                  "last_error": error}
        if outcomes is not None:
            values["outcomes"] = dict(outcomes)
        with self._write() as conn:
            return conn.execute(
                run_chunks.update()
                .where(run_chunks.c.run_id == run_id, run_chunks.c.seq == seq,
                       run_chunks.c.state.not_in(TERMINAL_CHUNK_STATES))
                .values(values)).rowcount == 1

    def get_chunk(self, run_id: int, seq: int) -> RunChunk | None:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(run_chunks).where(
                run_chunks.c.run_id == run_id, run_chunks.c.seq == seq)).one_or_none()
        return RunChunk(**row._mapping) if row else None

    def chunks_for_run(self, run_id: int, states: Iterable[str] | None = None
                       ) -> list[RunChunk]:
        query = sa.select(run_chunks).where(run_chunks.c.run_id == run_id)
        if states is not None:
            query = query.where(run_chunks.c.state.in_(sorted(states)))
        with self.engine.connect() as conn:
            rows = conn.execute(query.order_by(run_chunks.c.seq)).all()
        return [RunChunk(**r._mapping) for r in rows]

    def stale_chunks(self, older_than: datetime, *, limit: int = 1000) -> list[RunChunk]:
        """Chunks not terminal and untouched since ``older_than``, oldest first."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(run_chunks)
                .where(run_chunks.c.state.not_in(TERMINAL_CHUNK_STATES),
                       run_chunks.c.updated_at < older_than)
                .order_by(run_chunks.c.updated_at).limit(limit)).all()
        return [RunChunk(**r._mapping) for r in rows]

    def requeue_stale_chunk(self, run_id: int, seq: int, older_than: datetime) -> bool:
        """Take a stale chunk for re-enqueueing: ``queued``, touched now. True for one
        caller only (compare-and-set on the state and the time)."""
        with self._write() as conn:
            return conn.execute(
                run_chunks.update()
                .where(run_chunks.c.run_id == run_id, run_chunks.c.seq == seq,
                       run_chunks.c.state.not_in(TERMINAL_CHUNK_STATES),
                       run_chunks.c.updated_at < older_than)
                .values(state="queued", updated_at=self._clock())).rowcount == 1

    def run_progress(self, run_id: int) -> RunProgress | None:
        """Chunks and lines by state, and the outcomes of finished chunks."""
        with self.engine.connect() as conn:
            run = conn.execute(sa.select(runs).where(runs.c.id == run_id)).one_or_none()
            if run is None:
                return None
            by_state = conn.execute(
                sa.select(run_chunks.c.state, sa.func.count(),
                          sa.func.coalesce(sa.func.sum(run_chunks.c.lines), 0),
                          sa.func.max(run_chunks.c.updated_at))
                .where(run_chunks.c.run_id == run_id).group_by(run_chunks.c.state)).all()
            done = conn.execute(
                sa.select(run_chunks.c.outcomes)
                .where(run_chunks.c.run_id == run_id, run_chunks.c.state == "done")
            ).scalars().all()
        outcomes: dict[str, int] = {}
        for counts in done:
            for k, n in (counts or {}).items():
                outcomes[k] = outcomes.get(k, 0) + int(n)
        changes = [r[3] for r in by_state if r[3] is not None]
        return RunProgress(
            run=Run(**run._mapping),
            chunks={r[0]: int(r[1]) for r in by_state},
            lines={r[0]: int(r[2]) for r in by_state},
            outcomes=outcomes,
            last_change=max(changes) if changes else None,
        )

    def recent_runs(self, limit: int = 20) -> list[RunProgress]:
        """The newest runs with their progress."""
        with self.engine.connect() as conn:
            ids = conn.execute(sa.select(runs.c.id).order_by(runs.c.id.desc())
                               .limit(limit)).scalars().all()
        return [p for p in (self.run_progress(i) for i in ids) if p is not None]

    def run_for_source(self, source: str, source_sha256: str) -> int:
        """The oldest run of ``source`` with this content, opened if there is none
        (single-record tasks: a redelivered task finds the run its first attempt
        opened; a key reused for new content gets a run of its own)."""
        with self.engine.connect() as conn:
            found = conn.execute(sa.select(sa.func.min(runs.c.id))
                                 .where(runs.c.source == source,
                                        runs.c.source_sha256 == source_sha256)).scalar()
        if found is not None:
            return int(found)
        return self.start_run(source,  # type: ignore[attr-defined]
                              source_sha256=source_sha256)


# ============================================================================ end run chunks


# ---------------------------------------------------------------------------- ledger


class Ledger(_RunChunkQueries):
    """The service's SQL ledger, over one SQLAlchemy engine.

    ``Ledger(engine)`` takes a ready engine (tests, or an app that owns its pool);
    ``Ledger.from_url(url)`` builds one with the settings the ledger relies on. Call
    :meth:`migrate` once before use (the CLI and workers do at start-up).
    """

    def __init__(self, engine: Engine, *, clock: Callable[[], datetime] = _utcnow) -> None:
        self.engine = engine
        self.dialect = engine.dialect.name
        if self.dialect not in ("sqlite", "postgresql"):
            raise ValueError(f"unsupported database: {self.dialect}")
        self._clock = clock
        self._insert = sqlite.insert if self.dialect == "sqlite" else postgresql.insert
        # The two statements every invoice of a bill run executes, built once: building
        # and coercing a statement per call cost as much as running it on SQLite.
        self._claim_stmt = (
            self._insert(invoices)
            .on_conflict_do_nothing(index_elements=[invoices.c.operator_id, invoices.c.number])
            .returning(*invoices.c)
        )
        self._mark_archived_stmt = (
            invoices.update()
            .where(invoices.c.id == sa.bindparam("invoice_id"),
                   invoices.c.status == "claimed")
            .values(status="archived", sha256=sa.bindparam("sha256"),
                    archive_key=sa.bindparam("archive_key"),
                    renderer_version=sa.bindparam("renderer_version"),
                    pages=sa.bindparam("pages"), size=sa.bindparam("size"),
                    archived_at=sa.bindparam("now"), updated_at=sa.bindparam("now"))
        )
        # A run's source key never changes once written, so it is safe to remember.
        self._source_keys: dict[int, str] = {}
        ref = weakref.ref(self)  # a fork hook must not keep a closed ledger alive
        os.register_at_fork(after_in_child=lambda: _dispose_after_fork(ref))

    @classmethod
    def from_url(
        cls,
        url: str | URL | None = None,
        *,
        busy_timeout_ms: int = 30_000,
        clock: Callable[[], datetime] = _utcnow,
        **engine_kwargs: Any,
    ) -> Ledger:
        """A ledger on ``url`` (default ``sqlite:///var/ledger.db``).

        SQLite: the file's folder is created; WAL, foreign keys and a busy timeout are
        set on every connection. ``postgresql://`` means psycopg 3.
        """
        u = _normalize_url(url or DEFAULT_URL)
        if u.get_backend_name() == "sqlite":
            if u.database and u.database != ":memory:" and not u.database.startswith("file:"):
                Path(u.database).parent.mkdir(parents=True, exist_ok=True)
            engine = sa.create_engine(u, **engine_kwargs)
            _configure_sqlite(engine, busy_timeout_ms)
        else:
            # Workers live for days between bill runs; a server restart must not cost
            # a failed record.
            engine_kwargs.setdefault("pool_pre_ping", True)
            engine = sa.create_engine(u, **engine_kwargs)
        return cls(engine, clock=clock)

    def close(self) -> None:
        """Close the pool's connections."""
        self.engine.dispose()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        """A write transaction: BEGIN IMMEDIATE on SQLite, plain BEGIN on PostgreSQL."""
        with self.engine.connect() as conn:
            if self.dialect == "sqlite":
                conn.execution_options(invoicer_sqlite_begin="IMMEDIATE")
            with conn.begin():
                yield conn

    # ---------------------------------------------------------------- schema

    def migrate(self, revision: str = "head") -> None:
        """Create the schema from scratch or upgrade it to ``revision``; idempotent.

        Safe to call from several processes at once: PostgreSQL serializes them on an
        advisory lock, SQLite on its write lock, and the later ones find nothing to do.
        """
        from alembic import command
        from alembic.script import ScriptDirectory

        if not ScriptDirectory.from_config(alembic_config()).get_heads():
            # An install that left migrations/versions behind would otherwise "succeed"
            # with no tables, and fail later in a far less obvious place.
            raise RuntimeError(f"no ledger migrations found in {MIGRATIONS / 'versions'}")
        with self.engine.connect() as conn:
            if self.dialect == "sqlite":
                # Batch migrations rebuild tables; with foreign keys enforced, dropping a
                # referenced table would fail or cascade. The pragma is a no-op inside a
                # transaction, so it is switched before BEGIN and checked after.
                # On the driver itself: SQLAlchemy would wrap it in a transaction.
                conn.connection.driver_connection.execute("PRAGMA foreign_keys=OFF")
                conn.execution_options(invoicer_sqlite_begin="IMMEDIATE")
            try:
                with conn.begin():
                    if self.dialect == "postgresql":
                        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"),
                                     {"k": 0x1A7C_E12D})
                    command.upgrade(alembic_config(connection=conn), revision)
                    if self.dialect == "sqlite":
                        broken = conn.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                        if broken:
                            raise RuntimeError(f"migration broke foreign keys: {broken[:5]}")
            finally:
                if self.dialect == "sqlite":
                    conn.connection.driver_connection.execute("PRAGMA foreign_keys=ON")

    def schema_revision(self) -> str | None:
        """The migration the database is at (``None`` before the first migrate)."""
        from alembic.runtime.migration import MigrationContext

        with self.engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()

    # ---------------------------------------------------------------- runs

    def start_run(
        self, source: str, *, source_sha256: str | None = None, expected: int | None = None
    ) -> int:
        """Open a bill run and return its id.

        ``source_sha256`` (the input file's hash) makes dead letters idempotent across
        runs of the same file; ``expected`` (records in the source, if known) feeds
        progress displays.
        """
        with self._write() as conn:
            run_id = conn.execute(
                runs.insert()
                .values(source=source, source_sha256=source_sha256, expected=expected,
                        started_at=self._clock())
                .returning(runs.c.id)
            ).scalar_one()
        self._source_keys[run_id] = self._source_key(run_id, source_sha256)
        return run_id

    def finish_run(self, run_id: int) -> None:
        """Mark the run finished (the first call's time is kept)."""
        with self._write() as conn:
            conn.execute(
                runs.update()
                .where(runs.c.id == run_id, runs.c.finished_at.is_(None))
                .values(finished_at=self._clock())
            )

    def get_run(self, run_id: int) -> Run | None:
        """The run, or ``None``."""
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(runs).where(runs.c.id == run_id)).one_or_none()
        return Run(**row._mapping) if row else None

    def add_counts(self, run_id: int, counts: Mapping[str, int]) -> None:
        """Add to the run's counters (e.g. ``{"already_done": 3}``), atomically.

        For outcomes that leave no row of their own; invoices and rejects are counted
        from their rows. Concurrent callers never lose an increment (one upsert each).
        """
        items = [(k, int(n)) for k, n in counts.items() if n]
        if not items:
            return
        stmt = self._insert(run_counters)
        stmt = stmt.on_conflict_do_update(
            index_elements=[run_counters.c.run_id, run_counters.c.outcome],
            set_={"n": run_counters.c.n + stmt.excluded.n},
        )
        with self._write() as conn:
            conn.execute(stmt, [{"run_id": run_id, "outcome": k, "n": n} for k, n in items])

    def run_counts(self, run_id: int) -> RunCounts:
        """What the run did so far: invoices by status, rejects by reason, counters."""
        with self.engine.connect() as conn:
            by_status = conn.execute(
                sa.select(invoices.c.status, sa.func.count())
                .where(invoices.c.run_id == run_id)
                .group_by(invoices.c.status)
            ).all()
            by_reason = conn.execute(
                sa.select(rejects.c.reason, sa.func.count())
                .where(rejects.c.run_id == run_id)
                .group_by(rejects.c.reason)
            ).all()
            counters = conn.execute(
                sa.select(run_counters.c.outcome, run_counters.c.n)
                .where(run_counters.c.run_id == run_id)
            ).all()
        return RunCounts(
            invoices={s: int(n) for s, n in by_status},
            rejected={r: int(n) for r, n in by_reason},
            counters={o: int(n) for o, n in counters},
        )

    # ---------------------------------------------------------------- invoices

    def claim_invoice(
        self,
        operator_id: str,
        number: str,
        *,
        account: str,
        period_start: date,
        period_end: date,
        issue_date: date,
        due_date: date,
        total: Decimal,
        currency: str,
        locale: str,
        delivery_mode: str,
        kind: str = "original",
        postal_code: str | None = None,
        country: str | None = None,
        phone: str | None = None,
        record_sha256: str | None = None,
        run_id: int | None = None,
        source_line: int | None = None,
    ) -> Claim:
        """Take an invoice number, or find who already has it; atomic under any race.

        ``INSERT ... ON CONFLICT (operator_id, number) DO NOTHING RETURNING``: the one
        caller whose insert lands gets ``created=True``; every other gets the existing
        row. On PostgreSQL a racing insert waits for the winner's commit, so the row is
        always there to read; on SQLite the write lock serializes the two statements.
        """
        now = self._clock()
        values = {
            "operator_id": operator_id, "number": number, "kind": kind, "account": account,
            "period_start": period_start, "period_end": period_end,
            "issue_date": issue_date, "due_date": due_date, "total": total,
            "currency": currency, "locale": locale, "delivery_mode": delivery_mode,
            "postal_code": postal_code, "country": country, "phone": phone,
            "record_sha256": record_sha256, "status": "claimed",
            "payment_status": "unpaid", "run_id": run_id, "source_line": source_line,
            "created_at": now, "updated_at": now,
        }
        with self._write() as conn:
            row = conn.execute(self._claim_stmt, values).one_or_none()
            if row is not None:
                return Claim(True, Invoice(**row._mapping))
            row = conn.execute(
                sa.select(invoices).where(
                    invoices.c.operator_id == operator_id, invoices.c.number == number
                )
            ).one()
        return Claim(False, Invoice(**row._mapping))

    def mark_archived(
        self,
        invoice_id: int,
        *,
        sha256: str,
        archive_key: str,
        renderer_version: str,
        pages: int | None = None,
        size: int | None = None,
    ) -> bool:
        """Record that the invoice's PDF is in the archive: the invoice is done.

        Returns True if this call did it, False if it was already archived with the same
        checksum (a retry or a racing worker: fine). A different checksum raises
        :class:`LedgerConflict`; the first archived bytes are the invoice, for good.
        """
        now = self._clock()
        with self._write() as conn:
            done = conn.execute(self._mark_archived_stmt, {
                "invoice_id": invoice_id, "sha256": sha256, "archive_key": archive_key,
                "renderer_version": renderer_version, "pages": pages, "size": size,
                "now": now}).rowcount
            if done:
                return True
            row = conn.execute(
                sa.select(invoices.c.status, invoices.c.sha256).where(invoices.c.id == invoice_id)
            ).one_or_none()
        if row is None:
            raise LookupError(f"no invoice with id {invoice_id}")
        if row.sha256 != sha256:
            raise LedgerConflict(
                f"invoice {invoice_id} is archived with sha256 {row.sha256}, not {sha256}"
            )
        return False

    def get_invoice(self, operator_id: str, number: str) -> Invoice | None:
        """The invoice with that number at that operator, or ``None``."""
        return self._one_invoice(
            (invoices.c.operator_id == operator_id) & (invoices.c.number == number)
        )

    def find_invoices(self, number: str, operator_id: str | None = None) -> list[Invoice]:
        """Invoices with this number (at one operator if given; numbers are unique only
        per operator)."""
        where = invoices.c.number == number
        if operator_id is not None:
            where &= invoices.c.operator_id == operator_id
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(invoices).where(where)).all()
        return [Invoice(**r._mapping) for r in rows]

    def get_invoice_by_id(self, invoice_id: int) -> Invoice | None:
        """The invoice with that id, or ``None`` (tasks carry ids, not data)."""
        return self._one_invoice(invoices.c.id == invoice_id)

    def _one_invoice(self, where: sa.ColumnElement[bool]) -> Invoice | None:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(invoices).where(where)).one_or_none()
        return Invoice(**row._mapping) if row else None

    def invoices_for_account(
        self, operator_id: str, account: str, limit: int = 13
    ) -> list[Invoice]:
        """The account's latest archived invoices, newest issue date first."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(invoices)
                .where(invoices.c.operator_id == operator_id, invoices.c.account == account,
                       invoices.c.status == "archived")
                .order_by(invoices.c.issue_date.desc(), invoices.c.number.desc())
                .limit(limit)
            ).all()
        return [Invoice(**r._mapping) for r in rows]

    def already_done(self, operator_id: str, numbers: Iterable[str]) -> set[str]:
        """Which of these numbers are archived already (one query per 500 numbers).

        A resumed run asks this per chunk of records to skip finished work without
        rendering or claiming; ``claimed`` numbers are not done and get redone.
        """
        wanted = list(dict.fromkeys(numbers))
        found: set[str] = set()
        with self.engine.connect() as conn:
            for i in range(0, len(wanted), _IN_CHUNK):
                found.update(conn.execute(
                    sa.select(invoices.c.number).where(
                        invoices.c.operator_id == operator_id,
                        invoices.c.number.in_(wanted[i : i + _IN_CHUNK]),
                        invoices.c.status == "archived",
                    )
                ).scalars())
        return found

    # ---------------------------------------------------------------- rejects

    @staticmethod
    def _source_key(run_id: int, source_sha256: str | None) -> str:
        return f"sha256:{source_sha256}" if source_sha256 else f"run:{run_id}"

    def _source_key_of(self, conn: Connection, run_id: int) -> str:
        key = self._source_keys.get(run_id)
        if key is None:
            sha = conn.execute(
                sa.select(runs.c.source_sha256).where(runs.c.id == run_id)
            ).one_or_none()
            if sha is None:
                raise LookupError(f"no run with id {run_id}")
            key = self._source_keys[run_id] = self._source_key(run_id, sha[0])
        return key

    def record_reject(
        self, run_id: int, line: int, error: Mapping[str, Any], raw: bytes | str
    ) -> bool:
        """Dead-letter a line: its errors (``RecordError.to_dict()``) and raw bytes.

        Once per (source, line): True when recorded now, False when that line of that
        source (same file hash, or the same run without one) was already dead-lettered.
        """
        raw_bytes = raw.encode("utf-8") if isinstance(raw, str) else bytes(raw)
        issues = list(error.get("issues") or [])
        first = issues[0] if issues else {}
        with self._write() as conn:
            key = self._source_key_of(conn, run_id)
            stmt = (
                self._insert(rejects)
                .values(
                    run_id=run_id, source_key=key, line=line,
                    invoice_number=error.get("invoice_number"),
                    reason=str(error.get("reason") or first.get("reason") or "invalid"),
                    path=str(error.get("path") or first.get("path") or ""),
                    message=str(error.get("message") or first.get("message") or ""),
                    issues=issues, raw=raw_bytes, created_at=self._clock(),
                )
                .on_conflict_do_nothing(index_elements=[rejects.c.source_key, rejects.c.line])
                .returning(rejects.c.id)
            )
            return conn.execute(stmt).one_or_none() is not None

    def rejects_for_run(self, run_id: int) -> list[Reject]:
        """The dead letters a run recorded, in line order."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(*(rejects.c[f.name] for f in fields(Reject)))
                .where(rejects.c.run_id == run_id)
                .order_by(rejects.c.line)
            ).all()
        return [Reject(**r._mapping) for r in rows]

    # ---------------------------------------------------------------- deliveries

    def ensure_delivery(self, invoice_id: int, channel: str) -> Delivery:
        """The (invoice, channel) delivery row, created ``pending`` if missing."""
        if channel not in CHANNELS:
            raise ValueError(f"unknown channel {channel!r}")
        now = self._clock()
        stmt = (
            self._insert(deliveries)
            .values(invoice_id=invoice_id, channel=channel, state="pending", attempts=0,
                    created_at=now, updated_at=now)
            .on_conflict_do_nothing(index_elements=[deliveries.c.invoice_id, deliveries.c.channel])
            .returning(*deliveries.c)
        )
        with self._write() as conn:
            row = conn.execute(stmt).one_or_none()
            if row is None:
                row = conn.execute(
                    sa.select(deliveries).where(deliveries.c.invoice_id == invoice_id,
                                                deliveries.c.channel == channel)
                ).one()
        return Delivery(**row._mapping)

    def get_delivery(self, delivery_id: int) -> Delivery | None:
        """The delivery, or ``None``."""
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(deliveries).where(deliveries.c.id == delivery_id)
            ).one_or_none()
        return Delivery(**row._mapping) if row else None

    def deliveries_for(self, invoice_id: int) -> list[Delivery]:
        """Every channel's delivery of one invoice."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(deliveries).where(deliveries.c.invoice_id == invoice_id)
                .order_by(deliveries.c.channel)
            ).all()
        return [Delivery(**r._mapping) for r in rows]

    def deliveries_in(self, states: Iterable[str], *, older_than: datetime | None = None,
                      limit: int = 1000, operators: Iterable[str] | None = None
                      ) -> list[tuple[Delivery, Invoice]]:
        """Deliveries in ``states`` (oldest change first) with their invoices.

        ``older_than`` keeps those not touched since then: a ``sending`` row nobody has
        touched for a while belongs to a process that died mid-send. ``operators``
        keeps those of these operators' invoices.
        """
        where = [deliveries.c.state.in_(sorted(states))]
        if operators is not None:
            where.append(invoices.c.operator_id.in_(sorted(operators)))
        if older_than is not None:
            where.append(deliveries.c.updated_at < older_than)
        stmt = (sa.select(deliveries, invoices)
                .join(invoices, invoices.c.id == deliveries.c.invoice_id)
                .where(*where).order_by(deliveries.c.updated_at).limit(limit))
        with self.engine.connect() as conn:
            rows = conn.execute(stmt).all()
        n = len(deliveries.c)
        return [(Delivery(*row[:n]), Invoice(*row[n:])) for row in rows]

    def transition(
        self,
        delivery_id: int,
        from_states: str | Iterable[str],
        to_state: str,
        *,
        error: str | None = None,
        message_id: str | None = None,
    ) -> bool:
        """Move a delivery from one of ``from_states`` to ``to_state``; compare-and-set.

        One ``UPDATE ... WHERE id = ? AND state IN (...)``: True if this caller moved it,
        False if it was in another state (another process won, or it is done). Entering
        ``sending`` counts an attempt; ``error`` and ``message_id`` are stored when given.
        Transitions outside :data:`TRANSITIONS` are a programming error (``ValueError``).
        """
        sources = {from_states} if isinstance(from_states, str) else set(from_states)
        bad = sorted(s for s in sources if to_state not in TRANSITIONS.get(s, ()))
        if not sources or bad:
            raise ValueError(f"no transition {bad or sources} -> {to_state!r}")
        now = self._clock()
        values: dict[str, Any] = {"state": to_state, "updated_at": now}
        if to_state == "sending":
            values["attempts"] = deliveries.c.attempts + 1
            values["handed_off_at"] = None  # a new attempt: nothing handed over yet
        if to_state == "sent":
            values["sent_at"] = now
        if error is not None:
            values["last_error"] = error
        if message_id is not None:
            values["message_id"] = message_id
        with self._write() as conn:
            moved = conn.execute(
                deliveries.update()
                .where(deliveries.c.id == delivery_id, deliveries.c.state.in_(sorted(sources)))
                .values(values)
            ).rowcount
        return moved == 1

    def hand_off(self, delivery_id: int) -> bool:
        """Record that a ``sending`` delivery's message is going to the server now.

        From here a crash may leave it delivered or not: the reconciler turns a stale
        ``sending`` row with this mark into ``unknown`` instead of sending it again.
        False if the row is not ``sending`` (it is not this caller's to send).
        """
        now = self._clock()
        with self._write() as conn:
            moved = conn.execute(
                deliveries.update()
                .where(deliveries.c.id == delivery_id, deliveries.c.state == "sending")
                .values(handed_off_at=now, updated_at=now)
            ).rowcount
        return moved == 1

    # ---------------------------------------------------------------- print batches
    #
    # A paper invoice is in the print queue while its ``print`` delivery is ``pending``.
    # Joining puts it into its operator's open batch (the delivery stays ``pending``);
    # sealing freezes a batch's membership and order (by size while joining, or on
    # demand); closing records the archived PDF and manifests and moves the batch's
    # deliveries to ``sending``; the print shop's acknowledgement moves them to ``sent``.
    # Every step is one transaction that first locks the batch row (SELECT ... FOR UPDATE
    # on PostgreSQL, BEGIN IMMEDIATE on SQLite), so a joiner and a sealer never
    # interleave: an invoice either made it into the batch before the seal or goes to
    # the next one.

    def join_print_batch(
        self, invoice_id: int, *, max_documents: int, max_sheets: int
    ) -> PrintBatchItem | None:
        """Put one paper invoice into its operator's open batch; idempotent.

        The invoice must be archived with a ``print`` delivery in ``pending``. Returns its
        membership (the existing one when it is already in a batch, whoever put it
        there), or ``None`` when it is in no batch and not in the print queue. A batch
        that reaches ``max_documents`` or ``max_sheets`` is sealed on the spot; the
        limits apply to batches created by this call (an open batch keeps its own).
        """
        _check_print_limits(max_documents, max_sheets)
        with self._write() as conn:
            row = conn.execute(
                _print_queue().where(deliveries.c.invoice_id == invoice_id)
            ).one_or_none()
            if row is not None:
                self._join(conn, row.operator_id, [row], max_documents, max_sheets)
            item = conn.execute(
                sa.select(print_batch_items).where(print_batch_items.c.invoice_id == invoice_id)
            ).one_or_none()
        return PrintBatchItem(**item._mapping) if item else None

    def batch_print_queue(
        self,
        operator_id: str | None = None,
        *,
        max_documents: int,
        max_sheets: int,
        chunk: int = 500,
    ) -> int:
        """Put every paper invoice of the print queue into its operator's open batch.

        Returns how many joined. Works in transactions of ``chunk`` invoices, oldest
        delivery first; safe to run in several processes at once (each invoice lands
        in exactly one batch, and batches fill up to their limits, then seal).
        """
        _check_print_limits(max_documents, max_sheets)
        joined, after = 0, 0
        while True:
            with self._write() as conn:
                query = _print_queue().where(deliveries.c.id > after)
                if operator_id is not None:
                    query = query.where(invoices.c.operator_id == operator_id)
                rows = conn.execute(query.order_by(deliveries.c.id).limit(chunk)).all()
                if not rows:
                    return joined
                after = rows[-1].delivery_id
                by_operator: dict[str, list[Any]] = {}
                for row in rows:
                    by_operator.setdefault(row.operator_id, []).append(row)
                # Operators in one order everywhere: batch rows are locked in that order.
                for op in sorted(by_operator):
                    joined += self._join(conn, op, by_operator[op], max_documents,
                                         max_sheets)

    def _join(self, conn: Connection, operator_id: str, rows: list[Any], max_documents: int,
              max_sheets: int) -> int:
        """Add queue rows (``invoice_id``, ``delivery_id``, ``pages``) to open batches."""
        now = self._clock()
        joined = i = 0
        while i < len(rows):
            batch = self._lock_open_batch(conn, operator_id, max_documents, max_sheets, now)
            documents, sheets = batch.documents, batch.sheets
            take: list[dict[str, Any]] = []
            overflow = False
            while i < len(rows):
                row = rows[i]
                need = sheets_for(row.pages)
                if documents and (documents + 1 > batch.max_documents
                                  or sheets + need > batch.max_sheets):
                    overflow = True  # the next invoice does not fit: this batch is done
                    break
                take.append({"invoice_id": row.invoice_id, "batch_id": batch.id,
                             "delivery_id": row.delivery_id, "pages": row.pages,
                             "sheets": need, "joined_at": now})
                documents, sheets, i = documents + 1, sheets + need, i + 1
                if documents >= batch.max_documents or sheets >= batch.max_sheets:
                    break
            landed = []
            for k in range(0, len(take), _ROWS_PER_INSERT):
                landed += conn.execute(
                    self._insert(print_batch_items)
                    .values(take[k : k + _ROWS_PER_INSERT])
                    # Already in a batch (a racing joiner won): not ours to count.
                    .on_conflict_do_nothing(index_elements=[print_batch_items.c.invoice_id])
                    .returning(print_batch_items.c.sheets)
                ).scalars().all()
            documents, sheets = batch.documents + len(landed), batch.sheets + sum(landed)
            conn.execute(print_batches.update().where(print_batches.c.id == batch.id)
                         .values(documents=documents, sheets=sheets))
            joined += len(landed)
            if overflow or documents >= batch.max_documents or sheets >= batch.max_sheets:
                self._seal(conn, batch.id, now)
        return joined

    def _lock_open_batch(self, conn: Connection, operator_id: str, max_documents: int,
                         max_sheets: int, now: datetime) -> PrintBatch:
        """The operator's open batch, created if missing, locked until the commit."""
        while True:
            # The partial unique index makes this a no-op when an open batch exists (or
            # is being created by a racing transaction, which this one then waits for).
            conn.execute(
                self._insert(print_batches)
                .values(operator_id=operator_id, state="open", max_documents=max_documents,
                        max_sheets=max_sheets, documents=0, sheets=0, created_at=now)
                .on_conflict_do_nothing(index_elements=[print_batches.c.operator_id],
                                        index_where=_OPEN_BATCH)
            )
            row = conn.execute(
                sa.select(print_batches)
                .where(print_batches.c.operator_id == operator_id,
                       print_batches.c.state == "open")
                .with_for_update()
            ).one_or_none()
            if row is not None:
                return PrintBatch(**row._mapping)
            # Sealed between the two statements: make the next one.

    def _seal(self, conn: Connection, batch_id: int, now: datetime) -> None:
        """Freeze the batch: number its documents in print order, then ``closing``.

        The order is computed here, in Python, rather than by ``ORDER BY``: SQLite and
        PostgreSQL collations disagree on punctuation and case, and a batch must print
        in the same order whichever database holds it.
        """
        rows = conn.execute(
            sa.select(print_batch_items.c.invoice_id, print_batch_items.c.sheets,
                      invoices.c.postal_code, invoices.c.account, invoices.c.number)
            .join(invoices, invoices.c.id == print_batch_items.c.invoice_id)
            .where(print_batch_items.c.batch_id == batch_id)
        ).all()
        rows.sort(key=lambda r: (*print_sort_key(r.postal_code, r.account, r.number),
                                 r.invoice_id))
        params, page = [], 1
        for seq, row in enumerate(rows, start=1):
            params.append({"b_invoice": row.invoice_id, "b_seq": seq, "b_first": page})
            page += 2 * row.sheets
        if params:
            conn.execute(
                print_batch_items.update()
                .where(print_batch_items.c.invoice_id == sa.bindparam("b_invoice"))
                .values(seq=sa.bindparam("b_seq"), first_page=sa.bindparam("b_first")),
                params,
            )
        conn.execute(
            print_batches.update()
            .where(print_batches.c.id == batch_id, print_batches.c.state == "open")
            .values(state="closing", sealed_at=now)
        )

    def seal_print_batch(self, operator_id: str) -> PrintBatch | None:
        """Seal the operator's open batch now (closing on demand); ``None`` if it has none.

        An empty open batch is left open: there is nothing to print.
        """
        with self._write() as conn:
            row = conn.execute(
                sa.select(print_batches)
                .where(print_batches.c.operator_id == operator_id,
                       print_batches.c.state == "open")
                .with_for_update()
            ).one_or_none()
            if row is None or row.documents == 0:
                return None
            self._seal(conn, row.id, self._clock())
        return self.get_print_batch(row.id)

    def claim_print_batch(self, batch_id: int, closer: str, *,
                          lease: timedelta = timedelta(minutes=15)) -> bool:
        """Become the one process making a sealed batch's PDF; compare-and-set.

        True for exactly one caller while the batch is ``closing`` and nobody holds it,
        or its holder has not finished within ``lease`` (a crashed process: making the
        PDF again yields the same bytes, so taking over is safe).
        """
        now = self._clock()
        with self._write() as conn:
            claimed = conn.execute(
                print_batches.update()
                .where(print_batches.c.id == batch_id, print_batches.c.state == "closing",
                       sa.or_(print_batches.c.closer.is_(None),
                              print_batches.c.closer_since < now - lease))
                .values(closer=closer, closer_since=now)
            ).rowcount
        return claimed == 1

    def release_print_batch(self, batch_id: int, closer: str, *, error: str | None = None
                            ) -> bool:
        """Give a claimed batch back after a failed attempt, recording ``error`` for ops."""
        with self._write() as conn:
            released = conn.execute(
                print_batches.update()
                .where(print_batches.c.id == batch_id, print_batches.c.state == "closing",
                       print_batches.c.closer == closer)
                .values(closer=None, closer_since=None, last_error=error)
            ).rowcount
        return released == 1

    def mark_print_batch_closed(
        self,
        batch_id: int,
        closer: str,
        *,
        pdf_key: str,
        pdf_sha256: str,
        pdf_size: int,
        csv_key: str,
        json_key: str,
    ) -> bool:
        """Record the archived batch and hand its invoices to the print shop; atomic.

        Only the claim's holder can do it (``closer``), once: the batch becomes
        ``closed`` and its ``pending`` print deliveries ``sending`` (an attempt counted,
        ``message_id`` = ``B<batch id>``) in the same transaction. False when the claim
        was lost (taken over after the lease ran out, or already closed).
        """
        now = self._clock()
        with self._write() as conn:
            closed = conn.execute(
                print_batches.update()
                .where(print_batches.c.id == batch_id, print_batches.c.state == "closing",
                       print_batches.c.closer == closer)
                .values(state="closed", closed_at=now, pdf_key=pdf_key,
                        pdf_sha256=pdf_sha256, pdf_size=pdf_size, csv_key=csv_key,
                        json_key=json_key, last_error=None)
            ).rowcount
            if closed:
                conn.execute(
                    deliveries.update()
                    .where(deliveries.c.id.in_(_batch_deliveries(batch_id)),
                           deliveries.c.state == "pending")
                    .values(state="sending", attempts=deliveries.c.attempts + 1,
                            message_id=f"B{batch_id}", updated_at=now)
                )
        return closed == 1

    def acknowledge_print_batch(
        self, batch_id: int, printed_documents: int, printed_sheets: int
    ) -> bool:
        """The print shop printed the batch: its deliveries become ``sent``; atomic.

        The counts must be the batch's own (else :class:`PrintCountMismatch`, nothing
        changes). True when this call acknowledged it, False when it already was (a
        repeated acknowledgement is a no-op). A batch not yet closed raises
        :class:`LedgerConflict`; an unknown one ``LookupError``.
        """
        now = self._clock()
        with self._write() as conn:
            row = conn.execute(
                sa.select(print_batches).where(print_batches.c.id == batch_id)
                .with_for_update()
            ).one_or_none()
            if row is None:
                raise LookupError(f"no print batch with id {batch_id}")
            if (printed_documents, printed_sheets) != (row.documents, row.sheets):
                raise PrintCountMismatch(
                    f"batch {batch_id} has {row.documents} documents on {row.sheets} "
                    f"sheets, not {printed_documents} on {printed_sheets}"
                )
            if row.state == "printed":
                return False
            if row.state != "closed":
                raise LedgerConflict(f"batch {batch_id} is {row.state}, not closed")
            conn.execute(
                print_batches.update()
                .where(print_batches.c.id == batch_id, print_batches.c.state == "closed")
                .values(state="printed", printed_at=now,
                        printed_documents=printed_documents, printed_sheets=printed_sheets)
            )
            conn.execute(
                deliveries.update()
                .where(deliveries.c.id.in_(_batch_deliveries(batch_id)),
                       deliveries.c.state == "sending")
                .values(state="sent", sent_at=now, updated_at=now)
            )
        return True

    def get_print_batch(self, batch_id: int) -> PrintBatch | None:
        """The batch, or ``None``."""
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(print_batches).where(print_batches.c.id == batch_id)
            ).one_or_none()
        return PrintBatch(**row._mapping) if row else None

    def print_batches(
        self,
        operator_id: str | None = None,
        *,
        states: Iterable[str] | None = None,
        limit: int | None = None,
    ) -> list[PrintBatch]:
        """Batches, newest first, optionally of one operator and in some states."""
        query = sa.select(print_batches).order_by(print_batches.c.id.desc())
        if operator_id is not None:
            query = query.where(print_batches.c.operator_id == operator_id)
        if states is not None:
            query = query.where(print_batches.c.state.in_(sorted(states)))
        if limit is not None:
            query = query.limit(limit)
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
        return [PrintBatch(**r._mapping) for r in rows]

    def print_batch_documents(self, batch_id: int) -> list[tuple[PrintBatchItem, Invoice]]:
        """A batch's documents with their invoices, in print order once it is sealed."""
        query = (sa.select(print_batch_items, invoices)
                 .join(invoices, invoices.c.id == print_batch_items.c.invoice_id)
                 .where(print_batch_items.c.batch_id == batch_id)
                 .order_by(print_batch_items.c.seq, print_batch_items.c.invoice_id))
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
        n = len(print_batch_items.c)
        return [(PrintBatchItem(*row[:n]), Invoice(*row[n:])) for row in rows]

    def print_item(self, invoice_id: int) -> PrintBatchItem | None:
        """Which batch an invoice is in (and where), or ``None``."""
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(print_batch_items).where(print_batch_items.c.invoice_id == invoice_id)
            ).one_or_none()
        return PrintBatchItem(**row._mapping) if row else None


# ---------------------------------------------------------------------------- print helpers

# Seven values a row: ~700 bound parameters a statement, under SQLite's old limit of 999.
_ROWS_PER_INSERT = 100
# A literal, not a bound parameter: PostgreSQL matches ON CONFLICT to a partial index only
# when it can prove the predicate at planning time.
_OPEN_BATCH = sa.text("state = 'open'")


def sheets_for(pages: int) -> int:
    """Sheets a document takes printed duplex: two pages a sheet."""
    return (pages + 1) // 2


def print_sort_key(postal_code: str | None, account: str, number: str) -> tuple[Any, ...]:
    """The print order: postal code (upper-case, spaces and hyphens ignored, so the same
    code typed two ways sorts together; none last), then account, then invoice number."""
    code = "".join((postal_code or "").upper().split()).replace("-", "")
    return (not code, code, account, number)


def _check_print_limits(max_documents: int, max_sheets: int) -> None:
    if max_documents < 1 or max_sheets < 1:
        raise ValueError(f"batch limits must be positive: {max_documents} documents, "
                         f"{max_sheets} sheets")


def _print_queue() -> sa.Select[Any]:
    """Paper invoices waiting for a batch: archived, print delivery pending, in none."""
    return (
        sa.select(invoices.c.operator_id, deliveries.c.invoice_id,
                  deliveries.c.id.label("delivery_id"), invoices.c.pages)
        .select_from(
            deliveries.join(invoices, invoices.c.id == deliveries.c.invoice_id)
            .outerjoin(print_batch_items,
                       print_batch_items.c.invoice_id == deliveries.c.invoice_id)
        )
        .where(deliveries.c.channel == "print", deliveries.c.state == "pending",
               invoices.c.status == "archived", invoices.c.pages > 0,
               print_batch_items.c.invoice_id.is_(None))
    )


def _batch_deliveries(batch_id: int) -> sa.Select[Any]:
    return sa.select(print_batch_items.c.delivery_id).where(
        print_batch_items.c.batch_id == batch_id)


# ============================================================================ API keys
#
# Issue 7 (the HTTP API's credentials). Everything about API keys in the ledger lives in
# this section: the table (migration 0003), its row, and a small store over the ledger's
# engine. Token generation, hashing and comparison are the API's (``api/keys.py``); the
# ledger only keeps what they produce and never sees a token.

#: What a key may do: ``print_shop`` pulls and acknowledges its operators' print batches;
#: ``billing`` (enqueue runs) and ``operations`` come with the rest of the HTTP API.
API_KEY_ROLES = ("billing", "print_shop", "operations")

api_keys = sa.Table(
    "api_keys",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("prefix", sa.String(16), nullable=False),
    sa.Column("secret_sha256", sa.String(64), nullable=False),
    sa.Column("name", sa.String(128), nullable=False),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("operators", sa.JSON, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("revoked_at", UTCDateTime),
    sa.UniqueConstraint("prefix"),
    sa.CheckConstraint(f"role IN ({_in(API_KEY_ROLES)})", name="role"),
)


@dataclass(frozen=True, slots=True)
class ApiKey:
    """One ``api_keys`` row: a key's public facts and the SHA-256 of its token."""

    id: int
    prefix: str
    secret_sha256: str
    name: str
    role: str
    operators: tuple[str, ...]
    created_at: datetime
    revoked_at: datetime | None

    @property
    def active(self) -> bool:
        """False once revoked."""
        return self.revoked_at is None


class ApiKeyStore:
    """API keys in the ledger's database (``ApiKeyStore(ledger)``)."""

    def __init__(self, ledger: Ledger) -> None:
        self._ledger = ledger

    def add(self, *, prefix: str, secret_sha256: str, name: str, role: str,
            operators: Iterable[str]) -> ApiKey | None:
        """Record a new key; ``None`` when ``prefix`` is taken (draw another token)."""
        if role not in API_KEY_ROLES:
            raise ValueError(f"unknown role {role!r}; known: {API_KEY_ROLES}")
        ops = sorted(set(operators))
        if not ops:
            raise ValueError("an API key needs at least one operator")
        now = self._ledger._clock()
        with self._ledger._write() as conn:
            row = conn.execute(
                self._ledger._insert(api_keys)
                .values(prefix=prefix, secret_sha256=secret_sha256, name=name, role=role,
                        operators=ops, created_at=now)
                .on_conflict_do_nothing(index_elements=["prefix"])
                .returning(*api_keys.c)
            ).one_or_none()
        return _api_key(row) if row else None

    def by_prefix(self, prefix: str) -> ApiKey | None:
        """The key whose token starts with ``prefix`` (revoked ones included), or None."""
        with self._ledger.engine.connect() as conn:
            row = conn.execute(
                sa.select(api_keys).where(api_keys.c.prefix == prefix)).one_or_none()
        return _api_key(row) if row else None

    def get(self, key_id: int) -> ApiKey | None:
        """The key with this id, or ``None``."""
        with self._ledger.engine.connect() as conn:
            row = conn.execute(
                sa.select(api_keys).where(api_keys.c.id == key_id)).one_or_none()
        return _api_key(row) if row else None

    def all(self) -> list[ApiKey]:
        """Every key, oldest first, revoked ones included."""
        with self._ledger.engine.connect() as conn:
            rows = conn.execute(sa.select(api_keys).order_by(api_keys.c.id)).all()
        return [_api_key(r) for r in rows]

    def revoke(self, key_id: int) -> bool:
        """Revoke a key; True when this call revoked it, False when it already was.

        ``LookupError`` for an unknown id.
        """
        now = self._ledger._clock()
        with self._ledger._write() as conn:
            done = conn.execute(
                api_keys.update()
                .where(api_keys.c.id == key_id, api_keys.c.revoked_at.is_(None))
                .values(revoked_at=now)
            ).rowcount
            if not done and conn.execute(
                    sa.select(api_keys.c.id).where(api_keys.c.id == key_id)).first() is None:
                raise LookupError(f"no API key with id {key_id}")
        return done == 1


def _api_key(row: Any) -> ApiKey:
    values = dict(row._mapping)
    values["operators"] = tuple(values["operators"])
    return ApiKey(**values)


__all__ += ["API_KEY_ROLES", "ApiKey", "ApiKeyStore"]


# ============================================================================ subscriber access
#
# Issue 8 (subscribers' history, second copies, SMS codes; the billing system's payment
# updates). Everything about it in the ledger lives in this section: four tables
# (migration 0005), their rows, and :class:`AccessStore` over the ledger's engine. The
# codes' hashing and comparison are the API's (``api/access.py``): the ledger keeps a
# salted HMAC of each code and never sees one; it owns the compare-and-set updates that
# make a code single-use and its wrong tries bounded under any race.

#: Wrong tries after which a code is dead, whatever is typed next.
MAX_CODE_ATTEMPTS = 5

sms_codes = sa.Table(
    "sms_codes",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("phone", sa.String(16), nullable=False),
    # The account the code opens: resolved when the code is made, from the phone's
    # latest archived invoice.
    sa.Column("operator_id", sa.String(64), nullable=False),
    sa.Column("account", sa.String(64), nullable=False),
    sa.Column("salt", sa.String(32), nullable=False),
    sa.Column("code_hash", sa.String(64), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("expires_at", UTCDateTime, nullable=False),
    sa.Column("used_at", UTCDateTime),
    sa.Column("superseded_at", UTCDateTime),
    sa.Index(None, "phone", "created_at"),
)

# Fixed-window counters: one row per (bucket, window); a hit is one atomic upsert.
# ``bucket`` is a SHA-256 (it would otherwise hold phone numbers and client addresses).
rate_limits = sa.Table(
    "rate_limits",
    metadata,
    sa.Column("bucket", sa.String(64), primary_key=True),
    sa.Column("window_start", UTCDateTime, primary_key=True),
    sa.Column("hits", sa.Integer, nullable=False),
    sa.Index(None, "window_start"),
)

# One second copy per invoice, whoever asks and however often.
second_copies = sa.Table(
    "second_copies",
    metadata,
    sa.Column("invoice_id", BigId, sa.ForeignKey("invoices.id"), primary_key=True),
    sa.Column("archive_key", sa.String(512), nullable=False),
    sa.Column("sha256", sa.String(64), nullable=False),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("pages", sa.Integer),
    sa.Column("renderer_version", sa.String(64), nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
)

payment_events = sa.Table(
    "payment_events",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("invoice_id", BigId, sa.ForeignKey("invoices.id"), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("amount", Money),
    sa.Column("paid_on", sa.Date),
    sa.Column("source", sa.String(128), nullable=False),
    sa.Column("recorded_at", UTCDateTime, nullable=False),
    sa.CheckConstraint(f"status IN ({_in(PAYMENT_STATUSES)})", name="status"),
    sa.Index(None, "invoice_id", "id"),
)


@dataclass(frozen=True, slots=True)
class SmsCode:
    """One ``sms_codes`` row (the code itself is not in it: only its salted HMAC)."""

    id: int
    phone: str
    operator_id: str
    account: str
    salt: str
    code_hash: str
    attempts: int
    created_at: datetime
    expires_at: datetime
    used_at: datetime | None
    superseded_at: datetime | None


@dataclass(frozen=True, slots=True)
class SecondCopy:
    """One ``second_copies`` row: the duplicate of an invoice, as archived."""

    invoice_id: int
    archive_key: str
    sha256: str
    size: int
    pages: int | None
    renderer_version: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class PaymentEvent:
    """One change of an invoice's payment status, as the billing system reported it."""

    id: int
    invoice_id: int
    status: str
    amount: Decimal | None
    paid_on: date | None
    source: str
    recorded_at: datetime


class AccessStore:
    """Subscriber access in the ledger's database (``AccessStore(ledger)``)."""

    def __init__(self, ledger: Ledger) -> None:
        self._ledger = ledger

    # ---------------------------------------------------------------- lookups

    def latest_for_phone(self, phone: str) -> Invoice | None:
        """The newest archived invoice sent to ``phone`` (any operator), or ``None``."""
        with self._ledger.engine.connect() as conn:
            row = conn.execute(
                sa.select(invoices)
                .where(invoices.c.phone == phone, invoices.c.status == "archived")
                .order_by(invoices.c.issue_date.desc(), invoices.c.id.desc())
                .limit(1)
            ).one_or_none()
        return Invoice(**row._mapping) if row else None

    def account_invoice(self, operator_id: str, account: str, number: str) -> Invoice | None:
        """The archived invoice ``number`` if it is this account's, else ``None``."""
        with self._ledger.engine.connect() as conn:
            row = conn.execute(
                sa.select(invoices).where(
                    invoices.c.operator_id == operator_id, invoices.c.number == number,
                    invoices.c.account == account, invoices.c.status == "archived")
            ).one_or_none()
        return Invoice(**row._mapping) if row else None

    # ---------------------------------------------------------------- SMS codes

    def add_code(self, *, phone: str, operator_id: str, account: str, salt: str,
                 code_hash: str, ttl: timedelta) -> SmsCode:
        """Record a new code for ``phone``; earlier live codes of the phone stop working
        (only the latest SMS counts, so a flood of requests does not multiply the odds
        of a guess)."""
        now = self._ledger._clock()
        with self._ledger._write() as conn:
            conn.execute(
                sms_codes.update()
                .where(sms_codes.c.phone == phone, sms_codes.c.used_at.is_(None),
                       sms_codes.c.superseded_at.is_(None))
                .values(superseded_at=now))
            row = conn.execute(
                sms_codes.insert()
                .values(phone=phone, operator_id=operator_id, account=account, salt=salt,
                        code_hash=code_hash, attempts=0, created_at=now,
                        expires_at=now + ttl)
                .returning(*sms_codes.c)
            ).one()
        return SmsCode(**row._mapping)

    def live_code(self, phone: str) -> SmsCode | None:
        """The phone's code that may still be tried: latest, unexpired, unused, not
        superseded, fewer than :data:`MAX_CODE_ATTEMPTS` wrong tries."""
        now = self._ledger._clock()
        with self._ledger.engine.connect() as conn:
            row = conn.execute(
                sa.select(sms_codes)
                .where(sms_codes.c.phone == phone, sms_codes.c.used_at.is_(None),
                       sms_codes.c.superseded_at.is_(None), sms_codes.c.expires_at > now,
                       sms_codes.c.attempts < MAX_CODE_ATTEMPTS)
                .order_by(sms_codes.c.id.desc())
                .limit(1)
            ).one_or_none()
        return SmsCode(**row._mapping) if row else None

    def use_code(self, code_id: int) -> bool:
        """Spend a code that matched: True for exactly one caller, and only while the
        code is live (compare-and-set, so two racing right answers open one session)."""
        now = self._ledger._clock()
        with self._ledger._write() as conn:
            return conn.execute(
                sms_codes.update()
                .where(sms_codes.c.id == code_id, sms_codes.c.used_at.is_(None),
                       sms_codes.c.superseded_at.is_(None), sms_codes.c.expires_at > now,
                       sms_codes.c.attempts < MAX_CODE_ATTEMPTS)
                .values(used_at=now)
            ).rowcount == 1

    def wrong_try(self, code_id: int) -> None:
        """Count a wrong try against a code (atomically; it dies at the limit)."""
        with self._ledger._write() as conn:
            conn.execute(
                sms_codes.update()
                .where(sms_codes.c.id == code_id, sms_codes.c.used_at.is_(None))
                .values(attempts=sms_codes.c.attempts + 1))

    # ---------------------------------------------------------------- rate limits

    def hit(self, buckets: Iterable[str], window: timedelta) -> list[int]:
        """Count one hit in each bucket's current fixed window; returns the hits so far
        in those windows (this one included). One transaction, one upsert a bucket."""
        now = self._ledger._clock()
        seconds = int(window.total_seconds())
        start = datetime.fromtimestamp(int(now.timestamp()) // seconds * seconds, UTC)
        counts = []
        with self._ledger._write() as conn:
            for bucket in buckets:
                stmt = (
                    self._ledger._insert(rate_limits)
                    .values(bucket=bucket, window_start=start, hits=1)
                    .on_conflict_do_update(index_elements=["bucket", "window_start"],
                                           set_={"hits": rate_limits.c.hits + 1})
                    .returning(rate_limits.c.hits)
                )
                counts.append(int(conn.execute(stmt).scalar_one()))
        return counts

    def forget(self, older_than: timedelta) -> int:
        """Drop counters whose window began before ``older_than`` ago, and codes that
        expired as long ago; returns the rows removed."""
        cutoff = self._ledger._clock() - older_than
        with self._ledger._write() as conn:
            n = conn.execute(
                rate_limits.delete().where(rate_limits.c.window_start < cutoff)).rowcount
            n += conn.execute(sms_codes.delete().where(sms_codes.c.expires_at < cutoff)).rowcount
        return n

    # ---------------------------------------------------------------- second copies

    def second_copy(self, invoice_id: int) -> SecondCopy | None:
        """The invoice's second copy, if one was made."""
        with self._ledger.engine.connect() as conn:
            row = conn.execute(sa.select(second_copies).where(
                second_copies.c.invoice_id == invoice_id)).one_or_none()
        return SecondCopy(**row._mapping) if row else None

    def record_second_copy(self, invoice_id: int, *, archive_key: str, sha256: str,
                           size: int, pages: int | None, renderer_version: str
                           ) -> SecondCopy:
        """Record the archived second copy; if one is recorded already (a racing
        request), that one is returned and this call changes nothing."""
        now = self._ledger._clock()
        stmt = (
            self._ledger._insert(second_copies)
            .values(invoice_id=invoice_id, archive_key=archive_key, sha256=sha256,
                    size=size, pages=pages, renderer_version=renderer_version,
                    created_at=now)
            .on_conflict_do_nothing(index_elements=["invoice_id"])
            .returning(*second_copies.c)
        )
        with self._ledger._write() as conn:
            row = conn.execute(stmt).one_or_none()
            if row is None:
                row = conn.execute(sa.select(second_copies).where(
                    second_copies.c.invoice_id == invoice_id)).one()
        return SecondCopy(**row._mapping)

    # ---------------------------------------------------------------- payments

    def set_payment_status(self, invoice_id: int, status: str, *,
                           amount: Decimal | None = None, paid_on: date | None = None,
                           source: str) -> tuple[Invoice, bool]:
        """Set the invoice's payment status and keep the change in its history.

        Returns the updated invoice and whether anything changed (the same status,
        amount and date again is a no-op: a retried call adds no history row).
        ``LookupError`` for an unknown invoice.
        """
        if status not in PAYMENT_STATUSES:
            raise ValueError(f"unknown payment status {status!r}; known: {PAYMENT_STATUSES}")
        now = self._ledger._clock()
        with self._ledger._write() as conn:
            query = sa.select(invoices).where(invoices.c.id == invoice_id)
            if self._ledger.dialect == "postgresql":
                query = query.with_for_update()
            row = conn.execute(query).one_or_none()
            if row is None:
                raise LookupError(f"no invoice with id {invoice_id}")
            if (row.payment_status, row.paid_amount, row.paid_on) == (status, amount, paid_on):
                return Invoice(**row._mapping), False
            conn.execute(invoices.update().where(invoices.c.id == invoice_id).values(
                payment_status=status, paid_amount=amount, paid_on=paid_on, updated_at=now))
            conn.execute(payment_events.insert().values(
                invoice_id=invoice_id, status=status, amount=amount, paid_on=paid_on,
                source=source, recorded_at=now))
            row = conn.execute(sa.select(invoices).where(invoices.c.id == invoice_id)).one()
        return Invoice(**row._mapping), True

    def payment_history(self, invoice_id: int) -> list[PaymentEvent]:
        """The invoice's payment status changes, oldest first."""
        with self._ledger.engine.connect() as conn:
            rows = conn.execute(sa.select(payment_events)
                                .where(payment_events.c.invoice_id == invoice_id)
                                .order_by(payment_events.c.id)).all()
        return [PaymentEvent(**r._mapping) for r in rows]


__all__ += ["MAX_CODE_ATTEMPTS", "AccessStore", "PaymentEvent", "SecondCopy", "SmsCode"]
