"""Print batching: paper invoices into batches, batches into print files, to the shop.

The print queue is the ledger's ``print`` deliveries in ``pending`` (dispatch puts
paper invoices there). From there, each step one call here over the ledger's
print-batch store (``ledger.print_batches``, where the batch rules live: sizes, sheets,
print order) and the transports (the archive, ``delivery.printfile``)::

    join      every queued invoice enters its operator's open batch (atomic, idempotent;
              an invoice is in at most one batch). A batch that reaches its size
              (documents or sheets, :class:`~ledger.BatchLimits`) seals itself.
    seal      ``invoicer print close`` (or a periodic task) seals the open batches on
              demand: membership and order (postal code, then account) are frozen.
    close     :func:`close_batch`: one process wins the batch (compare-and-set claim),
              streams the archived invoice PDFs into one duplex-ready PDF
              (:class:`~delivery.printfile.BatchPdfWriter`), writes the manifest (CSV
              and JSON), archives the three next to the invoices and records the batch
              ``closed``; its deliveries become ``sending``.
    pull      the print shop fetches PDF and manifests (:func:`pull` verifies SHA-256).
    ack       :func:`acknowledge` with the printed counts: every invoice of the batch
              becomes ``sent``; a second acknowledgement is a no-op.

Output is deterministic (no clock, no random ids), so a batch closed twice (a crashed
closer's lease taken over) archives the same bytes and the create-only archive agrees.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
import os
import secrets
import socket
import tempfile
import time
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import pikepdf

from invoicer.delivery.archive import Archive, check_key
from invoicer.delivery.printfile import (
    MARK_BOTTOM,
    MARK_ERROR,
    MARK_MODULE,
    MM,
    BatchPdfWriter,
    MarksAhead,
    PrintBatchError,
    batch_name,
    parse_batch_id,
)
from invoicer.ledger import (
    BatchLimits,
    Invoice,
    Ledger,
    PrintBatch,
    PrintBatchItem,
)
from invoicer.metrics import PRINT_BATCHES_CLOSED
from invoicer.renderer.brand import brand_for

__all__ = [
    "DEFAULT_LEASE",
    "BatchKeys",
    "BatchLimits",
    "CloseReport",
    "ClosedBatch",
    "PrintBatchError",
    "PulledBatch",
    "acknowledge",
    "batch_keys",
    "batch_name",
    "build_manifest",
    "close",
    "close_batch",
    "enqueue",
    "join_queue",
    "manifest_csv",
    "manifest_json",
    "parse_batch_id",
    "pull",
    "seal",
    "service_version",
]

log = logging.getLogger(__name__)

DEFAULT_LEASE = timedelta(minutes=15)
"""How long a closer holds a batch before another process may take it over."""


@dataclass(frozen=True, slots=True)
class BatchKeys:
    """Where a batch lives in the archive: next to its operator's invoices."""

    pdf: str
    csv: str
    json: str


@dataclass(frozen=True, slots=True)
class ClosedBatch:
    """What :func:`close_batch` made."""

    batch_id: int
    operator_id: str
    documents: int
    pages: int
    sheets: int
    pdf_sha256: str
    pdf_size: int
    keys: BatchKeys
    seconds: float

    @property
    def pages_per_second(self) -> float:
        return self.pages / self.seconds if self.seconds else 0.0


@dataclass(frozen=True, slots=True)
class CloseReport:
    """What :func:`close` did: batches closed, left to another closer, failed."""

    joined: int
    sealed: list[int]
    closed: list[ClosedBatch]
    busy: list[int]
    failed: list[tuple[int, str]]


@dataclass(frozen=True, slots=True)
class PulledBatch:
    """The files :func:`pull` wrote, all verified."""

    batch_id: int
    pdf: Path
    csv: Path
    json: Path
    pdf_sha256: str


def service_version() -> str:
    """The installed invoicer version (recorded in every manifest)."""
    try:
        return version("invoicer")
    except PackageNotFoundError:  # running from a checkout that was never installed
        return "0+unknown"


def batch_keys(operator_id: str, batch_id: int) -> BatchKeys:
    """``{operator}/print-batches/B<id>.pdf|csv|json``.

    Beside the operator's invoices (``{operator}/{account}/...``) under a folder that,
    unlike ``_batches``, passes :func:`~delivery.archive.check_key` (segments start with
    a letter or digit). It cannot collide with an invoice key: those have four segments.
    """
    base = f"{operator_id}/print-batches/{batch_name(batch_id)}"
    return BatchKeys(*(check_key(f"{base}.{ext}") for ext in ("pdf", "csv", "json")))


# --- the queue, through the ledger -----------------------------------------------------


def enqueue(ledger: Ledger, invoice_id: int, limits: BatchLimits | None = None
            ) -> PrintBatchItem | None:
    """Put one paper invoice (its ``print`` delivery ``pending``) into a batch now.

    For a caller that just queued the invoice and wants it batched at once; idempotent.
    """
    return ledger.print_batches.join(invoice_id, limits or BatchLimits())


def join_queue(ledger: Ledger, operator_id: str | None = None,
               limits: BatchLimits | None = None) -> int:
    """Put every queued paper invoice into its operator's open batch; how many joined."""
    return ledger.print_batches.join_queue(operator_id, limits or BatchLimits())


def seal(ledger: Ledger, operator_id: str | None = None) -> list[int]:
    """Seal the open (non-empty) batches of one operator or all: closing on demand."""
    sealed = []
    for batch in ledger.print_batches.in_states({"open"}, operator_id):
        done = ledger.print_batches.seal(batch.operator_id)
        if done is not None:
            sealed.append(done.id)
    return sealed


def acknowledge(ledger: Ledger, batch_id: int, printed_documents: int,
                printed_sheets: int) -> bool:
    """The print shop printed the batch: its invoices become ``sent``.

    The counts must match the manifest (:class:`~ledger.PrintCountMismatch` otherwise,
    and nothing changes). True when acknowledged now, False when it already was.
    """
    return ledger.print_batches.acknowledge(batch_id, printed_documents, printed_sheets)


def close(
    ledger: Ledger,
    archive: Archive,
    operator_id: str | None = None,
    *,
    limits: BatchLimits | None = None,
    seal_open: bool = True,
    lease: timedelta = DEFAULT_LEASE,
    workdir: str | os.PathLike[str] | None = None,
) -> CloseReport:
    """``invoicer print close``: join the queue, seal, and close every sealed batch.

    ``seal_open=False`` closes only the batches that sealed themselves by size (for a
    frequent periodic task; the end-of-day one seals the rest). A batch that fails
    (an archived PDF missing or altered) is reported and left ``closing`` with its
    error for a person; the others still close.
    """
    joined = join_queue(ledger, operator_id, limits)
    sealed = seal(ledger, operator_id) if seal_open else []
    closed, busy, failed = [], [], []
    for batch in ledger.print_batches.in_states({"closing"}, operator_id):
        try:
            result = close_batch(ledger, archive, batch.id, lease=lease, workdir=workdir)
        except Exception as exc:
            log.error("print batch %s: %s", batch_name(batch.id), exc)
            failed.append((batch.id, f"{type(exc).__name__}: {exc}"))
            continue
        if result is None:
            busy.append(batch.id)
        else:
            closed.append(result)
            PRINT_BATCHES_CLOSED.inc()
    return CloseReport(joined, sealed, closed, busy, failed)


# --- closing one batch ------------------------------------------------------------------


def close_batch(
    ledger: Ledger,
    archive: Archive,
    batch_id: int,
    *,
    lease: timedelta = DEFAULT_LEASE,
    workdir: str | os.PathLike[str] | None = None,
    prefetch: int = 16,
) -> ClosedBatch | None:
    """Make, archive and record one sealed batch; ``None`` if another process has it.

    Of several processes closing the same batch exactly one wins the ledger's claim;
    the others get ``None`` at once. Failures release the claim with the error
    recorded on the batch, and are raised. The PDF is spooled to a temporary file
    (``workdir``, default the system's) before it is archived.
    """
    closer = f"{socket.gethostname()[:40]}:{os.getpid()}:{secrets.token_hex(4)}"
    if not ledger.print_batches.claim(batch_id, closer, lease=lease):
        return None
    try:
        return _close_claimed(ledger, archive, batch_id, closer, workdir, prefetch)
    except BaseException as exc:
        ledger.print_batches.release(batch_id, closer,
                                     error=f"{type(exc).__name__}: {exc}"[:2000])
        raise


def _close_claimed(ledger: Ledger, archive: Archive, batch_id: int, closer: str,
                   workdir: str | os.PathLike[str] | None, prefetch: int) -> ClosedBatch | None:
    started = time.monotonic()
    batch = ledger.print_batches.get(batch_id)
    if batch is None:  # pragma: no cover - claimed a moment ago
        raise LookupError(f"no print batch {batch_id}")
    docs = ledger.print_batches.documents(batch_id)
    if [item.seq for item, _ in docs] != list(range(1, len(docs) + 1)) or (
            len(docs) != batch.documents):
        raise PrintBatchError(f"batch {batch_name(batch_id)} is not sealed consistently "
                              f"({batch.documents} documents, {len(docs)} numbered rows)")
    keys = batch_keys(batch.operator_id, batch_id)
    version = service_version()
    margin = brand_for(batch.operator_id).margin_left
    with tempfile.TemporaryDirectory(prefix=f"print-{batch_name(batch_id)}-",
                                     dir=workdir) as tmp:
        pdf_path = Path(tmp) / "batch.pdf"
        with open(pdf_path, "wb", buffering=1 << 20) as out:
            sheets = [(item.seq or 0, item.sheets) for item, _ in docs]
            with MarksAhead(batch_id, sheets) as marks:
                writer = BatchPdfWriter(
                    out, batch_id=batch_id, margin_left=margin,
                    title=f"Print batch {batch_name(batch_id)} ({batch.operator_id})",
                    producer=f"invoicer {version}", marks=marks,
                )
                for (item, invoice), data in _fetch(archive, docs, prefetch):
                    _add(writer, item, invoice, data)
                pages, pdf_sha256, pdf_size = writer.close()
        if pages != batch.pages:
            raise PrintBatchError(f"batch {batch_name(batch_id)} has {pages} pages, "
                                  f"the ledger expects {batch.pages}")
        manifest = build_manifest(batch, docs, keys, pdf_sha256=pdf_sha256,
                                  pdf_size=pdf_size, service=version)
        meta = {"batch": batch_name(batch_id), "operator": batch.operator_id,
                "documents": str(batch.documents), "sheets": str(batch.sheets),
                "service-version": version}
        # The PDF first and the JSON manifest last: a manifest in the archive means the
        # batch it describes is there in full.
        # Streamed from the spooled file: a 10,000-document batch is hundreds of MB.
        archive.put_file(keys.pdf, pdf_path, sha256=pdf_sha256, metadata=meta)
    archive.put(keys.csv, manifest_csv(manifest), metadata=meta)
    archive.put(keys.json, manifest_json(manifest), metadata=meta)
    if not ledger.print_batches.mark_closed(batch_id, closer, pdf_key=keys.pdf,
                                            pdf_sha256=pdf_sha256, pdf_size=pdf_size,
                                            csv_key=keys.csv, json_key=keys.json):
        # Our lease ran out and another closer took over: it archived the same bytes
        # (deterministic) and records the batch itself.
        log.warning("print batch %s: claim lost while closing", batch_name(batch_id))
        return None
    return ClosedBatch(batch_id, batch.operator_id, batch.documents, pages, batch.sheets,
                       pdf_sha256, pdf_size, keys, time.monotonic() - started)


def _add(writer: BatchPdfWriter, item: PrintBatchItem, invoice: Invoice, data: bytes) -> None:
    digest = hashlib.sha256(data).hexdigest()
    if digest != invoice.sha256:
        raise PrintBatchError(
            f"invoice {invoice.number}: the archived PDF {invoice.archive_key} has SHA-256 "
            f"{digest}, the ledger recorded {invoice.sha256}")
    if writer.pages + 1 != item.first_page:
        raise PrintBatchError(f"invoice {invoice.number} should start on page "
                              f"{item.first_page}, not {writer.pages + 1}")
    try:
        pages = writer.add(data, seq=item.seq or 0)
    except (pikepdf.PdfError, ValueError) as exc:
        raise PrintBatchError(f"invoice {invoice.number}: cannot read its PDF: {exc}") from exc
    if pages != item.pages:
        raise PrintBatchError(f"invoice {invoice.number} has {pages} pages, the ledger "
                              f"recorded {item.pages}")


def _fetch(archive: Archive, docs: list[tuple[PrintBatchItem, Invoice]], window: int
           ) -> Iterator[tuple[tuple[PrintBatchItem, Invoice], bytes]]:
    """The documents' archived PDFs in order, ``window`` of them fetched ahead.

    Bounded read-ahead: an S3 GET costs milliseconds of waiting that threads overlap,
    while at most ``window`` PDFs are in memory at once.
    """
    todo = iter(docs)
    pending: deque[tuple[tuple[PrintBatchItem, Invoice], Future[bytes]]] = deque()
    with ThreadPoolExecutor(max_workers=max(1, min(window, 8)),
                            thread_name_prefix="print-fetch") as pool:
        try:
            for doc in todo:
                pending.append((doc, pool.submit(archive.get, _key_of(doc[1]))))
                if len(pending) >= window:
                    break
            while pending:
                doc, future = pending.popleft()
                data = future.result()
                nxt = next(todo, None)
                if nxt is not None:
                    pending.append((nxt, pool.submit(archive.get, _key_of(nxt[1]))))
                yield doc, data
        finally:
            for _, future in pending:
                future.cancel()


def _key_of(invoice: Invoice) -> str:
    if not invoice.archive_key or not invoice.sha256:
        raise PrintBatchError(f"invoice {invoice.number} is not archived")
    return invoice.archive_key


# --- the manifest ----------------------------------------------------------------------

MANIFEST_FORMAT = "invoicer-print-manifest/1"
CSV_COLUMNS = ("record", "batch", "sequence", "invoice", "account", "postal_code",
               "country", "first_page", "pages", "blank_pages", "sheets", "sha256",
               "renderer_version", "archive_key", "documents", "service_version")


def build_manifest(batch: PrintBatch, docs: list[tuple[PrintBatchItem, Invoice]],
                   keys: BatchKeys, *, pdf_sha256: str, pdf_size: int,
                   service: str) -> dict[str, Any]:
    """The batch manifest as data: per document and totals (see :func:`manifest_json`).

    Per document, ``pages`` counts its pages in the batch PDF, the padding blank page
    included (``blank_pages``), so the pages add up to the batch PDF's page count.
    """
    documents = []
    for item, inv in docs:
        blank = 2 * item.sheets - item.pages
        documents.append({
            "sequence": item.seq, "invoice": inv.number, "account": inv.account,
            "postal_code": inv.postal_code, "country": inv.country,
            "first_page": item.first_page, "pages": item.pages + blank,
            "blank_pages": blank, "sheets": item.sheets, "sha256": inv.sha256,
            "renderer_version": inv.renderer_version, "archive_key": inv.archive_key,
        })
    return {
        "manifest": MANIFEST_FORMAT,
        "batch": batch_name(batch.id),
        "batch_id": batch.id,
        "operator": batch.operator_id,
        # The seal time, not the close time: a batch closed twice gives the same bytes.
        "sealed_at": batch.sealed_at.isoformat() if batch.sealed_at else None,
        "order": ["postal_code", "account", "invoice"],
        "duplex": True,
        "pdf": {"key": keys.pdf, "sha256": pdf_sha256, "size": pdf_size,
                "pages": batch.pages},
        "csv_key": keys.csv,
        "totals": {"documents": batch.documents, "pages": batch.pages,
                   "sheets": batch.sheets,
                   "blank_pages": sum(d["blank_pages"] for d in documents)},
        "sheet_mark": {
            "symbology": "QR", "error_correction": MARK_ERROR,
            "payload": "B<batch>|D<sequence>|S<sheet>/<sheets of the document>",
            "module_mm": round(MARK_MODULE / MM, 4),
            "where": "front of every sheet, left margin, quiet zone "
                     f"{round(MARK_BOTTOM / MM)} mm above the bottom edge",
        },
        "renderer_versions": sorted({d["renderer_version"] or "unknown" for d in documents}),
        "service_version": service,
        "documents": documents,
    }


def manifest_json(manifest: dict[str, Any]) -> bytes:
    """The manifest as UTF-8 JSON (stable key order: the same batch, the same bytes)."""
    return (json.dumps(manifest, ensure_ascii=False, indent=1) + "\n").encode("utf-8")


def manifest_csv(manifest: dict[str, Any]) -> bytes:
    """The manifest as CSV (RFC 4180, UTF-8): a ``document`` row per document in print
    order, then one ``batch`` row with the totals, the batch PDF's SHA-256 and key, the
    renderer versions and the service version."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    batch = manifest["batch"]
    for doc in manifest["documents"]:
        writer.writerow(["document", batch, doc["sequence"], doc["invoice"], doc["account"],
                         doc["postal_code"] or "", doc["country"] or "", doc["first_page"],
                         doc["pages"], doc["blank_pages"], doc["sheets"], doc["sha256"],
                         doc["renderer_version"] or "", doc["archive_key"], "", ""])
    totals = manifest["totals"]
    writer.writerow(["batch", batch, "", "", "", "", "", 1, totals["pages"],
                     totals["blank_pages"], totals["sheets"], manifest["pdf"]["sha256"],
                     " ".join(manifest["renderer_versions"]), manifest["pdf"]["key"],
                     totals["documents"], manifest["service_version"]])
    return buffer.getvalue().encode("utf-8")


# --- pulling ----------------------------------------------------------------------------


def pull(ledger: Ledger, archive: Archive, batch_id: int,
         directory: str | os.PathLike[str]) -> PulledBatch:
    """Write a closed batch's PDF and manifests into ``directory``, verified.

    The PDF must have the SHA-256 the ledger and the manifest recorded, the manifests
    the SHA-256 the archive holds for them; a file that does not match is removed and
    :class:`PrintBatchError` raised. The PDF is streamed to disk through
    ``archive.open_range()``, never held in memory.
    """
    batch = ledger.print_batches.get(batch_id)
    if batch is None:
        raise LookupError(f"no print batch {batch_name(batch_id)}")
    if batch.state not in ("closed", "printed") or not (batch.pdf_key and batch.csv_key
                                                         and batch.json_key):
        raise PrintBatchError(f"batch {batch_name(batch_id)} is {batch.state}, not closed")
    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    name = batch_name(batch_id)
    paths = {}
    for ext, key in (("json", batch.json_key), ("csv", batch.csv_key)):
        paths[ext] = folder / f"{name}.{ext}"
        _download(archive, key, paths[ext], archive.stat(key).sha256)
    manifest = json.loads(paths["json"].read_bytes())
    if manifest["pdf"]["sha256"] != batch.pdf_sha256 or manifest["batch_id"] != batch_id:
        raise PrintBatchError(f"the manifest of {name} does not describe the ledger's batch")
    paths["pdf"] = folder / f"{name}.pdf"
    _download(archive, batch.pdf_key, paths["pdf"], batch.pdf_sha256 or "")
    return PulledBatch(batch_id, paths["pdf"], paths["csv"], paths["json"],
                       batch.pdf_sha256 or "")


def _download(archive: Archive, key: str, dest: Path, sha256: str) -> None:
    tmp = dest.with_name(f".{dest.name}.part")
    digest = hashlib.sha256()
    chunks = archive.open_range(key)
    try:
        with open(tmp, "wb") as out:
            for chunk in chunks:
                digest.update(chunk)
                out.write(chunk)
        if digest.hexdigest() != sha256:
            raise PrintBatchError(f"{key}: downloaded SHA-256 {digest.hexdigest()}, "
                                  f"expected {sha256}")
        os.replace(tmp, dest)
    finally:
        close = getattr(chunks, "close", None)
        if close is not None:  # stopped early: release the file or the connection
            close()
        tmp.unlink(missing_ok=True)
