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

import contextlib
import hashlib
import json
import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from invoicer.billing import BillingRecord, Issue, RecordError, parse_record
from invoicer.billing.content import content_sha256, first_difference
from invoicer.delivery.archive import Archive, invoice_key
from invoicer.delivery.errors import ArchiveNotFoundError, DeliveryError, TransientDeliveryError
from invoicer.ledger import Invoice, Ledger, LedgerConflict
from invoicer.ledger.runs import RAW_KEPT
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
from invoicer.renderer import RENDERER_VERSION, Rendered, RenderOptions, render_document
from invoicer.renderer.einvoice import EInvoiceError
from invoicer.renderer.shock import by_category
from invoicer.workflows.dispatch import Channels, dispatch
from invoicer.workflows.previous import PreviousUnreadable, options_for

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
    rejects_dir: Path | None = None
    """Where a dead-lettered line longer than the ledger keeps (64 KiB) is written
    whole (``INVOICER_REJECTS_DIR``); None: only its start is kept."""

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
        dead_letter(services, run_id, line, err, raw)
        return Outcome("rejected", line, err.invoice_number, err.reason, str(err))
    number = record.invoice.number
    try:
        with log_context(invoice=number):
            return _render_and_archive(record, raw, line=line, run_id=run_id,
                                       services=services)
    except Unrenderable as err:
        # Rendering is pure: the same record fails the same way on every run, so
        # retrying is pointless; the line is dead-lettered with the reason instead.
        log.warning("line %s, invoice %s: %s", line, number, err)
        dead_letter(services, run_id, line, err.error, raw)
        return Outcome("rejected", line, number, err.error.reason, str(err.error))
    except RecordError as err:  # the number was issued with another content
        dead_letter(services, run_id, line, err, raw)
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


def _operator_of(raw: bytes) -> str | None:
    """The operator id a rejected line names, if it can be read at all: its webhooks
    hear of the rejection (a line that is not even JSON goes to the ``*`` endpoints)."""
    if len(raw) > RAW_KEPT:
        return None  # not parsed a second time; its endpoints are the ``*`` ones
    try:
        operator = json.loads(raw).get("operator", {}).get("id")
    except (ValueError, AttributeError, RecursionError):  # hostile lines too
        return None
    return operator if isinstance(operator, str) and _OPERATOR_ID.fullmatch(operator) \
        else None


#: What an operator id looks like (the contract's pattern, loosely): anything else in a
#: rejected line is not trusted as a routing key.
_OPERATOR_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def dead_letter(services: Services, run_id: int, line: int, error: RecordError,
                raw: bytes) -> None:
    """Dead-letter a line in the ledger; a line longer than the ledger keeps is also
    written whole to a file of ``services.rejects_dir`` (named in the row)."""
    path = None
    if len(raw) > RAW_KEPT and services.rejects_dir is not None:
        path = services.rejects_dir / f"run-{run_id}-line-{line}.jsonl"
        try:
            _write_whole(path, raw)
        except OSError as exc:  # the row still has the start and the reason
            log.warning("line %s: cannot keep the rejected line in %s: %s", line, path, exc)
            path = None
    if services.ledger.runs.record_reject(run_id, line, error.to_dict(), raw,
                                          raw_file=str(path) if path else None,
                                          operator_id=_operator_of(raw)):
        INVOICES_REJECTED.inc()
        # The reason and where, never the value (it may be an address or a phone).
        log.info("record rejected: %s at %s", error.reason, error.path or "-")


def _write_whole(path: Path, data: bytes) -> None:
    # A temporary name first, then a rename: a reader (or a killed run) never sees half
    # a line under the final name. Leftovers of a killed run are swept by the next.
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.parent not in _swept:
        _swept.add(path.parent)
        _sweep_dead_temporaries(path.parent)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


#: Folders of dead letters this process has swept already (once is enough).
_swept: set[Path] = set()


def _sweep_dead_temporaries(folder: Path) -> None:
    """Remove ``.{name}.{pid}.tmp`` files of processes that are gone (killed mid-write)."""
    for tmp in folder.glob(".*.tmp"):
        pid = tmp.name.rsplit(".", 2)[-2]
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            tmp.unlink(missing_ok=True)
        except OSError:
            pass  # alive (another user's), or cannot tell: leave it


class Unrenderable(Exception):
    """A valid record that cannot be rendered or serialised (a deterministic failure of
    pure code: a layout that cannot fit, text no file can hold); carries the
    :class:`RecordError` it is dead-lettered with."""

    def __init__(self, error: RecordError) -> None:
        super().__init__(str(error))
        self.error = error


def _render(record: BillingRecord, options: RenderOptions, line: int
            ) -> tuple[Rendered, bytes]:
    """The rendered documents and the canonical record's bytes; :class:`Unrenderable`
    if either fails, and fails again. An e-invoice that fails its schema is not
    dead-lettered here: it raises :class:`EInvoiceError`, a failure of ours to look at
    (the claim stays)."""
    try:
        return _render_once(record, options)
    except (MemoryError, EInvoiceError):
        raise
    except Exception as exc:
        if _interrupted(exc):
            raise  # the process is stopping: the record is not at fault
        log.debug("line %s cannot be rendered", line, exc_info=True)
    # Rendering is pure, so a record's own fault repeats; one that does not repeat was
    # the process's (a signal handled mid-call), and must never dead-letter a good record.
    try:
        return _render_once(record, options)
    except (MemoryError, EInvoiceError):
        raise
    except Exception as exc:
        if _interrupted(exc):
            raise
        raise Unrenderable(RecordError(
            Issue("", f"the record is valid but cannot be rendered: {type(exc).__name__}: "
                      f"{str(exc)[:300]}", "unrenderable"),
            line=line, invoice_number=record.invoice.number)) from exc


def _render_once(record: BillingRecord, options: RenderOptions) -> tuple[Rendered, bytes]:
    rendered = render_document(record, options)
    return rendered, record.model_dump_json(by_alias=True).encode("utf-8")


def _interrupted(exc: BaseException) -> bool:
    """Whether ``exc`` carries a process exit or an interrupt: directly in its chain, or
    as text, the way pydantic's serializer reports what a function raised inside it
    (Celery's pool stops a child with ``SystemExit`` from a signal handler)."""
    seen: BaseException | None = exc
    for _ in range(20):
        if seen is None:
            break
        if isinstance(seen, (SystemExit, KeyboardInterrupt)):
            return True
        if type(seen).__name__ == "PydanticSerializationError" and any(
                f"{name}:" in str(seen) for name in ("SystemExit", "KeyboardInterrupt")):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


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
        previous_before=inv.period.start,  # the previous invoice, found by the claim
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
    with RENDER_SECONDS.time():
        rendered, canonical = _render(record, options, line)
    INVOICES_RENDERED.inc()
    pdf, xml = rendered.pdf, rendered.xml
    key = invoice_key(operator, account, inv.period.start, number, "pdf")
    meta = {"renderer-version": RENDERER_VERSION, "invoice": number}
    # The canonical record goes first: a second copy or a re-render needs it, and an
    # archived PDF without it would be a dead end. The XML goes before the PDF for the
    # same reason: the PDF (and the ledger's mark) says the invoice is complete.
    # Durable together (a file archive syncs their shared folder once, when the block
    # ends), and before the ledger's mark below says the invoice is archived.
    with ARCHIVE_SECONDS.time(), _together(services.archive):
        services.archive.put(invoice_key(operator, account, inv.period.start, number, "json"),
                             canonical, metadata=meta)
        einvoice = None
        if xml is not None and xml.embedded:
            einvoice = (xml.format, None, None)  # Factur-X: inside the PDF
        elif xml is not None:
            # The archive hashes what it stores and says so: no second pass over the bytes.
            xml_sha = services.archive.put(
                invoice_key(operator, account, inv.period.start, number, "xml"), xml.xml,
                metadata={**meta, "einvoice-format": xml.format}).sha256
            einvoice = (xml.format, xml_sha, len(xml.xml))
        digest = services.archive.put(key, pdf, metadata=meta).sha256
    pages = pdf.count(b"/Type /Page\n")
    PAGES_RENDERED.inc(pages)
    # Before the invoice counts as done, so that a crash in between redoes it: the
    # lines a business invoice covers let each line's phone sign in to its own section.
    ledger.fleet.record_lines(first.id, line_phones(record))
    won = ledger.invoices.mark_archived(
        first.id, sha256=digest, archive_key=key, renderer_version=RENDERER_VERSION,
        pages=pages, size=len(pdf), einvoice=einvoice, run_id=run_id, source_line=line)
    if won:
        INVOICES_ARCHIVED.inc()
        log.info("invoice archived: %s pages, %s bytes", pages, len(pdf))
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


def _together(archive: Archive) -> contextlib.AbstractContextManager[object]:
    """The archive's block of puts made durable together (``FileArchive.together``),
    where it has one; else each put is durable as it returns (S3, memory)."""
    together = getattr(archive, "together", None)
    return together() if together is not None else contextlib.nullcontext()


def line_phones(record: BillingRecord) -> list[str]:
    """The phone numbers among a business record's lines (``services[].id``)."""
    if record.account.segment.value != "business":
        return []
    return [s.id for s in record.services if _E164.fullmatch(s.id)]


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
    for channel, state in states.items():
        DELIVERY_OUTCOMES.labels(channel, state).inc()
    return tuple(sorted(states.items()))
