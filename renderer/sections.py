"""The front matter of an invoice: header, address window, facts, summary, charges,
taxes, consumption history and the payment slip.

Each function draws from data already in the record; nothing here computes money
beyond summing what the record lists (the record has been reconciled on input).
"""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal

from reportlab.graphics import renderPDF
from reportlab.graphics.charts.barcharts import VerticalBarChart
from reportlab.graphics.shapes import Drawing
from reportlab.lib.units import mm

from invoicer.billing.fields import currency_minor_units
from invoicer.billing.models import BillingRecord, PaymentMethod, Service
from invoicer.renderer import codes, text
from invoicer.renderer.brand import Brand
from invoicer.renderer.i18n import InvoiceLocale
from invoicer.renderer.layout import (
    WINDOW_HEIGHT,
    WINDOW_LEFT,
    WINDOW_PADDING,
    WINDOW_TOP,
    WINDOW_WIDTH,
    Frame,
    Row,
)

BODY = 8.5
SMALL = 7
TITLE = 16
PITCH = 4.6 * mm          # one table row of the front matter
PAYMENT_SLIP = 62 * mm    # height reserved at the foot of page 1


class Sections:
    """Front-matter drawing for one invoice (record, locale and brand bound once)."""

    def __init__(self, record: BillingRecord, loc: InvoiceLocale, brand: Brand,
                 summary_only: bool) -> None:
        self.r = record
        self.loc = loc
        self.brand = brand
        self.summary_only = summary_only
        self.currency = record.invoice.currency
        self.digits = currency_minor_units(self.currency) or 0
        self.duplicate = record.invoice.kind.value == "duplicate"
        self.overrides = brand.labels_for(loc.requested)

    # -- small helpers ---------------------------------------------------------------

    def label(self, key: str, **values: str) -> str:
        """A label in the invoice's language; the brand's own wording wins."""
        override = self.overrides.get(key)
        if override is not None:
            return override.format_map(values) if values else override
        return self.loc.label(key, **values)

    def money(self, amount: Decimal) -> str:
        return self.loc.money(amount, self.currency)

    def number(self, amount: Decimal) -> str:
        return self.loc.number(amount, self.digits)

    # -- every page ------------------------------------------------------------------

    def page_furniture(self, f: Frame, page: int, pages: int, first: bool) -> None:
        """Header on continuation pages, footer and the duplicate mark on every page."""
        b = self.brand
        top = b.page_height - b.margin_top
        if not first:
            f.text(0, top - 5 * mm, self.r.operator.name, 11, bold=True, color=b.primary,
                   max_width=f.width * 0.5)
            f.text(f.width, top - 5 * mm,
                   f"{self.label('invoice')} {self.r.invoice.number}", 9, align="end",
                   max_width=f.width * 0.45)
            f.rule(top - 8 * mm, color=b.primary, thickness=1)
        if self.duplicate:
            self.duplicate_mark(f, top)
        y = b.margin_bottom
        f.rule(y + 5 * mm, thickness=0.3)
        f.text(0, y + 1.5 * mm, f"{self.label('invoice_number')}: {self.r.invoice.number}",
               SMALL, color=b.muted, max_width=f.width * 0.4)
        f.text(f.width, y + 1.5 * mm, self.label("page_of", page=str(page), pages=str(pages)),
               SMALL, align="end", color=b.muted)
        footer = b.footer(self.loc.requested)
        if footer:
            f.text(f.width / 2, y - 2 * mm, footer, 6, align="center", color=b.muted,
                   max_width=f.width)

    def duplicate_mark(self, f: Frame, top: float) -> None:
        """A boxed DUPLICATE / 2ª via mark in the top corner of every page."""
        c = f.canvas
        word = self.label("duplicate")
        w = text.width(word, 10, bold=True) + 6 * mm
        x = f.span(f.width - w, w)  # the end corner: top right, or top left in RTL
        y = top + 1 * mm
        c.saveState()
        c.setStrokeColor(self.brand.primary)
        c.setFillColor(self.brand.primary)
        c.setLineWidth(1.2)
        c.rect(x, y, w, 6 * mm, stroke=1, fill=0)
        text.draw(c, x + w / 2, y + 1.7 * mm, word, 10, bold=True, align="center",
                  rtl=f.rtl)
        c.restoreState()

    # -- page 1 ----------------------------------------------------------------------

    def first_page_head(self, f: Frame) -> float:
        """Brand, title, address window and facts; returns the y where the flow starts."""
        b, r, c = self.brand, self.r, f.canvas
        top = b.page_height - b.margin_top
        logo_h = 0.0
        if b.logo is not None:
            logo_h = 12 * mm
            c.drawImage(str(b.logo), f.span(0, b.logo_width), top - logo_h, b.logo_width,
                        logo_h, preserveAspectRatio=True, anchor="sw" if not f.rtl else "se",
                        mask="auto")
        else:
            f.text(0, top - 8 * mm, r.operator.name, TITLE, bold=True, color=b.primary,
                   max_width=f.width * 0.55)
        f.text(f.width, top - 8 * mm, self.label("invoice"), TITLE, bold=True, align="end",
               color=b.primary)
        support = r.operator.support
        parts = [r.operator.name]
        if r.operator.tax_id:
            parts.append(f"{self.label('operator_tax_id')} {r.operator.tax_id}")
        if support and (support.phone or support.web):
            parts.append(" · ".join(filter(None, [self.label("support"), support.phone,
                                                  support.web])))
        f.text(0, top - 15 * mm, "  |  ".join(parts), SMALL, color=b.muted,
               max_width=f.width)
        f.rule(top - 18 * mm, color=b.primary, thickness=1.2)

        self.address_window(f)
        self.facts(f)
        return b.page_height - WINDOW_TOP - WINDOW_HEIGHT - 6 * mm

    def address_window(self, f: Frame) -> None:
        """The recipient's address inside the DIN 5008 B window (physical position)."""
        b, c = self.brand, f.canvas
        cust = self.r.account.customer
        left = WINDOW_LEFT + WINDOW_PADDING
        right = WINDOW_LEFT + WINDOW_WIDTH - WINDOW_PADDING
        width = right - left
        y = b.page_height - WINDOW_TOP - WINDOW_PADDING - 2 * mm
        op = self.r.operator
        sender = ", ".join([op.name, *op.address.lines,
                            f"{op.address.postal_code} {op.address.city}".strip()])
        anchor, align = (right, "right") if f.rtl else (left, "left")
        c.setFillColor(b.muted)
        text.draw(c, anchor, y, sender, 6, align=align, max_width=width, rtl=f.rtl)
        c.setFillColor(b.text)
        y -= 6 * mm
        lines = [*text.wrap(cust.name, width, 10, bold=True, max_lines=2)]
        bold_lines = len(lines)
        lines += [text.wrap(line, width, 10, max_lines=1)[0] for line in cust.address.lines]
        lines.append(f"{cust.address.postal_code} {cust.address.city}".strip())
        if cust.address.country != op.address.country:
            name = self.loc.babel.territories.get(cust.address.country, cust.address.country)
            lines.append(name.upper())
        floor = b.page_height - WINDOW_TOP - WINDOW_HEIGHT + WINDOW_PADDING
        for i, line in enumerate(lines):
            if y < floor:
                break
            text.draw(c, anchor, y, line, 10, bold=i < bold_lines, align=align,
                      max_width=width, rtl=f.rtl)
            y -= 4.4 * mm

    def facts(self, f: Frame) -> None:
        """Invoice number, dates, period, account: a box beside the address window."""
        b, r, c = self.brand, self.r, f.canvas
        inv = r.invoice
        x0 = WINDOW_LEFT + WINDOW_WIDTH + 8 * mm
        x1 = b.page_width - b.margin_right
        top = b.page_height - WINDOW_TOP
        facts = [
            (self.label("invoice_number"), inv.number),
            (self.label("issue_date"), self.loc.date(inv.issue_date)),
            (self.label("due_date"), self.loc.date(inv.due_date)),
            (self.label("period"), self.label("period_range",
                                             start=self.loc.date(inv.period.start),
                                             end=self.loc.date(inv.period.end))),
            (self.label("account_number"), r.account.number),
        ]
        if r.account.customer.tax_id:
            facts.append((self.label("customer_tax_id"), r.account.customer.tax_id))
        c.setFillColor(b.accent)
        height = len(facts) * 7.2 * mm + 3 * mm
        c.roundRect(x0, top - height, x1 - x0, height, 2 * mm, stroke=0, fill=1)
        width = x1 - x0 - 6 * mm
        y = top - 5 * mm
        start, align = (x1 - 3 * mm, "right") if f.rtl else (x0 + 3 * mm, "left")
        for name, value in facts:
            c.setFillColor(b.muted)
            text.draw(c, start, y, name, SMALL, align=align, max_width=width, rtl=f.rtl)
            c.setFillColor(b.text)
            text.draw(c, start, y - 3.4 * mm, value, 9.5, bold=True, align=align,
                      max_width=width, rtl=f.rtl)
            y -= 7.2 * mm

    # -- the flow --------------------------------------------------------------------

    def rows(self) -> list[Row]:
        """Summary, per-line overview (business), charges, taxes, history."""
        rows = [self.summary_row()]
        if self.r.account.segment.value == "business" and len(self.r.services) > 1:
            rows += self.overview_rows()
        rows += self.charge_rows()
        if self.r.taxes:
            rows += self.tax_rows()
        if self.r.history:
            rows.append(Row(4 * mm, lambda f, y: None))
            rows.append(self.history_row())
        if self.summary_only and any(s.usage for s in self.r.services):
            rows.append(Row(12 * mm, self._detail_note))
        return rows

    def _detail_note(self, f: Frame, y: float) -> None:
        for i, line in enumerate(text.wrap(self.label("detail_on_request"), f.width, BODY,
                                           max_lines=2)):
            f.text(0, y - 7 * mm - i * 4 * mm, line, BODY, color=self.brand.muted)

    def summary_row(self) -> Row:
        r, b = self.r, self.brand
        payments = sum((p.amount for p in r.balance.payments), Decimal(0))
        lines = [
            (self.label("previous_balance"), r.balance.previous),
            (self.label("payments_received"), -payments),
            (self.label("adjustments"), r.totals.adjustments),
            (self.label("current_charges"), r.totals.charges),
            (self.label("taxes"), r.totals.taxes),
        ]
        height = len(lines) * PITCH + 10 * mm

        def draw(f: Frame, y: float) -> None:
            f.band(y - height + 2 * mm, height - 2 * mm, b.accent)
            f.text(3 * mm, y - 6 * mm, self.label("summary"), 11, bold=True, color=b.primary)
            half = f.width * 0.55
            yy = y - 11 * mm
            for name, amount in lines:
                f.text(3 * mm, yy, name, BODY, max_width=half * 0.6)
                f.text(half - 3 * mm, yy, self.money(amount), BODY, align="end")
                yy -= PITCH
            f.text(f.width - 4 * mm, y - 9 * mm, self.label("total_due"), 10, align="end",
                   color=b.primary)
            f.text(f.width - 4 * mm, y - 19 * mm, self.money(r.totals.total_due), 22,
                   bold=True, align="end", max_width=f.width - half - 8 * mm)
            f.text(f.width - 4 * mm, y - 26 * mm,
                   self.label("pay_by", date=self.loc.date(r.invoice.due_date)), 10,
                   bold=True, align="end")

        return Row(height + 3 * mm, draw)

    def heading(self, title: str) -> Row:
        def draw(f: Frame, y: float) -> None:
            f.text(0, y - 6 * mm, title, 11, bold=True, color=self.brand.primary)
            f.rule(y - 7.5 * mm, color=self.brand.primary, thickness=0.8)

        return Row(9.5 * mm, draw, keep_with_next=True)

    def line_row(self, cells: list[tuple[float, str, str, bool]], *, bold: bool = False,
                 size: float = BODY, shade: bool = False, keep: bool = False,
                 widths: dict[int, float] | None = None) -> Row:
        """A table row: cells are (logical offset, text, align, muted)."""
        widths = widths or {}

        def draw(f: Frame, y: float) -> None:
            if shade:
                f.band(y - PITCH + 0.6 * mm, PITCH, self.brand.accent)
            for i, (offset, value, align, muted) in enumerate(cells):
                f.text(offset, y - PITCH + 1.8 * mm, value, size, bold=bold, align=align,
                       max_width=widths.get(i), color=self.brand.muted if muted else None)

        return Row(PITCH, draw, keep_with_next=keep)

    def _usage_total(self, service: Service) -> Decimal:
        return sum((u.amount for u in service.usage), Decimal(0))

    def overview_rows(self) -> list[Row]:
        """Business accounts: one line per service before the per-line sections."""
        w = self.brand.content_width
        cols = (0, 0.22 * w, 0.8 * w, w)
        rows = [self.heading(self.label("lines_overview")),
                self.line_row([(cols[0], self.label("line"), "start", True),
                               (cols[1], self.label("plan"), "start", True),
                               (cols[2], self.label("usage_total"), "end", True),
                               (cols[3], self.label("charges"), "end", True)], keep=True)]
        for i, s in enumerate(self.r.services):
            charges = sum((c.amount for c in s.charges), Decimal(0))
            rows.append(self.line_row(
                [(cols[0], s.id, "start", False), (cols[1], s.label, "start", False),
                 (cols[2], self.number(self._usage_total(s)), "end", False),
                 (cols[3], self.number(charges), "end", False)],
                shade=i % 2 == 1, widths={0: 0.21 * w, 1: 0.45 * w}))
        rows.append(self.line_row([(0, self.label("total_charges"), "start", False),
                                   (w, self.money(self.r.totals.charges), "end", False)],
                                  bold=True))
        return rows

    def charge_rows(self) -> list[Row]:
        """Per service, charges grouped by category with category and service subtotals."""
        w = self.brand.content_width
        rows = [self.heading(self.label("charges"))]
        several = len(self.r.services) > 1
        for s in self.r.services:
            rows.append(self.line_row([(0, f"{s.label} · {s.id}", "start", False)],
                                      bold=True, keep=True, widths={0: w}))
            by_category: dict[str, list] = defaultdict(list)
            for c in s.charges:
                by_category[c.category.value].append(c)
            for category, charges in by_category.items():
                subtotal = sum((c.amount for c in charges), Decimal(0))
                rows.append(self.line_row(
                    [(2 * mm, self.loc.category(category), "start", False),
                     (w, self.number(subtotal), "end", False)], shade=True,
                    widths={0: 0.7 * w}))
                for c in charges:
                    qty = self.loc.decimal(c.quantity)
                    if c.unit:
                        qty = f"{qty} {c.unit}"
                    rows.append(self.line_row(
                        [(6 * mm, c.description, "start", False),
                         (0.72 * w, qty, "end", True),
                         (w, self.number(c.amount), "end", False)],
                        widths={0: 0.72 * w - 30 * mm, 1: 22 * mm}))
            if several:
                total = sum((c.amount for c in s.charges), Decimal(0))
                rows.append(self.line_row([(0, self.label("subtotal"), "start", False),
                                           (w, self.number(total), "end", False)],
                                          bold=True))
        rows.append(self.line_row([(0, self.label("total_charges"), "start", False),
                                   (w, self.money(self.r.totals.charges), "end", False)],
                                  bold=True, size=9.5))
        return rows

    def tax_rows(self) -> list[Row]:
        w = self.brand.content_width
        cols = (0, 0.45 * w, 0.72 * w, w)
        rows = [Row(3 * mm, lambda f, y: None), self.heading(self.label("taxes")),
                self.line_row([(cols[0], self.label("tax_code"), "start", True),
                               (cols[1], self.label("tax_rate"), "end", True),
                               (cols[2], self.label("tax_base"), "end", True),
                               (cols[3], self.label("tax_amount"), "end", True)], keep=True)]
        for t in self.r.taxes:
            rows.append(self.line_row([(cols[0], t.code, "start", False),
                                       (cols[1], self.loc.percent(t.rate), "end", False),
                                       (cols[2], self.number(t.base), "end", False),
                                       (cols[3], self.number(t.amount), "end", False)],
                                      widths={0: 0.4 * w}))
        rows.append(self.line_row([(0, self.label("taxes"), "start", False),
                                   (w, self.money(self.r.totals.taxes), "end", False)],
                                  bold=True))
        return rows

    def history_row(self) -> Row:
        """Consumption history: a vector bar chart of up to 13 periods."""
        history = self.r.history
        height = 46 * mm

        def draw(f: Frame, y: float) -> None:
            f.text(0, y - 5 * mm, self.label("history"), 11, bold=True,
                   color=self.brand.primary)
            d = Drawing(f.width, height - 9 * mm)
            chart = VerticalBarChart()
            chart.x, chart.y = 14 * mm, 7 * mm
            chart.width, chart.height = f.width - 18 * mm, height - 20 * mm
            values = [float(h.amount) for h in history]  # drawing only: bar heights
            chart.data = [values]
            chart.bars[0].fillColor = self.brand.primary
            chart.bars[0].strokeColor = None
            chart.valueAxis.valueMin = min(0, *values)
            chart.valueAxis.labels.fontName = "Sans"
            chart.valueAxis.labels.fontSize = 6
            chart.valueAxis.labelTextFormat = lambda v: self.loc.number(
                Decimal(str(round(v, 2))), 0)
            chart.categoryAxis.categoryNames = [self.loc.month(h.period) for h in history]
            chart.categoryAxis.labels.fontName = "Sans"
            chart.categoryAxis.labels.fontSize = 6
            chart.barLabelFormat = lambda v: ""
            d.add(chart)
            renderPDF.draw(d, f.canvas, f.left, y - height)

        return Row(height, draw)

    # -- payment slip ------------------------------------------------------------------

    def payment_slip(self, f: Frame) -> None:
        """The foot of page 1: how to pay, with the payable code drawn as vectors."""
        b, r, c = self.brand, self.r, f.canvas
        top = b.margin_bottom + 8 * mm + PAYMENT_SLIP
        c.saveState()
        c.setDash(2, 2)
        f.rule(top, thickness=0.4)
        c.restoreState()
        f.text(0, top - 6 * mm, self.label("payment"), 11, bold=True, color=b.primary)
        due = r.totals.total_due
        amount = self.money(due)
        f.text(f.width, top - 6 * mm,
               f"{self.label('total_due')}: {amount} · "
               f"{self.label('due_date')}: {self.loc.date(r.invoice.due_date)}",
               9.5, bold=True, align="end", max_width=f.width * 0.6)
        p = r.payment
        y = top - 12 * mm
        if p.method is PaymentMethod.direct_debit:
            message = (self.label("direct_debit", amount=amount,
                                  date=self.loc.date(r.invoice.due_date))
                       if due > 0 else self.label("nothing_due"))
            self._paragraph(f, message, y, 10)
            return
        if p.method is PaymentMethod.none:
            message = (self.label("credit", amount=self.money(-due)) if due < 0
                       else self.label("nothing_due"))
            self._paragraph(f, message, y, 10)
            return
        scheme = p.scheme.value
        if scheme == "febraban":
            from invoicer.billing.paycodes import febraban

            parsed = febraban.parse(p.code)
            self._paragraph(f, self.label("pay_barcode"), y, BODY)
            f.text(0, y - 11 * mm, parsed.formatted, 12, bold=True)
            bars = codes.itf(p.code)
            w, h = bars.size
            bars.draw(c, f.span(0, w), y - 14 * mm - h)
        elif scheme in ("gost_qr", "epc_qr"):
            qr = codes.qr(p.code)
            w, h = qr.size
            qr.draw(c, f.span(f.width - w, w), y - h + 2 * mm)
            self._paragraph(f, self.label("pay_qr", amount=amount), y, 10,
                            width=f.width - w - 6 * mm)
            if p.fields:
                details = [v for k, v in p.fields.items()
                           if k in ("Name", "beneficiary", "PersonalAcc", "IBAN", "BIC",
                                    "remittance_reference", "remittance_text", "Purpose")]
                for i, value in enumerate(details[:6]):
                    f.text(0, y - 12 * mm - i * 4 * mm, value, BODY,
                           max_width=f.width - w - 6 * mm)
        else:  # code128
            bars = codes.code128(p.code)
            w, h = bars.size
            self._paragraph(f, self.label("pay_reference"), y, BODY)
            bars.draw(c, f.span(0, w), y - 6 * mm - h)
            f.text(0, y - 10 * mm - h, p.code, 11, bold=True)

    def _paragraph(self, f: Frame, message: str, y: float, size: float,
                   width: float | None = None) -> None:
        for i, line in enumerate(text.wrap(message, width or f.width, size, max_lines=3)):
            f.text(0, y - i * size * 1.35, line, size)
