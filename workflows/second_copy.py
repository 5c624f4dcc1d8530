"""Second copies ("2ª via"): an archived invoice re-issued with the duplicate mark.

The second copy is rendered from the canonical record archived next to the original
PDF (``….json`` beside ``….pdf``), never from the ledger's summary, with
``invoice.kind = "duplicate"``: the same document, marked. It is archived under its own
key (``….duplicate.pdf`` beside the original) and recorded in the ledger, once per
invoice: asking again, or two requests racing, gives the same bytes and the same row
(rendering is deterministic and the archive create-only, so a race stores one object).
It compares with the same previous invoice as the original, with the same share (the
ledger's ``previous_number`` and ``shock_share``), so its bill-shock sentence is the
original's.
"""

from __future__ import annotations

import hashlib

from invoicer.billing import parse_record
from invoicer.billing.models import InvoiceKind
from invoicer.delivery.archive import Archive, check_key
from invoicer.ledger import Invoice, Ledger, SecondCopy
from invoicer.renderer import RENDERER_VERSION, RenderOptions, render
from invoicer.workflows.previous import options_for

__all__ = ["canonical_key", "issue_second_copy", "second_copy_key"]


def canonical_key(invoice: Invoice) -> str:
    """The archived canonical record of an archived invoice."""
    if not invoice.archive_key or not invoice.archive_key.endswith(".pdf"):
        raise ValueError(f"invoice {invoice.number} is not archived")
    return check_key(invoice.archive_key.removesuffix(".pdf") + ".json")


def second_copy_key(invoice: Invoice) -> str:
    """Where the invoice's second copy is archived: beside the original."""
    if not invoice.archive_key or not invoice.archive_key.endswith(".pdf"):
        raise ValueError(f"invoice {invoice.number} is not archived")
    return check_key(invoice.archive_key.removesuffix(".pdf") + ".duplicate.pdf")


def issue_second_copy(ledger: Ledger, archive: Archive, invoice: Invoice, *,
                      options: RenderOptions | None = None) -> SecondCopy:
    """The invoice's second copy: made, archived and recorded the first time, the
    recorded one after that. Raises ``ArchiveNotFoundError`` when the canonical record
    is missing, ``billing.RecordError`` if it no longer validates."""
    existing = ledger.access.second_copy(invoice.id)
    if existing is not None:
        return existing
    record = parse_record(archive.get(canonical_key(invoice)))
    duplicate = record.model_copy(update={
        "invoice": record.invoice.model_copy(update={"kind": InvoiceKind.duplicate})})
    pdf = render(duplicate, options_for(ledger, archive, invoice, options or RenderOptions()))
    digest = hashlib.sha256(pdf).hexdigest()
    key = second_copy_key(invoice)
    archive.put(key, pdf, sha256=digest,
                metadata={"renderer-version": RENDERER_VERSION, "invoice": invoice.number,
                          "kind": "duplicate"})
    return ledger.access.record_second_copy(invoice.id, archive_key=key, sha256=digest,
                                            size=len(pdf), pages=pdf.count(b"/Type /Page\n"),
                                            renderer_version=RENDERER_VERSION)
