"""Invoice -> PDF bytes (a PDF/A-3b), and the EN 16931 XML the record asks for.

:func:`render` is pure: no network, no database, no clock. The same record renders to
the same bytes (ReportLab ``invariant`` mode, creation date taken from the invoice's
issue date), so a second copy can be proven identical to the original.
:func:`render_document` also returns the structured invoice (:mod:`.einvoice`); a
Factur-X invoice carries it inside the PDF as well.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Literal

from reportlab import rl_config
from reportlab.pdfgen.canvas import Canvas

from invoicer.billing.models import BillingRecord
from invoicer.renderer import _reportlab, einvoice, fonts, pdfa
from invoicer.renderer.annex import Annex, RowWriter
from invoicer.renderer.brand import brand_for
from invoicer.renderer.context import Context
from invoicer.renderer.fixed import FixedParts
from invoicer.renderer.i18n import for_locale
from invoicer.renderer.layout import GAP, Frame, LayoutError, PagePlan, flow
from invoicer.renderer.sections import Body
from invoicer.renderer.shock import DEFAULT_SHARE, PreviousInvoice

#: Recorded with every archived PDF: a change that alters output bumps it.
RENDERER_VERSION = "2.1.0"  # 2.0: layout by construction; 2.1: every PDF a PDF/A-3b

# The ASCII85 layer only makes streams bigger; PDF readers take binary streams.
rl_config.useA85 = 0


@dataclass(frozen=True)
class RenderOptions:
    """How to render one invoice.

    ``detail``: ``"full"`` draws the call-details annex, ``"summary"`` leaves it out
    and prints in its place where to get it (``self_service_url``, the SMS-code page,
    and the invoice's phone); ``None`` (default) follows the operator's setting
    (``[self_service] detail`` in its brand file, itself ``full`` by default).
    ``self_service_url``: the subscriber page that sentence names, unless the brand
    names its own (the pipeline passes the service's ``public_url`` + ``/access``).

    ``previous``: the account's previous invoice (see
    :class:`~renderer.shock.PreviousInvoice`: its period, currency and charges per
    category), which the pipeline finds in the ledger/archive and hands over; with it
    the bill-shock sentence on page 1 names the categories that moved most, without it
    only the change. ``shock_share``: the change, as a share of the previous invoice's
    amount (``history[-1]``), beyond which that sentence appears (default 0.20).
    """

    detail: Literal["full", "summary"] | None = None
    self_service_url: str | None = None
    previous: PreviousInvoice | None = None
    shock_share: Decimal = DEFAULT_SHARE


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
    """Render a validated billing record to the PDF a subscriber receives.

    Raises :class:`~renderer.layout.LayoutError` (naming the invoice and the two boxes)
    if anything would leave its frame or cross a reserved area: never an overprint.
    """
    return render_document(invoice, options).pdf


def self_service_url(brand_url: str | None, options: RenderOptions) -> str | None:
    """The page a summary invoice sends its reader to: the brand's, else the service's."""
    return brand_url or options.self_service_url


def detail_note(ctx: Context, options: RenderOptions) -> str:
    """The sentence a summary invoice prints instead of the call details: the page's
    address and the phone to enter there for the SMS code, when both are known; the
    general "on request" sentence otherwise (it promises no page that does not exist)."""
    url = self_service_url(ctx.brand.self_service.url, options)
    phone = ctx.record.delivery.phone
    if url and phone:
        return ctx.label("detail_at_page", url=url, phone=phone)
    return ctx.label("detail_on_request")


def _draw(invoice: BillingRecord, options: RenderOptions | None,
          attachment: bytes | None) -> bytes:
    options = options or RenderOptions()
    fonts.register()
    loc = for_locale(invoice.invoice.locale)
    brand = brand_for(invoice.operator.id)
    ctx = Context.of(invoice, loc, brand)
    summary_only = (options.detail or brand.self_service.detail) == "summary"

    # Plan every page before drawing any: "page X of Y" needs the count.
    fixed = FixedParts(ctx)
    first, following = fixed.first_page(), fixed.next_pages()
    body = Body(ctx, summary_only=summary_only, previous=options.previous,
                shock_share=options.shock_share,
                detail_note=detail_note(ctx, options) if summary_only else None)
    pages = flow(body.rows(), first, following, ctx.invoice)
    annex = None if summary_only else Annex(ctx)
    if annex is not None:
        left = pages[-1].free()
        left = left.below(left.y1 - GAP) if left.height > GAP else None
        shared, annex_pages = annex.pages(left, following.body)
        if shared:
            pages[-1].annex, pages[-1].annex_box = annex_pages.pop(0), left
        pages += [PagePlan(following, annex=p, annex_box=following.body) for p in annex_pages]
    total = len(pages)

    buffer = _reportlab.Output()
    canvas = Canvas(buffer, pagesize=(brand.page_width, brand.page_height), invariant=1,
                    pageCompression=1, lang=loc.requested.replace("_", "-"))
    # invariant=1 alone would stamp 2000-01-01; the issue date is the truthful constant.
    issued = f"D:{invoice.invoice.issue_date:%Y%m%d}120000+00'00'"
    canvas.setDateFormatter(lambda *_: issued)
    canvas.setTitle(f"{loc.label('invoice')} {invoice.invoice.number}")
    canvas.setAuthor(invoice.operator.name)
    canvas.setSubject(f"{invoice.account.number} {invoice.invoice.period.start:%Y-%m}")
    canvas.setCreator(f"invoicer renderer {RENDERER_VERSION}")

    writer = RowWriter(canvas, loc.rtl, ctx.invoice) if annex is not None else None
    for number, page in enumerate(pages, start=1):
        canvas.setFillColor(brand.text)
        if number == 1:
            fixed.draw_first_page(canvas, page.areas)
        for row, slot in page.rows:
            row.draw(Frame(canvas, brand, loc.rtl, slot, row.name, ctx.invoice))
        if page.annex is not None and annex is not None and writer is not None:
            annex.draw_page(Frame(canvas, brand, loc.rtl, page.annex_box, "call details",
                                  ctx.invoice), page.annex, writer)
        fixed.furniture(canvas, page.areas, number, total)
        canvas.showPage()
        _reportlab.compress_finished_page(canvas)
    pdfa.conform(canvas, identity=f"{invoice.operator.id}/{invoice.invoice.number}",
                 issued=invoice.invoice.issue_date, attachment=attachment)
    canvas.save()
    return buffer.getvalue()


# Last: the detailed bill reads RENDERER_VERSION from this package when it renders.
from invoicer.renderer.details import NoDetailsError, render_details  # noqa: E402

__all__ = ["RENDERER_VERSION", "LayoutError", "NoDetailsError", "PreviousInvoice",
           "RenderOptions", "Rendered", "render", "render_details", "render_document"]
