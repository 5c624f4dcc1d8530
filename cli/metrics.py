"""``invoicer metrics``: the Prometheus text of this deployment, on stdout."""

from __future__ import annotations

import sys

from invoicer.cli.app import app
from invoicer.cli.common import migrated_ledger


@app.command("metrics")
def metrics_command() -> None:
    """Print what /metrics would: the ledger's gauges and, with PROMETHEUS_MULTIPROC_DIR
    set, the counters of every process that worked there (e.g. an `invoicer run`); for
    node_exporter's textfile collector or a quick look."""
    from invoicer.metrics import LedgerCollector, exposition

    ledger = migrated_ledger()
    try:
        sys.stdout.write(exposition(LedgerCollector(ledger.reports.counts,
                                                    ledger.webhooks.backlog)).decode())
    finally:
        ledger.close()
