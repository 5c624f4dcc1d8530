"""The call-details annex: every CDR, grouped per service then per usage type,
chronological, with subtotals; column headers repeat on every page.

This is where the time goes on heavy invoices (a record may hold 100,000 CDRs), so it
is not a Platypus table: rows have a fixed pitch, pages are planned arithmetically
(the page count is known before drawing, so "page X of Y" needs no second pass), and
each row is written straight into the page's content stream. Every distinct string is
encoded for the PDF once per document and reused; dates, times, destinations and
amounts repeat a lot.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from operator import attrgetter

from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfgen.canvas import Canvas

from invoicer.billing.models import BillingRecord, Service, Usage, UsageType
from invoicer.renderer import text
from invoicer.renderer.i18n import InvoiceLocale, duration
from invoicer.renderer.layout import Frame

SIZE = 7.0
PITCH = 3.55 * mm
GROUP_SLOTS = 3       # group title + column header (+ a little air)
SUBTOTAL_SLOTS = 2
TITLE_SLOTS = 3
CACHE_LIMIT = 4096    # distinct strings kept encoded per document



@dataclass(frozen=True)
class Group:
    service: Service
    kind: UsageType
    rows: list[Usage]
    total: Decimal


@dataclass(frozen=True)
class Segment:
    """Rows ``[start, end)`` of group ``group`` on one page, with what surrounds them."""

    group: int
    start: int
    end: int
    head: bool
    subtotal: bool


@dataclass(frozen=True)
class AnnexPage:
    title: bool
    segments: tuple[Segment, ...]


def groups(record: BillingRecord) -> list[Group]:
    """CDRs per service, then per usage type in the contract's order, chronological."""
    out = []
    order = list(UsageType)
    for service in record.services:
        if not service.usage:
            continue
        by_kind: dict[UsageType, list[Usage]] = {}
        for u in service.usage:
            by_kind.setdefault(u.type, []).append(u)
        for kind in sorted(by_kind, key=order.index):
            rows = sorted(by_kind[kind], key=attrgetter("start"))
            out.append(Group(service, kind, rows, sum((u.amount for u in rows), Decimal(0))))
    return out


def plan(groups: list[Group], slots_per_page: int,
         first_slots: int | None = None) -> list[AnnexPage]:
    """Split groups into pages of ``slots_per_page`` row slots.

    ``first_slots`` is the room left on the page where the front matter ends: the
    annex starts there when its title, a group heading and a few rows fit. A group
    heading never ends a page alone (it takes at least one row along), and a subtotal
    may stand at the top of the next page when the last row filled the page.
    """
    pages: list[AnnexPage] = []
    segments: list[Segment] = []
    first = slots_per_page if first_slots is None else first_slots
    if first < TITLE_SLOTS + 1 + GROUP_SLOTS + 3:
        pages.append(AnnexPage(False, ()))  # marker: the annex starts on a fresh page
        first = slots_per_page
    free = first - TITLE_SLOTS - 1  # annex title + column header
    title = True

    def new_page() -> None:
        nonlocal segments, free, title
        pages.append(AnnexPage(title, tuple(segments)))
        segments, title = [], False
        free = slots_per_page - 1  # column header on every page

    for gi, g in enumerate(groups):
        start, head = 0, True
        while True:
            need_head = GROUP_SLOTS if head else 0
            if free < need_head + 1:
                new_page()
                continue
            room = free - need_head
            take = min(room, len(g.rows) - start)
            end = start + take
            done = end == len(g.rows)
            sub = done and free - need_head - take >= SUBTOTAL_SLOTS
            segments.append(Segment(gi, start, end, head, sub))
            free -= need_head + take + (SUBTOTAL_SLOTS if sub else 0)
            if done and not sub:
                new_page()
                segments.append(Segment(gi, end, end, False, True))
                free -= SUBTOTAL_SLOTS
            if done:
                break
            new_page()
            start, head = end, False
    if segments:
        pages.append(AnnexPage(title, tuple(segments)))
    return pages


class RowWriter:
    """Writes text cells straight into the canvas content stream, cached per string."""

    def __init__(self, canvas: Canvas, rtl: bool) -> None:
        self.canvas = canvas
        self.rtl = rtl
        self.doc = canvas._doc
        self.font_name = "Sans"
        self.font = pdfmetrics.getFont(self.font_name)
        self._ops: dict[str, tuple[str, float]] = {}
        self._fit: dict[tuple[str, float], str] = {}

    def encoded(self, value: str) -> tuple[str, float] | None:
        """PDF operators and width for ``value``, or None if it needs shaping/bidi."""
        hit = self._ops.get(value)
        if hit is None:
            if not text.is_plain(value):
                hit = ("", -1.0)
            else:
                parts = []
                for subset, chunk in self.font.splitString(value, self.doc):
                    name = self.font.getSubsetInternalName(subset, self.doc)
                    parts.append(f"{name} {SIZE:g} Tf ({self.canvas._escape(chunk)}) Tj")
                hit = (" ".join(parts), pdfmetrics.stringWidth(value, self.font_name, SIZE))
            if len(self._ops) >= CACHE_LIMIT:
                # Called numbers and times are mostly unique: a bounded cache keeps the
                # repeats (dates, destinations, amounts) without growing with the CDRs.
                self._ops.clear()
            self._ops[value] = hit
        return None if hit[1] < 0 else hit

    def fit(self, value: str, width: float) -> str:
        """``value`` cut with an ellipsis to ``width`` (cached: destinations repeat)."""
        key = (value, width)
        hit = self._fit.get(key)
        if hit is None:
            hit = text.ellipsize(value, width, SIZE)
            if len(self._fit) >= CACHE_LIMIT:
                self._fit.clear()
            self._fit[key] = hit
        return hit

    def row(self, y: float, cells: list[tuple[float, str, bool]]) -> None:
        """Cells are (physical anchor x, text, right-aligned)."""
        out = ["BT"]
        slow = []
        for x, value, right in cells:
            if not value:
                continue
            enc = self.encoded(value)
            if enc is None:
                slow.append((x, value, right))
                continue
            ops, w = enc
            out.append(f"1 0 0 1 {x - w if right else x:.2f} {y:.2f} Tm {ops}")
        out.append("ET")
        if len(out) > 2:
            self.canvas._code.append(" ".join(out))
        for x, value, right in slow:
            text.draw(self.canvas, x, y, value, SIZE, align="right" if right else "left",
                      rtl=self.rtl)


class Annex:
    """Lays out and draws the call-details pages of one invoice."""

    def __init__(self, record: BillingRecord, loc: InvoiceLocale, label, number) -> None:
        self.record = record
        self.loc = loc
        self.label = label
        self.number = number  # amount formatter without currency
        self.groups = groups(record)
        self._dates: dict[tuple[int, int, int], str] = {}

    def pages(self, top: float, bottom: float, first_top: float) -> list[AnnexPage]:
        """Annex pages; the first one shares the last front-matter page (which ends at
        ``first_top``) when an empty :class:`AnnexPage` does not lead the list."""
        if not self.groups:
            return []
        return plan(self.groups, int((top - bottom) // PITCH),
                    int((first_top - 4 * mm - bottom) // PITCH))

    def columns(self, f: Frame) -> list[tuple[float, bool]]:
        """Physical anchors of the six columns and whether each is right-aligned."""
        w = f.width
        logical = [(0, False), (0.14 * w, False), (0.24 * w, False), (0.45 * w, False),
                   (0.86 * w, True), (w, True)]
        out = []
        for offset, end_aligned in logical:
            x = f.x(offset)
            out.append((x, end_aligned != f.rtl))
        return out

    def draw_page(self, f: Frame, page: AnnexPage, top: float, writer: RowWriter) -> None:
        b = f.brand
        y = top
        if page.title:
            f.text(0, y - 6 * mm, self.label("call_details"), 12, bold=True,
                   color=b.primary)
            y -= TITLE_SLOTS * PITCH
        cols = self.columns(f)
        dest_width = 0.40 * f.width
        first = True
        for seg in page.segments:
            g = self.groups[seg.group]
            if seg.head:
                f.text(0, y - PITCH * 1.4,
                       f"{g.service.label} · {g.service.id} — {self.loc.usage_type(g.kind)}",
                       8.5, bold=True, color=b.primary, max_width=f.width * 0.8)
                f.text(f.width, y - PITCH * 1.4,
                       self.label("records", count=str(len(g.rows))), SIZE, align="end",
                       color=b.muted)
                y -= (GROUP_SLOTS - 1) * PITCH
            if seg.head or first:
                self._header(f, y, cols)
                y -= PITCH
            first = False
            data = g.kind is UsageType.data
            for u in g.rows[seg.start:seg.end]:
                y -= PITCH
                day, clock_ = self._clock(u)
                quantity = (self._volume(u.volume_kb) if data else
                            duration(u.duration_s) if u.duration_s is not None else "")
                dest = writer.fit(u.destination, dest_width)
                writer.row(y + 1.2 * mm, [
                    (cols[0][0], day, cols[0][1]), (cols[1][0], clock_, cols[1][1]),
                    (cols[2][0], u.called or "", cols[2][1]), (cols[3][0], dest, cols[3][1]),
                    (cols[4][0], quantity, cols[4][1]),
                    (cols[5][0], self.number(u.amount), cols[5][1]),
                ])
            if seg.subtotal:
                y -= PITCH
                # Between the last row's descenders and this line's ascenders.
                f.rule(y + PITCH + 0.3 * mm, offset=0.45 * f.width, width=0.55 * f.width,
                       thickness=0.3)
                f.text(0.45 * f.width, y + 1.2 * mm,
                       f"{self.label('subtotal')} — {self.loc.usage_type(g.kind)}", SIZE,
                       bold=True, max_width=0.35 * f.width)
                f.text(f.width, y + 1.2 * mm, self.number(g.total), SIZE, bold=True,
                       align="end")
                y -= (SUBTOTAL_SLOTS - 1) * PITCH

    def _header(self, f: Frame, y: float, cols) -> None:
        names = ["col_date", "col_time", "col_number", "col_destination", "col_quantity",
                 "col_cost"]
        f.band(y - PITCH + 0.3 * mm, PITCH, f.brand.accent)
        c = f.canvas
        c.setFillColor(f.brand.muted)
        for (x, right), name in zip(cols, names, strict=True):
            text.draw(c, x, y - PITCH + 1.2 * mm, self.label(name), SIZE, bold=True,
                      align="right" if right else "left", rtl=f.rtl)
        c.setFillColor(f.brand.text)

    def _clock(self, u: Usage) -> tuple[str, str]:
        s = u.start
        key = (s.year, s.month, s.day)
        day = self._dates.get(key)
        if day is None:
            day = self._dates[key] = self.loc.date(s.date())
        return day, f"{s.hour:02d}:{s.minute:02d}:{s.second:02d}"

    def _volume(self, kb: int | None) -> str:
        if kb is None:
            return ""
        if kb >= 1024 * 1024:
            return f"{self.loc.decimal(round(Decimal(kb) / (1024 * 1024), 2))} GB"
        if kb >= 1024:
            return f"{self.loc.decimal(round(Decimal(kb) / 1024, 1))} MB"
        return f"{kb} KB"

