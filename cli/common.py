"""What the commands share: the consoles, a progress bar, small formatters."""

from __future__ import annotations

import os

from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

#: Results (tables, summaries) go to stdout; progress and problems to stderr.
out = Console(highlight=False)
console = Console(stderr=True, highlight=False)

#: Rejections printed on the terminal; the dead-letter file has them all.
SHOWN_REJECTS = 50


def progress_bar(total_bytes: int | None) -> Progress:
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


def file_size(path: str) -> int | None:
    try:
        return os.stat(path).st_size if path != "-" else None
    except OSError:
        return None


def when(instant) -> str:
    """A ledger instant as the tables show it (minutes, UTC)."""
    return f"{instant:%Y-%m-%d %H:%M}" if instant else ""


def migrated_ledger():
    """The ledger the settings name, migrated to the current schema."""
    from invoicer import backends
    from invoicer.settings import get_settings

    ledger = backends.ledger(get_settings())
    ledger.migrate()
    return ledger
