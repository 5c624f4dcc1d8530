"""Invoice -> PDF bytes (a PDF/A-3b), and the EN 16931 XML the record asks for.

:func:`render` is pure: no network, no database, no clock. The same record renders to
the same bytes (ReportLab ``invariant`` mode, creation date taken from the invoice's
issue date), so a second copy can be proven identical to the original.
:func:`render_document` also returns the structured invoice (:mod:`.einvoice`); a
Factur-X invoice carries it inside the PDF as well.
"""

from __future__ import annotations

import io
import zlib
from dataclasses import dataclass
from typing import Literal

from reportlab import rl_config
from reportlab.lib.units import mm
from reportlab.pdfbase.pdfdoc import PDFDictionary, PDFName, PDFStream
from reportlab.pdfgen.canvas import Canvas

from invoicer.billing.models import BillingRecord
from invoicer.renderer import einvoice, fonts, pdfa
from invoicer.renderer.annex import Annex, RowWriter
from invoicer.renderer.brand import brand_for
from invoicer.renderer.i18n import for_locale
from invoicer.renderer.layout import FOOTER_HEIGHT, HEADER_HEIGHT, Frame, PagePlan, flow
from invoicer.renderer.sections import PAYMENT_SLIP, Sections

#: Recorded with every archived PDF: a change that alters output bumps it.
RENDERER_VERSION = "1.1.0"  # 1.1: every PDF a PDF/A-3b

# The ASCII85 layer only makes streams bigger; PDF readers take binary streams.
rl_config.useA85 = 0


@dataclass(frozen=True)
class RenderOptions:
    """``detail="summary"`` leaves out the call-details annex."""

    detail: Literal["full", "summary"] = "full"


@dataclass(frozen=True)
class Rendered:
    """What one record renders to: the PDF, and the structured invoice if it asks for one
    (``xml.embedded``: already inside the PDF, Factur-X; else to archive beside it)."""

    pdf: bytes
    xml: einvoice.EInvoiceXml | None


def render_document(invoice: BillingRecord, options: RenderOptions | None = None) -> Rendered:
    """Render a validated record to its PDF/A-3 and its verified e-invoice XML (if any).

    Raises :class:`einvoice.EInvoiceError` when the XML fails its XML Schema: the record
    has failed, nothing of it may be archived or sent.
    """
    xml = einvoice.build(invoice)
    pdf = _draw(invoice, options, xml.xml if xml is not None and xml.embedded else None)
    return Rendered(pdf, xml)


def render(invoice: BillingRecord, options: RenderOptions | None = None) -> bytes:
    """Render a validated billing record to the PDF a subscriber receives."""
    return render_document(invoice, options).pdf


def _draw(invoice: BillingRecord, options: RenderOptions | None,
          attachment: bytes | None) -> bytes:
    options = options or RenderOptions()
    fonts.register()
    loc = for_locale(invoice.invoice.locale)
    brand = brand_for(invoice.operator.id)
    summary_only = options.detail == "summary"
    sections = Sections(invoice, loc, brand, summary_only)

    buffer = io.BytesIO()
    canvas = Canvas(buffer, pagesize=(brand.page_width, brand.page_height), invariant=1,
                    pageCompression=1, lang=loc.requested.replace("_", "-"))
    # invariant=1 alone would stamp 2000-01-01; the issue date is the truthful constant.
    issued = f"D:{invoice.invoice.issue_date:%Y%m%d}120000+00'00'"
    canvas.setDateFormatter(lambda *_: issued)
    canvas.setTitle(f"{loc.label('invoice')} {invoice.invoice.number}")
    canvas.setAuthor(invoice.operator.name)
    canvas.setSubject(f"{invoice.account.number} {invoice.invoice.period.start:%Y-%m}")
    canvas.setCreator(f"invoicer renderer {RENDERER_VERSION}")

    top = brand.page_height - brand.margin_top - HEADER_HEIGHT
    bottom = brand.margin_bottom + FOOTER_HEIGHT
    first_bottom = bottom + PAYMENT_SLIP + 2 * mm
    # Page 1's head (address window, facts) ends at a fixed height; the flow starts below.
    first_top = brand.page_height - 96 * mm
    front = flow(sections.rows(), first_top, first_bottom, top, bottom)

    pages: list[PagePlan] = front
    annex_top: dict[int, float] = {}
    if not summary_only:
        annex = Annex(invoice, loc, sections.label, sections.number)
        last_row, last_y = front[-1].rows[-1]
        end_of_front = last_y - last_row.height
        annex_pages = annex.pages(top, bottom, end_of_front)
        if annex_pages and not annex_pages[0].segments:
            annex_pages = annex_pages[1:]  # no room left: the annex starts a new page
        elif annex_pages:
            front[-1].annex = annex_pages[0]
            annex_top[len(front) - 1] = end_of_front - 4 * mm
            annex_pages = annex_pages[1:]
        pages = front + [PagePlan(annex=p) for p in annex_pages]
    total = len(pages)

    writer = RowWriter(canvas, loc.rtl) if not summary_only else None
    for number, page in enumerate(pages, start=1):
        frame = Frame(canvas, brand, loc.rtl)
        canvas.setFillColor(brand.text)
        if number == 1:
            sections.first_page_head(frame)
            sections.payment_slip(frame)
        for row, y in page.rows:
            row.draw(frame, y)
        if page.annex is not None:
            annex.draw_page(frame, page.annex, annex_top.get(number - 1, top), writer)
        sections.page_furniture(frame, number, total, first=number == 1)
        canvas.showPage()
        _compress_finished_page(canvas)
    pdfa.conform(canvas, identity=f"{invoice.operator.id}/{invoice.invoice.number}",
                 issued=invoice.invoice.issue_date, attachment=attachment)
    canvas.save()
    return buffer.getvalue()


def _compress_finished_page(canvas: Canvas) -> None:
    """Deflate the page just finished instead of at ``save()``.

    ReportLab keeps every page's content stream as text until the document is saved;
    for a 1,500-page call-details annex that is ~35 MB held only to be compressed at
    the end. Compressing each page as it is finished keeps ~5 MB. The stream is marked
    with its filter so ReportLab does not deflate it a second time.
    """
    page = canvas._doc.Pages.pages[-1]
    if page.stream and page.compression:
        page.Contents = PDFStream(PDFDictionary({"Filter": PDFName("FlateDecode")}),
                                  zlib.compress(page.stream.encode("latin-1")))
        page.Contents.__Comment__ = "page stream"
        page.stream = None


__all__ = ["RENDERER_VERSION", "RenderOptions", "Rendered", "render", "render_document"]
