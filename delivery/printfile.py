"""Print batches: paper invoices merged into one print-ready PDF per batch, with a manifest.

The print queue is the ledger's ``print`` deliveries in ``pending`` (delivery routing
puts paper invoices there). From there::

    join      every queued invoice enters its operator's open batch (ledger, atomic,
              idempotent; an invoice is in at most one batch). A batch that reaches
              its size (documents or sheets, :class:`BatchLimits`) seals itself.
    seal      ``invoicer print close`` (or a periodic task) seals the open batches on
              demand: membership and order (postal code, then account) are frozen.
    close     :func:`close_batch`: one process wins the batch (compare-and-set claim),
              streams the archived invoice PDFs into one duplex-ready PDF, writes the
              manifest (CSV and JSON), archives the three next to the invoices and
              records the batch ``closed``; its deliveries become ``sending``.
    pull      the print shop fetches PDF and manifests (:func:`pull` verifies SHA-256).
    ack       :func:`acknowledge` with the printed counts: every invoice of the batch
              becomes ``sent``; a second acknowledgement is a no-op.

The batch PDF (:class:`BatchPdfWriter`):

- reuses the archived PDFs byte for byte (content streams, fonts, images are copied
  raw, never re-rendered or recompressed) and checks each one's SHA-256 against the
  ledger first;
- pads every document with a blank page to an even page count, so with duplex
  printing each document starts on the front of a new sheet (an odd page);
- draws on the front of every sheet a QR code ``B<batch>|D<seq>|S<i>/<n>`` (batch,
  document sequence, sheet i of n) so an inserter can keep a subscriber's sheets
  together. It sits in the left margin strip near the bottom, outside the content
  area and far from the DIN 5008 address window, and is an appended content stream of
  vector operators (the geometry of :mod:`renderer.codes`: dark runs of modules as
  rectangles in module units, one fill, DeviceGray);
- streams: each archived PDF is parsed with pikepdf (qpdf), its objects renumbered and
  written straight to the output file, then dropped. Memory stays flat whatever the
  batch size (qpdf's own page merging keeps every copied page in memory: ~60 kB a
  page, 1.2 GB for 20,000 pages).

Output is deterministic (no clock, no random ids), so a batch closed twice (a crashed
closer's lease taken over) archives the same bytes and the create-only archive agrees.
"""

from __future__ import annotations

import csv
import hashlib
import io
import itertools
import json
import logging
import math
import os
import re
import secrets
import socket
import tempfile
import time
import zlib
from array import array
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, BinaryIO

import pikepdf
import segno

from invoicer.delivery.archive import Archive, check_key
from invoicer.ledger import Invoice, Ledger, PrintBatch, PrintBatchItem
from invoicer.renderer.brand import brand_for
from invoicer.renderer.codes import QR_QUIET_MODULES
from invoicer.renderer.layout import WINDOW_LEFT

__all__ = [
    "DEFAULT_LEASE",
    "MARK_BOTTOM",
    "MARK_LEFT",
    "MARK_MODULE",
    "BatchKeys",
    "BatchLimits",
    "BatchPdfWriter",
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
    "iter_marks",
    "join_queue",
    "manifest_csv",
    "manifest_json",
    "mark_operators",
    "mark_payload",
    "mark_position",
    "parse_batch_id",
    "pull",
    "seal",
    "service_version",
]

log = logging.getLogger(__name__)

MM = 72 / 25.4
"""One millimetre in PDF points."""

# --- the sheet mark ---------------------------------------------------------------------
#
# 1/60 in (0.423 mm) modules: whole printer dots at 300 dpi (5) and 600 dpi (10), and
# 2.5 pixels at 150 dpi, where zbar still reads every symbol when the mark sits on the
# 1/300 in grid (it missed ~1 in 100 off the grid, and read none at 1/75 in modules). The
# renderer's 0.508 mm payment-QR module would not fit a 15 mm margin. Version 2 at
# level M holds 26 bytes: B<7 digits>|D<6>|S<3>/<3>. Every symbol of a batch has the
# same size and place, which is what an inserter's camera wants.
MARK_MODULE = 72 / 60
MARK_QUIET = QR_QUIET_MODULES
MARK_VERSION = 2
MARK_ERROR = "M"
# A fixed mask: choosing the best of the eight (what segno does by default) costs
# 0.75 ms a symbol, 9 s for a 10,000-document batch, for no gain on a mark printed on
# blank paper; every QR decoder reads all eight.
MARK_MASK = 0
MARK_LEFT = 3 * MM
"""Preferred distance of the mark's quiet zone from the left edge of the sheet."""
MARK_BOTTOM = 20 * MM
"""Distance of the mark's quiet zone from the bottom edge: clear of the footer line."""
MARK_GRID = 72 / 300
"""Marks are placed on whole 1/300 in from the top-left corner: whole printer dots."""

DEFAULT_LEASE = timedelta(minutes=15)
"""How long a closer holds a batch before another process may take it over."""


class PrintBatchError(Exception):
    """A batch cannot be closed or pulled as it stands (a person has to look)."""


@dataclass(frozen=True, slots=True)
class BatchLimits:
    """The size at which a batch seals itself: documents or duplex sheets, first hit."""

    max_documents: int = 10_000
    max_sheets: int = 20_000

    def __post_init__(self) -> None:
        if self.max_documents < 1 or self.max_sheets < 1:
            raise ValueError(f"batch limits must be positive: {self}")


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
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("invoicer")
    except PackageNotFoundError:  # running from a checkout that was never installed
        return "0+unknown"


def batch_name(batch_id: int) -> str:
    """``B<id>``: how a batch is named in keys, marks, manifests and the CLI."""
    return f"B{batch_id}"


def parse_batch_id(text: str | int) -> int:
    """``12``, ``"12"`` or ``"B12"`` -> 12."""
    value = str(text).strip()
    value = value[1:] if value[:1] in ("B", "b") else value
    if not value.isdigit() or int(value) < 1:
        raise ValueError(f"not a batch id: {text!r} (expected e.g. B12)")
    return int(value)


def batch_keys(operator_id: str, batch_id: int) -> BatchKeys:
    """``{operator}/print-batches/B<id>.pdf|csv|json``.

    Beside the operator's invoices (``{operator}/{account}/...``) under a folder that,
    unlike ``_batches``, passes :func:`~delivery.archive.check_key` (segments start with
    a letter or digit). It cannot collide with an invoice key: those have four segments.
    """
    base = f"{operator_id}/print-batches/{batch_name(batch_id)}"
    return BatchKeys(*(check_key(f"{base}.{ext}") for ext in ("pdf", "csv", "json")))


def mark_payload(batch_id: int, seq: int, sheet: int, sheets: int) -> str:
    """What the sheet mark says: ``B<batch>|D<seq>|S<sheet>/<sheets>``."""
    return f"{batch_name(batch_id)}|D{seq}|S{sheet}/{sheets}"


# --- the queue, through the ledger -----------------------------------------------------


def enqueue(ledger: Ledger, invoice_id: int, limits: BatchLimits | None = None
            ) -> PrintBatchItem | None:
    """Put one paper invoice (its ``print`` delivery ``pending``) into a batch now.

    For delivery routing to call right after it queued the invoice; idempotent.
    """
    limits = limits or BatchLimits()
    return ledger.join_print_batch(invoice_id, max_documents=limits.max_documents,
                                   max_sheets=limits.max_sheets)


def join_queue(ledger: Ledger, operator_id: str | None = None,
               limits: BatchLimits | None = None) -> int:
    """Put every queued paper invoice into its operator's open batch; how many joined."""
    limits = limits or BatchLimits()
    return ledger.batch_print_queue(operator_id, max_documents=limits.max_documents,
                                    max_sheets=limits.max_sheets)


def seal(ledger: Ledger, operator_id: str | None = None) -> list[int]:
    """Seal the open (non-empty) batches of one operator or all: closing on demand."""
    sealed = []
    for batch in ledger.print_batches(operator_id, states={"open"}):
        done = ledger.seal_print_batch(batch.operator_id)
        if done is not None:
            sealed.append(done.id)
    return sealed


def acknowledge(ledger: Ledger, batch_id: int, printed_documents: int,
                printed_sheets: int) -> bool:
    """The print shop printed the batch: its invoices become ``sent``.

    The counts must match the manifest (:class:`~ledger.PrintCountMismatch` otherwise,
    and nothing changes). True when acknowledged now, False when it already was.
    """
    return ledger.acknowledge_print_batch(batch_id, printed_documents, printed_sheets)


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
    for batch in sorted(ledger.print_batches(operator_id, states={"closing"}),
                        key=lambda b: b.id):
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
    if not ledger.claim_print_batch(batch_id, closer, lease=lease):
        return None
    try:
        return _close_claimed(ledger, archive, batch_id, closer, workdir, prefetch)
    except BaseException as exc:
        ledger.release_print_batch(batch_id, closer,
                                   error=f"{type(exc).__name__}: {exc}"[:2000])
        raise


def _close_claimed(ledger: Ledger, archive: Archive, batch_id: int, closer: str,
                   workdir: str | os.PathLike[str] | None, prefetch: int) -> ClosedBatch | None:
    started = time.monotonic()
    batch = ledger.get_print_batch(batch_id)
    if batch is None:  # pragma: no cover - claimed a moment ago
        raise LookupError(f"no print batch {batch_id}")
    docs = ledger.print_batch_documents(batch_id)
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
            sheets = [(item.seq or 0, (item.pages + 1) // 2) for item, _ in docs]
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
    if not ledger.mark_print_batch_closed(batch_id, closer, pdf_key=keys.pdf,
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
    batch = ledger.get_print_batch(batch_id)
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


# --- the sheet mark ---------------------------------------------------------------------


def mark_operators(payload: str) -> tuple[int, bytes]:
    """A QR code for ``payload`` as PDF operators in module units, and its side.

    Returns ``(side, operators)``: ``side`` in modules, quiet zone included; the
    operators fill the whole square white, then every horizontal run of dark modules
    as one path filled black in DeviceGray, rows counted from the top, exactly as
    :mod:`renderer.codes` draws payment QR codes. Scale and place them with ``cm``.
    """
    data = payload.encode("ascii")
    try:
        made = segno.make_qr(data, error=MARK_ERROR, version=MARK_VERSION, mask=MARK_MASK,
                             boost_error=False)
    except segno.DataOverflowError:  # a batch id beyond seven digits: a bigger symbol
        made = segno.make_qr(data, error=MARK_ERROR, mask=MARK_MASK, boost_error=False)
    matrix = made.matrix
    n, q = len(matrix), MARK_QUIET
    top = q + n - 1
    rects = []
    for row, line in enumerate(matrix):
        start = None
        for col, dark in enumerate(line):
            if dark:
                if start is None:
                    start = col
            elif start is not None:
                rects.append(b"%d %d %d 1 re" % (q + start, top - row, col - start))
                start = None
        if start is not None:
            rects.append(b"%d %d %d 1 re" % (q + start, top - row, n - start))
    side = n + 2 * q
    return side, b"1 g\n0 0 %d %d re\nf\n0 g\n%s\nf" % (side, side, b"\n".join(rects))


def _make_marks(batch_id: int, keys: list[tuple[int, int, int]]) -> list[tuple[int, bytes]]:
    return [mark_operators(mark_payload(batch_id, *key)) for key in keys]


class MarksAhead:
    """The sheet marks of a batch, made ahead in a helper process, in print order.

    segno is pure Python: a mark costs about as much as merging its page, so on a
    machine with a second core a helper process makes them while this one merges
    (a third off a 10,000-document close). At most ``window`` chunks of ``chunk``
    marks wait in memory. Called as ``marks(seq, sheet, sheets)``; a call out of the
    expected order (a document whose page count differs from the ledger's, which
    fails the batch right after) or a helper that died is answered in-process.
    """

    def __init__(self, batch_id: int, sheets: Iterable[tuple[int, int]], *,
                 workers: int | None = None, chunk: int = 256, window: int = 4) -> None:
        self._batch_id = batch_id
        keys = ((seq, sheet, n) for seq, n in sheets for sheet in range(1, n + 1))
        self._chunks = iter(lambda: list(itertools.islice(keys, chunk)), [])
        self._window = window
        self._pending: deque[tuple[list[tuple[int, int, int]], Future]] = deque()
        self._ready: deque[tuple[tuple[int, int, int], tuple[int, bytes]]] = deque()
        workers = (1 if (os.cpu_count() or 1) > 1 else 0) if workers is None else workers
        self._pool: ProcessPoolExecutor | None = None
        if workers:
            try:
                self._pool = ProcessPoolExecutor(workers)
                self._fill()
            except (OSError, BrokenProcessPool, AssertionError) as exc:
                # AssertionError: multiprocessing refuses children of a daemon process.
                log.info("sheet marks made in-process: %s", exc)
                self._stop()

    def _fill(self) -> None:
        assert self._pool is not None
        while len(self._pending) < self._window:
            keys = next(self._chunks, None)
            if keys is None:
                return
            self._pending.append((keys, self._pool.submit(_make_marks, self._batch_id, keys)))

    def _stop(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
        self._pool, self._pending = None, deque()
        self._ready.clear()

    def __call__(self, seq: int, sheet: int, sheets: int) -> tuple[int, bytes]:
        key = (seq, sheet, sheets)
        if not self._ready and self._pending:
            keys, future = self._pending.popleft()
            try:
                self._ready.extend(zip(keys, future.result(), strict=True))
                self._fill()
            except (BrokenProcessPool, OSError) as exc:
                log.warning("sheet-mark helper failed (%s); making them in-process", exc)
                self._stop()
        if self._ready and self._ready[0][0] == key:
            return self._ready.popleft()[1]
        self._stop()  # out of order: the rest is made here, as asked
        return mark_operators(mark_payload(self._batch_id, seq, sheet, sheets))

    def __enter__(self) -> MarksAhead:
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop()


def mark_position(box: tuple[float, float, float, float], margin_left: float,
                  side: float) -> tuple[float, float]:
    """Lower-left corner (points) of a mark ``side`` points square on a page ``box``.

    In the left margin strip: ``MARK_LEFT`` from the left edge, or closer to it when
    the margin is narrow, never into the content area; ``MARK_BOTTOM`` above the
    bottom edge; both on the 1/300 in grid counted from the top-left corner.
    """
    x0, y0, _, y1 = box
    left = math.floor(min(MARK_LEFT, margin_left - side) / MARK_GRID + 1e-6) * MARK_GRID
    if left < 0:
        raise PrintBatchError(f"a {side / MM:.1f} mm sheet mark does not fit a "
                              f"{margin_left / MM:.1f} mm left margin")
    if left + side > WINDOW_LEFT:  # never near the envelope window, whatever the margin
        raise PrintBatchError(f"a {side / MM:.1f} mm sheet mark would reach the window")
    below_top = round((y1 - y0 - MARK_BOTTOM - side) / MARK_GRID) * MARK_GRID
    return x0 + left, y1 - below_top - side


# --- the batch PDF ----------------------------------------------------------------------

# A qpdf-unparsed literal string (qpdf escapes every parenthesis inside one, so they do
# not nest), or an indirect reference. Strings are matched only to be skipped: the text
# "12 0 R" inside one is not a reference.
_TOKENS = re.compile(rb"\((?:[^\\()]|\\.)*\)|(?<![\d.])(\d+) (\d+) R(?![\w])", re.S)
_INHERITABLE = ("/Resources", "/MediaBox", "/CropBox", "/Rotate")
_DROP = (pikepdf.Name.Pages, pikepdf.Name.Catalog)


class BatchPdfWriter:
    """Writes documents one after another into one PDF file, holding none of them.

    Each document is parsed with pikepdf; the objects its pages reach are renumbered
    and written out at once (stream data copied raw), and the document is dropped.
    Memory held: one offset per object and the current page-tree node. Pages get a
    two-level page tree (nodes of :attr:`KIDS` pages). Catalog-level features of the
    documents (outlines, named destinations, forms) are left out: this is a print job.

    ``add()`` pads every document to an even page count with a blank page the size of
    its last page and puts the sheet mark on every odd page (the front of a sheet).
    ``close()`` writes the page tree, catalog, cross-reference table and trailer and
    returns ``(pages, sha256, size)``.
    """

    KIDS = 128

    def __init__(self, out: BinaryIO, *, batch_id: int, margin_left: float,
                 title: str = "", producer: str = "invoicer",
                 marks: Callable[[int, int, int], tuple[int, bytes]] | None = None) -> None:
        self._out = out
        # marks(seq, sheet, sheets) -> mark_operators() of that sheet's payload.
        self._marks = marks or (lambda seq, sheet, sheets: mark_operators(
            mark_payload(batch_id, seq, sheet, sheets)))
        self._sha = hashlib.sha256()
        self._pos = 0
        self._offsets = array("Q", [0])  # by object number; 0 is the free-list head
        self._batch_id = batch_id
        self._margin_left = margin_left
        self._info = (title, producer)
        # The /ID is derived from the batch and its documents: same batch, same bytes.
        self._id = hashlib.sha256(b"invoicer print batch %d" % batch_id)
        self._write(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
        self._catalog = self._reserve()
        self._root = self._reserve()
        self._nodes: list[tuple[int, int]] = []
        self._node: int | None = None
        self._kids: list[int] = []
        # The first stream of every marked page: "q", so that whatever state the
        # document's own content leaves behind, the mark (after "Q") starts clean.
        self._push = self._reserve()
        self._object(self._push, b"<< /Length 2 >>\nstream\nq\n\nendstream")
        self.pages = 0
        self.documents = 0

    # -- low level --

    def _write(self, data: bytes) -> None:
        self._out.write(data)
        self._sha.update(data)
        self._pos += len(data)

    def _reserve(self) -> int:
        self._offsets.append(0)
        return len(self._offsets) - 1

    def _object(self, number: int, body: bytes) -> None:
        self._offsets[number] = self._pos
        self._write(b"%d 0 obj\n%s\nendobj\n" % (number, body))

    def _stream(self, number: int, data: bytes) -> None:
        packed = zlib.compress(data, 6)
        self._object(number, b"<< /Filter /FlateDecode /Length %d >>\nstream\n%s\nendstream"
                     % (len(packed), packed))

    def _parent(self) -> int:
        """The page-tree node the next page goes under."""
        if self._node is None or len(self._kids) == self.KIDS:
            self._flush_node()
            self._node = self._reserve()
        return self._node

    def _flush_node(self) -> None:
        if self._node is not None and self._kids:
            kids = b" ".join(b"%d 0 R" % k for k in self._kids)
            self._object(self._node, b"<< /Type /Pages /Parent %d 0 R /Kids [ %s ] /Count %d >>"
                         % (self._root, kids, len(self._kids)))
            self._nodes.append((self._node, len(self._kids)))
            self._node, self._kids = None, []

    # -- documents --

    def add(self, data: bytes, *, seq: int) -> int:
        """Append one document (PDF bytes) as document ``seq``; return its page count."""
        self._id.update(hashlib.sha256(data).digest())
        with pikepdf.open(io.BytesIO(data)) as src:
            if src.is_encrypted:
                raise ValueError("encrypted PDF")
            pages = [page.obj for page in src.pages]
            if not pages:
                raise ValueError("no pages")
            numbers: dict[tuple[int, int], int] = {}
            queue: list[tuple[int, int]] = []

            def renumber(match: re.Match[bytes]) -> bytes:
                if match.group(1) is None:
                    return match.group(0)  # a string: left alone
                key = (int(match.group(1)), int(match.group(2)))
                number = numbers.get(key)
                if number is None:
                    number = numbers[key] = self._reserve()
                    queue.append(key)
                return b"%d 0 R" % number

            for page in pages:
                numbers[page.objgen] = self._reserve()
            sheets = (len(pages) + 1) // 2
            box: list[float] = []
            for k, page in enumerate(pages):
                for name in _INHERITABLE:
                    if name not in page:
                        value = _inherited(page, name)
                        if value is not None:
                            page[name] = value
                if int(page.get("/Rotate", 0)) % 360:
                    raise ValueError("rotated pages are not supported")
                shown = page.get("/CropBox") or page.get("/MediaBox")
                if shown is None:
                    raise ValueError("a page without a MediaBox")
                box = [float(v) for v in shown]
                del page["/Parent"]
                contents = b""
                if k % 2 == 0:
                    contents = self._marked_contents(page, renumber, box, seq, k // 2 + 1,
                                                     sheets)
                body = _TOKENS.sub(renumber, page.unparse(resolved=True))
                self._object(numbers[page.objgen], b"<< /Parent %d 0 R %s%s"
                             % (self._parent(), contents, body[2:]))
                self._kids.append(numbers[page.objgen])
            if len(pages) % 2:
                blank = self._reserve()
                self._object(blank, b"<< /Type /Page /Parent %d 0 R /MediaBox [ %s ] "
                             b"/Resources << >> >>"
                             % (self._parent(), b" ".join(b"%.4f" % v for v in box)))
                self._kids.append(blank)
            while queue:
                key = queue.pop()
                self._copy(src.get_object(key), numbers[key], renumber)
        self.pages += 2 * sheets
        self.documents += 1
        return len(pages)

    def _marked_contents(self, page: pikepdf.Dictionary,
                         renumber: Callable[[re.Match[bytes]], bytes],
                         box: list[float], seq: int, sheet: int, sheets: int) -> bytes:
        """``/Contents`` with the page's own streams wrapped in q/Q and the mark after."""
        own = b""
        if "/Contents" in page:
            contents = page.Contents
            # An array (even an indirect one) is inlined: /Contents takes streams only.
            own = _TOKENS.sub(renumber, contents.unparse(resolved=isinstance(
                contents, pikepdf.Array)))
            if own.startswith(b"["):
                own = own[1:-1].strip()
            del page["/Contents"]
        side, operators = self._marks(seq, sheet, sheets)
        x, y = mark_position((box[0], box[1], box[2], box[3]), self._margin_left,
                             side * MARK_MODULE)
        mark = self._reserve()
        self._stream(mark, b"\nQ\nq %.4f 0 0 %.4f %.4f %.4f cm\n%s\nQ\n"
                     % (MARK_MODULE, MARK_MODULE, x, y, operators))
        return b"/Contents [ %d 0 R %s %d 0 R ] " % (self._push, own, mark)

    def _copy(self, obj: pikepdf.Object, number: int,
              renumber: Callable[[re.Match[bytes]], bytes]) -> None:
        if isinstance(obj, pikepdf.Stream):
            raw = obj.read_raw_bytes()
            head = obj.stream_dict
            if "/Length" in head:
                del head["/Length"]  # written from the bytes themselves below
            text = _TOKENS.sub(renumber, head.unparse(resolved=True))
            self._object(number, b"%s/Length %d >>\nstream\n%s\nendstream"
                         % (text[:-2], len(raw), raw))
        elif isinstance(obj, pikepdf.Dictionary) and obj.get("/Type") in _DROP:
            # Reached through a link or a back-pointer: the document's own page tree or
            # catalog has no place in the batch.
            self._object(number, b"null")
        else:
            self._object(number, _TOKENS.sub(renumber, obj.unparse(resolved=True)))

    def close(self) -> tuple[int, str, int]:
        """Finish the file; return ``(pages, sha256 hex, size in bytes)``."""
        self._flush_node()
        kids = b" ".join(b"%d 0 R" % node for node, _ in self._nodes)
        self._object(self._root, b"<< /Type /Pages /Kids [ %s ] /Count %d >>"
                     % (kids, self.pages))
        # Duplex by default in viewers' print dialogs: the file is laid out for it.
        self._object(self._catalog, b"<< /Type /Catalog /Pages %d 0 R /ViewerPreferences "
                     b"<< /Duplex /DuplexFlipLongEdge >> >>" % self._root)
        info = self._reserve()
        title, producer = self._info
        self._object(info, b"<< /Title %s /Producer %s >>"
                     % (_pdf_string(title), _pdf_string(producer)))
        xref = self._pos
        count = len(self._offsets)
        self._write(b"xref\n0 %d\n0000000000 65535 f \n" % count)
        for start in range(1, count, 4096):
            self._write(b"".join(b"%010d 00000 n \n" % offset
                                 for offset in self._offsets[start:start + 4096]))
        file_id = self._id.hexdigest()[:32].encode()
        self._write(b"trailer\n<< /Size %d /Root %d 0 R /Info %d 0 R /ID [ <%s> <%s> ] >>\n"
                    b"startxref\n%d\n%%%%EOF\n"
                    % (count, self._catalog, info, file_id, file_id, xref))
        self._out.flush()
        return self.pages, self._sha.hexdigest(), self._pos


def _inherited(page: pikepdf.Dictionary, name: str) -> pikepdf.Object | None:
    """An attribute a page inherits from its page-tree ancestors (its own parent goes)."""
    node = page
    for _ in range(64):  # a cycle in a broken page tree must not hang the batch
        if "/Parent" not in node:
            return None
        node = node.Parent
        if name in node:
            return node[name]
    return None


def _pdf_string(text: str) -> bytes:
    """A PDF literal string (ASCII; anything else becomes ``?``)."""
    raw = text.encode("ascii", "replace")
    return b"(" + raw.replace(b"\\", b"\\\\").replace(b"(", b"\\(").replace(b")", b"\\)") + b")"


def iter_marks(batch_id: int, sheets_per_document: Iterable[int]) -> Iterator[str]:
    """Every mark payload of a batch in print order (for checks and the print shop)."""
    for seq, sheets in enumerate(sheets_per_document, start=1):
        for sheet in range(1, sheets + 1):
            yield mark_payload(batch_id, seq, sheet, sheets)
