"""``invoicer``: the command line of the invoice service.

Commands are thin: they parse options, call the library, and report with Rich. Text
that comes from records is always passed to Rich as ``Text`` (never as markup), so a
customer named ``[bold]`` or ``<b>`` prints literally.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections import Counter
from pathlib import Path
from typing import Annotated, BinaryIO

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.table import Table
from rich.text import Text

from invoicer.billing.errors import RecordError
from invoicer.billing.reader import open_input, read_records

app = typer.Typer(
    name="invoicer",
    help="Telecom invoice rendering and delivery service.",
    no_args_is_help=True,
    add_completion=False,
)
samples_app = typer.Typer(help="Synthetic billing records for load tests and benchmarks.",
                          no_args_is_help=True)
app.add_typer(samples_app, name="samples")

#: Results (tables, summaries) go to stdout; progress and problems to stderr.
out = Console(highlight=False)
console = Console(stderr=True, highlight=False)

#: Rejections printed on the terminal; the dead-letter file has them all.
SHOWN_REJECTS = 50


def _progress(total_bytes: int | None) -> Progress:
    return Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        TextColumn("{task.fields[records]} records"),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
        # Only worth drawing on a terminal and for files that take a while.
        disable=not console.is_terminal or (total_bytes is not None and total_bytes < 1 << 20),
    )


def _size(path: str) -> int | None:
    try:
        return os.stat(path).st_size if path != "-" else None
    except OSError:
        return None


def dead_letter(error: RecordError, raw: bytes) -> dict:
    """A dead-letter entry: the errors and the line exactly as it came."""
    entry = error.to_dict()
    try:
        entry["raw"] = raw.decode("utf-8")
    except UnicodeDecodeError:
        entry["raw_latin1"] = raw.decode("latin-1")  # lossless for arbitrary bytes
    return entry


@app.command()
def validate(
    file: Annotated[str, typer.Argument(help="JSON Lines file of records, or - for stdin.")],
    rejects: Annotated[
        Path | None,
        typer.Option(help="Dead-letter file for rejected lines.",
                     show_default="FILE.rejected.jsonl"),
    ] = None,
) -> None:
    """Check every record of FILE against billing-record/1 or 1.1; exit 0 if all are valid."""
    total_bytes = _size(file)
    default_rejects = rejects is None
    rejects_path = rejects or Path(
        (file if file != "-" else "stdin") + ".rejected.jsonl"
    )
    try:
        stream = open_input(file)
    except OSError as exc:
        console.print(Text(f"cannot read {file}: {exc.strerror}", style="red"))
        raise typer.Exit(2) from None

    valid = 0
    reasons: Counter[str] = Counter()
    shown: list[RecordError] = []
    dead: BinaryIO | None = None
    try:
        with stream, _progress(total_bytes) as progress:
            task = progress.add_task("validating", total=total_bytes, records=0)
            for n, line in enumerate(read_records(stream), start=1):
                if line.error is None:
                    valid += 1
                else:
                    reasons[line.error.reason] += 1
                    if len(shown) < SHOWN_REJECTS:
                        shown.append(line.error)
                    if dead is None:
                        dead = open(rejects_path, "wb")  # noqa: SIM115 - closed below
                    dead.write(json.dumps(dead_letter(line.error, line.raw),
                                          ensure_ascii=False).encode() + b"\n")
                if n % 256 == 0 and total_bytes:
                    progress.update(task, completed=stream.tell(), records=n)
    finally:
        if dead is not None:
            dead.close()

    rejected = sum(reasons.values())
    if rejected == 0 and default_rejects and rejects_path.exists():
        rejects_path.unlink()  # a stale file from an earlier run would mislead
    _print_rejections(shown, rejected)
    _print_summary(valid, reasons)
    if rejected:
        console.print(Text(f"{rejected} rejected line(s) written to {rejects_path}"))
        raise typer.Exit(1)


def _print_rejections(shown: list[RecordError], rejected: int) -> None:
    if not shown:
        return
    table = Table(title="Rejected records", title_justify="left", expand=True)
    table.add_column("line", justify="right", no_wrap=True)
    table.add_column("invoice", no_wrap=True, max_width=20, overflow="ellipsis")
    table.add_column("field", ratio=2, overflow="fold")
    table.add_column("problem", ratio=5, overflow="fold")
    for error in shown:
        table.add_row(str(error.line or ""), Text(error.invoice_number or "-"),
                      Text(error.path or "(line)"), Text(error.message))
    out.print(table)
    if rejected > len(shown):
        out.print(Text(f"... and {rejected - len(shown)} more in the dead-letter file"))


def _print_summary(valid: int, reasons: Counter[str]) -> None:
    table = Table(title="Summary", title_justify="left")
    table.add_column("outcome")
    table.add_column("records", justify="right")
    table.add_row("valid", str(valid), style="green")
    for reason, count in reasons.most_common():
        table.add_row(Text(f"rejected: {reason}"), str(count), style="red")
    out.print(table)


@app.command()
def run(
    file: Annotated[Path, typer.Argument(help="JSON Lines file of billing records.",
                                         exists=True, dir_okay=False)],
    workers: Annotated[int | None, typer.Option(
        min=1, help="Processes.",
        show_default="INVOICER_WORKERS, or one per core + 1")] = None,
    deliver: Annotated[bool, typer.Option(
        help="Deliver as each invoice is archived; --no-deliver only renders, archives "
             "and records (run the same file again later to deliver).")] = True,
) -> None:
    """Bill run: validate, render, archive and record every record of FILE.

    Resumable: running the same file again finishes what is missing and redoes
    nothing. Exit status 0 when every record reached an end state (archived, already
    done, repeated or rejected), 1 when some failed (run again to retry them), 130
    when interrupted.
    """
    import time

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
                           progress=progress)
    elapsed = time.monotonic() - started
    _print_run_summary(summary, elapsed)
    if summary.interrupted:
        console.print(Text("interrupted: run the same command again to finish", style="yellow"))
        raise typer.Exit(130)
    if summary.outcomes["failed"] or summary.unread:
        raise typer.Exit(1)


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
        words = {"sent": "sent", "pending": "queued" , "failed_permanent": "failed",
                 "unknown": "outcome unknown", "sending": "being sent elsewhere"}
        channels = {"email": "e-mail", "sms": "SMS notice", "print": "print queue"}
        deliveries = Table(title="Deliveries", title_justify="left")
        deliveries.add_column("channel")
        deliveries.add_column("state")
        deliveries.add_column("invoices", justify="right")
        for (channel, state), n in sorted(summary.deliveries.items()):
            shown = "queued for printing" if channel == "print" and state == "pending" \
                else words.get(state, state)
            deliveries.add_row(channels.get(channel, channel), shown, str(n),
                               style="red" if state in ("failed_permanent", "unknown")
                               else None)
        out.print(deliveries)
    rate = summary.records / elapsed if elapsed else 0.0
    out.print(Text(f"{summary.records} records, {summary.pages} pages in {elapsed:.1f} s "
                   f"({rate:,.1f} records/s, {summary.pages / elapsed if elapsed else 0:,.1f}"
                   " pages/s)"))
    for outcome in summary.failures[:10]:
        out.print(Text(f"failed: line {outcome.line}, invoice {outcome.invoice_number}: "
                       f"{outcome.message}", style="red"))
    for outcome in summary.repeats[:10]:
        out.print(Text(f"repeated: line {outcome.line}: {outcome.message}"))
    for seq, error in summary.unread[:10]:
        out.print(Text(f"failed: chunk {seq} of the file could not be read: {error}",
                       style="red"))
    if summary.outcomes["rejected"]:
        out.print(Text(f"rejected lines are dead-lettered in the ledger (run "
                       f"{summary.run_id}); `invoicer validate FILE` lists them with "
                       "their field paths"))


@app.command()
def deliveries(
    state: Annotated[list[str] | None, typer.Option(
        help="States to list.",
        show_default="failed_permanent, unknown, and sending untouched for --stale "
                     "minutes")] = None,
    stale: Annotated[int, typer.Option(help="Minutes after which 'sending' is stale.")] = 30,
    limit: Annotated[int, typer.Option(min=1)] = 200,
) -> None:
    """List deliveries that need a person: failed, outcome unknown, stuck in sending."""
    from datetime import timedelta

    ledger = _migrated_ledger()
    if state:
        rows = ledger.reports.deliveries(state, limit=limit)
    else:
        rows = ledger.reports.needing_attention(timedelta(minutes=stale), limit=limit)
    ledger.close()
    table = Table(title="Deliveries needing attention", title_justify="left")
    for name in ("invoice", "operator", "channel", "state", "attempts", "updated"):
        table.add_column(name, overflow="fold")
    table.add_column("last error", overflow="fold")
    for d, inv in rows:
        table.add_row(Text(inv.number), Text(inv.operator_id), d.channel, d.state,
                      str(d.attempts), f"{d.updated_at:%Y-%m-%d %H:%M}",
                      Text(d.last_error or ""))
    out.print(table if rows else Text("nothing needs attention"))


@app.command()
def resend(
    invoice: Annotated[str, typer.Argument(help="Invoice number.")],
    channel: Annotated[str, typer.Option(help="email or sms")] = "email",
    operator: Annotated[str | None, typer.Option(
        help="Operator id (needed when the number exists at several).")] = None,
) -> None:
    """Send an invoice again on one channel, deliberately: a new attempt with its own
    Message-ID, recorded in the ledger."""
    from invoicer import backends
    from invoicer.billing import parse_record
    from invoicer.settings import get_settings
    from invoicer.workflows.dispatch import resend as resend_delivery

    services = backends.services(get_settings())
    ledger = services.ledger
    ledger.migrate()
    found = ledger.invoices.find(invoice, operator)
    if len(found) != 1:
        console.print(Text(f"{len(found)} invoices numbered {invoice}"
                           + (": give --operator" if found else ""), style="red"))
        raise typer.Exit(2)
    inv = found[0]
    if inv.status != "archived" or not inv.archive_key:
        console.print(Text(f"invoice {invoice} is not archived yet", style="red"))
        raise typer.Exit(2)
    record = parse_record(services.archive.get(inv.archive_key.removesuffix(".pdf") + ".json"))
    try:
        state = resend_delivery(inv, record, channel,
                                lambda: services.archive.get(inv.archive_key),
                                ledger=ledger, channels=services.channels)
    except ValueError as exc:
        console.print(Text(str(exc), style="red"))
        raise typer.Exit(2) from None
    out.print(Text(f"{channel} of {invoice}: {state}"))
    services.close()
    if state != "sent":
        raise typer.Exit(1)


@app.command()
def config() -> None:
    """Print the effective settings (from INVOICER_* variables), secrets masked."""
    from invoicer.settings import get_settings, masked

    table = Table(title="Settings", title_justify="left")
    table.add_column("setting")
    table.add_column("value")
    table.add_column("environment variable")
    for name, value in masked(get_settings()).items():
        table.add_row(name, Text(value + _relative_note(value)), f"INVOICER_{name.upper()}")
    out.print(table)


def _relative_note(url: str) -> str:
    """``" (./var/ledger.db here)"`` for a URL naming a path relative to the working
    directory (``sqlite:///var/ledger.db``, ``file://var/archive``); else ``""``."""
    from invoicer.delivery.fileurl import local_path

    path = None
    if url.startswith("sqlite:///"):
        path = url.removeprefix("sqlite:///").split("?")[0]
    elif url.startswith("file:"):
        try:
            path = local_path(url, "file")
        except ValueError:
            return ""
    if not path or path == ":memory:" or os.path.isabs(path):
        return ""
    return f" (./{path}, relative to the working directory)"


@app.command()
def schema(
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write to a file.")] = None,
) -> None:
    """Print the JSON Schema of billing-record/1.1 (generated from the models)."""
    from invoicer.billing.schema import json_schema_text

    text = json_schema_text()
    if output:
        output.write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)


@samples_app.command("generate")
def samples_generate(
    count: Annotated[int, typer.Option(min=0, help="Number of records.")] = 100,
    cdrs: Annotated[int, typer.Option(min=0, help="Mean call-detail records per record.")] = 20,
    seed: Annotated[int, typer.Option(help="Random seed: same seed, same records.")] = 1,
    output: Annotated[Path | None, typer.Option("--output", "-o",
                                                help="File to write.",
                                                show_default="stdout")] = None,
    einvoice: Annotated[float, typer.Option(
        min=0, max=1, help="Share of Dutch and Romanian records that are business records "
        "asking for an e-invoice (billing-record/1.1).")] = 0.0,
) -> None:
    """Write realistic, reconciling synthetic billing records as JSON Lines."""
    from invoicer.billing.synthetic import write_jsonl

    if output is None:
        write_jsonl(sys.stdout, count, cdrs, seed, einvoice)
        return
    with open(output, "w", encoding="utf-8") as out:
        written = write_jsonl(out, count, cdrs, seed, einvoice)
    console.print(Text(f"wrote {written} records to {output}"))


# ---------------------------------------------------------------------------- print batches

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


def _when(instant) -> str:
    return f"{instant:%Y-%m-%d %H:%M}" if instant else ""


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
    ledger = _migrated_ledger()
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
                      f"{b.sheets:,}", f"{b.pages:,}", _when(b.created_at),
                      _when(b.closed_at), _when(b.printed_at), Text(b.last_error or ""),
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
    ledger = _migrated_ledger()
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


# ---------------------------------------------------------------------------- HTTP API

keys_app = typer.Typer(
    help="API keys for the HTTP API: one per client, role and set of operators.",
    no_args_is_help=True,
)
app.add_typer(keys_app, name="keys")


def _migrated_ledger():
    from invoicer import backends
    from invoicer.settings import get_settings

    ledger = backends.ledger(get_settings())
    ledger.migrate()
    return ledger


@keys_app.command("create")
def keys_create(
    role: Annotated[str, typer.Option(help="print_shop, billing or operations.")],
    operator: Annotated[list[str], typer.Option(
        help="Operator id the key acts for; repeatable.")],
    name: Annotated[str, typer.Option(help="Who holds the key, e.g. the print shop.")],
) -> None:
    """Make an API key and print its token: shown this once, stored only hashed."""
    from invoicer.api.keys import create_key

    ledger = _migrated_ledger()
    try:
        issued = create_key(ledger, role=role, operators=operator, name=name)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    finally:
        ledger.close()
    console.print(Text(f"API key {issued.key.id} ({issued.key.role}) for "
                       f"{', '.join(issued.key.operators)}: {issued.key.name}. "
                       "The token is shown once; keep it now."))
    # The token alone on stdout, so that `TOKEN=$(invoicer keys create ...)` works.
    out.print(Text(issued.token), soft_wrap=True)


@keys_app.command("list")
def keys_list() -> None:
    """List API keys (never their tokens): id, prefix, role, operators, state."""
    ledger = _migrated_ledger()
    keys = ledger.api_keys.all()
    ledger.close()
    if not keys:
        out.print(Text("no API keys"))
        return
    table = Table(title="API keys", title_justify="left")
    for name in ("id", "prefix", "role", "operators", "name", "created", "revoked"):
        table.add_column(name, overflow="fold")
    for k in keys:
        table.add_row(str(k.id), f"ik_{k.prefix}_…", k.role, Text(", ".join(k.operators)),
                      Text(k.name), _when(k.created_at), _when(k.revoked_at),
                      style="dim" if k.revoked_at else None)
    out.print(table)


@keys_app.command("revoke")
def keys_revoke(key_id: Annotated[int, typer.Argument(help="The key's id (keys list).")]
                ) -> None:
    """Revoke an API key: from now on its token is refused (401)."""
    ledger = _migrated_ledger()
    try:
        done = ledger.api_keys.revoke(key_id)
    except LookupError as exc:
        console.print(Text(str(exc).strip("'\""), style="red"))
        raise typer.Exit(2) from None
    finally:
        ledger.close()
    out.print(Text(f"API key {key_id} revoked" if done
                   else f"API key {key_id} was already revoked: nothing changed"))


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to listen on.")] = 8080,
    workers: Annotated[int, typer.Option(min=1, help="uvicorn worker processes.")] = 1,
) -> None:
    """Run the HTTP API under uvicorn (migrating the ledger first)."""
    import uvicorn

    _migrated_ledger().close()
    # The factory form: each uvicorn worker process builds its own app, ledger pool and
    # archive client (none of them survives a fork).
    uvicorn.run("invoicer.api:create_app", factory=True, host=host, port=port, workers=workers,
                proxy_headers=True, server_header=False)


@app.command()
def openapi(
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write to a file.")] = None,
) -> None:
    """Print the HTTP API's OpenAPI document (as served at /openapi.json)."""
    from invoicer.api.openapi import openapi_text

    text = openapi_text()
    if output:
        output.write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)


# ---------------------------------------------------------------------------- bill runs
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
    ledger = _migrated_ledger()
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
            _when(p.run.started_at)]


@runs_app.callback()
def runs_list(
    ctx: typer.Context,
    limit: Annotated[int, typer.Option(min=1, help="Newest runs shown.")] = 20,
) -> None:
    """List the newest bill runs with their progress."""
    if ctx.invoked_subcommand is not None:
        return
    ledger = _migrated_ledger()
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
    import time

    ledger = _migrated_ledger()
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
        head += f" · finished {_when(p.run.finished_at)}"
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
    for chunk in ledger.runs.chunks(p.run.id, ["failed"])[:10]:
        out.print(Text(f"chunk {chunk.seq} (lines {chunk.first_line}-): "
                       f"{chunk.last_error}", style="red"))


@app.command()
def reconcile() -> None:
    """Re-enqueue chunks a dead worker or a lost message left unfinished (what the
    Celery beat schedule runs every INVOICER_RECONCILE_EVERY seconds)."""
    from invoicer import backends
    from invoicer.runs import reconcile as reconcile_runs
    from invoicer.settings import get_settings

    settings = get_settings()
    broker = backends.broker(settings)
    stats = reconcile_runs(_migrated_ledger(), settings, broker.send,
                           waiting=broker.queue_depth)
    out.print(Text(", ".join(f"{k.replace('_', ' ')}: {v}" for k, v in stats.items())
                   or "nothing to reconcile"))


def main() -> None:
    """Console-script entry point."""
    # Warnings (e.g. a locale without labels) go to stderr, named by their module.
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    app()


if __name__ == "__main__":
    main()
