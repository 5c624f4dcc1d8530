"""The reconciler: what dead workers left behind is handed out again, once, and never
an e-mail whose data may have reached the server."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from invoicer.ledger import Ledger
from invoicer.runs import reconcile
from invoicer.settings import Settings


def test_reconciler_leaves_waiting_chunks_alone_while_the_queue_is_busy(tmp_path):
    clock = [datetime.now(UTC)]
    ledger = Ledger.from_url(f"sqlite:///{tmp_path}/l.db", clock=lambda: clock[0])
    ledger.migrate()
    run = ledger.runs.start("file:///x.jsonl")
    ledger.runs.add_chunks(run, [(0, 0, 10, 1, 1), (1, 10, 20, 2, 1), (2, 20, 30, 3, 1)])
    ledger.runs.mark_chunks_queued(run, [0, 1, 2])
    ledger.runs.start_chunk(run, 1)  # its worker died: running, never finished
    ledger.runs.start_chunk(run, 2)
    ledger.runs.end_chunk(run, 2, "done", outcomes={"archived": 1})
    ledger.runs.finish_planning(run, 3)
    settings = Settings(task_time_limit=60, retry_backoff_max=10, stale_after=100)
    sent: list[tuple] = []

    def send(name, args=()):
        sent.append((name, *args))

    now = clock[0]
    assert reconcile(ledger, settings, send, now=now, waiting=0) == {}  # nothing stale
    later = clock[0] = now + timedelta(seconds=101)
    stats = reconcile(ledger, settings, send, now=later, waiting=7)
    assert sent == [("invoicer.process_chunk", run, 1)]  # the dead one only
    assert stats["queued_chunks_left_waiting"] == 1
    stats = reconcile(ledger, settings, send, now=later, waiting=0)  # queue drained
    assert sent[-1] == ("invoicer.process_chunk", run, 0)
    # Re-enqueued chunks were touched: the next pass leaves them alone.
    assert reconcile(ledger, settings, send, now=later, waiting=0) == {}
    ledger.close()


def test_reconciler_never_resends_an_email_whose_data_went_out(tmp_path):
    clock = [datetime.now(UTC)]
    ledger = Ledger.from_url(f"sqlite:///{tmp_path}/l.db", clock=lambda: clock[0])
    ledger.migrate()
    ids = []
    for number in ("OI-1", "OI-2"):
        claim = ledger.invoices.claim(
            "oi", number, account="A1", period_start=date(2026, 10, 1),
            period_end=date(2026, 10, 31), issue_date=date(2026, 11, 5),
            due_date=date(2026, 11, 20), total=Decimal("1.00"), currency="BRL",
            locale="pt_BR", delivery_mode="electronic")
        d = ledger.deliveries.ensure(claim.invoice.id, "email")
        assert ledger.deliveries.transition(d.id, "pending", "sending", message_id=f"<{number}@x>")
        ids.append(d.id)
    # Both senders die: the first after its message data went out, the second before.
    assert ledger.deliveries.hand_off(ids[0])
    clock[0] += timedelta(seconds=101)
    settings = Settings(task_time_limit=60, retry_backoff_max=10, stale_after=100)
    stats = reconcile(ledger, settings, lambda *a, **k: None, now=clock[0], waiting=0)
    assert stats == {"deliveries_unknown": 1, "deliveries_requeued": 1}
    handed, not_yet = (ledger.deliveries.get(i) for i in ids)
    assert handed.state == "unknown" and "not sent again" in handed.last_error
    assert not_yet.state == "pending" and not_yet.handed_off_at is None
    # A new attempt starts without the mark; hand_off only takes a row in sending.
    assert ledger.deliveries.transition(not_yet.id, "pending", "sending")
    assert ledger.deliveries.get(not_yet.id).handed_off_at is None
    assert not ledger.deliveries.hand_off(handed.id)
    ledger.close()


def test_runs_of_the_cli_are_left_alone(tmp_path):
    # A CLI run killed mid-way leaves chunks running; they are not the workers' to take
    # (its source is a path a worker may not see): the next `invoicer run` finishes them.
    clock = [datetime.now(UTC)]
    ledger = Ledger.from_url(f"sqlite:///{tmp_path}/l.db", clock=lambda: clock[0])
    ledger.migrate()
    run = ledger.runs.start("run.jsonl")
    ledger.runs.add_chunks(run, [(0, 0, 10, 1, 1), (1, 10, 20, 2, 1)])
    ledger.runs.finish_planning(run, 2)
    ledger.runs.start_chunk(run, 0)
    sent: list[tuple] = []
    settings = Settings(task_time_limit=60, retry_backoff_max=10, stale_after=100)
    later = clock[0] + timedelta(hours=2)
    assert reconcile(ledger, settings, lambda name, args=(): sent.append(args), now=later,
                     waiting=0) == {}
    assert sent == []
    ledger.close()
