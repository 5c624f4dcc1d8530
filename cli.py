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

from billing.errors import RecordError
from billing.reader import open_input, read_records

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
        typer.Option(help="Dead-letter file for rejected lines [default: FILE.rejected.jsonl]."),
    ] = None,
) -> None:
    """Check every record of FILE against billing-record/1; exit 0 only if all are valid."""
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
        min=1, help="Processes [default: INVOICER_WORKERS, or one per core].")] = None,
) -> None:
    """Bill run: validate, render, archive and record every record of FILE.

    Resumable: running the same file again finishes what is missing and redoes
    nothing. Exit status 0 when every record reached an end state (archived, already
    done, repeated or rejected), 1 when some failed (run again to retry them), 130
    when interrupted.
    """
    import time

    from runner import run_file
    from settings import get_settings

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

        summary = run_file(file, settings, workers=workers, progress=progress)
    elapsed = time.monotonic() - started
    _print_run_summary(summary, elapsed)
    if summary.interrupted:
        console.print(Text("interrupted: run the same command again to finish", style="yellow"))
        raise typer.Exit(130)
    if summary.outcomes["failed"]:
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
    rate = summary.records / elapsed if elapsed else 0.0
    out.print(Text(f"{summary.records} records, {summary.pages} pages in {elapsed:.1f} s "
                   f"({rate:,.1f} records/s, {summary.pages / elapsed if elapsed else 0:,.1f}"
                   " pages/s)"))
    for outcome in summary.failures[:10]:
        out.print(Text(f"failed: line {outcome.line}, invoice {outcome.invoice_number}: "
                       f"{outcome.message}", style="red"))
    for outcome in summary.repeats[:10]:
        out.print(Text(f"repeated: line {outcome.line}: {outcome.message}"))
    if summary.outcomes["rejected"]:
        out.print(Text(f"rejected lines are dead-lettered in the ledger (run "
                       f"{summary.run_id}); `invoicer validate FILE` lists them with "
                       "their field paths"))


@app.command()
def config() -> None:
    """Print the effective settings (from INVOICER_* variables), secrets masked."""
    from settings import get_settings, masked

    table = Table(title="Settings", title_justify="left")
    table.add_column("setting")
    table.add_column("value")
    table.add_column("environment variable")
    for name, value in masked(get_settings()).items():
        table.add_row(name, Text(value), f"INVOICER_{name.upper()}")
    out.print(table)


@app.command()
def schema(
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write to a file.")] = None,
) -> None:
    """Print the JSON Schema of billing-record/1 (generated from the models)."""
    from billing.schema import json_schema_text

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
                                                help="File to write [default: stdout].")] = None,
) -> None:
    """Write realistic, reconciling synthetic billing records as JSON Lines."""
    from billing.synthetic import write_jsonl

    if output is None:
        write_jsonl(sys.stdout, count, cdrs, seed)
        return
    with open(output, "w", encoding="utf-8") as out:
        written = write_jsonl(out, count, cdrs, seed)
    console.print(Text(f"wrote {written} records to {output}"))


def main() -> None:
    """Console-script entry point."""
    # Warnings (e.g. a locale without labels) go to stderr, named by their module.
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    app()


if __name__ == "__main__":
    main()
