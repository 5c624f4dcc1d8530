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

A chunk's records go through :func:`process_records` in batches, step by step (all
claims, then all renders and archives, all marks, all deliveries): each record still
takes its steps in the order above, and a crash between two steps leaves it where a
crash of a lone record would (claimed, archived but not marked, or marked but not
delivered), which the next attempt finishes the same way.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, fields, replace
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
    return process_records([(line, raw)], run_id=run_id, services=services)[0]


#: The most records one batch of :func:`process_records` holds between its phases
#: (their PDFs wait in memory from rendering to delivery): a bill run's chunk.
BATCH_RECORDS = 16


def process_records(lines: Iterable[tuple[int, bytes]], *, run_id: int,
                    services: Services) -> list[Outcome]:
    """:func:`process_record` for each ``(line, raw)``, in batches walked phase by phase.

    Every record takes the same steps in the same order as alone (claim, render and
    archive, mark archived, deliver), and each step sees what the previous ones left,
    but the records of a batch take each step one after the other: all claims, then
    all renders, all marks, all deliveries. Measured in one process, the ledger's part
    of a 20-call invoice cost ~1 ms less CPU so (3.1 -> 1.9 ms for parse, claim and
    mark): a step runs on code and data its predecessor left in the CPU's caches,
    where interleaving had each step start cold after a render.

    A batch never holds two records of one account, nor two of one invoice number:
    such a record starts the next batch, so it sees the earlier one archived exactly
    as it would alone (the previous invoice the bill-shock sentence compares with, the
    conflict that names the differing field). Outcomes come back in ``lines``' order.

    A batch's claims are one ledger transaction, and so are its marks
    (:func:`_in_one_transaction`): the crash semantics are a lone record's, since a
    crash before the commit leaves every record of the batch as a crash before its own
    claim (or mark) would.
    """
    outcomes: list[Outcome | None] = []
    batch: list[_Work] = []
    keys: set[tuple[str, ...]] = set()
    for line, raw in lines:
        work = _Work(raw, line, len(outcomes))
        outcomes.append(None)
        if not _parse(work, run_id, services):
            outcomes[work.slot] = work.outcome
            continue
        assert work.record is not None
        mine = {("account", work.record.operator.id, work.record.account.number),
                ("number", work.record.operator.id, work.record.invoice.number)}
        if len(batch) >= BATCH_RECORDS or keys & mine:
            _run_batch(batch, run_id, services, outcomes)
            batch, keys = [], set()
        batch.append(work)
        keys |= mine
    _run_batch(batch, run_id, services, outcomes)
    assert all(o is not None for o in outcomes)
    return outcomes  # type: ignore[return-value]


@dataclass(slots=True)
class _Work:
    """One record between the phases of a batch: what its steps so far have left."""

    raw: bytes
    line: int
    slot: int
    """Its place among the outcomes."""
    record: BillingRecord | None = None
    outcome: Outcome | None = None
    """Set when nothing is left to do for it (done, rejected or failed)."""
    content_hash: str = ""
    """The record's content hash (:func:`content_sha256`), the claim's to compare."""
    first: Invoice | None = None
    """The claimed invoice row."""
    archived_before: bool = False
    """The claim found the invoice archived already: only its deliveries are left."""
    rendered: Rendered | None = None
    key: str = ""
    digest: str = ""
    pages: int = 0
    einvoice: tuple[str, str | None, int | None] | None = None
    won: bool = False


def _run_batch(batch: list[_Work], run_id: int, services: Services,
               outcomes: list[Outcome | None]) -> None:
    for step in (_hash, _claim, _archive, _mark, _counted, _finish):
        if step in _ONE_TRANSACTION:
            _in_one_transaction(step, batch, run_id, services)
        elif step is _archive:
            _archive_together(batch, run_id, services)
        else:
            for work in batch:
                if work.outcome is None:
                    _guarded(step, work, run_id, services)
    for work in batch:
        outcomes[work.slot] = work.outcome


def _archive_together(batch: list[_Work], run_id: int, services: Services) -> None:
    """:func:`_archive` for each record of the batch, their objects made durable
    together when the last is stored (:func:`_together`): a folder the batch's
    invoices share (the operator's) is synced once, not once an invoice. If that sync
    fails, nothing of the batch counts as stored: each record fails with the error
    (none is marked archived), and the next attempt stores them again."""
    pending = [work for work in batch if work.outcome is None]
    try:
        with _together(services.archive):
            for work in pending:
                _guarded(_archive, work, run_id, services)
    except DeliveryError as exc:
        for work in pending:
            if work.outcome is None:
                _guarded(_raising(exc), work, run_id, services)


def _raising(exc: Exception) -> Callable[[_Work, int, Services], None]:
    """A step that fails with ``exc``: the record's outcome is what :func:`_guarded`
    makes of it."""
    def step(work: _Work, run_id: int, services: Services) -> None:
        raise exc
    return step


def _in_one_transaction(step: Callable[[_Work, int, Services], None], batch: list[_Work],
                        run_id: int, services: Services) -> None:
    """``step`` for each record of the batch, its ledger writes in one transaction.

    One commit for the batch instead of one a record (on SQLite ~0.1 ms of CPU each, most
    of it writing the WAL). Such a step only writes to the ledger and sets the record's
    fields: if any record's step raises, or the commit fails, none of it happened (the
    transaction is undone, the fields restored), and the records take the step one by
    one, as alone, each with its own outcome.
    """
    pending = [work for work in batch if work.outcome is None]
    if len(pending) > 1:
        before = [replace(work) for work in pending]
        try:
            with services.ledger.together():
                for work in pending:
                    assert work.record is not None
                    with log_context(line=work.line, invoice=work.record.invoice.number):
                        step(work, run_id, services)
            return
        except Exception:
            log.debug("%s of a batch failed: its records one by one", step.__name__,
                      exc_info=True)
            for work, saved in zip(pending, before, strict=True):
                for f in fields(_Work):
                    setattr(work, f.name, getattr(saved, f.name))
    for work in pending:
        _guarded(step, work, run_id, services)


def _parse(work: _Work, run_id: int, services: Services) -> bool:
    """Parse the line; a line that is not a valid record is dead-lettered (False)."""
    with log_context(line=work.line):
        try:
            work.record = parse_record(work.raw, line=work.line)
        except RecordError as err:
            dead_letter(services, run_id, work.line, err, work.raw)
            work.outcome = Outcome("rejected", work.line, err.invoice_number, err.reason,
                                   str(err))
            return False
    return True


def _guarded(step: Callable[[_Work, int, Services], None], work: _Work, run_id: int,
             services: Services) -> None:
    """One step of one record; whatever it raises becomes the record's outcome, never
    the batch's (a bad record or a failing backend must not stop the others)."""
    assert work.record is not None
    line, number = work.line, work.record.invoice.number
    with log_context(line=line, invoice=number):
        try:
            step(work, run_id, services)
        except Unrenderable as err:
            # Rendering is pure: the same record fails the same way on every run, so
            # retrying is pointless; the line is dead-lettered with the reason instead.
            log.warning("line %s, invoice %s: %s", line, number, err)
            dead_letter(services, run_id, line, err.error, work.raw)
            work.outcome = Outcome("rejected", line, number, err.error.reason,
                                   str(err.error))
        except RecordError as err:  # the number was issued with another content
            dead_letter(services, run_id, line, err, work.raw)
            log.error("line %s: %s", line, err)
            work.outcome = Outcome("rejected", line, number, err.reason, str(err))
        except (EInvoiceError, PreviousUnreadable) as exc:
            # Nothing of it was archived or sent; the claim stays, the next run retries.
            log.error("line %s, invoice %s: %s", line, number, exc)
            work.outcome = Outcome(
                "failed", line, number,
                "einvoice" if isinstance(exc, EInvoiceError) else "previous", str(exc))
        except TransientDeliveryError as exc:
            log.warning("line %s, invoice %s: %s (will be retried)", line, number, exc)
            work.outcome = Outcome("failed", line, number, "transient", str(exc))
        except (DeliveryError, LedgerConflict) as exc:
            log.error("line %s, invoice %s: %s", line, number, exc)
            work.outcome = Outcome("failed", line, number, type(exc).__name__, str(exc))
        except Exception as exc:  # a bug must not stop the other records of the run
            log.exception("line %s, invoice %s: unexpected error", line, number)
            work.outcome = Outcome("failed", line, number, "internal",
                                   f"{type(exc).__name__}: {exc}")


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


def _hash(work: _Work, run_id: int, services: Services) -> None:
    """The record's content hash: before the claims, which hold the ledger's write lock."""
    assert work.record is not None
    work.content_hash = content_sha256(work.record)


def _claim(work: _Work, run_id: int, services: Services) -> None:
    """Take the invoice number in the ledger, or learn who has it and how far it got."""
    record, raw, line = work.record, work.raw, work.line
    assert record is not None
    inv, ledger = record.invoice, services.ledger
    operator, number = record.operator.id, inv.number
    content_hash = work.content_hash
    claim = ledger.invoices.claim(
        operator, number,
        account=record.account.number, period_start=inv.period.start,
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
    work.first = first = claim.invoice
    if claim.created:
        return
    if first.content_sha256 is not None and first.content_sha256 != content_hash:
        raise _conflict(record, first, services.archive, line)
    ours = (first.run_id, first.source_line) == (run_id, line)
    if first.run_id == run_id and first.source_line is not None and not ours:
        # The number appeared on another line of this same run: processed once, there.
        work.outcome = Outcome("repeated", line, number,
                               message=f"invoice {number} is already on line "
                                       f"{first.source_line} of this run")
        return
    # Archived earlier (:func:`_finish` delivers a channel left pending, e.g. SMTP was
    # down), or a claim left by a crashed or failed attempt, or one still in progress
    # elsewhere: finish it. Rendering gives the same bytes (with the previous invoice
    # the claim fixed) and archiving is create-only, so this is safe to redo; the
    # ledger lets one of us mark it.
    work.archived_before = claim.done


def _archive(work: _Work, run_id: int, services: Services) -> None:
    """Render the invoice and archive its canonical record, e-invoice XML and PDF."""
    if work.archived_before:
        return
    record, first, ledger = work.record, work.first, services.ledger
    assert record is not None and first is not None
    inv, operator, account = record.invoice, record.operator.id, record.account.number
    number = inv.number
    options = options_for(ledger, services.archive, first, services.options)
    with RENDER_SECONDS.time():
        rendered, canonical = _render(record, options, work.line)
    INVOICES_RENDERED.inc()
    pdf, xml = rendered.pdf, rendered.xml
    key = invoice_key(operator, account, inv.period.start, number, "pdf")
    meta = {"renderer-version": RENDERER_VERSION, "invoice": number}
    # The canonical record goes first: a second copy or a re-render needs it, and an
    # archived PDF without it would be a dead end. The XML goes before the PDF for the
    # same reason: the PDF (and the ledger's mark) says the invoice is complete.
    # Durable together (a file archive syncs their shared folder once, when the block
    # ends), and before the ledger's mark says the invoice is archived.
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
    work.rendered, work.key, work.digest, work.einvoice = rendered, key, digest, einvoice
    work.pages = pages = pdf.count(b"/Type /Page\n")
    PAGES_RENDERED.inc(pages)
    # Before the invoice counts as done, so that a crash in between redoes it: the
    # lines a business invoice covers let each line's phone sign in to its own section.
    ledger.fleet.record_lines(first.id, line_phones(record))


def _mark(work: _Work, run_id: int, services: Services) -> None:
    """Record in the ledger that the invoice is archived: from here it is done."""
    if work.archived_before:
        return
    first, rendered = work.first, work.rendered
    assert first is not None and rendered is not None
    work.won = services.ledger.invoices.mark_archived(
        first.id, sha256=work.digest, archive_key=work.key,
        renderer_version=RENDERER_VERSION, pages=work.pages, size=len(rendered.pdf),
        einvoice=work.einvoice, run_id=run_id, source_line=work.line)


def _counted(work: _Work, run_id: int, services: Services) -> None:
    """Count and log an invoice this line archived: once its mark is committed."""
    if work.won:
        assert work.rendered is not None
        INVOICES_ARCHIVED.inc()
        log.info("invoice archived: %s pages, %s bytes", work.pages, len(work.rendered.pdf))


#: Steps that only write to the ledger: a batch makes their writes in one transaction.
_ONE_TRANSACTION = frozenset({_claim, _mark})


def _finish(work: _Work, run_id: int, services: Services) -> None:
    """Deliver (only once the invoice is archived and recorded: what a subscriber
    receives is always what the archive holds), then say what became of the line."""
    record, first, line = work.record, work.first, work.line
    assert record is not None and first is not None
    number = record.invoice.number
    if work.archived_before:
        # Archived by this very line (an earlier attempt of its chunk): still this
        # line's invoice, counted as archived here and nowhere else.
        ours = (first.run_id, first.source_line) == (run_id, line)
        key, xml_key = first.archive_key, first.einvoice_key
        states = _deliver(first, record, lambda: services.archive.get(key),
                          None if xml_key is None else (lambda: services.archive.get(xml_key)),
                          services)
        work.outcome = (Outcome("archived", line, number, pages=first.pages or 0,
                                deliveries=states, einvoice=first.einvoice_format) if ours
                        else Outcome("already_done", line, number, deliveries=states))
        return
    rendered = work.rendered
    assert rendered is not None
    pdf, xml = rendered.pdf, rendered.xml
    beside = xml.xml if xml is not None and not xml.embedded else None
    states = _deliver(first, record, lambda: pdf,
                      None if beside is None else (lambda: beside), services)
    work.rendered = None  # the batch's PDFs are let go of as they are delivered
    if not work.won:
        # Another process archived the same bytes first: the invoice counts on the line
        # that did (this one, if it was a second attempt of the same chunk), not twice.
        now = services.ledger.invoices.get_by_id(first.id)
        if now is None or (now.run_id, now.source_line) != (run_id, line):
            work.outcome = Outcome("already_done", line, number, deliveries=states)
            return
    work.outcome = Outcome("archived", line, number, pages=work.pages, deliveries=states,
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
