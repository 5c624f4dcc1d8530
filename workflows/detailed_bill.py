"""The detailed bill on demand: an archived invoice's call details, as PDF and as CSV.

Both come from the canonical record archived next to the original PDF (``….json``
beside ``….pdf``), never from the ledger's summary:

- **PDF**: the call-details annex alone (:func:`renderer.render_details`), archived
  under its own key beside the original (``….details.pdf``, or
  ``….details-<line>.pdf`` for one line of a business account) and recorded in the
  ledger once per (invoice, line): asking again, or two requests racing, gives the same
  bytes and the same row (rendering is deterministic and the archive create-only), as
  second copies are (:mod:`workflows.second_copy`).
- **CSV**: one row per call (:mod:`renderer.calls_csv`), streamed straight from the
  canonical record, not stored: it is as deterministic as the PDF, and a 100,000-call
  CSV starts arriving before the whole record could be validated.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator

from invoicer.billing import parse_record
from invoicer.delivery.archive import Archive, check_key
from invoicer.ledger import DetailedBill, Invoice, Ledger
from invoicer.renderer import RENDERER_VERSION, render_details
from invoicer.renderer.calls_csv import csv_chunks
from invoicer.workflows.second_copy import canonical_key

__all__ = ["csv_stream", "detailed_bill_key", "issue_detailed_bill"]

_KEY_SAFE = re.compile(r"[^A-Za-z0-9._-]")


def detailed_bill_key(invoice: Invoice, line: str = "") -> str:
    """Where the invoice's detailed bill (of one line, if given) is archived: beside the
    original. A line id's characters other than ``A-Z a-z 0-9 . _ -`` become ``_`` and
    a short hash of the id keeps two ids that map alike apart (``+5521…`` -> ``_5521…``)."""
    if not invoice.archive_key or not invoice.archive_key.endswith(".pdf"):
        raise ValueError(f"invoice {invoice.number} is not archived")
    suffix = ".details.pdf"
    if line:
        tag = hashlib.sha256(line.encode("utf-8")).hexdigest()[:8]
        suffix = f".details-{_KEY_SAFE.sub('_', line)[:40]}-{tag}.pdf"
    return check_key(invoice.archive_key.removesuffix(".pdf") + suffix)


def issue_detailed_bill(ledger: Ledger, archive: Archive, invoice: Invoice,
                        line: str = "") -> DetailedBill:
    """The invoice's detailed bill (of its line ``line``, or "" for the whole account):
    made, archived and recorded the first time, the recorded one after that.

    Raises ``ArchiveNotFoundError`` when the canonical record is missing,
    ``renderer.NoDetailsError`` when there are no call details (for that line), and
    ``billing.RecordError`` if the record no longer validates.
    """
    existing = ledger.detailed_bills.get(invoice.id, line)
    if existing is not None:
        return existing
    record = parse_record(archive.get(canonical_key(invoice)))
    pdf = render_details(record, line or None)
    digest = hashlib.sha256(pdf).hexdigest()
    key = detailed_bill_key(invoice, line)
    archive.put(key, pdf, sha256=digest,
                metadata={"renderer-version": RENDERER_VERSION, "invoice": invoice.number,
                          "kind": "detailed-bill"})
    return ledger.detailed_bills.record(invoice.id, line, archive_key=key, sha256=digest,
                                        size=len(pdf), pages=pdf.count(b"/Type /Page\n"),
                                        renderer_version=RENDERER_VERSION)


def csv_stream(archive: Archive, invoice: Invoice, line: str = "") -> Iterator[bytes]:
    """The invoice's call details (of one line, if given) as CSV chunks. The canonical
    record is fetched when this is called (a missing one raises
    ``ArchiveNotFoundError`` here, before any byte is sent); rows follow as they are
    read."""
    canonical = archive.get(canonical_key(invoice))
    return csv_chunks(canonical, line or None)
