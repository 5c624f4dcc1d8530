"""The detailed bill on demand: an invoice's call-details annex as a PDF of its own.

An operator that sends summary invoices (``[self_service] detail = "summary"``) gives the
call details when asked; any subscriber may ask for them as a separate document. This is
the same annex the full invoice carries (:mod:`.annex`: grouped per line, then per usage
type, subtotals, "(continued)" titles), on pages with the invoice's running header and
footer ("Invoice N", "page X of Y"), a PDF/A-3b like every archived document, and as
deterministic as the invoice: the same record gives the same bytes.

``line`` restricts it to one line (``services[].id``) of a business account: what a fleet
manager opens per line, and all a line's own phone may see.
"""

from __future__ import annotations

from reportlab.pdfgen.canvas import Canvas

import invoicer.renderer as package
from invoicer.billing.models import BillingRecord
from invoicer.renderer import _reportlab, fonts, pdfa
from invoicer.renderer.annex import Annex, RowWriter
from invoicer.renderer.brand import brand_for
from invoicer.renderer.context import Context
from invoicer.renderer.fixed import FixedParts
from invoicer.renderer.i18n import for_locale
from invoicer.renderer.layout import Frame

__all__ = ["NoDetailsError", "render_details", "select_line"]


class NoDetailsError(LookupError):
    """The record (or the line asked for) has no call detail records to show."""


def select_line(record: BillingRecord, line: str | None) -> BillingRecord:
    """The record with only the service ``line`` (all of them for ``None``);
    :class:`NoDetailsError` for a line the record does not have."""
    if line is None:
        return record
    services = [s for s in record.services if s.id == line]
    if not services:
        raise NoDetailsError(f"invoice {record.invoice.number} has no line {line!r}")
    return record.model_copy(update={"services": services})


def render_details(record: BillingRecord, line: str | None = None) -> bytes:
    """The call-details annex of ``record`` (of its line ``line`` only, if given) as a
    PDF; :class:`NoDetailsError` when there is nothing to list."""
    record = select_line(record, line)
    fonts.register()
    loc = for_locale(record.invoice.locale)
    brand = brand_for(record.operator.id)
    ctx = Context.of(record, loc, brand)
    annex = Annex(ctx)
    if not annex.groups:
        raise NoDetailsError(f"invoice {record.invoice.number} has no call details")
    fixed = FixedParts(ctx)
    areas = fixed.next_pages()
    _, pages = annex.pages(None, areas.body)

    buffer = _reportlab.Output()
    canvas = Canvas(buffer, pagesize=(brand.page_width, brand.page_height), invariant=1,
                    pageCompression=1, lang=loc.requested.replace("_", "-"))
    issued = f"D:{record.invoice.issue_date:%Y%m%d}120000+00'00'"
    canvas.setDateFormatter(lambda *_: issued)
    title = f"{ctx.label('detailed_bill')} {record.invoice.number}"
    canvas.setTitle(f"{title} {line}" if line else title)
    canvas.setAuthor(record.operator.name)
    canvas.setSubject(f"{record.account.number} {record.invoice.period.start:%Y-%m}")
    canvas.setCreator(f"invoicer renderer {package.RENDERER_VERSION}")
    writer = RowWriter(canvas, loc.rtl, ctx.invoice)
    for number, page in enumerate(pages, start=1):
        canvas.setFillColor(brand.text)
        annex.draw_page(Frame(canvas, brand, loc.rtl, areas.body, "call details",
                              ctx.invoice), page, writer)
        fixed.furniture(canvas, areas, number, len(pages))
        canvas.showPage()
        _reportlab.compress_finished_page(canvas)
    # A document of its own: its identity differs from the invoice's (and per line).
    pdfa.conform(canvas, identity=f"{record.operator.id}/{record.invoice.number}/details/"
                                  f"{line or ''}", issued=record.invoice.issue_date)
    canvas.save()
    return buffer.getvalue()
