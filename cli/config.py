"""``invoicer config``: the effective settings, every secret masked."""

from __future__ import annotations

import os

from rich.table import Table
from rich.text import Text

from invoicer.cli.app import app
from invoicer.cli.common import (
    out,
)


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
