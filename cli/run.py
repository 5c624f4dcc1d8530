"""``invoicer run``: the one-machine bill run, with progress and a closing summary."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table
from rich.text import Text

from invoicer.cli.app import app
from invoicer.cli.common import (
    console,
    out,
)


@app.command()
def run(
    file: Annotated[Path, typer.Argument(help="JSON Lines file of billing records.",
                                         exists=True, dir_okay=False)],
    workers: Annotated[int | None, typer.Option(
        min=1, help="Processes.",
        show_default="INVOICER_WORKERS, or one per core (+1 with remote backends)")] = None,
    deliver: Annotated[bool, typer.Option(
        help="Deliver as each invoice is archived; --no-deliver only renders, archives "
             "and records (run the same file again later to deliver).")] = True,
) -> None:
    """Bill run: validate, render, archive and record every record of FILE.

    Resumable: running the same file again finishes what is missing and redoes
    nothing. Exit status 0 when every record reached an end state (archived, already
    done, repeated or rejected) and every e-mail and SMS was handed over; 1 when some
    records failed (run again to retry them); 75 when the records are done but some
    e-mails or SMS could not be handed over (queued for a dead server, held by another
    live process, or outcome unknown: `invoicer deliveries` lists them); 130 when
    interrupted.
    """

    from invoicer.runner import run_file
    from invoicer.settings import get_settings

    settings = get_settings()
    size = file.stat().st_size
    started = time.monotonic()
    with Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        TextColumn("{task.fields[records]} records · {task.fields[rate]} rec/s · "
                   "{task.fields[pages_rate]} pages/s"),
        TimeRemainingColumn(),
        console=console,
        transient=True,
        disable=not console.is_terminal,
    ) as bar:
        task = bar.add_task("bill run", total=size, records=0, rate="-", pages_rate="-")

        def progress(summary, position: int) -> None:
            elapsed = max(time.monotonic() - started, 1e-6)
            bar.update(task, completed=position, records=summary.records,
                       rate=f"{summary.records / elapsed:,.0f}",
                       pages_rate=f"{summary.pages / elapsed:,.0f}")

        summary = run_file(file, settings, workers=workers, deliver=deliver,
                           progress=progress, own_process=True)
    elapsed = time.monotonic() - started
    _print_run_summary(summary, elapsed)
    if not summary.interrupted:
        from invoicer.cli.webhooks import send_after_run

        send_after_run(settings)
    if summary.interrupted:
        console.print(Text("interrupted: run the same command again to finish", style="yellow"))
        raise typer.Exit(130)
    if summary.outcomes["failed"] or summary.unread:
        raise typer.Exit(1)
    if waiting(summary):
        raise typer.Exit(EXIT_WAITING)


#: Exit status of a run whose records are done while e-mails or SMS are not handed over
#: (sysexits' EX_TEMPFAIL: try again later).
EXIT_WAITING = 75


def waiting(summary) -> int:
    """E-mails and SMS of the run not handed over: queued, held elsewhere, unknown."""
    return sum(n for (channel, state), n in summary.deliveries.items()
               if channel in ("email", "sms") and state in ("pending", "sending", "unknown"))


def _print_run_summary(summary, elapsed: float) -> None:
    labels = {"archived": "rendered and archived", "already_done": "already done",
              "repeated": "repeated in the file (processed once)", "rejected": "rejected",
              "failed": "failed (left to retry)"}
    table = Table(title=f"Run {summary.run_id}", title_justify="left")
    table.add_column("outcome")
    table.add_column("records", justify="right")
    for status in ("archived", "already_done", "repeated", "rejected", "failed"):
        count = summary.outcomes[status]
        if not count and status != "archived":
            continue
        table.add_row(labels[status], str(count),
                      style={"rejected": "red", "failed": "red"}.get(status))
        for (s, reason), n in sorted(summary.reasons.items()):
            if s == status:
                table.add_row(Text(f"  {reason}"), str(n))
    out.print(table)
    if summary.deliveries:
        words = {"sent": "sent", "pending": "queued", "failed_permanent": "failed",
                 "unknown": "outcome unknown", "sending": "being sent elsewhere",
                 "bounced": "bounced"}
        channels = {"email": "e-mail", "sms": "SMS notice", "print": "print queue"}
        deliveries = Table(title="Deliveries", title_justify="left")
        deliveries.add_column("channel")
        deliveries.add_column("state")
        deliveries.add_column("invoices", justify="right")
        for (channel, state), n in sorted(summary.deliveries.items()):
            shown = "queued for printing" if channel == "print" and state == "pending" \
                else words.get(state, state)
            deliveries.add_row(channels.get(channel, channel), shown, str(n),
                               style="red" if state in ("failed_permanent", "unknown",
                                                        "bounced")
                               else None)
        out.print(deliveries)
        still = waiting(summary)
        if still:
            out.print(Text(
                f"{still} e-mails and SMS still wait (queued for a server that did not "
                "take them, held by another process, or outcome unknown): "
                "`invoicer deliveries` lists them with why; run the same file again "
                "to send what is queued", style="yellow"))
    if summary.einvoices:
        einvoices = Table(title="E-invoices", title_justify="left")
        einvoices.add_column("format")
        einvoices.add_column("XML")
        einvoices.add_column("invoices", justify="right")
        for fmt, n in sorted(summary.einvoices.items()):
            where = ("inside the PDF (factur-x.xml)" if fmt == "factur-x"
                     else "archived beside the PDF (.xml), sent with the e-mail")
            einvoices.add_row(fmt, where, str(n))
        out.print(einvoices)
    rate = summary.records / elapsed if elapsed else 0.0
    out.print(Text(f"{summary.records} records, {summary.pages} pages in {elapsed:.1f} s "
                   f"({rate:,.1f} records/s, {summary.pages / elapsed if elapsed else 0:,.1f}"
                   " pages/s)"))
    for outcome in summary.failures[:10]:
        out.print(Text(f"failed: line {outcome.line}, invoice {outcome.invoice_number}: "
                       f"{outcome.message}", style="red"))
    for outcome in summary.conflicts[:10]:
        out.print(Text(f"conflict: {outcome.message}", style="red"))
    for outcome in summary.repeats[:10]:
        out.print(Text(f"repeated: line {outcome.line}: {outcome.message}"))
    for seq, error in summary.unread[:10]:
        out.print(Text(f"failed: chunk {seq} of the file could not be read: {error}",
                       style="red"))
    if summary.outcomes["rejected"]:
        out.print(Text(f"rejected lines are dead-lettered in the ledger: `invoicer runs "
                       f"show {summary.run_id}` lists them with their field paths"))
