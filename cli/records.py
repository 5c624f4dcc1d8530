"""``invoicer validate``, ``schema`` and ``samples``: the contract from the command line."""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path
from typing import Annotated, BinaryIO

import typer
from rich.table import Table
from rich.text import Text

from invoicer.billing.errors import RecordError
from invoicer.billing.reader import open_input, read_records
from invoicer.cli.app import app
from invoicer.cli.common import (
    SHOWN_REJECTS,
    console,
    file_size,
    out,
    progress_bar,
)


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
    total_bytes = file_size(file)
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
        with stream, progress_bar(total_bytes) as progress:
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


samples_app = typer.Typer(help="Synthetic billing records for load tests and benchmarks.",
                          no_args_is_help=True)
app.add_typer(samples_app, name="samples")


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
