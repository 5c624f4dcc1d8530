"""The ledger, on SQLite (a temporary file) and on the machine's PostgreSQL.

Every test runs on both databases. PostgreSQL is reached at 127.0.0.1:5432 as
``postgres`` or ``root`` (trust auth), database ``test``, or at ``INVOICER_TEST_PG_URL``;
each test gets a fresh schema (named after this session) that is dropped afterwards.
Without PostgreSQL the PostgreSQL half is skipped, except under ``CI``, where it fails.

The schema always comes from the Alembic migrations (``Ledger.migrate()``), never from
``create_all``, so these tests are also the migrations' tests.
"""

from __future__ import annotations

import multiprocessing
import os
import secrets
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from invoicer import ledger
from invoicer.ledger import Ledger, LedgerConflict

#: The newest migration: a database migrated "from scratch" must end at it.
HEAD = max(p.name.split("_")[0] for p in
           (Path(__file__).resolve().parent.parent / "migrations" / "versions").glob("0*.py"))

PG_CANDIDATES = (
    "postgresql+psycopg://postgres@127.0.0.1:5432/test",
    "postgresql+psycopg://root@127.0.0.1:5432/test",
)
TABLES = {"runs", "run_counters", "invoices", "rejects", "deliveries", "alembic_version"}
RACERS = 8


# ---------------------------------------------------------------------------- databases


@pytest.fixture(scope="session")
def pg_admin() -> Iterator[tuple[sa.Engine, str]]:
    """An autocommit engine on the test database and a prefix for this session's schemas."""
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


_schemas = iter(range(1_000_000))
_session_tag = f"ledger_{os.getpid()}_{secrets.token_hex(3)}_"


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path) -> Iterator[str]:
    """A URL to an empty database: a SQLite file, or a fresh PostgreSQL schema."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'ledger.db'}"
        return
    admin, url = request.getfixturevalue("pg_admin")
    schema = f"{_session_tag}{next(_schemas)}"
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    try:
        # libpq's options put every connection of the ledger in the schema.
        yield f"{url}?options=-csearch_path%3D{schema}"
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))


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
def sqlite_url(tmp_path) -> str:
    """A SQLite file, for what only SQLite has (pragmas, several processes on one file)."""
    return f"sqlite:///{tmp_path / 'only.db'}"


@pytest.fixture
def sqlite_led(sqlite_url: str) -> Iterator[Ledger]:
    """A migrated ledger on a SQLite file."""
    with Ledger.from_url(sqlite_url) as led:
        led.migrate()
        yield led


def facts(**over: Any) -> dict[str, Any]:
    """The keyword arguments of ``claim_invoice`` for a plausible invoice."""
    base: dict[str, Any] = dict(
        account="1234567890", period_start=date(2026, 10, 1), period_end=date(2026, 10, 31),
        issue_date=date(2026, 11, 5), due_date=date(2026, 11, 20), total=Decimal("104.75"),
        currency="BRL", locale="pt_BR", delivery_mode="electronic", postal_code="22021-001",
        country="BR", phone="+5521987654321",
    )
    base.update(over)
    return base


def race(n: int, fn: Callable[[int], Any]) -> list[Any]:
    """Run ``fn(i)`` in ``n`` threads released together, so they really collide."""
    gate = threading.Barrier(n)

    def go(i: int) -> Any:
        gate.wait()
        return fn(i)

    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(go, range(n)))


# ---------------------------------------------------------------------------- migrations


def test_migrate_from_scratch_creates_the_schema_at_head(fresh: Ledger):
    assert fresh.schema_revision() is None
    fresh.migrate()
    assert fresh.schema_revision() == HEAD
    assert set(sa.inspect(fresh.engine).get_table_names()) >= TABLES


def test_migrate_twice_changes_nothing(led: Ledger):
    claim = led.claim_invoice("oi", "A-1", **facts())
    led.migrate()
    assert led.schema_revision() == HEAD
    assert led.get_invoice("oi", "A-1") == claim.invoice


def test_migrations_match_the_tables_ledger_py_queries(led: Ledger):
    with led.engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
        assert compare_metadata(ctx, ledger.metadata) == []


def test_downgrade_to_nothing_and_back(led: Ledger):
    with led.engine.begin() as conn:
        command.downgrade(ledger.alembic_config(connection=conn), "base")
    assert set(sa.inspect(led.engine).get_table_names()) <= {"alembic_version"}
    led.migrate()
    assert led.schema_revision() == HEAD


def test_concurrent_migrations_all_succeed(fresh: Ledger, db_url: str):
    # Every CLI process and worker migrates at start-up; they must not trip on each other.
    ledgers = [Ledger.from_url(db_url) for _ in range(4)]
    try:
        race(4, lambda i: ledgers[i].migrate())
    finally:
        for one in ledgers:
            one.close()
    assert fresh.schema_revision() == HEAD


def test_sqlite_connections_are_set_for_concurrent_writers(sqlite_led: Ledger):
    with sqlite_led.engine.connect() as conn:
        pragma = lambda name: conn.exec_driver_sql(f"PRAGMA {name}").scalar()  # noqa: E731
        assert pragma("journal_mode") == "wal"
        assert pragma("foreign_keys") == 1
        assert pragma("busy_timeout") == 30_000


def test_postgresql_url_without_driver_means_psycopg3():
    assert ledger._normalize_url("postgresql://u@h/db").drivername == "postgresql+psycopg"


# ---------------------------------------------------------------------------- invoices


def test_second_claim_of_a_number_finds_the_first(led: Ledger):
    run = led.start_run("bill.jsonl")
    first = led.claim_invoice("oi", "OI-1", run_id=run, source_line=3, **facts())
    assert first.created and first.status == "claimed" and not first.done
    again = led.claim_invoice("oi", "OI-1", run_id=run, source_line=9,
                              **facts(total=Decimal("1.00")))
    assert not again.created
    assert again.invoice == first.invoice  # the first claim's facts stand
    assert (again.invoice.run_id, again.invoice.source_line) == (run, 3)
    other_operator = led.claim_invoice("vivo", "OI-1", **facts())
    assert other_operator.created


def test_claim_race_between_threads_has_one_creator(led: Ledger):
    claims = race(RACERS, lambda i: led.claim_invoice("oi", "RACE-1", source_line=i, **facts()))
    assert sum(c.created for c in claims) == 1
    assert len({c.invoice.id for c in claims}) == 1
    with led.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(ledger.invoices)).scalar() == 1


def _claim_in_child(url: str, gate: Any, out: Any, i: int) -> None:
    with Ledger.from_url(url) as mine:
        gate.wait()
        claim = mine.claim_invoice("oi", "PROC-1", source_line=i, **facts())
        out.put((claim.created, claim.invoice.id))


def test_claim_race_between_processes_has_one_creator(sqlite_led: Ledger, sqlite_url: str):
    # Processes sharing one SQLite file is the CLI's default set-up; on PostgreSQL,
    # processes are no different from the threads above.
    ctx = multiprocessing.get_context("fork")
    gate, out = ctx.Barrier(4), ctx.Queue()
    procs = [ctx.Process(target=_claim_in_child, args=(sqlite_url, gate, out, i))
             for i in range(4)]
    for p in procs:
        p.start()
    results = [out.get(timeout=30) for _ in procs]
    for p in procs:
        p.join(timeout=30)
        assert p.exitcode == 0
    assert sorted(created for created, _ in results) == [False, False, False, True]
    assert len({invoice_id for _, invoice_id in results}) == 1


def test_a_forked_child_gets_its_own_connections(led: Ledger):
    # A process pool forked after the parent used the ledger: the child must not talk
    # over the parent's socket or file handle, and the parent must keep working.
    led.claim_invoice("oi", "FORK-0", **facts())
    ctx = multiprocessing.get_context("fork")
    out = ctx.Queue()

    def child() -> None:
        out.put(led.claim_invoice("oi", "FORK-1", **facts()).created)

    proc = ctx.Process(target=child)
    proc.start()
    assert out.get(timeout=30) is True
    proc.join(timeout=30)
    assert proc.exitcode == 0
    assert led.get_invoice("oi", "FORK-1") is not None
    assert not led.claim_invoice("oi", "FORK-0", **facts()).created


def test_money_round_trips_exactly_and_floats_are_refused(led: Ledger):
    amounts = ["12345678901234.56", "-0.01", "0.00", "1500000", "104.75", "0.005"]
    for i, text in enumerate(amounts):
        led.claim_invoice("oi", f"M-{i}", **facts(total=Decimal(text)))
    for i, text in enumerate(amounts):
        total = led.get_invoice("oi", f"M-{i}").total
        assert isinstance(total, Decimal)
        assert total == Decimal(text) and str(total) == text
    with pytest.raises(sa.exc.StatementError) as err:
        led.claim_invoice("oi", "M-float", **facts(total=104.75))
    assert isinstance(err.value.orig, TypeError)
    assert led.get_invoice("oi", "M-float") is None


def test_instants_are_utc_aware(led: Ledger):
    invoice = led.claim_invoice("oi", "T-1", **facts()).invoice
    assert invoice.created_at.tzinfo is not None
    assert abs((datetime.now(UTC) - invoice.created_at).total_seconds()) < 60
    assert led.get_invoice("oi", "T-1").created_at == invoice.created_at


def test_check_constraints_refuse_unknown_values(led: Ledger):
    with pytest.raises(sa.exc.IntegrityError):
        led.claim_invoice("oi", "C-1", **facts(delivery_mode="pigeon"))


def test_mark_archived_once_and_never_with_other_bytes(led: Ledger):
    invoice = led.claim_invoice("oi", "AR-1", **facts()).invoice
    args = dict(sha256="a" * 64, archive_key="oi/1234567890/2026-10/AR-1.pdf",
                renderer_version="r1", pages=2, size=4096)
    assert led.mark_archived(invoice.id, **args) is True
    assert led.mark_archived(invoice.id, **args) is False  # a retry: fine
    with pytest.raises(LedgerConflict):
        led.mark_archived(invoice.id, **{**args, "sha256": "b" * 64})
    done = led.get_invoice("oi", "AR-1")
    assert (done.status, done.sha256, done.pages, done.archived_at is not None) == (
        "archived", "a" * 64, 2, True)
    claim = led.claim_invoice("oi", "AR-1", **facts())
    assert not claim.created and claim.done
    with pytest.raises(LookupError):
        led.mark_archived(10**9, **args)


def test_already_done_sees_only_archived_numbers_in_batches(led: Ledger):
    numbers = [f"B-{i:05d}" for i in range(1200)]
    with led._write() as conn:  # bulk set-up; claim_invoice is tested elsewhere
        now = datetime.now(UTC)
        conn.execute(ledger.invoices.insert(), [
            {"operator_id": "oi", "number": n, "kind": "original", "status": "archived",
             "payment_status": "unpaid", "created_at": now, "updated_at": now, **facts()}
            for n in numbers[::2]
        ])
    led.claim_invoice("oi", "B-00001", **facts())  # claimed, not done
    asked = [*numbers, "B-00000", "nope"]
    assert led.already_done("oi", asked) == set(numbers[::2])
    assert led.already_done("vivo", asked) == set()
    assert led.already_done("oi", []) == set()


def test_account_history_is_the_latest_archived_first(led: Ledger):
    for month in range(1, 16):
        inv = led.claim_invoice("oi", f"H-{month:02d}", **facts(
            issue_date=date(2025, month, 5) if month <= 12 else date(2026, month - 12, 5)
        )).invoice
        led.mark_archived(inv.id, sha256=f"{month:064d}", archive_key=f"k{month}",
                          renderer_version="r1")
    led.claim_invoice("oi", "H-99", **facts(issue_date=date(2027, 1, 5)))  # not archived
    led.claim_invoice("oi", "X-1", **facts(account="other"))
    history = led.invoices_for_account("oi", "1234567890")
    assert [i.number for i in history] == [f"H-{m:02d}" for m in range(15, 2, -1)]
    assert len(led.invoices_for_account("oi", "1234567890", limit=3)) == 3
    assert led.invoices_for_account("vivo", "1234567890") == []


# ---------------------------------------------------------------------------- runs, rejects


ERROR = {
    "line": 12, "invoice_number": "OI-9", "reason": "reconciliation",
    "path": "totals.total_due", "message": "total_due is 104.70 but ... = 104.75",
    "issues": [{"path": "totals.total_due", "message": "total_due is 104.70 but ... = 104.75",
                "reason": "reconciliation"}],
}


def test_rejects_are_recorded_once_per_source_line(led: Ledger):
    raw = b'{"schema": "billing-record/1", \xff broken'
    run = led.start_run("bill.jsonl", source_sha256="f" * 64)
    assert led.record_reject(run, 12, ERROR, raw) is True
    assert led.record_reject(run, 12, ERROR, raw) is False
    # The same file run again (after a crash): the line is already dead-lettered.
    rerun = led.start_run("bill.jsonl", source_sha256="f" * 64)
    assert led.record_reject(rerun, 12, ERROR, raw) is False
    assert led.record_reject(rerun, 13, ERROR, "text line") is True
    # Without a file hash, idempotent per run.
    blind = led.start_run("stdin")
    assert led.record_reject(blind, 12, ERROR, raw) is True
    assert led.record_reject(blind, 12, ERROR, raw) is False

    [dead] = led.rejects_for_run(run)
    assert (dead.line, dead.invoice_number, dead.reason, dead.path) == (
        12, "OI-9", "reconciliation", "totals.total_due")
    assert dead.raw == raw and dead.issues == ERROR["issues"]
    assert led.rejects_for_run(rerun)[0].raw == b"text line"


def test_reject_race_records_one(led: Ledger):
    run = led.start_run("bill.jsonl", source_sha256="e" * 64)
    assert sum(race(RACERS, lambda i: led.record_reject(run, 5, ERROR, b"x"))) == 1


def test_writers_that_read_first_wait_instead_of_failing(led: Ledger, db_url: str):
    # record_reject reads the run's source key, then inserts. On SQLite a deferred
    # transaction doing that fails with "database is locked" as soon as another writer
    # commits in between; the ledger's writers take the lock up front and wait instead.
    run = led.start_run("bill.jsonl", source_sha256="9" * 64)
    ledgers = [Ledger.from_url(db_url) for _ in range(RACERS)]

    def write(i: int) -> int:
        mine = ledgers[i]
        for line in range(25):
            mine._source_keys.clear()  # force the read on every call
            mine.record_reject(run, i * 1000 + line, ERROR, b"x")
        return 25

    try:
        assert sum(race(RACERS, write)) == RACERS * 25
    finally:
        for one in ledgers:
            one.close()
    assert len(led.rejects_for_run(run)) == RACERS * 25


def test_run_counts(led: Ledger):
    run = led.start_run("bill.jsonl", source_sha256="d" * 64, expected=5)
    other = led.start_run("other.jsonl")
    for i in range(3):
        inv = led.claim_invoice("oi", f"R-{i}", run_id=run, source_line=i, **facts()).invoice
        if i:
            led.mark_archived(inv.id, sha256="c" * 64, archive_key=f"k{i}", renderer_version="r")
    led.claim_invoice("oi", "R-other", run_id=other, **facts())
    led.record_reject(run, 4, ERROR, b"x")
    led.record_reject(run, 5, {**ERROR, "reason": "invalid"}, b"y")
    # Counters are bumped from many workers at once; none may be lost.
    race(RACERS, lambda i: led.add_counts(run, {"already_done": 1, "repeated": i % 2}))
    led.add_counts(run, {})

    counts = led.run_counts(run)
    assert counts.invoices == {"claimed": 1, "archived": 2}
    assert counts.rejected == {"reconciliation": 1, "invalid": 1}
    assert counts.total_rejected == 2
    assert counts.counters == {"already_done": RACERS, "repeated": RACERS // 2}

    started = led.get_run(run)
    assert started.finished_at is None and started.expected == 5
    led.finish_run(run)
    finished = led.get_run(run).finished_at
    led.finish_run(run)
    assert finished is not None and led.get_run(run).finished_at == finished
    assert led.get_run(10**9) is None


# ---------------------------------------------------------------------------- deliveries


def test_one_delivery_row_per_invoice_and_channel(led: Ledger):
    invoice = led.claim_invoice("oi", "D-1", **facts()).invoice
    rows = race(RACERS, lambda i: led.ensure_delivery(invoice.id, "email"))
    assert len({r.id for r in rows}) == 1
    assert (rows[0].state, rows[0].attempts) == ("pending", 0)
    assert led.ensure_delivery(invoice.id, "sms").id != rows[0].id
    with pytest.raises(ValueError):
        led.ensure_delivery(invoice.id, "fax")
    with pytest.raises(sa.exc.IntegrityError):  # foreign key, on SQLite too
        led.ensure_delivery(10**9, "email")


def test_transition_race_has_one_winner(led: Ledger):
    invoice = led.claim_invoice("oi", "D-2", **facts()).invoice
    delivery = led.ensure_delivery(invoice.id, "email")
    won = race(RACERS, lambda i: led.transition(delivery.id, "pending", "sending"))
    assert sum(won) == 1
    now = led.get_delivery(delivery.id)
    assert (now.state, now.attempts) == ("sending", 1)


def test_transitions_follow_the_state_machine(led: Ledger):
    invoice = led.claim_invoice("oi", "D-3", **facts()).invoice
    d = led.ensure_delivery(invoice.id, "sms").id
    assert led.transition(d, "pending", "sending")
    assert led.transition(d, {"sending"}, "pending", error="429 Too Many Requests")
    assert led.transition(d, ["pending"], "sending")
    assert not led.transition(d, "pending", "sending")  # already moved on
    assert led.transition(d, "sending", "sent", message_id="<D-3.sms.1@invoicer>")
    done = led.get_delivery(d)
    assert (done.state, done.attempts, done.message_id) == ("sent", 2, "<D-3.sms.1@invoicer>")
    assert done.last_error == "429 Too Many Requests" and done.sent_at is not None
    for bad_from, bad_to in [("pending", "sent"), ("sent", "pending"), ("sending", "bogus")]:
        with pytest.raises(ValueError):
            led.transition(d, bad_from, bad_to)
    with pytest.raises(ValueError):
        led.transition(d, [], "sending")
    # A deliberate re-send leaves "sent" and counts a new attempt.
    assert led.transition(d, {"sent", "failed_permanent", "unknown"}, "sending")
    assert led.get_delivery(d).attempts == 3
    assert led.get_delivery(10**9) is None


def test_row_dataclasses_follow_their_tables_column_order():
    # deliveries_in() builds rows positionally from a join; that relies on this order.
    import dataclasses

    from invoicer import ledger as ledger_module

    for cls, table in ((ledger_module.Invoice, ledger_module.invoices),
                       (ledger_module.Delivery, ledger_module.deliveries)):
        assert [f.name for f in dataclasses.fields(cls)] == list(table.c.keys())
