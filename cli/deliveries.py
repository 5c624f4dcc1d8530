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

#: How each state reads in the listings.
WORDS = {"pending": "queued", "sending": "being sent", "sent": "sent",
         "failed_permanent": "failed", "unknown": "outcome unknown", "bounced": "bounced"}


def _state(d) -> str:
    word = WORDS.get(d.state, d.state)
    if d.channel == "print" and d.state == "pending":
        word = "queued for printing"
    return word + (f" ({d.report_status})" if d.report_status else "")


@app.command()
def deliveries(
    state: Annotated[list[str] | None, typer.Option(
        help="States to list.",
        show_default="failed, bounced, outcome unknown, queued e-mails and SMS, and "
                     "sending untouched for --stale minutes or held by a process that "
                     "is not alive on this machine")] = None,
    stale: Annotated[int, typer.Option(help="Minutes after which 'sending' is stale.")] = 30,
    limit: Annotated[int, typer.Option(min=1)] = 200,
    invoice: Annotated[str | None, typer.Option(
        help="Every delivery of this invoice number, fallbacks included.")] = None,
    operator: Annotated[str | None, typer.Option(
        help="Operator id (with --invoice, when the number exists at several).")] = None,
) -> None:
    """List deliveries that are not done or need a person, with why and since when; or
    every delivery of one invoice (--invoice), each fallback beside what it replaces."""
    from datetime import timedelta

    ledger = migrated_ledger()
    try:
        if invoice is not None:
            _invoice_chain(ledger, invoice, operator)
            return
        if state:
            rows = ledger.reports.deliveries(state, limit=limit)
        else:
            rows = ledger.reports.needing_attention(timedelta(minutes=stale), limit=limit)
            rows += _held_elsewhere(ledger, {d.id for d, _ in rows}, limit)
        replaced = ledger.reports.replacements(d.id for d, _ in rows)
        onward = {d.id: _onward(ledger, d, replaced.get(d.id)) for d, _ in rows}
    finally:
        ledger.close()
    table = Table(title="Deliveries not done or needing attention", title_justify="left")
    for name in ("id", "invoice", "operator", "channel", "state", "attempts", "since"):
        table.add_column(name, overflow="fold")
    table.add_column("why", overflow="fold")
    table.add_column("fell back to", overflow="fold")
    for d, inv in rows:
        table.add_row(str(d.id), Text(inv.number), Text(inv.operator_id), d.channel,
                      _state(d), str(d.attempts), f"{d.updated_at:%Y-%m-%d %H:%M}",
                      Text(_why(d)), onward[d.id])
    out.print(table if rows else Text("nothing needs attention"))


def _onward(ledger, d, fallback) -> str:
    """Where a failed or bounced delivery's invoice went instead: its fallback, or the
    channel that already carried it (a subscriber who chose paper and e-mail)."""
    if fallback is not None:
        return f"{fallback.channel} #{fallback.id}: {_state(fallback)}"
    if d.state not in ("bounced", "failed_permanent") or d.channel != "email":
        return ""
    also = [o for o in ledger.deliveries.for_invoice(d.invoice_id)
            if o.id != d.id and o.channel != "email"
            and o.state not in ("bounced", "failed_permanent")]
    return "; ".join(f"already on {o.channel} #{o.id}: {_state(o)}" for o in also)


def _held_elsewhere(ledger, listed: set[int], limit: int) -> list:
    """``sending`` rows, however fresh, whose sender is not a live process of this
    machine: killed (the next run of the file finishes it) or on another machine."""
    from invoicer.workflows import owner

    return [(d, inv) for d, inv in ledger.reports.deliveries(["sending"], limit=limit)
            if d.id not in listed and d.owner and owner.alive(d.owner) is not True]


def _why(d) -> str:
    if d.state == "sending" and d.owner:
        from invoicer.workflows import owner

        alive = owner.alive(d.owner)
        held = {True: "a live process", False: "a process that is gone (the next run of "
                "the file finishes it)", None: "a process this machine cannot see"}[alive]
        return f"held by {held}: {d.owner}" + (f"; {d.last_error}" if d.last_error else "")
    return d.last_error or ""


def _invoice_chain(ledger, number: str, operator: str | None) -> None:
    found = ledger.invoices.find(number, operator)
    if len(found) != 1:
        console.print(Text(f"{len(found)} invoices numbered {number}"
                           + (": give --operator" if found else ""), style="red"))
        raise typer.Exit(2)
    inv = found[0]
    rows = ledger.reports.invoice_deliveries(inv.id)
    table = Table(title=f"Deliveries of invoice {inv.number} ({inv.operator_id})",
                  title_justify="left")
    for name in ("id", "channel", "state", "attempts", "since", "replaces"):
        table.add_column(name, overflow="fold")
    table.add_column("why", overflow="fold")
    for d in rows:
        table.add_row(str(d.id), d.channel, _state(d), str(d.attempts),
                      f"{d.updated_at:%Y-%m-%d %H:%M}",
                      f"#{d.replaces_id}" if d.replaces_id else "", Text(_why(d)))
    out.print(table if rows else Text("no deliveries yet"))


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
