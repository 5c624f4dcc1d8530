"""The ledger's database: one engine, its transactions, its clock, its column types.

One database, chosen by URL (``sqlite:///var/ledger.db`` on one machine,
``postgresql://...`` at scale, meaning psycopg 3). Every store of the ledger
(:mod:`ledger.invoices`, :mod:`ledger.runs`, ...) works through one :class:`Database`
and nothing else: it reads with :meth:`Database.read`, writes in
:meth:`Database.write` transactions, takes "now" from :meth:`Database.now` and builds
upserts with :meth:`Database.insert`.

Idempotency lives in the database, never in memory: every "do this once" is a unique
constraint plus ``INSERT ... ON CONFLICT DO NOTHING``, and every state change is a
compare-and-set ``UPDATE ... WHERE state IN (...)``, so two processes (or two machines)
racing on the same record agree on one winner, on SQLite and on PostgreSQL alike. What
makes that hold on SQLite is set up here: WAL (readers never block the writer), a busy
timeout (a process pool's writers queue instead of failing), and writers that take the
write lock up front (``BEGIN IMMEDIATE``).

SQLAlchemy Core, not the ORM: the ledger is a handful of exact statements (upserts,
compare-and-set updates, batch lookups) whose atomicity is the whole point; Core states
them literally, with no session or identity map to reason about across a process pool,
and the stores hand back frozen dataclasses like the rest of the pipeline.

The schema is created and upgraded only by the Alembic migrations in ``migrations/``
(:meth:`Database.migrate`); :mod:`ledger.schema` describes it at head for the queries
and is checked against the migrations by the tests.

Each process must use its own connections: a :class:`Database` made before a ``fork``
drops its inherited pool in the child by itself (the parent's connections stay the
parent's), but the simplest pattern for a pool is ``Ledger.from_url(url)`` in each
worker's initializer.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL, Connection, Engine, make_url

from invoicer.resources import package_path

__all__ = ["DEFAULT_URL", "BigId", "Database", "LedgerConflict", "Money", "UTCDateTime",
           "alembic_config", "in_list", "make_async_reader", "make_engine", "normalize_url",
           "utcnow"]

DEFAULT_URL = "sqlite:///var/ledger.db"
MIGRATIONS = package_path("migrations")

#: SQLite's default limit on bound parameters was 999 until 3.32: ``IN (...)`` lists
#: are sent in slices of this many.
IN_CHUNK = 500


class LedgerConflict(Exception):
    """The ledger already holds something else under the same key (never overwritten),
    or a thing is not in the state an operation needs."""


def utcnow() -> datetime:
    """The default clock: now, timezone-aware UTC."""
    return datetime.now(UTC)


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


def in_list(values: tuple[str, ...]) -> str:
    """``'a', 'b'``: constants for a CHECK constraint's ``IN (...)``."""
    return ", ".join(f"'{v}'" for v in values)


# ---------------------------------------------------------------------------- engine


def normalize_url(url: str | URL) -> URL:
    """The URL SQLAlchemy should get: ``postgresql://`` means psycopg 3."""
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


def make_engine(url: str | URL | None = None, *, busy_timeout_ms: int = 30_000,
                reader: bool = False, statement_timeout_ms: int | None = None,
                **engine_kwargs: Any) -> Engine:
    """An engine on ``url`` (default ``sqlite:///var/ledger.db``) set up for the ledger.

    SQLite: the file's folder is created; WAL, foreign keys and a busy timeout are set
    on every connection. PostgreSQL: a connection that sat idle in the pool is checked
    before use (:func:`_ping_when_idle`); ``reader=True`` makes the engine of
    :meth:`Database.read` (autocommit: one round trip a query, see there);
    ``statement_timeout_ms`` bounds every statement of its connections.
    """
    u = normalize_url(url or DEFAULT_URL)
    if u.get_backend_name() == "sqlite":
        if u.database and u.database != ":memory:" and not u.database.startswith("file:"):
            Path(u.database).parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(u, **engine_kwargs)
        _configure_sqlite(engine, busy_timeout_ms)
        return engine
    if reader:
        engine_kwargs.setdefault("isolation_level", "AUTOCOMMIT")
    engine = sa.create_engine(u, **engine_kwargs)
    if not engine_kwargs.get("pool_pre_ping"):
        _ping_when_idle(engine)
    if statement_timeout_ms:
        _set_statement_timeout(engine, statement_timeout_ms)
    return engine


def make_async_reader(url: str | URL, *, pool_size: int, pool_timeout: float = 5,
                      statement_timeout_ms: int = 2000) -> Any:
    """The :class:`~ledger.aio.AsyncReader` of :meth:`Database.read_async` on the
    PostgreSQL database at ``url``: per event loop, ``pool_size`` connections in
    autocommit, each statement bounded by ``statement_timeout_ms``, idle ones pinged
    (:data:`IDLE_PING_S`), waited for at most ``pool_timeout`` seconds."""
    from invoicer.ledger.aio import AsyncReader

    u = normalize_url(url)
    if u.get_backend_name() != "postgresql":
        raise ValueError(f"asynchronous reads are for PostgreSQL, not {u.get_backend_name()}")
    dialect = postgresql.psycopg.dialect()
    return AsyncReader(u, dialect, size=pool_size, timeout=pool_timeout,
                       statement_timeout_ms=statement_timeout_ms,
                       idle_ping_s=lambda: IDLE_PING_S)


def _set_statement_timeout(engine: Engine, timeout_ms: int) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Session-wide (the reader is in autocommit): every statement of the connection.
        with dbapi_connection.cursor() as cursor:
            cursor.execute(f"SET statement_timeout = {int(timeout_ms)}")


#: A pooled PostgreSQL connection idle for longer than this is pinged before use.
IDLE_PING_S = 1.0


def _ping_when_idle(engine: Engine) -> None:
    """Check a pooled connection before use only when it sat idle (:data:`IDLE_PING_S`).

    Workers live for days between bill runs, and a database restart must not cost a
    failed record or request: a connection the server dropped while it sat in the pool
    is found here and replaced (raising ``DisconnectionError`` in ``checkout`` makes the
    pool open a new one). SQLAlchemy's ``pool_pre_ping`` does the same on *every*
    checkout: a ``SELECT 1`` round trip before each query, a third of a subscriber
    history request's time under load. A connection handed back a moment ago has just
    answered; the one that died meanwhile fails its statement, and SQLAlchemy then
    drops every connection of the pool opened before that (its disconnect handling).
    """

    @event.listens_for(engine, "connect")
    def _opened(_dbapi_connection: Any, record: Any) -> None:
        record.info["invoicer_used"] = time.monotonic()

    @event.listens_for(engine, "checkin")
    def _returned(_dbapi_connection: Any, record: Any) -> None:
        if record is not None:
            record.info["invoicer_used"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _taken(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        if time.monotonic() - record.info.get("invoicer_used", 0.0) <= IDLE_PING_S:
            return
        try:
            alive = engine.dialect.do_ping(dbapi_connection)
        except Exception as e:  # the driver's own error: the connection is gone
            raise sa.exc.DisconnectionError(f"stale pooled connection: {e}") from e
        if not alive:
            raise sa.exc.DisconnectionError("stale pooled connection")


#: How long a statement read on an event loop's thread may run (:meth:`Database.read`).
LOOP_STATEMENT_TIMEOUT_MS = 2000


def _on_event_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def _dispose_after_fork(ref: weakref.ReferenceType[Database]) -> None:
    db = ref()
    if db is not None:
        # close=False: the parent still owns those sockets/file handles; the child only
        # forgets them and opens its own.
        db.engine.dispose(close=False)
        for other in {db.reader, db.loop_reader} - {db.engine}:
            other.dispose(close=False)
        if db.async_reader is not None:
            db.async_reader.forget()


def alembic_config(url: str | URL | None = None, connection: Connection | None = None) -> Config:
    """An Alembic ``Config`` for ``migrations/``, built in code (no ``alembic.ini``).

    For writing the next migration::

        python -c "from alembic import command; from invoicer.ledger import db; \\
            command.revision(db.alembic_config('sqlite:///var/dev.db'), \\
            'add print batches', autogenerate=True, rev_id='0002')"
    """
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("file_template", "%%(rev)s_%%(slug)s")
    if url is not None:
        rendered = normalize_url(url).render_as_string(hide_password=False)
        cfg.set_main_option("sqlalchemy.url", rendered.replace("%", "%%"))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


# ---------------------------------------------------------------------------- database


class Database:
    """One engine and what every store needs from it.

    ``Database(engine)`` takes a ready engine (tests, or an app that owns its pool);
    :func:`make_engine` builds one with the settings the ledger relies on. ``reader``,
    if given, is the engine :meth:`read` uses (on PostgreSQL, an autocommit one on the
    same database; the default is ``engine``), and ``loop_reader`` the one it uses on
    an event loop's thread (default: ``reader``). ``async_reader`` (PostgreSQL only:
    :func:`make_async_reader`), if given, runs :meth:`read_async`. ``clock`` gives every
    timestamp the stores write (tests move it).
    """

    def __init__(self, engine: Engine, *, reader: Engine | None = None,
                 loop_reader: Engine | None = None,
                 async_reader: Any = None,
                 clock: Callable[[], datetime] = utcnow) -> None:
        self.engine = engine
        self.reader = reader or engine
        self.loop_reader = loop_reader or self.reader
        self.async_reader = async_reader
        self.dialect = engine.dialect.name
        if self.dialect not in ("sqlite", "postgresql"):
            raise ValueError(f"unsupported database: {self.dialect}")
        self.clock = clock
        self._insert = sqlite.insert if self.dialect == "sqlite" else postgresql.insert
        # The connection of this thread's open :meth:`together` block, if any.
        self._shared = threading.local()
        ref = weakref.ref(self)  # a fork hook must not keep a closed database alive
        os.register_at_fork(after_in_child=lambda: _dispose_after_fork(ref))

    def now(self) -> datetime:
        """The clock's now (UTC-aware)."""
        return self.clock()

    def insert(self, table: sa.Table) -> Any:
        """The dialect's ``INSERT`` (it has ``on_conflict_do_nothing/_update``)."""
        return self._insert(table)

    def read(self) -> Any:
        """A connection for reading (``with db.read() as conn``); no write lock taken.

        Never write through it. On PostgreSQL it comes from the reader engine, in
        autocommit: a query is one round trip instead of three (``BEGIN``, the query,
        the pool's ``ROLLBACK``), and sees the same data: under PostgreSQL's READ
        COMMITTED each statement takes its own snapshot, in a transaction or not.

        Called on the thread of a running event loop (an ``async`` route of the API,
        which reads inline: a hop to the thread pool cost more CPU than the query), it
        comes from the loop reader instead: a pool of its own, used by that one thread
        so never waited for (a loop blocked on a pool the request threads had
        exhausted would stall every request of the process), whose statements time
        out (:data:`LOOP_STATEMENT_TIMEOUT_MS`) rather than hold the loop.
        """
        if self.loop_reader is not self.reader and _on_event_loop():
            return self.loop_reader.connect()
        return self.reader.connect()

    @property
    def reads_async(self) -> bool:
        """Whether :meth:`read_async` is there (PostgreSQL); elsewhere an ``async``
        caller reads with :meth:`read` (SQLite: a local file, read inline)."""
        return self.async_reader is not None

    async def read_async(self, stmt: sa.Select, params: dict[str, Any]
                         ) -> list[Sequence[Any]]:
        """The rows of a store's SELECT, read without blocking the event loop.

        The API's hot reads (a subscriber's history, the invoice a link opens) await
        PostgreSQL here while the loop serves other requests: read with :meth:`read`
        on the loop's thread, each round trip stopped the whole process. Each event
        loop has a pool of its own (:mod:`ledger.aio`): autocommit, idle connections
        pinged, statements bounded (:data:`LOOP_STATEMENT_TIMEOUT_MS`), waiters served
        in turn without blocking. ``stmt`` is one of the stores' statements (compiled
        once, so build it once); rows come back as the columns' types give them. Only
        where :attr:`reads_async`.
        """
        if self.async_reader is None:
            raise RuntimeError("this database has no asynchronous reader (SQLite)")
        return await self.async_reader.all(stmt, params)

    async def aclose(self) -> None:
        """:meth:`close`, closing the running loop's asynchronous connections properly
        first (an app's shutdown, on its loop)."""
        if self.async_reader is not None:
            await self.async_reader.close()
        self.close()

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """A write transaction: BEGIN IMMEDIATE on SQLite, plain BEGIN on PostgreSQL.

        Inside a :meth:`together` block of the same thread, the block's transaction:
        nothing is committed when this one ends, and an error raised in it undoes the
        whole block.
        """
        shared = getattr(self._shared, "conn", None)
        if shared is not None:
            yield shared
            return
        with self._transaction() as conn:
            yield conn

    @contextmanager
    def together(self) -> Iterator[None]:
        """Every :meth:`write` of this thread inside the block is one transaction,
        committed when the block ends (or undone, all of it, if it raises).

        For a batch of small writes that may stand or fall together: a bill run's claims,
        then its marks, one commit for sixteen invoices instead of sixteen (a commit is
        ~0.1 ms of CPU on SQLite, most of it the WAL write). The block holds the write
        lock (SQLite) and its rows' locks (PostgreSQL) until it ends, so keep it short
        and do the slow work outside. Reads through :meth:`read` use other connections:
        they do not see the block's writes before it ends. Nested blocks join the
        outermost one.
        """
        if getattr(self._shared, "conn", None) is not None:
            yield
            return
        with self._transaction() as conn:
            self._shared.conn = conn
            try:
                yield
            finally:
                self._shared.conn = None

    @contextmanager
    def _transaction(self) -> Iterator[Connection]:
        with self.engine.connect() as conn:
            if self.dialect == "sqlite":
                conn.execution_options(invoicer_sqlite_begin="IMMEDIATE")
            with conn.begin():
                yield conn

    def ping(self) -> None:
        """One round trip to the database (``SELECT 1``); raises if it cannot be made."""
        with self.engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))

    def close(self) -> None:
        """Close the pools' connections (event loops' asynchronous ones are let go of:
        see :meth:`aclose`)."""
        self.engine.dispose()
        for other in {self.reader, self.loop_reader} - {self.engine}:
            other.dispose()
        if self.async_reader is not None:
            self.async_reader.forget()

    # ---------------------------------------------------------------- schema

    def migrate(self, revision: str = "head") -> None:
        """Create the schema from scratch or upgrade it to ``revision``; idempotent.

        Safe to call from several processes at once: PostgreSQL serializes them on an
        advisory lock, SQLite on its write lock, and the later ones find nothing to do.
        """
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
        with self.engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
