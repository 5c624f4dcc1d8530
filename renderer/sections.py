"""The body of an invoice, as rows for the flow: summary, bill-shock explainer, payments
and adjustments, the per-line overview (business), charges, taxes, consumption history.

Each part draws from data already in the record; nothing here computes money beyond
summing what the record lists (the record has been reconciled on input). Long tables
repeat their column header, and their title "(continued)", on the page they continue.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from decimal import Decimal

from reportlab.lib.units import mm

from invoicer.billing.models import Service
from invoicer.renderer import text
from invoicer.renderer.chart import history_row
from invoicer.renderer.context import BODY, Context
from invoicer.renderer.layout import Frame, Row
from invoicer.renderer.rows import Cell, heading, line, metrics, paragraph, space
from invoicer.renderer.shock import PreviousInvoice, explain

TOTAL_SIZES = (22, 18, 15, 12)  # the total due: as large as fits, never cut


class Body:
    """The flowing rows of one invoice."""

    def __init__(self, ctx: Context, *, summary_only: bool,
                 previous: PreviousInvoice | None, shock_share: Decimal,
                 detail_note: str | None = None) -> None:
        self.ctx = ctx
        self.r = ctx.record
        self.summary_only = summary_only
        self.detail_note = detail_note
        self.previous = previous
        self.shock_share = shock_share
        self.w = ctx.brand.content_width

    def rows(self) -> list[Row]:
        rows = [self.summary()]
        shock = self.shock()
        if shock is not None:
            rows.append(shock)
        if self.r.balance.payments or self.r.balance.adjustments:
            rows += self.payments()
        if self.r.account.segment.value == "business" and len(self.r.services) > 1:
            rows += self.overview()
        rows += self.charges()
        if self.r.taxes:
            rows += self.taxes()
        if self.r.history:
            rows += [space(4 * mm), history_row(self.ctx)]
        if self.summary_only and any(s.usage for s in self.r.services):
            rows.append(paragraph(self.ctx,
                                  self.detail_note or self.ctx.label("detail_on_request"),
                                  color=self.ctx.brand.muted, max_lines=4, space=5 * mm,
                                  name="detail note"))
        return rows

    # -- page 1 ------------------------------------------------------------------------

    def summary(self) -> Row:
        """The account summary and, beside it, the total due and when to pay it."""
        ctx, r, b = self.ctx, self.r, self.ctx.brand
        payments = sum((p.amount for p in r.balance.payments), Decimal(0))
        lines = [(ctx.label("previous_balance"), ctx.money(r.balance.previous)),
                 (ctx.label("payments_received"), ctx.money(-payments)),
                 (ctx.label("adjustments"), ctx.money(r.totals.adjustments)),
                 (ctx.label("current_charges"), ctx.money(r.totals.charges)),
                 (ctx.label("taxes"), ctx.money(r.totals.taxes))]
        title = ctx.label("summary")
        half = self.w * 0.55
        right = self.w - half - 8 * mm
        total = ctx.money(r.totals.total_due)
        size = next((s for s in TOTAL_SIZES
                     if text.width(total, s, True, rtl=ctx.rtl) <= right), TOTAL_SIZES[-1])
        due_label = ctx.label("total_due")
        pay_by = ctx.label("pay_by", date=ctx.date(r.invoice.due_date))

        t_asc, t_desc = metrics(ctx, [title], 11, True)
        l_asc, l_desc = metrics(ctx, [v for pair in lines for v in pair], BODY)
        pitch = l_asc + l_desc + 0.6
        left_h = 2.5 * mm + t_asc + t_desc + 1.5 * mm + len(lines) * pitch
        d_asc, d_desc = metrics(ctx, [due_label], 10)
        m_asc, m_desc = metrics(ctx, [total], size, True)
        p_asc, p_desc = metrics(ctx, [pay_by], 10, True)
        right_h = 2.5 * mm + d_asc + d_desc + 2 * mm + m_asc + m_desc + 2 * mm + p_asc + p_desc
        band = max(left_h, right_h) + 2.5 * mm

        def draw(f: Frame) -> None:
            f.band(f.top - band, band, b.accent)
            y = f.top - 2.5 * mm - t_asc
            f.text(3 * mm, y, title, 11, bold=True, color=b.primary, max_width=half - 6 * mm)
            y -= t_desc + 1.5 * mm
            for name, amount in lines:
                y -= l_asc
                w = f.text(half - 3 * mm, y, amount, BODY, align="end")
                f.text(3 * mm, y, name, BODY, max_width=half - 6 * mm - w - 3 * mm)
                y -= l_desc + 0.6
            edge = f.width - 4 * mm
            y = f.top - 2.5 * mm - d_asc
            f.text(edge, y, due_label, 10, align="end", color=b.primary, max_width=right)
            y -= d_desc + 2 * mm + m_asc
            f.text(edge, y, total, size, bold=True, align="end")
            y -= m_desc + 2 * mm + p_asc
            f.text(edge, y, pay_by, 10, bold=True, align="end", max_width=right)

        return Row(band + 3 * mm, draw, page_one=True, name="account summary")

    def shock(self) -> Row | None:
        """One sentence when the charges moved by more than the configured share."""
        ctx = self.ctx
        found = explain(self.r, self.previous, self.shock_share)
        if found is None:
            return None
        key = "shock_up" if found.change > 0 else "shock_down"
        values = {"change": ctx.money(abs(found.change)),
                  "share": ctx.fmt.percent(abs(found.share).quantize(Decimal("0.01"))),
                  "period": ctx.fmt.month(found.compared_with)}
        if found.movers:
            key += "_movers"
            values["movers"] = ", ".join(
                f"{ctx.loc.category(c)} {ctx.fmt.signed_money(d, ctx.currency)}"
                for c, d in found.movers)
        return paragraph(ctx, ctx.label(key, **values), color=ctx.brand.primary,
                         max_lines=3, page_one=True, name="bill-shock explainer")

    # -- payments and adjustments ---------------------------------------------------------

    def payments(self) -> list[Row]:
        """Each payment (date, method, amount) and adjustment (date, text, amount)."""
        ctx, w = self.ctx, self.w
        title = ctx.label("payments_adjustments")
        header = line(ctx, [Cell(0, ctx.label("col_date"), muted=True),
                            Cell(0.18 * w, ctx.label("col_item"), muted=True),
                            Cell(w, ctx.label("amount"), "end", muted=True)], keep=True,
                      name="payments header")
        again = (heading(ctx, ctx.label("continued", title=title)), header)
        rows: list[Row] = [heading(ctx, title), header]
        items = [(p.date, ctx.label("payment_item", method=ctx.loc.payment_method(p.method)),
                  -p.amount) for p in self.r.balance.payments]
        items += [(a.date, a.description, a.amount) for a in self.r.balance.adjustments]
        for i, (day, what, amount) in enumerate(items):
            rows.append(line(ctx, [Cell(0, ctx.date(day)),
                                   Cell(0.18 * w, what, width=0.58 * w, max_lines=4),
                                   Cell(w, ctx.amount(amount), "end")],
                             shade=i % 2 == 1, continued=again, name="payment or adjustment"))
        return rows

    # -- business overview ----------------------------------------------------------------

    def overview(self) -> list[Row]:
        """Business accounts: one line per service, the header on every page."""
        ctx, w = self.ctx, self.w
        title = ctx.label("lines_overview")
        cols = (0, 0.22 * w, 0.8 * w, w)
        header = line(ctx, [Cell(cols[0], ctx.label("line"), muted=True),
                            Cell(cols[1], ctx.label("plan"), muted=True),
                            Cell(cols[2], ctx.label("usage_total"), "end", muted=True),
                            Cell(cols[3], ctx.label("charges"), "end", muted=True)],
                      keep=True, name="overview header")
        again = (heading(ctx, ctx.label("continued", title=title)), header)
        rows = [heading(ctx, title), header]
        for i, s in enumerate(self.r.services):
            charges = sum((c.amount for c in s.charges), Decimal(0))
            rows.append(line(ctx, [
                Cell(cols[0], s.id, width=0.21 * w, max_lines=2),
                Cell(cols[1], s.label, width=0.45 * w, max_lines=3),
                Cell(cols[2], ctx.amount(self._usage_total(s)), "end"),
                Cell(cols[3], ctx.amount(charges), "end")],
                shade=i % 2 == 1, continued=again, name="overview line"))
        rows.append(line(ctx, [Cell(0, ctx.label("total_charges"), width=0.6 * w),
                               Cell(w, ctx.money(self.r.totals.charges), "end")], bold=True,
                         continued=again, name="overview total"))
        return rows

    @staticmethod
    def _usage_total(service: Service) -> Decimal:
        return sum((u.amount for u in service.usage), Decimal(0))

    # -- charges ------------------------------------------------------------------------

    def charges(self) -> list[Row]:
        """Per service, charges grouped by category with category and service subtotals."""
        ctx, w = self.ctx, self.w
        rows = [heading(ctx, ctx.label("charges"))]
        several = len(self.r.services) > 1
        for s in self.r.services:
            name = f"{s.label} · {s.id}"
            title = line(ctx, [Cell(0, name, width=w, max_lines=2)], bold=True, keep=True,
                         name="service title")
            again = (line(ctx, [Cell(0, ctx.label("continued", title=name), width=w,
                                     max_lines=2)], bold=True, keep=True,
                          name="service title (continued)"),)
            rows.append(title)
            by_category: dict[str, list] = defaultdict(list)
            for c in s.charges:
                by_category[c.category.value].append(c)
            for category, charges in by_category.items():
                subtotal = sum((c.amount for c in charges), Decimal(0))
                rows.append(line(ctx, [Cell(2 * mm, ctx.loc.category(category),
                                            width=0.7 * w),
                                       Cell(w, ctx.amount(subtotal), "end")], shade=True,
                                 keep=True, continued=again, name="category subtotal"))
                for c in charges:
                    qty = ctx.fmt.decimal(c.quantity)
                    if c.unit:
                        qty = f"{qty} {c.unit}"
                    rows.append(line(ctx, [
                        Cell(6 * mm, c.description, width=0.72 * w - 30 * mm, max_lines=3),
                        Cell(0.72 * w, qty, "end", width=22 * mm, muted=True),
                        Cell(w, ctx.amount(c.amount), "end")],
                        continued=again, name="charge"))
            if several:
                total = sum((c.amount for c in s.charges), Decimal(0))
                rows.append(line(ctx, [Cell(0, ctx.label("subtotal"), width=0.6 * w),
                                       Cell(w, ctx.amount(total), "end")], bold=True,
                                 continued=again, name="service subtotal"))
        rows.append(line(ctx, [Cell(0, ctx.label("total_charges"), width=0.6 * w),
                               Cell(w, ctx.money(self.r.totals.charges), "end")], bold=True,
                         size=9.5, name="total charges"))
        return rows

    def taxes(self) -> list[Row]:
        ctx, w = self.ctx, self.w
        cols = (0, 0.45 * w, 0.72 * w, w)
        header = line(ctx, [Cell(cols[0], ctx.label("tax_code"), muted=True),
                            Cell(cols[1], ctx.label("tax_rate"), "end", muted=True),
                            Cell(cols[2], ctx.label("tax_base"), "end", muted=True),
                            Cell(cols[3], ctx.label("tax_amount"), "end", muted=True)],
                      keep=True, name="taxes header")
        again: Sequence[Row] = (header,)
        rows = [space(3 * mm), heading(ctx, ctx.label("taxes")), header]
        for t in self.r.taxes:
            rows.append(line(ctx, [Cell(cols[0], t.code, width=0.3 * w),
                                   Cell(cols[1], ctx.fmt.percent(t.rate), "end"),
                                   Cell(cols[2], ctx.amount(t.base), "end"),
                                   Cell(cols[3], ctx.amount(t.amount), "end")],
                             continued=again, name="tax"))
        rows.append(line(ctx, [Cell(0, ctx.label("taxes"), width=0.6 * w),
                               Cell(w, ctx.money(self.r.totals.taxes), "end")], bold=True,
                         name="taxes total"))
        return rows

