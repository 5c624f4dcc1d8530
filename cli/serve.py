"""``invoicer serve`` and ``openapi``: the HTTP API."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from invoicer.cli.app import app
from invoicer.cli.common import (
    migrated_ledger,
)


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to listen on.")] = 8080,
    workers: Annotated[int, typer.Option(min=1, help="uvicorn worker processes.")] = 1,
) -> None:
    """Run the HTTP API under uvicorn (migrating the ledger first)."""
    import uvicorn

    from invoicer import backends
    from invoicer.logs import logging_config
    from invoicer.settings import get_settings

    settings = get_settings()
    backends.link_secret(settings)  # a weak or missing secret stops us here, clearly
    migrated_ledger().close()
    # The factory form: each uvicorn worker process builds its own app, ledger pool and
    # archive client (none of them survives a fork), and tunes its garbage collector
    # for serving (api.served_app).
    from invoicer.api import UVICORN_OPTIONS

    uvicorn.run("invoicer.api:served_app", factory=True, host=host, port=port, workers=workers,
                **UVICORN_OPTIONS,
                # Every process logs as INVOICER_LOG_FORMAT says, masked.
                log_config=logging_config(settings.log_format, settings.log_level))


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
