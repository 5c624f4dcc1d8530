"""The plain functions that walk a billing record through the service.

    raw line -> parse (billing) -> claim the invoice number (ledger) -> render
    -> archive PDF and canonical record -> mark archived (ledger)
    -> deliver per the subscriber's preference (workflows.dispatch)

Nothing here knows whether it runs in the CLI's process pool, a Celery worker or a
test (``invoicer.runs`` walks a run's chunks through it). Every step is idempotent: the
ledger's unique (operator, number) decides who works on an invoice, rendering is
deterministic and archiving is create-only, so a record handed over twice, or a run
resumed after a crash, yields one archived invoice.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field
from typing import Literal

from invoicer.billing import BillingRecord, RecordError, parse_record
from invoicer.delivery.archive import Archive, invoice_key
from invoicer.delivery.errors import DeliveryError, TransientDeliveryError
from invoicer.ledger import Ledger, LedgerConflict
from invoicer.logs import log_context
from invoicer.metrics import (
    ARCHIVE_SECONDS,
    DELIVERY_OUTCOMES,
    INVOICES_ARCHIVED,
    INVOICES_REJECTED,
    INVOICES_RENDERED,
    PAGES_RENDERED,
    RENDER_SECONDS,
)
from invoicer.renderer import RENDERER_VERSION, RenderOptions, render
from invoicer.workflows.dispatch import Channels, dispatch

log = logging.getLogger(__name__)

Status = Literal["archived", "already_done", "repeated", "rejected", "failed"]

#: Outcomes after which nothing is left to do for a record in this run.
TERMINAL: frozenset[str] = frozenset({"archived", "already_done", "repeated", "rejected"})


@dataclass(frozen=True, slots=True)
class Outcome:
    """What became of one line of a bill run (and of its deliveries)."""

    status: Status
    line: int | None = None
    invoice_number: str | None = None
    reason: str | None = None
    message: str | None = None
    pages: int = 0
    deliveries: tuple[tuple[str, str], ...] = ()


@dataclass
class Services:
    """The collaborators a record passes through, built once per process
    (:func:`invoicer.backends.services` builds them from the settings)."""

    ledger: Ledger
    archive: Archive
    channels: Channels | None = None
    options: RenderOptions = field(default_factory=RenderOptions)

    def close(self) -> None:
        """Close the ledger and the mailer's connections."""
        self.ledger.close()
        if self.channels is not None:
            self.channels.mailer.close()


def process_record(raw: bytes, *, line: int, run_id: int, services: Services) -> Outcome:
    """Walk one raw JSON line through validate, render, archive and ledger.

    Never raises for a bad record or a failing backend: the outcome says what
    happened. ``rejected`` lines are dead-lettered in the ledger; ``failed`` ones are
    left claimed, and the next run of the same file finishes them.
    """
    with log_context(line=line):
        return _process_record(raw, line=line, run_id=run_id, services=services)


def _process_record(raw: bytes, *, line: int, run_id: int, services: Services) -> Outcome:
    try:
        record = parse_record(raw, line=line)
    except RecordError as err:
        if services.ledger.runs.record_reject(run_id, line, err.to_dict(), raw,
                                              operator_id=_operator_of(raw)):
            INVOICES_REJECTED.inc()
            # The reason and where, never the value (it may be an address or a phone).
            log.info("record rejected: %s at %s", err.reason, err.path or "-")
        return Outcome("rejected", line, err.invoice_number, err.reason, str(err))
    number = record.invoice.number
    try:
        with log_context(invoice=number):
            return _render_and_archive(record, raw, line=line, run_id=run_id,
                                       services=services)
    except TransientDeliveryError as exc:
        log.warning("line %s, invoice %s: %s (will be retried)", line, number, exc)
        return Outcome("failed", line, number, "transient", str(exc))
    except (DeliveryError, LedgerConflict) as exc:
        log.error("line %s, invoice %s: %s", line, number, exc)
        return Outcome("failed", line, number, type(exc).__name__, str(exc))
    except Exception as exc:  # a bug must not stop the other records of the run
        log.exception("line %s, invoice %s: unexpected error", line, number)
        return Outcome("failed", line, number, "internal", f"{type(exc).__name__}: {exc}")


def _operator_of(raw: bytes) -> str | None:
    """The operator id a rejected line names, if it can be read at all: its webhooks
    hear of the rejection (a line that is not even JSON goes to the ``*`` endpoints)."""
    try:
        operator = json.loads(raw).get("operator", {}).get("id")
    except (ValueError, AttributeError):
        return None
    return operator if isinstance(operator, str) and 0 < len(operator) <= 64 else None


def _render_and_archive(record: BillingRecord, raw: bytes, *, line: int, run_id: int,
                        services: Services) -> Outcome:
    inv, ledger = record.invoice, services.ledger
    operator, number = record.operator.id, inv.number
    claim = ledger.invoices.claim(
        operator, number,
        account=record.account.number, period_start=inv.period.start,
        period_end=inv.period.end, issue_date=inv.issue_date, due_date=inv.due_date,
        total=record.totals.total_due, currency=inv.currency, locale=inv.locale,
        delivery_mode=record.delivery.mode.value, kind=inv.kind.value,
        postal_code=record.account.customer.address.postal_code or None,
        country=record.account.customer.address.country, phone=record.delivery.phone,
        record_sha256=hashlib.sha256(raw).hexdigest(), run_id=run_id, source_line=line,
    )
    if not claim.created:
        first = claim.invoice
        ours = (first.run_id, first.source_line) == (run_id, line)
        if first.run_id == run_id and first.source_line is not None and not ours:
            # The number appeared on another line of this same run: processed once, there.
            return Outcome("repeated", line, number,
                           message=f"invoice {number} is already on line "
                                   f"{first.source_line} of this run")
        if claim.done:
            # Archived earlier; a channel left pending (e.g. SMTP was down) goes now.
            # Archived by this very line (an earlier attempt of its chunk): still this
            # line's invoice, counted as archived here and nowhere else.
            key = first.archive_key
            states = _deliver(first, record, lambda: services.archive.get(key), services)
            if ours:
                return Outcome("archived", line, number, pages=first.pages or 0,
                               deliveries=states)
            return Outcome("already_done", line, number, deliveries=states)
        # A claim left by a crashed or failed attempt, or one still in progress
        # elsewhere: finish it. Rendering gives the same bytes and archiving is
        # create-only, so this is safe to redo; the ledger lets one of us mark it.

    with RENDER_SECONDS.time():
        pdf = render(record, services.options)
    INVOICES_RENDERED.inc()
    digest = hashlib.sha256(pdf).hexdigest()
    key = invoice_key(operator, record.account.number, inv.period.start, number, "pdf")
    meta = {"renderer-version": RENDERER_VERSION, "invoice": number}
    # The canonical record goes first: a second copy or a re-render needs it, and an
    # archived PDF without it would be a dead end.
    canonical = record.model_dump_json(by_alias=True).encode("utf-8")
    with ARCHIVE_SECONDS.time():
        services.archive.put(invoice_key(operator, record.account.number, inv.period.start,
                                         number, "json"), canonical, metadata=meta)
        services.archive.put(key, pdf, sha256=digest, metadata=meta)
    pages = pdf.count(b"/Type /Page\n")
    PAGES_RENDERED.inc(pages)
    won = ledger.invoices.mark_archived(
        claim.invoice.id, sha256=digest, archive_key=key, renderer_version=RENDERER_VERSION,
        pages=pages, size=len(pdf), run_id=run_id, source_line=line)
    if won:
        INVOICES_ARCHIVED.inc()
        log.info("invoice archived: %s pages, %s bytes", pages, len(pdf))
    # Delivery starts only once the invoice is archived and recorded: what a
    # subscriber receives is always what the archive holds.
    states = _deliver(claim.invoice, record, lambda: pdf, services)
    if not won:
        # Another process archived the same bytes first: the invoice counts on the line
        # that did (this one, if it was a second attempt of the same chunk), not twice.
        now = ledger.invoices.get_by_id(claim.invoice.id)
        if now is None or (now.run_id, now.source_line) != (run_id, line):
            return Outcome("already_done", line, number, deliveries=states)
    return Outcome("archived", line, number, pages=pages, deliveries=states)


def _deliver(invoice, record: BillingRecord, pdf, services: Services
             ) -> tuple[tuple[str, str], ...]:
    if services.channels is None:
        return ()
    states = dispatch(invoice, record, pdf, ledger=services.ledger,
                      channels=services.channels)
    for channel, state in states.items():
        DELIVERY_OUTCOMES.labels(channel, state).inc()
    return tuple(sorted(states.items()))
