"""``invoicer``: the command line of the invoice service.

Commands are thin: they parse options, call the library, and report with Rich. Text
that comes from records is always passed to Rich as ``Text`` (never as markup), so a
customer named ``[bold]`` or ``<b>`` prints literally. One module per group of
commands; importing them registers their commands on :data:`app`.
"""

from __future__ import annotations

import sys

# isort: off
# Each module registers its commands on `app`; `invoicer --help` lists them in this order.
from invoicer.cli import records, run, deliveries, bounces, config, printing, keys, serve, runs, webhooks, metrics  # noqa: F401,E501
from invoicer.cli.app import app
# isort: on

__all__ = ["app", "main"]


def main() -> None:
    """Console-script entry point."""
    # Warnings (e.g. a locale without labels) go to stderr, named by their module, as
    # text for a terminal or JSON lines (INVOICER_LOG_FORMAT), masked either way.
    from invoicer.delivery.links import WeakSecretError, redact_tokens_in_logs
    from invoicer.logs import configure_logging
    from invoicer.settings import get_settings

    settings = get_settings()
    configure_logging(settings.log_format, settings.log_level)
    redact_tokens_in_logs()

    try:
        app()
    except WeakSecretError as exc:
        # A configuration the service refuses to run with: one clear line, no traceback,
        # exit status 78 (EX_CONFIG) as the Celery worker's start-up check.
        print(f"invoicer: {exc}", file=sys.stderr, flush=True)
        sys.exit(78)
