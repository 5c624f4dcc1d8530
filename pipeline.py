"""The plain functions that walk a billing record through the service.

    raw line -> parse (billing) -> claim the invoice number (ledger) -> render
    -> archive canonical record, e-invoice XML and PDF -> mark archived (ledger)
    -> deliver per the subscriber's preference (workflows.dispatch)

Nothing here knows whether it runs in the CLI's process pool, a Celery worker or a
test (``invoicer.runs`` walks a run's chunks through it). Every step is idempotent: the
ledger's unique (operator, number) decides who works on an invoice, rendering is
deterministic and archiving is create-only, so a record handed over twice, or a run
resumed after a crash, yields one archived invoice.

An invoice number is issued with one content (contract 1.1): the claim stores the
record's content hash, and a record that finds its number issued with another content
is rejected as ``conflict`` (dead-lettered, naming the first field that differs),
never reported "already done". The same content again stays "already done".
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from typing import Literal

from invoicer.billing import BillingRecord, Issue, RecordError, parse_record
from invoicer.billing.content import content_sha256, first_difference
from invoicer.delivery.archive import Archive, invoice_key
from invoicer.delivery.errors import ArchiveNotFoundError, DeliveryError, TransientDeliveryError
from invoicer.ledger import Invoice, Ledger, LedgerConflict
from invoicer.renderer import RENDERER_VERSION, RenderOptions, render_document
from invoicer.renderer.einvoice import EInvoiceError
from invoicer.renderer.shock import by_category
from invoicer.workflows.dispatch import Channels, dispatch
from invoicer.workflows.previous import PreviousUnreadable, options_for, previous_number

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
    einvoice: str | None = None
    """The e-invoice format issued with it (``xrechnung-cii``, ``factur-x``...), if any."""


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
    except RecordError as err:  # the number was issued with another content
        services.ledger.runs.record_reject(run_id, line, err.to_dict(), raw)
        log.error("line %s: %s", line, err)
        return Outcome("rejected", line, number, err.reason, str(err))
    except (EInvoiceError, PreviousUnreadable) as exc:
        # Nothing of it was archived or sent; the claim stays, the next run retries.
        log.error("line %s, invoice %s: %s", line, number, exc)
        return Outcome("failed", line, number,
                       "einvoice" if isinstance(exc, EInvoiceError) else "previous", str(exc))
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
    account = record.account.number
    content_hash = content_sha256(record)
    claim = ledger.invoices.claim(
        operator, number,
        account=account, period_start=inv.period.start,
        period_end=inv.period.end, issue_date=inv.issue_date, due_date=inv.due_date,
        total=record.totals.total_due, currency=inv.currency, locale=inv.locale,
        delivery_mode=record.delivery.mode.value, kind=inv.kind.value,
        postal_code=record.account.customer.address.postal_code or None,
        country=record.account.customer.address.country, phone=record.delivery.phone,
        record_sha256=hashlib.sha256(raw).hexdigest(), content_sha256=content_hash,
        previous_number=previous_number(ledger, operator, account, inv.period.start),
        shock_share=str(services.options.shock_share),
        charges_by_category={k: str(v) for k, v in by_category(record).items()},
        run_id=run_id, source_line=line,
    )
    first = claim.invoice
    if not claim.created:
        if first.content_sha256 is not None and first.content_sha256 != content_hash:
            raise _conflict(record, first, services.archive, line)
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
            key, xml_key = first.archive_key, first.einvoice_key
            states = _deliver(first, record, lambda: services.archive.get(key),
                              None if xml_key is None else (lambda: services.archive.get(xml_key)),
                              services)
            if ours:
                return Outcome("archived", line, number, pages=first.pages or 0,
                               deliveries=states, einvoice=first.einvoice_format)
            return Outcome("already_done", line, number, deliveries=states)
        # A claim left by a crashed or failed attempt, or one still in progress
        # elsewhere: finish it. Rendering gives the same bytes (with the previous
        # invoice the claim fixed) and archiving is create-only, so this is safe to
        # redo; the ledger lets one of us mark it.

    options = options_for(ledger, services.archive, first, services.options)
    rendered = render_document(record, options)
    pdf, xml = rendered.pdf, rendered.xml
    digest = hashlib.sha256(pdf).hexdigest()
    key = invoice_key(operator, account, inv.period.start, number, "pdf")
    meta = {"renderer-version": RENDERER_VERSION, "invoice": number}
    # The canonical record goes first: a second copy or a re-render needs it, and an
    # archived PDF without it would be a dead end. The XML goes before the PDF for the
    # same reason: the PDF (and the ledger's mark) says the invoice is complete.
    canonical = record.model_dump_json(by_alias=True).encode("utf-8")
    services.archive.put(invoice_key(operator, account, inv.period.start, number, "json"),
                         canonical, metadata=meta)
    einvoice = None
    if xml is not None and xml.embedded:
        einvoice = (xml.format, None, None)  # Factur-X: inside the PDF
    elif xml is not None:
        xml_sha = hashlib.sha256(xml.xml).hexdigest()
        services.archive.put(invoice_key(operator, account, inv.period.start, number, "xml"),
                             xml.xml, sha256=xml_sha,
                             metadata={**meta, "einvoice-format": xml.format})
        einvoice = (xml.format, xml_sha, len(xml.xml))
    services.archive.put(key, pdf, sha256=digest, metadata=meta)
    pages = pdf.count(b"/Type /Page\n")
    won = ledger.invoices.mark_archived(
        first.id, sha256=digest, archive_key=key, renderer_version=RENDERER_VERSION,
        pages=pages, size=len(pdf), einvoice=einvoice, run_id=run_id, source_line=line)
    # Delivery starts only once the invoice is archived and recorded: what a
    # subscriber receives is always what the archive holds.
    beside = xml.xml if xml is not None and not xml.embedded else None
    states = _deliver(first, record, lambda: pdf,
                      None if beside is None else (lambda: beside), services)
    if not won:
        # Another process archived the same bytes first: the invoice counts on the line
        # that did (this one, if it was a second attempt of the same chunk), not twice.
        now = ledger.invoices.get_by_id(first.id)
        if now is None or (now.run_id, now.source_line) != (run_id, line):
            return Outcome("already_done", line, number, deliveries=states)
    return Outcome("archived", line, number, pages=pages, deliveries=states,
                   einvoice=xml.format if xml is not None else None)


def _conflict(record: BillingRecord, first: Invoice, archive: Archive,
              line: int) -> RecordError:
    """The ``conflict`` rejection of a record whose number was issued with another
    content: names the invoice, the content hash issued and, when the issued record is
    archived, the first field that differs."""
    number = record.invoice.number
    where = None
    if first.archive_key:
        try:
            issued = parse_record(archive.get(first.archive_key.removesuffix(".pdf") + ".json"))
            where = first_difference(issued, record)
        except (ArchiveNotFoundError, RecordError):
            pass  # the hash alone still tells the two apart
    message = (f"invoice {number} of {record.operator.id} was already issued with other "
               f"content (content sha256 {first.content_sha256}); this record differs"
               + (f" at {where}" if where else "")
               + ": a correction needs a new invoice number or a credit note")
    return RecordError(Issue(where or "invoice.number", message, "conflict"), line=line,
                       invoice_number=number)


def _deliver(invoice, record: BillingRecord, pdf, xml, services: Services
             ) -> tuple[tuple[str, str], ...]:
    if services.channels is None:
        return ()
    states = dispatch(invoice, record, pdf, xml=xml, ledger=services.ledger,
                      channels=services.channels)
    return tuple(sorted(states.items()))
