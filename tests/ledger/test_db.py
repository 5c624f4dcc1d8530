"""The ledger's database: migrations, engines, column types, processes.

Every test runs on SQLite (a temporary file) and on the machine's PostgreSQL (a schema
per test; see ``tests/conftest.py``). The schema always comes from the Alembic
migrations (``Ledger.migrate()``), never from ``create_all``, so these tests are also
the migrations' tests.
"""

from __future__ import annotations

import multiprocessing
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from invoicer.ledger import Ledger, alembic_config, metadata
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
