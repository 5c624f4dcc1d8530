"""``invoicer keys``: API keys for the HTTP API."""

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
    when,
)

keys_app = typer.Typer(
    help="API keys for the HTTP API: one per client, role and set of operators.",
    no_args_is_help=True,
)
app.add_typer(keys_app, name="keys")




@keys_app.command("create")
def keys_create(
    role: Annotated[str, typer.Option(help="print_shop, billing or operations.")],
    operator: Annotated[list[str], typer.Option(
        help="Operator id the key acts for; repeatable.")],
    name: Annotated[str, typer.Option(help="Who holds the key, e.g. the print shop.")],
) -> None:
    """Make an API key and print its token: shown this once, stored only hashed."""
    from invoicer.api.keys import create_key

    ledger = migrated_ledger()
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
    ledger = migrated_ledger()
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
                      Text(k.name), when(k.created_at), when(k.revoked_at),
                      style="dim" if k.revoked_at else None)
    out.print(table)


@keys_app.command("revoke")
def keys_revoke(key_id: Annotated[int, typer.Argument(help="The key's id (keys list).")]
                ) -> None:
    """Revoke an API key: from now on its token is refused (401)."""
    ledger = migrated_ledger()
    try:
        done = ledger.api_keys.revoke(key_id)
    except LookupError as exc:
        console.print(Text(str(exc).strip("'\""), style="red"))
        raise typer.Exit(2) from None
    finally:
        ledger.close()
    out.print(Text(f"API key {key_id} revoked" if done
                   else f"API key {key_id} was already revoked: nothing changed"))
