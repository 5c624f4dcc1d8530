"""The ledger's database: migrations, engines, column types, processes.

Every test runs on SQLite (a temporary file) and on the machine's PostgreSQL (a schema
per test; see ``tests/conftest.py``). The schema always comes from the Alembic
migrations (``Ledger.migrate()``), never from ``create_all``, so these tests are also
the migrations' tests.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import time
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from invoicer.ledger import Ledger, alembic_config, metadata
from invoicer.ledger.db import IDLE_PING_S as IDLE
from invoicer.ledger.db import normalize_url

#: The newest migration: a database migrated "from scratch" must end at it.
HEAD = max(p.name.split("_")[0] for p in
           (Path(__file__).resolve().parents[2] / "migrations" / "versions").glob("0*.py"))
TABLES = {"runs", "run_chunks", "invoices", "rejects", "deliveries", "print_batches",
          "print_batch_items", "api_keys", "sms_codes", "rate_limits", "second_copies",
          "payment_events", "webhook_endpoints", "webhook_events", "webhook_deliveries",
          "webhook_attempts", "alembic_version"}


# ---------------------------------------------------------------------------- migrations


def test_migrate_from_scratch_creates_the_schema_at_head(fresh: Ledger):
    assert fresh.schema_revision() is None
    fresh.migrate()
    assert fresh.schema_revision() == HEAD
    assert set(sa.inspect(fresh.engine).get_table_names()) >= TABLES


def test_migrate_twice_changes_nothing(led: Ledger, facts):
    claim = led.invoices.claim("oi", "A-1", **facts())
    led.migrate()
    assert led.schema_revision() == HEAD
    assert led.invoices.get("oi", "A-1") == claim.invoice


def test_migrations_match_the_tables_the_stores_query(led: Ledger):
    with led.engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
        assert compare_metadata(ctx, metadata) == []


def test_downgrade_to_nothing_and_back(led: Ledger):
    with led.engine.begin() as conn:
        command.downgrade(alembic_config(connection=conn), "base")
    assert set(sa.inspect(led.engine).get_table_names()) <= {"alembic_version"}
    led.migrate()
    assert led.schema_revision() == HEAD


def test_concurrent_migrations_all_succeed(fresh: Ledger, db_url: str, race):
    # Every CLI process and worker migrates at start-up; they must not trip on each other.
    ledgers = [Ledger.from_url(db_url) for _ in range(4)]
    try:
        race(4, lambda i: ledgers[i].migrate())
    finally:
        for one in ledgers:
            one.close()
    assert fresh.schema_revision() == HEAD


# ---------------------------------------------------------------------------- engines


def test_sqlite_connections_are_set_for_concurrent_writers(sqlite_led: Ledger):
    with sqlite_led.engine.connect() as conn:
        pragma = lambda name: conn.exec_driver_sql(f"PRAGMA {name}").scalar()  # noqa: E731
        assert pragma("journal_mode") == "wal"
        assert pragma("foreign_keys") == 1
        assert pragma("busy_timeout") == 30_000


def test_postgresql_url_without_driver_means_psycopg3():
    assert normalize_url("postgresql://u@h/db").drivername == "postgresql+psycopg"


def test_a_forked_child_gets_its_own_connections(led: Ledger, facts):
    # A process pool forked after the parent used the ledger: the child must not talk
    # over the parent's socket or file handle, and the parent must keep working.
    led.invoices.claim("oi", "FORK-0", **facts())
    ctx = multiprocessing.get_context("fork")
    out = ctx.Queue()

    def child() -> None:
        out.put(led.invoices.claim("oi", "FORK-1", **facts()).created)

    proc = ctx.Process(target=child)
    proc.start()
    assert out.get(timeout=30) is True
    proc.join(timeout=30)
    assert proc.exitcode == 0
    assert led.invoices.get("oi", "FORK-1") is not None
    assert not led.invoices.claim("oi", "FORK-0", **facts()).created


def _statements(engine: sa.Engine) -> list[str]:
    """The SQL ``engine`` sends from now on (a listener; the list fills as it goes)."""
    sent: list[str] = []
    sa.event.listen(engine, "before_cursor_execute",
                    lambda _c, _cur, statement, *_a: sent.append(statement))
    return sent


def test_postgresql_reads_are_one_round_trip_in_autocommit(pg_url: str, facts):
    # A read used to be four round trips: the pool's SELECT 1, BEGIN, the query, the
    # pool's ROLLBACK. The reader engine runs in autocommit and pings only idle
    # connections; the statements a read sends are its own query and nothing else.
    with Ledger.from_url(pg_url) as led:
        led.migrate()
        led.invoices.claim("oi", "READ-1", **facts())
        assert led.db.reader is not led.db.engine
        with led.db.read() as conn:
            assert conn.connection.driver_connection.autocommit is True
        sent = _statements(led.db.reader)
        assert led.invoices.get("oi", "READ-1").number == "READ-1"
        assert len(sent) == 1 and sent[0].lstrip().upper().startswith("SELECT")
        # Each statement its own snapshot, as READ COMMITTED gave inside a transaction:
        # not in a transaction at all (now() moves between two statements).
        with led.db.read() as conn:
            first = conn.execute(sa.text("SELECT now()")).scalar_one()
            conn.execute(sa.text("SELECT pg_sleep(0.01)"))
            assert conn.execute(sa.text("SELECT now()")).scalar_one() > first
        # A write is seen by the next read at once.
        led.invoices.claim("oi", "READ-2", **facts())
        assert led.invoices.get("oi", "READ-2") is not None


def _count_pings(engine: sa.Engine) -> list[bool]:
    """The answers of every ping ``engine`` makes from now on."""
    pings: list[bool] = []
    ping = engine.dialect.do_ping

    def counted(dbapi_connection):
        try:
            alive = ping(dbapi_connection)
        except Exception:
            pings.append(False)
            raise
        pings.append(alive)
        return alive

    engine.dialect.do_ping = counted
    return pings


def test_a_postgresql_restart_costs_no_request_after_the_pool_sat_idle(
        pg_url: str, pg_admin, facts, monkeypatch):
    # The server drops every connection (a restart, a failover, an idle timeout): the
    # next read and the next write after the pool sat idle get new connections, with no
    # error. Pinged only when idle (IDLE_PING_S), not before every statement.
    from invoicer.ledger import db as ledger_db

    monkeypatch.setattr(ledger_db, "IDLE_PING_S", 0.2)
    admin, _ = pg_admin
    with Ledger.from_url(pg_url) as led:
        led.migrate()
        led.invoices.claim("oi", "RESTART-0", **facts())
        assert led.invoices.get("oi", "RESTART-0") is not None
        pids = set()
        for engine in (led.db.engine, led.db.reader):
            with engine.connect() as conn:
                pids.add(conn.execute(sa.text("SELECT pg_backend_pid()")).scalar_one())
        pings = [_count_pings(led.db.engine), _count_pings(led.db.reader)]
        with admin.connect() as conn:
            for pid in pids:
                conn.execute(sa.text("SELECT pg_terminate_backend(:p)"), {"p": pid})
        time.sleep(0.4)
        assert led.invoices.get("oi", "RESTART-0") is not None
        assert led.invoices.claim("oi", "RESTART-1", **facts()).created
        assert [False] in [p[:1] for p in pings]  # found dead, and replaced
        for engine in (led.db.engine, led.db.reader):
            with engine.connect() as conn:
                assert conn.execute(sa.text("SELECT pg_backend_pid()")).scalar_one() \
                    not in pids


def test_busy_postgresql_connections_are_not_pinged(pg_url: str, facts):
    with Ledger.from_url(pg_url) as led:
        led.migrate()
        led.invoices.claim("oi", "BUSY-1", **facts())
        led.invoices.get("oi", "BUSY-1")
        pings = _count_pings(led.db.reader)
        for _ in range(20):
            assert led.invoices.get("oi", "BUSY-1") is not None
        assert pings == []
        time.sleep(IDLE + 0.1)
        led.invoices.get("oi", "BUSY-1")
        assert pings == [True]


def test_reads_on_an_event_loop_have_their_own_bounded_connection(pg_url: str, facts):
    # An async route reads inline on the loop's thread: it must never wait for a pool
    # the request threads emptied (that would stall every request of the process), and
    # a stalled statement must time out rather than hold the loop.
    from invoicer.ledger import READ_POOL_SIZE

    with Ledger.from_url(pg_url) as led:
        led.migrate()
        led.invoices.claim("oi", "LOOP-1", **facts())
        with led.db.read() as conn:
            assert conn.exec_driver_sql("SHOW statement_timeout").scalar_one() == "0"
        held = [led.db.read() for _ in range(READ_POOL_SIZE)]  # every thread's connection
        try:
            for conn in held:
                conn.exec_driver_sql("SELECT 1")

            async def on_the_loop() -> str:
                assert led.invoices.get("oi", "LOOP-1") is not None
                with led.db.read() as conn:
                    assert conn.engine is led.db.loop_reader
                    return conn.exec_driver_sql("SHOW statement_timeout").scalar_one()

            started = time.monotonic()
            assert asyncio.run(on_the_loop()) == "2s"
            assert time.monotonic() - started < 2

            async def stalled() -> None:
                with led.db.read() as conn:
                    conn.exec_driver_sql("SELECT pg_sleep(10)")

            started = time.monotonic()
            with pytest.raises(sa.exc.OperationalError, match="statement timeout"):
                asyncio.run(stalled())
            assert time.monotonic() - started < 5
        finally:
            for conn in held:
                conn.close()


# ---------------------------------------------------------------------------- types


def test_money_round_trips_exactly_and_floats_are_refused(led: Ledger, facts):
    amounts = ["12345678901234.56", "-0.01", "0.00", "1500000", "104.75", "0.005"]
    for i, text in enumerate(amounts):
        led.invoices.claim("oi", f"M-{i}", **facts(total=Decimal(text)))
    for i, text in enumerate(amounts):
        total = led.invoices.get("oi", f"M-{i}").total
        assert isinstance(total, Decimal)
        assert total == Decimal(text) and str(total) == text
    with pytest.raises(sa.exc.StatementError) as err:
        led.invoices.claim("oi", "M-float", **facts(total=104.75))
    assert isinstance(err.value.orig, TypeError)
    assert led.invoices.get("oi", "M-float") is None


def test_instants_are_utc_aware(led: Ledger, facts):
    invoice = led.invoices.claim("oi", "T-1", **facts()).invoice
    assert invoice.created_at.tzinfo is not None
    assert abs((datetime.now(UTC) - invoice.created_at).total_seconds()) < 60
    assert led.invoices.get("oi", "T-1").created_at == invoice.created_at


def test_check_constraints_refuse_unknown_values(led: Ledger, facts):
    with pytest.raises(sa.exc.IntegrityError):
        led.invoices.claim("oi", "C-1", **facts(delivery_mode="pigeon"))
