"""``invoicer deliveries`` and ``resend``: what needs a person, and sending again."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from invoicer.cli.app import app
from invoicer.cli.common import (
    console,
    migrated_ledger,
    out,
)


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

    ledger = migrated_ledger()
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
        xml_key = inv.einvoice_key  # the e-invoice beside the PDF goes again with it
        state = resend_delivery(inv, record, channel,
                                lambda: services.archive.get(inv.archive_key),
                                ledger=ledger, channels=services.channels,
                                xml=None if xml_key is None else (
                                    lambda: services.archive.get(xml_key)))
    except ValueError as exc:
        console.print(Text(str(exc), style="red"))
        raise typer.Exit(2) from None
    out.print(Text(f"{channel} of {invoice}: {state}"))
    services.close()
    if state != "sent":
        raise typer.Exit(1)
