"""``invoicer bounces``: the bounce domain's receiver, and the mailbox reader."""

from __future__ import annotations

import signal
import threading
from typing import Annotated

import typer
from rich.text import Text

from invoicer.cli.app import app
from invoicer.cli.common import console, out

bounces_app = typer.Typer(
    help="Bounces and complaints: receive them (SMTP/LMTP) or read them (IMAP).",
    no_args_is_help=True,
)
app.add_typer(bounces_app, name="bounces")


def _intake():
    from invoicer import backends
    from invoicer.settings import get_settings

    settings = get_settings()
    if not settings.bounce_domain:
        console.print(Text("INVOICER_BOUNCE_DOMAIN is not set: e-mails carry no return "
                           "path of ours, so there is nothing to receive", style="red"))
        raise typer.Exit(2)
    intake = backends.intake(settings)
    intake.ledger.migrate()
    return settings, intake


def _taker(intake):
    from invoicer.delivery.bounces import parse_report
    from invoicer.workflows.bounces import send_waiting, take_report

    def take(raw: bytes, envelope_to: tuple[str, ...] = ()) -> str:
        taken = take_report(parse_report(raw, envelope_to=envelope_to), intake)
        send_waiting(intake)  # a fallback SMS left by a transient failure goes too
        return taken

    return take


@bounces_app.command("serve")
def serve(
    listen: Annotated[str | None, typer.Option(
        help="host:port", show_default="INVOICER_BOUNCE_LISTEN")] = None,
    lmtp: Annotated[bool, typer.Option(help="Speak LMTP (from the MTA) instead of SMTP.")
                    ] = False,
) -> None:
    """Receive bounces and complaints for the bounce domain until stopped (SIGTERM,
    Ctrl-C). Each message is answered 250 once recorded, 451 if it could not be."""
    from invoicer.delivery.bounces import BounceHandler, BounceReceiver

    settings, intake = _intake()
    host, _, port = (listen or settings.bounce_listen).rpartition(":")
    take = _taker(intake)
    receiver = BounceReceiver(BounceHandler(intake.verp, take, lmtp=lmtp),
                              host or "127.0.0.1", int(port))
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    receiver.start()
    out.print(Text(f"receiving bounces for {settings.bounce_domain} on "
                   f"{'lmtp' if lmtp else 'smtp'}://{receiver.hostname}:{receiver.port}"))
    try:
        stop.wait()
    except KeyboardInterrupt:
        pass
    finally:
        receiver.stop()
        intake.ledger.close()


@bounces_app.command("fetch")
def fetch(
    url: Annotated[str | None, typer.Option(
        help="imap://user:pass@host/INBOX", show_default="INVOICER_BOUNCE_IMAP_URL")] = None,
    limit: Annotated[int, typer.Option(min=1)] = 1000,
) -> None:
    """Read the unseen messages of the bounce mailbox once: record bounces and
    complaints (then delete them); leave anything else, marked seen, for a person."""
    from invoicer.delivery.bounces import ImapMailbox
    from invoicer.delivery.errors import DeliveryError

    settings, intake = _intake()
    target = url or settings.bounce_imap_url
    if not target:
        console.print(Text("no mailbox: set INVOICER_BOUNCE_IMAP_URL or give --url",
                           style="red"))
        raise typer.Exit(2)
    take = _taker(intake)
    counts: dict[str, int] = {}

    def handled(raw: bytes) -> bool:
        taken = take(raw)
        counts[taken] = counts.get(taken, 0) + 1
        return taken in ("bounced", "soft", "complaint", "duplicate")

    try:
        read, deleted = ImapMailbox.from_url(target).fetch(handled, limit=limit)
    except (DeliveryError, ValueError) as exc:
        console.print(Text(f"bounce mailbox: {exc}", style="red"))
        raise typer.Exit(1) from None
    finally:
        intake.ledger.close()
    summary = ", ".join(f"{n} {k}" for k, n in sorted(counts.items())) or "nothing new"
    out.print(Text(f"{read} read, {deleted} recorded and deleted: {summary}"))
