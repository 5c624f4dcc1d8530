"""``invoicer enqueue``, ``runs`` and ``reconcile``: bill runs on the Celery workers."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from invoicer.cli.app import app
from invoicer.cli.common import (
    SHOWN_REJECTS,
    console,
    migrated_ledger,
    out,
    when,
)

# `invoicer enqueue` and `invoicer reconcile`: bill runs on Celery workers (worker.py,
# docs/scaling-out.md). `invoicer runs`: every run, whoever executed it (the same chunks
# and counts for `invoicer run` and the workers).

runs_app = typer.Typer(help="Bill runs and their progress, from the ledger.",
                       invoke_without_command=True)
app.add_typer(runs_app, name="runs")


@app.command()
def enqueue(
    source: Annotated[str, typer.Argument(
        help="JSON Lines file: a path the workers can read, file:// or s3://bucket/key.")],
) -> None:
    """Hand a bill run to the Celery workers (INVOICER_BROKER_URL); prints the run id.

    A coordinating task splits the file into chunks; follow it with `invoicer runs show
    RUN`. Enqueueing the same file twice yields one set of invoices and notifications.
    """
    from invoicer import backends
    from invoicer.runs import enqueue as enqueue_run
    from invoicer.runs import source_url
    from invoicer.settings import get_settings

    if "://" not in source and not Path(source).is_file():
        console.print(Text(f"no such file: {source}", style="red"))
        raise typer.Exit(2)
    try:
        url = source_url(source)
    except ValueError as exc:
        console.print(Text(str(exc), style="red"))
        raise typer.Exit(2) from None
    ledger = migrated_ledger()
    try:
        run_id = enqueue_run(url, ledger, backends.broker(get_settings()).send)
    except Exception as exc:  # the broker is down or unreachable: say so plainly
        console.print(Text(f"cannot reach the broker: {type(exc).__name__}: {exc}",
                           style="red"))
        raise typer.Exit(1) from None
    out.print(Text(f"run {run_id} enqueued: {url}"))


def _progress_row(p) -> list:
    done = p.records_done
    expected = p.run.expected
    state = ("finished" if p.run.finished_at else "running" if p.planned
             else "splitting")
    failed = p.chunks.get("failed", 0)
    return [str(p.run.id), Text(p.run.source), state,
            f"{done:,}/{expected:,}" if expected is not None else f"{done:,}/?",
            f"{p.total_chunks:,}", str(failed) if failed else "",
            when(p.run.started_at)]


@runs_app.callback()
def runs_list(
    ctx: typer.Context,
    limit: Annotated[int, typer.Option(min=1, help="Newest runs shown.")] = 20,
) -> None:
    """List the newest bill runs with their progress."""
    if ctx.invoked_subcommand is not None:
        return
    ledger = migrated_ledger()
    table = Table(title="Bill runs", title_justify="left")
    for name in ("run", "source", "state", "records", "chunks", "failed", "started"):
        table.add_column(name, overflow="fold",
                         justify="right" if name in ("records", "chunks") else "left")
    shown = ledger.reports.recent_runs(limit)
    for p in shown:
        table.add_row(*_progress_row(p))
    out.print(table if shown else Text("no runs"))


@runs_app.command("show")
def runs_show(
    run: Annotated[int, typer.Argument(help="Run id.")],
    watch: Annotated[bool, typer.Option(help="Refresh every second until the run "
                                              "is finished.")] = False,
) -> None:
    """Live progress of one run: chunks and records by state, outcomes, deliveries."""

    ledger = migrated_ledger()
    started = time.monotonic()
    first = ledger.reports.run_progress(run)
    if first is None:
        console.print(Text(f"no run {run}", style="red"))
        raise typer.Exit(2)
    while True:
        p = ledger.reports.run_progress(run)
        _show_progress(ledger, p, time.monotonic() - started, first)
        if not watch or p.finished:
            break
        time.sleep(1)
    if p.chunks.get("failed"):
        raise typer.Exit(1)


def _show_progress(ledger, p, elapsed: float, first) -> None:
    from invoicer.ledger import CHUNK_STATES

    expected = p.run.expected
    head = (f"run {p.run.id}: {p.records_done:,} of "
            f"{expected:,} records" if expected is not None
            else f"run {p.run.id}: splitting the source, {p.records_done:,} records done")
    if elapsed > 0 and p.records_done > first.records_done:
        rate = (p.records_done - first.records_done) / elapsed
        head += f" · {rate:,.1f} records/s"
        if expected:
            head += f" · ETA {max(0, expected - p.records_done) / rate:,.0f} s"
    if p.run.finished_at:
        head += f" · finished {when(p.run.finished_at)}"
    out.print(Text(head))
    chunks = Table(title="Chunks", title_justify="left")
    chunks.add_column("state")
    chunks.add_column("chunks", justify="right")
    chunks.add_column("records", justify="right")
    for state in CHUNK_STATES:
        if p.chunks.get(state):
            chunks.add_row(state, f"{p.chunks[state]:,}", f"{p.lines[state]:,}",
                           style="red" if state == "failed" else None)
    out.print(chunks)
    if p.outcomes:
        outcomes = Table(title="Records (finished chunks)", title_justify="left")
        outcomes.add_column("outcome")
        outcomes.add_column("records", justify="right")
        for name, n in sorted(p.outcomes.items()):
            outcomes.add_row(name, f"{n:,}")
        out.print(outcomes)
    rows = ledger.reports.run_deliveries(p.run.id)
    if rows:
        table = Table(title="Deliveries (invoices this run issued)",
                      title_justify="left")
        for name in ("channel", "state", "invoices"):
            table.add_column(name, justify="right" if name == "invoices" else "left")
        for channel, state, n in rows:
            table.add_row(channel, state, f"{n:,}")
        out.print(table)
    formats = ledger.reports.run_einvoices(p.run.id)
    if formats:
        table = Table(title="E-invoices (invoices this run issued)", title_justify="left")
        for name in ("format", "invoices", "where the XML is"):
            table.add_column(name, justify="right" if name == "invoices" else "left")
        for fmt, n, beside in formats:
            table.add_row(fmt, f"{n:,}", _einvoice_place(n, beside))
        out.print(table)
    dead = ledger.runs.rejects(p.run.id, limit=SHOWN_REJECTS + 1)
    if dead:
        # Dead letters are for a person: a conflict above all (an invoice number sent
        # again with other content) must be seen, not only counted.
        table = Table(title="Rejected lines (dead-lettered)", title_justify="left")
        for name in ("line", "invoice", "reason", "field", "why"):
            table.add_column(name, justify="right" if name == "line" else "left",
                             overflow="fold")
        for r in dead[:SHOWN_REJECTS]:
            # Text, never markup: the message may quote the hostile record.
            why = r.message[:300] + (f"; whole line in {r.raw_file}" if r.raw_file else "")
            table.add_row(str(r.line), r.invoice_number or "", r.reason, r.path,
                          Text(why), style="red" if r.reason == "conflict" else None)
        out.print(table)
        if len(dead) > SHOWN_REJECTS:
            out.print(Text(f"… and more rejected lines than the first {SHOWN_REJECTS} "
                           "shown (all are in the ledger's rejects, with their raw line)"))
    for chunk in ledger.runs.chunks(p.run.id, ["failed"])[:10]:
        out.print(Text(f"chunk {chunk.seq} (lines {chunk.first_line}-): "
                       f"{chunk.last_error}", style="red"))


def _einvoice_place(n: int, beside: int) -> str:
    if beside == n:
        return "archived beside the PDF (.xml)"
    if beside == 0:
        return "inside the PDF"
    return f"{beside:,} beside the PDF, {n - beside:,} inside it"


@app.command()
def reconcile() -> None:
    """Re-enqueue chunks a dead worker or a lost message left unfinished (what the
    Celery beat schedule runs every INVOICER_RECONCILE_EVERY seconds)."""
    from invoicer import backends
    from invoicer.runs import reconcile as reconcile_runs
    from invoicer.settings import get_settings

    settings = get_settings()
    broker = backends.broker(settings)
    stats = reconcile_runs(migrated_ledger(), settings, broker.send,
                           waiting=broker.queue_depth)
    out.print(Text(", ".join(f"{k.replace('_', ' ')}: {v}" for k, v in stats.items())
                   or "nothing to reconcile"))
