"""``invoicer print``: print batches of paper invoices."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from invoicer.cli.app import app
from invoicer.cli.common import (
    console,
    migrated_ledger,
    out,
    when,
)

print_app = typer.Typer(
    help="Print batches of paper invoices: list, close, pull and acknowledge them.",
    no_args_is_help=True,
)
app.add_typer(print_app, name="print")


def _print_backends():
    """The migrated ledger and the archive that the settings name."""
    from invoicer import backends
    from invoicer.settings import get_settings

    settings = get_settings()
    ledger = backends.ledger(settings)
    ledger.migrate()
    return ledger, backends.archive(settings)


def _batch_id(text: str) -> int:
    from invoicer.workflows.printing import parse_batch_id

    try:
        return parse_batch_id(text)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None




@print_app.command("list")
def print_list(
    operator: Annotated[str | None, typer.Option(help="Only this operator's batches.")] = None,
    state: Annotated[list[str] | None, typer.Option(
        help="Only batches in this state (open, closing, closed, printed); repeatable.")] = None,
    limit: Annotated[int, typer.Option(min=1, help="Newest batches shown.")] = 50,
) -> None:
    """List print batches, newest first: state, documents, sheets, when."""
    from invoicer.ledger import PRINT_BATCH_STATES

    unknown = sorted(set(state or ()) - set(PRINT_BATCH_STATES))
    if unknown:
        raise typer.BadParameter(f"unknown state(s) {unknown}; known: {PRINT_BATCH_STATES}")
    ledger = migrated_ledger()
    batches = ledger.reports.print_batches([operator] if operator else None,
                                           states=state or None, limit=limit)
    ledger.close()
    if not batches:
        out.print(Text("no print batches"))
        return
    table = Table(title="Print batches", title_justify="left")
    for name in ("batch", "operator", "state"):
        table.add_column(name)
    for name in ("documents", "sheets", "pages"):
        table.add_column(name, justify="right")
    for name in ("created", "closed", "printed"):
        table.add_column(name, no_wrap=True)
    table.add_column("note", overflow="fold")
    for b in batches:
        table.add_row(f"B{b.id}", Text(b.operator_id), b.state, f"{b.documents:,}",
                      f"{b.sheets:,}", f"{b.pages:,}", when(b.created_at),
                      when(b.closed_at), when(b.printed_at), Text(b.last_error or ""),
                      style="red" if b.last_error else None)
    out.print(table)


@print_app.command("close")
def print_close(
    operator: Annotated[str | None, typer.Option(
        help="Only this operator's batches.", show_default="every operator")] = None,
    max_documents: Annotated[int, typer.Option(
        min=1, help="Size at which new batches seal themselves, in documents.")] = 10_000,
    max_sheets: Annotated[int, typer.Option(
        min=1, help="Size at which new batches seal themselves, in duplex sheets.")] = 20_000,
    only_full: Annotated[bool, typer.Option(
        "--only-full", help="Close only batches that reached their size; leave open "
                            "ones open.")] = False,
) -> None:
    """Close print batches: queue paper invoices, seal, make and archive PDF + manifest.

    Exit status 1 when a batch could not be closed (it stays sealed, with its error,
    for `invoicer print list`).
    """
    from invoicer.workflows.printing import BatchLimits, close

    ledger, archive = _print_backends()
    report = close(ledger, archive, operator, seal_open=not only_full,
                   limits=BatchLimits(max_documents, max_sheets))
    if report.joined:
        console.print(Text(f"{report.joined:,} paper invoice(s) joined a batch"))
    if report.closed:
        table = Table(title="Closed", title_justify="left")
        for name in ("batch", "operator"):
            table.add_column(name)
        for name in ("documents", "sheets", "pages", "MB", "seconds", "pages/s"):
            table.add_column(name, justify="right")
        table.add_column("PDF", overflow="fold")
        for c in report.closed:
            table.add_row(f"B{c.batch_id}", Text(c.operator_id), f"{c.documents:,}",
                          f"{c.sheets:,}", f"{c.pages:,}", f"{c.pdf_size / 1e6:,.1f}",
                          f"{c.seconds:.1f}", f"{c.pages_per_second:,.0f}", Text(c.keys.pdf))
        out.print(table)
    elif not report.failed:
        out.print(Text("nothing to close"))
    for batch_id in report.busy:
        out.print(Text(f"B{batch_id}: being closed by another process"))
    for batch_id, error in report.failed:
        out.print(Text(f"B{batch_id} could not be closed: {error}", style="red"))
    if report.failed:
        raise typer.Exit(1)


@print_app.command("pull")
def print_pull(
    batch: Annotated[str, typer.Argument(help="Batch id, e.g. B12.")],
    directory: Annotated[Path, typer.Argument(help="Folder to write the files into.",
                                              file_okay=False)],
) -> None:
    """Write a closed batch's PDF and manifests (CSV, JSON) into DIR, checking SHA-256."""
    from invoicer.delivery.errors import DeliveryError
    from invoicer.workflows.printing import PrintBatchError, pull

    batch_id = _batch_id(batch)
    ledger, archive = _print_backends()
    try:
        pulled = pull(ledger, archive, batch_id, directory)
    except LookupError as exc:
        console.print(Text(str(exc).strip("'\""), style="red"))
        raise typer.Exit(2) from None
    except (PrintBatchError, DeliveryError, OSError) as exc:
        console.print(Text(f"B{batch_id}: {exc}", style="red"))
        raise typer.Exit(1) from None
    for path in (pulled.pdf, pulled.csv, pulled.json):
        out.print(Text(str(path)))
    out.print(Text(f"sha256 {pulled.pdf_sha256}  B{batch_id}.pdf: verified"))


@print_app.command("ack")
def print_ack(
    batch: Annotated[str, typer.Argument(help="Batch id, e.g. B12.")],
    documents: Annotated[int, typer.Option(min=0, help="Documents printed.")],
    sheets: Annotated[int, typer.Option(min=0, help="Sheets printed.")],
) -> None:
    """Acknowledge a batch as printed: its invoices are marked printed (sent).

    The counts must match the manifest. Acknowledging twice changes nothing.
    """
    from invoicer.ledger import LedgerConflict, PrintCountMismatch
    from invoicer.workflows.printing import acknowledge

    batch_id = _batch_id(batch)
    ledger = migrated_ledger()
    try:
        done = acknowledge(ledger, batch_id, documents, sheets)
    except LookupError as exc:
        console.print(Text(str(exc).strip("'\""), style="red"))
        raise typer.Exit(2) from None
    except (PrintCountMismatch, LedgerConflict) as exc:
        console.print(Text(f"refused: {exc}", style="red"))
        raise typer.Exit(1) from None
    if done:
        out.print(Text(f"B{batch_id} acknowledged: {documents:,} invoices printed on "
                       f"{sheets:,} sheets"))
    else:
        out.print(Text(f"B{batch_id} was already acknowledged: nothing changed"))
