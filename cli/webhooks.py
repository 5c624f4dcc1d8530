"""``invoicer webhooks``: endpoints, sending the outbox, the attempts log, replay."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from invoicer import backends
from invoicer.cli.app import app
from invoicer.cli.common import console, migrated_ledger, out, when
from invoicer.settings import get_settings

webhooks_app = typer.Typer(
    help="Signed events for the billing system: endpoints, sending, attempts, replay "
         "(docs/webhooks.md).",
    no_args_is_help=True,
)
app.add_typer(webhooks_app, name="webhooks")


@webhooks_app.command("add")
def webhooks_add(
    operator: Annotated[str, typer.Argument(help="Operator id whose events go there; "
                                                 "'*' for every operator's.")],
    url: Annotated[str, typer.Argument(help="The endpoint, http:// or https://.")],
    secret: Annotated[str | None, typer.Option(
        help="Signing secret (at least 32 bytes); default: a new random one.")] = None,
) -> None:
    """Register an endpoint and print its signing secret (stdout, alone)."""
    from invoicer.ledger import new_secret

    ledger = migrated_ledger()
    try:
        endpoint = ledger.webhooks.add_endpoint(operator, url, secret or new_secret())
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    finally:
        ledger.close()
    console.print(Text(f"webhook endpoint {endpoint.id} for {operator}: {url}. "
                       "Its signing secret follows; the receiver needs it."))
    out.print(Text(endpoint.secret), soft_wrap=True)


@webhooks_app.command("list")
def webhooks_list(
    removed: Annotated[bool, typer.Option("--removed", help="Include removed ones.")] = False,
) -> None:
    """List endpoints (secrets shortened) with how many events wait for each."""
    ledger = migrated_ledger()
    endpoints = ledger.webhooks.endpoints(include_removed=removed)
    backlog = ledger.webhooks.backlog()
    ledger.close()
    if not endpoints:
        out.print(Text("no webhook endpoints"))
        return
    table = Table(title="webhook endpoints", title_justify="left")
    for name in ("id", "operator", "url", "secret", "waiting", "created", "removed"):
        table.add_column(name, overflow="fold")
    for e in endpoints:
        table.add_row(str(e.id), Text(e.operator_id), Text(e.url), f"{e.secret[:10]}…",
                      str(backlog.get(e.id, 0)), when(e.created_at), when(e.removed_at),
                      style="dim" if e.removed_at else None)
    out.print(table)


@webhooks_app.command("remove")
def webhooks_remove(endpoint_id: Annotated[int, typer.Argument(help="webhooks list's id.")]
                    ) -> None:
    """Stop sending to an endpoint (its attempts log stays)."""
    ledger = migrated_ledger()
    done = ledger.webhooks.remove_endpoint(endpoint_id)
    ledger.close()
    if not done:
        console.print(Text(f"no live webhook endpoint {endpoint_id}", style="red"))
        raise typer.Exit(2)
    out.print(Text(f"webhook endpoint {endpoint_id} removed"))


@webhooks_app.command("send")
def webhooks_send(
    max_seconds: Annotated[float | None, typer.Option(
        help="Stop after this long even if events are still due.")] = None,
) -> None:
    """Send every due event now (what the workers do every INVOICER_WEBHOOK_SEND_EVERY
    seconds). Exit status 1 if some attempt failed (they stay queued for a retry)."""
    from invoicer.workflows.webhooks import send_due

    settings = get_settings()
    ledger = migrated_ledger()
    poster = backends.webhook_poster(settings)
    try:
        report = send_due(ledger, poster, batch=settings.webhook_batch,
                          lease=timedelta(seconds=settings.effective_webhook_lease()),
                          backoff=backends.webhook_backoff(settings),
                          deadline=None if max_seconds is None
                          else time.monotonic() + max_seconds)
        waiting = sum(ledger.webhooks.backlog().values())
    finally:
        poster.close()
        ledger.close()
    out.print(Text(f"webhooks: {report.delivered} delivered, {report.failed} failed "
                   f"attempts, {report.deferred} deferred; {waiting} waiting"))
    if report.failed:
        raise typer.Exit(1)


def send_after_run(settings, max_seconds: float = 30.0) -> None:
    """After a one-machine bill run: send its events to the registered endpoints now
    (no workers' beat does it here). Quiet when no endpoint is registered; what fails
    waits for `invoicer webhooks send` and does not change the run's exit status."""
    from invoicer.workflows.webhooks import send_due

    ledger = migrated_ledger()
    try:
        if not ledger.webhooks.endpoints():
            return
        poster = backends.webhook_poster(settings)
        try:
            report = send_due(ledger, poster, batch=settings.webhook_batch,
                              lease=timedelta(seconds=settings.effective_webhook_lease()),
                              backoff=backends.webhook_backoff(settings),
                              deadline=time.monotonic() + max_seconds)
        finally:
            poster.close()
        waiting = sum(ledger.webhooks.backlog().values())
    finally:
        ledger.close()
    out.print(Text(f"webhooks: {report.delivered} delivered, {waiting} waiting"
                   + (" (`invoicer webhooks send` retries them)" if waiting else "")))


@webhooks_app.command("replay")
def webhooks_replay(
    event_id: Annotated[list[str] | None, typer.Argument(help="Event ids (evt_…).")] = None,
    since: Annotated[datetime | None, typer.Option(
        help="Every event recorded since this instant (UTC if no offset).")] = None,
    endpoint: Annotated[int | None, typer.Option(help="Only to this endpoint.")] = None,
) -> None:
    """Queue events again, same ids and bodies; `invoicer webhooks send` (or the
    workers) sends them."""
    if not event_id and since is None:
        raise typer.BadParameter("name event ids or --since")
    if since is not None and since.tzinfo is None:
        since = since.replace(tzinfo=UTC)
    ledger = migrated_ledger()
    try:
        count = ledger.webhooks.replay(event_id or None, since=since, endpoint_id=endpoint)
    finally:
        ledger.close()
    out.print(Text(f"{count} webhook deliveries queued again"))


@webhooks_app.command("events")
def webhooks_events(
    invoice: Annotated[str | None, typer.Option(help="Only this invoice's (number).")] = None,
    operator: Annotated[str | None, typer.Option(help="With --invoice: its operator.")] = None,
    last: Annotated[int, typer.Option(help="How many, newest last.")] = 50,
) -> None:
    """The events recorded in the outbox."""
    ledger = migrated_ledger()
    try:
        invoice_id = None
        if invoice is not None:
            found = ledger.invoices.find(invoice, operator)
            if len(found) != 1:
                console.print(Text(f"{len(found)} invoices numbered {invoice}", style="red"))
                raise typer.Exit(2)
            invoice_id = found[0].id
        events = ledger.webhooks.events(invoice_id=invoice_id, limit=last, newest=True)
    finally:
        ledger.close()
    table = Table(title="webhook events", title_justify="left")
    for name in ("event", "type", "operator", "recorded"):
        table.add_column(name, overflow="fold")
    for e in events:
        table.add_row(e.event_id, e.type, Text(e.operator_id or "-"), when(e.created_at))
    out.print(table)


@webhooks_app.command("attempts")
def webhooks_attempts(
    event_id: Annotated[str | None, typer.Option("--event", help="One event's.")] = None,
    last: Annotated[int, typer.Option(help="How many, newest first.")] = 50,
) -> None:
    """The attempts log: every POST, its answer or error, how long it took."""
    ledger = migrated_ledger()
    attempts = ledger.webhooks.attempts(event_id=event_id, limit=last)
    ledger.close()
    table = Table(title="webhook attempts", title_justify="left")
    for name in ("at", "event", "type", "endpoint", "status", "error", "ms"):
        table.add_column(name, overflow="fold")
    for a in attempts:
        table.add_row(when(a.attempted_at), a.event_id, a.type, str(a.endpoint_id),
                      str(a.status_code or "-"), Text(a.error or ""), str(a.duration_ms))
    out.print(table)
