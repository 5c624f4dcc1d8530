"""The ``invoicer`` Typer application; each module of this package adds its commands."""

from __future__ import annotations

import typer

app = typer.Typer(
    name="invoicer",
    help="Telecom invoice rendering and delivery service.",
    no_args_is_help=True,
    add_completion=False,
)
