"""Prometheus metrics: what this process did, and what the ledger holds.

Two kinds, both under ``invoicer_`` (docs/observability.md lists them):

- **Counters and histograms of work done**, kept by the process that does it (the
  pipeline, dispatch, the print batches, the webhook sender): invoices rendered,
  archived, rejected, pages, render and archive durations, delivery outcomes, webhook
  attempts, print batches closed. A bill run spreads over processes (the CLI's pool,
  Celery's prefork pool): with ``PROMETHEUS_MULTIPROC_DIR`` set before they start,
  prometheus_client's standard multiprocess mode keeps each process's values in files
  there, and :func:`exposition` adds them all up.
- **Gauges read from the ledger** at scrape time (:class:`LedgerCollector`): deliveries
  by channel and state (bounces and fallbacks are states), invoices, dead letters, print
  batches by state, the webhook backlog. They are true whichever process did the work,
  and survive restarts.

prometheus_client (the Prometheus project's own client) rather than anything
hand-written: its multiprocess mode is the standard one, and its exposition format is
the one scrapers expect.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

__all__ = [
    "ARCHIVE_SECONDS",
    "CONTENT_TYPE_LATEST",
    "DELIVERY_OUTCOMES",
    "INVOICES_ARCHIVED",
    "INVOICES_REJECTED",
    "INVOICES_RENDERED",
    "PAGES_RENDERED",
    "PRINT_BATCHES_CLOSED",
    "RENDER_SECONDS",
    "WEBHOOK_ATTEMPTS",
    "WEBHOOK_SECONDS",
    "LedgerCollector",
    "exposition",
    "multiprocess_dir",
    "process_registry",
]

#: Seconds: a one-page invoice renders in ~10 ms, a business account's annex in seconds.
_DURATIONS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)

INVOICES_RENDERED = Counter("invoicer_invoices_rendered",
                            "Invoices rendered to PDF (a retried render counts again).")
INVOICES_ARCHIVED = Counter("invoicer_invoices_archived",
                            "Invoices archived and recorded in the ledger by this process.")
INVOICES_REJECTED = Counter("invoicer_invoices_rejected",
                            "Billing records rejected (dead-lettered) by validation.")
PAGES_RENDERED = Counter("invoicer_pages_rendered", "PDF pages rendered.")
RENDER_SECONDS = Histogram("invoicer_render_seconds", "Time to render one invoice's PDF.",
                           buckets=_DURATIONS)
ARCHIVE_SECONDS = Histogram("invoicer_archive_seconds",
                            "Time to archive one invoice (record and PDF).",
                            buckets=_DURATIONS)
DELIVERY_OUTCOMES = Counter("invoicer_delivery_outcomes",
                            "Where a dispatch left each channel's delivery.",
                            ["channel", "state"])
WEBHOOK_ATTEMPTS = Counter("invoicer_webhook_attempts",
                           "Webhook POSTs, by event type and outcome (delivered/failed).",
                           ["type", "outcome"])
WEBHOOK_SECONDS = Histogram("invoicer_webhook_seconds", "Time of one webhook POST.",
                            buckets=_DURATIONS)
PRINT_BATCHES_CLOSED = Counter("invoicer_print_batches_closed",
                               "Print batches closed (PDF made, handed to the print shop).")


def multiprocess_dir() -> str | None:
    """``PROMETHEUS_MULTIPROC_DIR``, if this process runs in multiprocess mode."""
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


def process_registry() -> CollectorRegistry:
    """The registry holding this deployment's work counters: in multiprocess mode a
    fresh one that sums every process's files, else the process's own."""
    if multiprocess_dir():
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return registry
    return REGISTRY


class LedgerCollector(Collector):
    """Gauges read from the ledger when scraped, cached for ``ttl`` seconds (scrapes
    from several Prometheus servers cost one set of queries). ``counts`` and
    ``backlog`` are :meth:`Reports.counts` and :meth:`WebhookStore.backlog`, or
    anything with their shapes. A ledger that cannot be read gives
    ``invoicer_ledger_up 0`` and no other gauge, never a failed scrape."""

    def __init__(self, counts: Callable[[], Any], backlog: Callable[[], dict[int, int]], *,
                 ttl: float = 10.0) -> None:
        self._counts, self._backlog, self._ttl = counts, backlog, ttl
        self._lock = threading.Lock()
        self._cached: tuple[float, list[GaugeMetricFamily]] | None = None

    def describe(self) -> list:
        return []  # read at scrape time only, never at registration

    def collect(self) -> Iterator[GaugeMetricFamily]:
        with self._lock:
            if self._cached is None or time.monotonic() - self._cached[0] > self._ttl:
                self._cached = (time.monotonic(), self._read())
            yield from self._cached[1]

    def _read(self) -> list[GaugeMetricFamily]:
        up = GaugeMetricFamily("invoicer_ledger_up", "1 if the ledger could be read.")
        try:
            counts, backlog = self._counts(), self._backlog()
        except Exception:  # an unreachable ledger is a value to report, not a 500
            up.add_metric([], 0)
            return [up]
        up.add_metric([], 1)
        deliveries = GaugeMetricFamily(
            "invoicer_deliveries", "Deliveries in the ledger by channel and state "
            "(state bounced: bounces; fell_back: replaced by another channel).",
            labels=["channel", "state"])
        for (channel, state), n in sorted(counts.deliveries.items()):
            deliveries.add_metric([channel, state], n)
        invoices = GaugeMetricFamily("invoicer_invoices", "Invoices in the ledger by status.",
                                     labels=["status"])
        for status, n in sorted(counts.invoices.items()):
            invoices.add_metric([status], n)
        rejected = GaugeMetricFamily("invoicer_rejects", "Dead-lettered records in the ledger.")
        rejected.add_metric([], counts.rejected)
        batches = GaugeMetricFamily("invoicer_print_batches", "Print batches by state.",
                                    labels=["state"])
        for state, n in sorted(counts.print_batches.items()):
            batches.add_metric([state], n)
        events = getattr(counts, "events", {})
        bounces = GaugeMetricFamily("invoicer_bounces",
                                    "Deliveries that bounced, ever (delivery.bounced events).")
        bounces.add_metric([], events.get("delivery.bounced", 0))
        fallbacks = GaugeMetricFamily(
            "invoicer_fallbacks", "Deliveries replaced by another channel, ever "
            "(delivery.fell_back events).")
        fallbacks.add_metric([], events.get("delivery.fell_back", 0))
        by_type = GaugeMetricFamily("invoicer_events", "Events recorded for the billing "
                                    "system, by type.", labels=["type"])
        for event_type, n in sorted(events.items()):
            by_type.add_metric([event_type], n)
        waiting = GaugeMetricFamily("invoicer_webhook_backlog",
                                    "Webhook deliveries not yet accepted, per endpoint.",
                                    labels=["endpoint"])
        for endpoint, n in sorted(backlog.items()):
            waiting.add_metric([str(endpoint)], n)
        return [up, deliveries, invoices, rejected, batches, bounces, fallbacks, by_type,
                waiting]


def exposition(*extra: Collector) -> bytes:
    """The text a scraper gets: the work counters (every process's, in multiprocess
    mode) and the ``extra`` collectors (the ledger's gauges)."""
    parts = [generate_latest(process_registry())]
    if extra:
        registry = CollectorRegistry(auto_describe=False)
        for collector in extra:
            registry.register(collector)
        parts.append(generate_latest(registry))
    return b"".join(parts)
