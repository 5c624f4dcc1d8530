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


# ---------------------------------------------------------------------------- awaited reads
# The API's hot reads on PostgreSQL are awaited on the event loop (Database.read_async,
# ledger/aio.py): they must give what the blocking reads give, never stop the loop, stay
# bounded, and survive a database restart as the blocking engines do.


def _archived(led: Ledger, facts, number: str, **over) -> None:
    claim = led.invoices.claim("oi", number, **facts(**over))
    assert led.invoices.mark_archived(claim.invoice.id, sha256="a" * 64,
                                      archive_key=f"oi/{number}.pdf", renderer_version="t",
                                      pages=1, size=10)


def test_awaited_reads_give_what_blocking_reads_give(led: Ledger, facts):
    # SQLite reads its file inline; PostgreSQL awaits psycopg's AsyncConnection. Values
    # come through the columns' own types either way (UTC instants, Decimal money).
    from dataclasses import fields

    from invoicer.ledger.invoices import ListedInvoice

    for i, day in enumerate((3, 5, 4)):
        _archived(led, facts, f"AW-{i}", issue_date=datetime(2026, 11, day).date(),
                  charges_by_category={"subscription": "59.90"})
    _archived(led, facts, "AW-OTHER", account="999")
    led.invoices.claim("oi", "AW-CLAIMED", **facts())  # not archived: never listed

    async def both():
        return (await led.invoices.listed_async("oi", "1234567890", limit=13),
                await led.invoices.account_invoice_async("oi", "1234567890", "AW-1"),
                await led.invoices.account_invoice_async("oi", "1234567890", "AW-OTHER"),
                await led.invoices.account_invoice_async("oi", "999", "AW-1"),
                [await led.invoices.linked_document_async(*where) for where in (
                    ("oi", "1234567890", "AW-1"), ("oi", "1234567890", "AW-OTHER"),
                    ("oi", "999", "AW-1"), ("oi", "1234567890", "AW-CLAIMED"),
                    ("vivo", "1234567890", "AW-1"))])

    listed, one, others, wrong_account, linked = asyncio.run(both())
    assert led.db.reads_async is (led.dialect == "postgresql")
    full = led.invoices.for_account("oi", "1234567890", limit=13)
    assert listed == led.invoices.listed("oi", "1234567890", limit=13)
    # A listed invoice is its invoice's row, fewer columns.
    assert listed == [ListedInvoice(**{name: getattr(i, name) for name in
                                       ListedInvoice._fields}) for i in full]
    assert [i.number for i in listed] == ["AW-1", "AW-2", "AW-0"]
    assert [i.einvoice_key for i in listed] == [i.einvoice_key for i in full]
    assert one == led.invoices.account_invoice("oi", "1234567890", "AW-1") == full[0]
    assert one.total == Decimal("104.75") and one.created_at.tzinfo is UTC
    assert one.charges_by_category == {"subscription": "59.90"}
    assert others is None and wrong_account is None
    # A download's row is its invoice's, fewer columns; the same refusals.
    from invoicer.ledger.invoices import LinkedDocument
    assert linked == [LinkedDocument(**{f.name: getattr(one, f.name)
                                        for f in fields(LinkedDocument)}),
                      None, None, None, None]
    assert linked[0].einvoice_key == one.einvoice_key


def test_awaited_reads_never_stop_the_loop_and_are_bounded(pg_url: str, facts):
    # A stalled statement: the loop goes on serving (ticks keep coming) while it waits,
    # and the statement is cancelled at LOOP_STATEMENT_TIMEOUT_MS; its connection stays
    # usable. Requests beyond the pool's connections wait for one, in turn.
    import psycopg

    import invoicer.ledger as ledger_module

    with Ledger.from_url(pg_url) as led:
        led.migrate()
        _archived(led, facts, "LOOP-1")

        async def stalled() -> tuple[int, float]:
            ticks = 0

            async def ticker() -> None:
                nonlocal ticks
                while True:
                    await asyncio.sleep(0.01)
                    ticks += 1

            beat = asyncio.create_task(ticker())
            started = time.monotonic()
            with pytest.raises(psycopg.errors.QueryCanceled):
                await led.db.read_async(sa.select(sa.func.pg_sleep(10)), {})
            took = time.monotonic() - started
            beat.cancel()
            assert await led.invoices.account_invoice_async("oi", "1234567890", "LOOP-1")
            return ticks, took

        ticks, took = asyncio.run(stalled())
        assert 1.5 < took < 5  # the 2 s statement timeout, not pg_sleep's 10 s
        assert ticks > 50  # the loop ran all along

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(ledger_module, "ASYNC_READ_POOL_SIZE", 2)
        with Ledger.from_url(pg_url) as led:
            nap = sa.select(sa.func.pg_backend_pid(), sa.func.pg_sleep(0.2))

            async def crowd() -> list:
                return await asyncio.gather(*(led.db.read_async(nap, {}) for _ in range(8)))

            started = time.monotonic()
            rows = asyncio.run(crowd())
            assert len({row[0][0] for row in rows}) == 2  # two connections, shared in turn
            assert 0.75 < time.monotonic() - started < 4


def test_awaited_reads_survive_a_postgresql_restart(pg_url: str, pg_admin, facts,
                                                    monkeypatch):
    # As the blocking engines: a connection that sat idle is pinged and replaced; one
    # killed while busy fails its own read, and the pool drops it and every idle one, so
    # the next read gets a new connection.
    import psycopg

    from invoicer.ledger import db as ledger_db

    # Idle means more than IDLE_PING_S since the connection came back. The "busy" kill
    # below relies on the next read coming sooner than that (it normally takes a few
    # ms); at 0.2 s a loaded machine stalling the test that long made the pool ping,
    # find the connection dead and replace it, and the expected error did not come.
    monkeypatch.setattr(ledger_db, "IDLE_PING_S", 1.0)
    admin, _ = pg_admin
    pid = sa.select(sa.func.pg_backend_pid())

    def kill(pids: set[int]) -> None:
        with admin.connect() as conn:
            for one in pids:
                conn.execute(sa.text("SELECT pg_terminate_backend(:p)"), {"p": one})

    with Ledger.from_url(pg_url) as led:
        led.migrate()
        _archived(led, facts, "RESTART-0")

        async def scenario() -> None:
            first = (await led.db.read_async(pid, {}))[0][0]
            kill({first})
            await asyncio.sleep(1.2)  # idle: pinged, found dead, replaced
            assert await led.invoices.account_invoice_async("oi", "1234567890", "RESTART-0")
            second = (await led.db.read_async(pid, {}))[0][0]
            assert second != first
            kill({second})  # busy: no ping before the next read
            with pytest.raises(psycopg.OperationalError):
                await led.db.read_async(pid, {})
            third = (await led.db.read_async(pid, {}))[0][0]
            assert third not in (first, second)
            await led.aclose()

        asyncio.run(scenario())


def test_a_loop_pool_serves_waiters_in_turn_and_in_time(pg_url: str):
    # First come, first served (a newcomer never overtakes a waiter), a waiter gives up
    # after its timeout, and one cancelled while waiting takes nothing with it.
    from invoicer.ledger.aio import LoopPool, PoolTimeout

    with Ledger.from_url(pg_url) as led:
        connect = led.db.async_reader._connect

        async def scenario() -> None:
            pool = LoopPool(connect, 1, timeout=0.3, idle_ping_s=60)
            held = await pool.acquire()
            order: list[str] = []

            async def wait(name: str):
                conn = await pool.acquire()
                order.append(name)
                return conn

            first = asyncio.create_task(wait("first"))
            await asyncio.sleep(0.01)
            second = asyncio.create_task(wait("second"))
            await asyncio.sleep(0.01)
            gone = asyncio.create_task(wait("cancelled"))
            await asyncio.sleep(0.01)
            gone.cancel()
            pool.release(held)
            conn = await first
            assert conn is held
            pool.release(conn)
            assert await second is held and order == ["first", "second"]
            started = time.monotonic()
            with pytest.raises(PoolTimeout):
                await pool.acquire()
            assert 0.25 < time.monotonic() - started < 2
            pool.release(held)
            assert await pool.acquire() is held  # nothing leaked on the way
            pool.release(held)
            await pool.close()
            assert held.closed

        asyncio.run(scenario())


def test_each_event_loop_reads_on_connections_of_its_own(pg_url: str, facts):
    # asyncio connections belong to the loop that opened them: a second loop (another
    # run, a test server's thread) gets its own, and a closed loop's are let go of.
    import threading

    with Ledger.from_url(pg_url) as led:
        led.migrate()
        _archived(led, facts, "LOOPS-1")
        read = sa.select(sa.func.pg_backend_pid())
        pids = [asyncio.run(led.db.read_async(read, {}))[0][0] for _ in range(2)]
        got: list[int] = []
        thread = threading.Thread(
            target=lambda: got.append(asyncio.run(led.db.read_async(read, {}))[0][0]))
        thread.start()
        thread.join(30)
        assert len({*pids, *got}) == 3
        assert len(led.db.async_reader._pools) == 1  # the closed loops' pools let go of


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
