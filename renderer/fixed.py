"""The fixed parts of the pages: the reserved areas and what is drawn in them.

Page 1: the head (brand, title, support line), the recipient's address in the DIN 5008
window, the invoice facts beside it and the payment slip at the foot with its code and
quiet zones. Every page: the footer (invoice number, page x of y, legal line), the
header on continuation pages and the duplicate mark above the content.

:meth:`FixedParts.first_page` works out these areas from their content (the facts box
is as tall as its facts; the body starts below whichever of the window and the facts
ends lower) and hands the rest of the page to the body. Each part is then drawn in a
:class:`~renderer.layout.Frame` bound to its own area, so it can neither leave it nor
reach the body.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import cached_property

from reportlab.lib.units import mm

from invoicer.billing.models import PaymentMethod
from invoicer.billing.paycodes import febraban
from invoicer.renderer import codes, text
from invoicer.renderer.context import BODY, SMALL, TITLE, Context
from invoicer.renderer.layout import (
    GAP,
    WINDOW_HEIGHT,
    WINDOW_LEFT,
    WINDOW_PADDING,
    WINDOW_TOP,
    WINDOW_WIDTH,
    Box,
    Frame,
    PageAreas,
    body_bottom,
    content,
    footer_box,
    header_box,
    mark_box,
    page_box,
)
from invoicer.renderer.rows import metrics

log = logging.getLogger(__name__)

SLIP_INSET = 1.5 * mm          # the slip's content keeps off the content area's edges
ADDRESS_LINES = 6              # DIN 5008: the address zone holds six lines
ADDRESS_SIZES = (10, 9, 8)     # points: the largest at which the address fits whole
FACTS_PAD = 3 * mm


class FixedParts:
    """Reserved areas of one invoice's pages and their content."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.brand = ctx.brand
        self.duplicate = ctx.record.invoice.kind.value == "duplicate"

    # -- areas -------------------------------------------------------------------------

    def head_box(self) -> Box:
        b = self.brand
        top = b.page_height - b.margin_top
        return content(b, top - self._head_height(), top)

    def window_box(self) -> Box:
        """The envelope window: a physical place, the same in every direction."""
        h = self.brand.page_height
        return Box(WINDOW_LEFT, h - WINDOW_TOP - WINDOW_HEIGHT, WINDOW_LEFT + WINDOW_WIDTH,
                   h - WINDOW_TOP)

    def facts_box(self) -> Box:
        b = self.brand
        top = b.page_height - WINDOW_TOP
        height = sum(h for h, _, _ in self._fact_layouts()) + 2 * FACTS_PAD
        return Box(WINDOW_LEFT + WINDOW_WIDTH + 8 * mm, top - height,
                   b.page_width - b.margin_right, top)

    def slip_box(self) -> Box:
        """As tall as what the slip holds (a direct-debit sentence, or a code)."""
        b = self.brand
        y0 = body_bottom(b)
        return content(b, y0, y0 + self._slip[0])

    def first_page(self) -> PageAreas:
        b = self.brand
        head, window, facts, slip = (self.head_box(), self.window_box(), self.facts_box(),
                                     self.slip_box())
        reserved = [("head", head), ("address window", window), ("facts", facts),
                    ("payment slip", slip), ("footer", footer_box(b))]
        if self.duplicate:
            reserved.insert(0, ("duplicate mark", mark_box(b)))
        top = min(head.y0, window.y0, facts.y0) - GAP
        areas = PageAreas(page_box(b), content(b, slip.y1 + GAP, top), tuple(reserved))
        areas.check(self.ctx.invoice)
        return areas

    def next_pages(self) -> PageAreas:
        b = self.brand
        header, footer = header_box(b), footer_box(b)
        reserved = [("header", header), ("footer", footer)]
        if self.duplicate:
            reserved.insert(0, ("duplicate mark", mark_box(b)))
        areas = PageAreas(page_box(b), content(b, body_bottom(b), header.y0 - GAP / 2),
                          tuple(reserved))
        areas.check(self.ctx.invoice)
        return areas

    def _frame(self, canvas, areas: PageAreas, name: str) -> Frame:
        return Frame(canvas, self.brand, self.ctx.rtl, areas.area(name), name,
                     self.ctx.invoice)

    # -- page 1 ------------------------------------------------------------------------

    def draw_first_page(self, canvas, areas: PageAreas) -> None:
        self.head(self._frame(canvas, areas, "head"))
        self.address_window(self._frame(canvas, areas, "address window"))
        self.facts(self._frame(canvas, areas, "facts"))
        self.payment_slip(self._frame(canvas, areas, "payment slip"))

    def _head_lines(self) -> tuple[str, str, str]:
        ctx, r = self.ctx, self.ctx.record
        support = r.operator.support
        parts = [r.operator.name]
        if r.operator.tax_id:
            parts.append(f"{ctx.label('operator_tax_id')} {r.operator.tax_id}")
        if support and (support.phone or support.web):
            parts.append(" · ".join(filter(None, [ctx.label("support"), support.phone,
                                                  support.web])))
        return r.operator.name, ctx.label("invoice"), "  |  ".join(parts)

    def _title_band(self) -> tuple[float, float]:
        """Height of the brand/title line (a logo is 12 mm tall) and the title's descent."""
        name, title, _ = self._head_lines()
        asc, desc = metrics(self.ctx, [title] if self.brand.logo else [name, title],
                            TITLE, True)
        return max(12 * mm if self.brand.logo else 0, asc + desc), desc

    def _head_height(self) -> float:
        band, _ = self._title_band()
        s_asc, s_desc = metrics(self.ctx, [self._head_lines()[2]], SMALL)
        return 2 * mm + band + 1.5 * mm + s_asc + s_desc + 2.5 * mm

    def head(self, f: Frame) -> None:
        """Brand (logo or name), the document title and the operator's support line."""
        b, ctx = self.brand, self.ctx
        name, title, line = self._head_lines()
        band, desc = self._title_band()
        baseline = f.top - 2 * mm - band + desc  # the title's box ends with the band
        title_w = f.text(f.width, baseline, title, TITLE, bold=True, align="end",
                         color=b.primary)
        if b.logo is not None:
            f.image(str(b.logo), 0, f.top - 2 * mm - 12 * mm, b.logo_width, 12 * mm)
        else:
            f.text(0, baseline, name, TITLE, bold=True, color=b.primary,
                   max_width=f.width - title_w - 6 * mm)
        s_asc, _ = metrics(ctx, [line], SMALL)
        f.text(0, f.top - 2 * mm - band - 1.5 * mm - s_asc, line, SMALL, color=b.muted,
               max_width=f.width)
        f.rule(f.bottom + 1 * mm, color=b.primary, thickness=1.2)

    def address_window(self, f: Frame) -> None:
        """The recipient's address inside the DIN 5008 B window, never cut if it fits.

        Lines wrap within the window; up to six lines at 10 pt, else at 9 or 8 pt. Only an
        address that fits at none of them is shortened (its longest lines end in "…"),
        and that is logged with the invoice number.
        """
        b, ctx = self.brand, self.ctx
        r = ctx.record
        inner = Box(f.box.x0 + WINDOW_PADDING, f.box.y0 + 3 * mm,
                    f.box.x1 - WINDOW_PADDING, f.box.y1 - 3 * mm)
        w = f.sub(inner, "address window (inside its padding)")
        op = r.operator
        sender = ", ".join([op.name, *op.address.lines,
                            f"{op.address.postal_code} {op.address.city}".strip()])
        # The return address: two lines at most (a long one is cut at its end).
        senders = text.wrap(sender, w.width, 6, max_lines=2, rtl=ctx.rtl)
        s_asc, s_desc = metrics(ctx, senders, 6)
        for i, value in enumerate(senders):
            w.text(0, w.top - s_asc - i * (s_asc + s_desc), value, 6, color=b.muted,
                   max_width=w.width)
        head = len(senders) * (s_asc + s_desc) + 1.5 * mm
        room = w.top - head - w.bottom

        cust = r.account.customer
        streets = [(line, False) for line in cust.address.lines]
        tail = [(f"{cust.address.postal_code} {cust.address.city}".strip(), False)]
        if cust.address.country != op.address.country:
            name = ctx.loc.babel.territories.get(cust.address.country, cust.address.country)
            tail.append((name.upper(), False))
        lines, size, shortened = self._fit_address((cust.name, True), streets, tail,
                                                   w.width, room)
        if shortened:
            log.warning("invoice %s: the address does not fit the envelope window in %d "
                        "lines; shortened with '…'", ctx.invoice, ADDRESS_LINES)
        y = w.top - head
        for value, bold in lines:
            asc, desc = text.extent(value, size, bold, rtl=ctx.rtl)
            w.text(0, y - asc, value, size, bold=bold, max_width=w.width)
            y -= asc + desc

    def _fit_address(self, name: tuple[str, bool], streets: list[tuple[str, bool]],
                     tail: list[tuple[str, bool]], width: float, room: float
                     ) -> tuple[list[tuple[str, bool]], float, bool]:
        """Physical lines, their size, and whether anything had to be cut.

        Shortening keeps one line each for the name, the postal line and the country;
        street lines share what is left (the last of them merged if there are too many);
        then lines that wrap get further lines while the budget lasts, and the last line
        of each keeps the rest cut with "…".
        """
        rtl = self.ctx.rtl
        logical = [name, *streets, *tail]

        def height(lines: list[tuple[str, bool]], size: float) -> float:
            return sum(sum(text.extent(v, size, bold, rtl=rtl)) for v, bold in lines)

        for size in ADDRESS_SIZES:
            lines = [(v, bold) for value, bold in logical
                     for v in text.wrap(value, width, size, bold, rtl=rtl)]
            if len(lines) <= ADDRESS_LINES and height(lines, size) <= room:
                return lines, size, False
        size = ADDRESS_SIZES[-1]
        tallest = max(sum(text.extent(v, size, bold, rtl=rtl)) for v, bold in logical)
        budget = min(ADDRESS_LINES, int(room // tallest))
        fixed = 1 + len(tail)
        slots = max(0, budget - fixed)
        if len(streets) > slots:
            merged = ", ".join(v for v, _ in streets[max(0, slots - 1):])
            streets = [*streets[:max(0, slots - 1)], (merged, False)] if slots else []
        extra = budget - fixed - len(streets)
        lines: list[tuple[str, bool]] = []
        for value, bold in [name, *streets, *tail]:
            wrapped = text.wrap(value, width, size, bold, rtl=rtl) or [""]
            take = min(len(wrapped), 1 + max(0, extra))
            extra -= take - 1
            shown = wrapped[:take]
            if take < len(wrapped):
                rest = " ".join(wrapped[take - 1:])
                shown[-1] = text.ellipsize(rest + " …", width, size, bold=bold, rtl=rtl)
            lines += [(v, bold) for v in shown]
        if len(lines) > budget:  # not even one line each: the name and the postal line
            lines = [lines[0], *lines[-len(tail):]][:max(1, budget)]
        return lines, size, True

    def _facts(self) -> list[tuple[str, str]]:
        ctx = self.ctx
        inv, r = ctx.record.invoice, ctx.record
        facts = [
            (ctx.label("invoice_number"), inv.number),
            (ctx.label("issue_date"), ctx.date(inv.issue_date)),
            (ctx.label("due_date"), ctx.date(inv.due_date)),
            (ctx.label("period"), ctx.label("period_range",
                                            start=ctx.date(inv.period.start),
                                            end=ctx.date(inv.period.end))),
            (ctx.label("account_number"), r.account.number),
        ]
        if r.account.customer.tax_id:
            facts.append((ctx.label("customer_tax_id"), r.account.customer.tax_id))
        return facts

    def _fact_layouts(self) -> list[tuple[float, str, list[str]]]:
        """Each fact: its height, caption and value lines. A value too long for the box
        (a 64-character invoice number) wraps, between characters if it must; only
        beyond three lines is it cut."""
        width = self.facts_width() - 2 * FACTS_PAD
        out = []
        for name, value in self._facts():
            lines = text.wrap(value, width, 9.5, True, max_lines=3, rtl=self.ctx.rtl)
            n_asc, n_desc = metrics(self.ctx, [name], SMALL)
            v_asc, v_desc = metrics(self.ctx, lines, 9.5, True)
            out.append((n_asc + n_desc + len(lines) * (v_asc + v_desc) + 1, name, lines))
        return out

    def facts_width(self) -> float:
        b = self.brand
        return b.page_width - b.margin_right - (WINDOW_LEFT + WINDOW_WIDTH + 8 * mm)

    def facts(self, f: Frame) -> None:
        """Invoice number, dates, period, account: a box beside the address window."""
        b, ctx = self.brand, self.ctx
        f.band(f.bottom, f.box.height, b.accent, radius=2 * mm)
        inner = f.sub(Box(f.box.x0 + FACTS_PAD, f.box.y0 + FACTS_PAD,
                          f.box.x1 - FACTS_PAD, f.box.y1 - FACTS_PAD), "facts (inside)")
        y = inner.top
        for height, name, lines in self._fact_layouts():
            n_asc, n_desc = metrics(ctx, [name], SMALL)
            v_asc, v_desc = metrics(ctx, lines, 9.5, True)
            inner.text(0, y - n_asc, name, SMALL, color=b.muted, max_width=inner.width)
            for i, value in enumerate(lines):
                inner.text(0, y - n_asc - n_desc - v_asc - i * (v_asc + v_desc), value, 9.5,
                           bold=True, max_width=inner.width)
            y -= height

    # -- the payment slip ----------------------------------------------------------------

    def payment_slip(self, f: Frame) -> None:
        """How to pay, with the payable code drawn as vectors inside its quiet zones.

        Inset from the content's edges by ``SLIP_INSET``: the slip is the part of page 1
        nearest a print shop's sheet mark in the left margin."""
        _, parts = self._slip
        inner = f.sub(Box(f.box.x0 + SLIP_INSET, f.box.y0, f.box.x1 - SLIP_INSET, f.box.y1),
                      "payment slip (inside)")
        for part in parts:
            part(inner, f.top)

    @cached_property
    def _slip(self) -> tuple[float, list[Callable[[Frame, float], None]]]:
        """The slip's height and its parts, each drawn relative to the slip's top.

        Laid out top-down before anything is drawn: each element below the one before by
        its own line box or symbol size, so the slip's area is exactly as tall as its
        content, and text and symbol never meet (the frame refuses if they did).
        """
        b, ctx = self.brand, self.ctx
        r = ctx.record
        width = b.content_width - 2 * SLIP_INSET
        parts: list[Callable[[Frame, float], None]] = []
        depth = 0.0  # from the slip's top edge down to where the next part goes

        def rule(f: Frame, top: float) -> None:
            f.canvas.saveState()
            f.canvas.setDash(2, 2)
            f.rule(top - 0.5, thickness=0.4)
            f.canvas.restoreState()

        parts.append(rule)
        due = r.totals.total_due
        amount = ctx.money(due)
        title = ctx.label("payment")
        summary = (f"{ctx.label('total_due')}: {amount} · "
                   f"{ctx.label('due_date')}: {ctx.date(r.invoice.due_date)}")
        asc, desc = metrics(ctx, [title, summary], 11, True)

        def heading(f: Frame, top: float) -> None:
            y = top - 2 * mm - asc
            w = f.text(0, y, title, 11, bold=True, color=b.primary, max_width=f.width * 0.35)
            f.text(f.width, y, summary, 9.5, bold=True, align="end",
                   max_width=f.width - w - 4 * mm)

        parts.append(heading)
        depth = 2 * mm + asc + desc + 2.5 * mm

        def paragraph(message: str, size: float, column: float = width) -> float:
            """Up to three wrapped lines at ``depth``; returns their height."""
            lines = text.wrap(message, column, size, max_lines=3, rtl=ctx.rtl)
            p_asc, p_desc = metrics(ctx, lines, size)
            at = depth

            def draw(f: Frame, top: float) -> None:
                for i, value in enumerate(lines):
                    f.text(0, top - at - p_asc - i * (p_asc + p_desc), value, size,
                           max_width=column)

            parts.append(draw)
            return len(lines) * (p_asc + p_desc)

        def line(value: str, size: float) -> float:
            l_asc, l_desc = metrics(ctx, [value], size, True)
            at = depth
            parts.append(lambda f, top: f.text(0, top - at - l_asc, value, size, bold=True))
            return l_asc + l_desc

        def symbol(what: str, sym, offset: float) -> float:
            at = depth
            parts.append(lambda f, top: f.symbol(what, sym, offset, top - at - sym.size[1]))
            return sym.size[1]

        p = r.payment
        if p.method is PaymentMethod.direct_debit:
            depth += paragraph(ctx.label("direct_debit", amount=amount,
                                         date=ctx.date(r.invoice.due_date))
                               if due > 0 else ctx.label("nothing_due"), 10)
        elif p.method is PaymentMethod.none:
            depth += paragraph(ctx.label("credit", amount=ctx.money(-due)) if due < 0
                               else ctx.label("nothing_due"), 10)
        elif p.scheme.value == "febraban":
            depth += paragraph(ctx.label("pay_barcode"), BODY) + 1.5 * mm
            depth += line(febraban.parse(p.code).formatted, 12) + 1.5 * mm
            depth += symbol("barcode with its quiet zones", codes.itf(p.code), 0)
        elif p.scheme.value in ("gost_qr", "epc_qr"):
            qr = codes.qr(p.code)
            top = depth
            side = symbol("QR code with its quiet zone", qr, width - qr.size[0])
            column = width - qr.size[0] - 6 * mm
            depth += paragraph(ctx.label("pay_qr", amount=amount), 10, column) + 1 * mm
            shown = ("Name", "beneficiary", "PersonalAcc", "IBAN", "BIC",
                     "remittance_reference", "remittance_text", "Purpose")
            for value in [v for k, v in (p.fields or {}).items() if k in shown][:6]:
                depth += paragraph(value, BODY, column)  # the code carries every field
            depth = max(depth, top + side)
        else:  # code128
            depth += paragraph(ctx.label("pay_reference"), BODY) + 1 * mm
            depth += symbol("barcode with its quiet zones", codes.code128(p.code), 0)
            depth += 1 * mm + line(p.code, 11)
        return depth + 3 * mm, parts

    # -- every page --------------------------------------------------------------------

    def furniture(self, canvas, areas: PageAreas, page: int, pages: int) -> None:
        """Footer on every page, header on continuation pages, the duplicate mark."""
        ctx, b = self.ctx, self.brand
        names = dict(areas.reserved)
        if "header" in names:
            f = self._frame(canvas, areas, "header")
            name = ctx.record.operator.name
            number = f"{ctx.label('invoice')} {ctx.invoice}"
            asc, desc = metrics(ctx, [name, number], 11, True)
            y = f.top - 1 * mm - asc
            f.text(0, y, name, 11, bold=True, color=b.primary, max_width=f.width * 0.5)
            f.text(f.width, y, number, 9, align="end", max_width=f.width * 0.45)
            f.rule(y - desc - 1 * mm, color=b.primary, thickness=1)
        if "duplicate mark" in names:
            self.duplicate_mark(self._frame(canvas, areas, "duplicate mark"))
        f = self._frame(canvas, areas, "footer")
        f.rule(f.top - 0.5, thickness=0.3)
        left = f"{ctx.label('invoice_number')}: {ctx.invoice}"
        right = ctx.label("page_of", page=ctx.count(page), pages=ctx.count(pages))
        asc, desc = metrics(ctx, [left, right], SMALL)
        y = f.top - 1.2 * mm - asc
        right_w = f.text(f.width, y, right, SMALL, align="end", color=b.muted)
        f.text(0, y, left, SMALL, color=b.muted, max_width=f.width - right_w - 4 * mm)
        footer = b.footer(ctx.loc.requested)
        if footer:
            l_asc, _ = metrics(ctx, [footer], 6)
            f.text(f.width / 2, y - desc - 0.8 * mm - l_asc, footer, 6, align="center",
                   color=b.muted, max_width=f.width)

    def duplicate_mark(self, f: Frame) -> None:
        """A boxed DUPLICATE / 2ª via mark in the end corner above the content, at the
        largest size (10 pt down to 6 pt) that the top margin holds."""
        ctx = self.ctx
        word = ctx.label("duplicate")
        for size in (10, 9, 8, 7, 6):
            asc, desc = text.extent(word, size, True, rtl=ctx.rtl)
            h = asc + desc + 2 * 1.2
            if h + 1.2 <= f.box.height:
                break
        w = text.width(word, size, True, rtl=ctx.rtl) + 6 * mm
        y = f.bottom + 0.6  # half the outline's stroke
        f.outline(y, h, self.brand.primary, offset=f.width - w - 0.6, width=w, thickness=1.2)
        f.text(f.width - 0.6 - w / 2, y + 1.2 + desc, word, size, bold=True, align="center",
               color=self.brand.primary)
