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
import logging
import re
from dataclasses import dataclass, field
from typing import Literal

from invoicer.billing import BillingRecord, RecordError, parse_record
from invoicer.delivery.archive import Archive, invoice_key
from invoicer.delivery.errors import DeliveryError, TransientDeliveryError
from invoicer.ledger import Ledger, LedgerConflict
from invoicer.renderer import RENDERER_VERSION, RenderOptions, render
from invoicer.workflows.dispatch import Channels, dispatch

log = logging.getLogger(__name__)

_E164 = re.compile(r"\+[1-9][0-9]{1,14}")

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
    try:
        record = parse_record(raw, line=line)
    except RecordError as err:
        services.ledger.runs.record_reject(run_id, line, err.to_dict(), raw)
        return Outcome("rejected", line, err.invoice_number, err.reason, str(err))
    number = record.invoice.number
    try:
        return _render_and_archive(record, raw, line=line, run_id=run_id, services=services)
    except TransientDeliveryError as exc:
        log.warning("line %s, invoice %s: %s (will be retried)", line, number, exc)
        return Outcome("failed", line, number, "transient", str(exc))
    except (DeliveryError, LedgerConflict) as exc:
        log.error("line %s, invoice %s: %s", line, number, exc)
        return Outcome("failed", line, number, type(exc).__name__, str(exc))
    except Exception as exc:  # a bug must not stop the other records of the run
        log.exception("line %s, invoice %s: unexpected error", line, number)
        return Outcome("failed", line, number, "internal", f"{type(exc).__name__}: {exc}")


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

    pdf = render(record, services.options)
    digest = hashlib.sha256(pdf).hexdigest()
    key = invoice_key(operator, record.account.number, inv.period.start, number, "pdf")
    meta = {"renderer-version": RENDERER_VERSION, "invoice": number}
    # The canonical record goes first: a second copy or a re-render needs it, and an
    # archived PDF without it would be a dead end.
    canonical = record.model_dump_json(by_alias=True).encode("utf-8")
    services.archive.put(invoice_key(operator, record.account.number, inv.period.start,
                                     number, "json"), canonical, metadata=meta)
    services.archive.put(key, pdf, sha256=digest, metadata=meta)
    pages = pdf.count(b"/Type /Page\n")
    # Before the invoice counts as done, so that a crash in between redoes it: the
    # lines a business invoice covers let each line's phone sign in to its own section.
    ledger.fleet.record_lines(claim.invoice.id, line_phones(record))
    won = ledger.invoices.mark_archived(
        claim.invoice.id, sha256=digest, archive_key=key, renderer_version=RENDERER_VERSION,
        pages=pages, size=len(pdf), run_id=run_id, source_line=line)
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


def line_phones(record: BillingRecord) -> list[str]:
    """The phone numbers among a business record's lines (``services[].id``)."""
    if record.account.segment.value != "business":
        return []
    return [s.id for s in record.services if _E164.fullmatch(s.id)]


def _deliver(invoice, record: BillingRecord, pdf, services: Services
             ) -> tuple[tuple[str, str], ...]:
    if services.channels is None:
        return ()
    states = dispatch(invoice, record, pdf, ledger=services.ledger,
                      channels=services.channels)
    return tuple(sorted(states.items()))
