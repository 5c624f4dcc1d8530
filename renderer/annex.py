"""The call-details annex: every CDR, grouped per service then per usage type,
chronological, with subtotals; on every page the group's title (marked "(continued)"
where a page starts mid-group) and the column header.

This is where the time goes on heavy invoices (a record may hold 100,000 CDRs), so it
is not a Platypus table. Row heights are known before drawing (the line box of the
locale's digits and dates, taller only for a row whose destination needs a taller font),
pages are planned arithmetically from their running sums (so "page X of Y" needs no
second pass), and each row is written straight into the page's content stream. Every
distinct string is encoded for the PDF once per document and reused.

Nothing is left to chance for speed: the plan puts each page's segments inside the
frame it is given (checked once per page), and every cell is checked against its
column's width (a comparison with the width already known from the encoding): a
destination is cut with "…" to its column, a date, time, quantity or amount that does
not fit is a :class:`~renderer.layout.LayoutError`.
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass
from decimal import Decimal
from itertools import accumulate
from operator import attrgetter

from reportlab.lib.units import mm
from reportlab.pdfgen.canvas import Canvas

from invoicer.billing.models import BillingRecord, Service, Usage, UsageType
from invoicer.renderer import _reportlab, fonts, text
from invoicer.renderer.context import Context
from invoicer.renderer.layout import EPSILON, Box, Frame, LayoutError
from invoicer.renderer.rows import metrics

SIZE = 7.0
ROW_PAD = 0.26     # points above and below a row's line box (3.55 mm rows in Latin)
CACHE_LIMIT = 4096  # distinct strings kept encoded per document

# Logical columns: (start, width) as shares of the content width; the last three are
# end-aligned at start + width.
COLUMNS = ((0.0, 0.13), (0.14, 0.09), (0.24, 0.20), (0.45, 0.27), (0.73, 0.13),
           (0.87, 0.13))
END_ALIGNED = (False, False, False, False, True, True)
HEADERS = ("col_date", "col_time", "col_number", "col_destination", "col_quantity",
           "col_cost")


@dataclass(frozen=True)
class Group:
    service: Service
    kind: UsageType
    rows: list[Usage]
    total: Decimal
    #: running sums of row heights (``len(rows) + 1`` values), None when all rows have
    #: the same height ``pitch``
    sums: list[float] | None
    pitch: float

    def span(self, start: int, end: int) -> float:
        """Height of rows ``[start, end)``."""
        if self.sums is None:
            return (end - start) * self.pitch
        return self.sums[end] - self.sums[start]

    def fit(self, start: int, room: float) -> int:
        """The largest ``end`` such that rows ``[start, end)`` fit in ``room``."""
        if self.sums is None:
            return min(len(self.rows), start + int((room + EPSILON) // self.pitch))
        return max(start, bisect_right(self.sums, self.sums[start] + room + EPSILON) - 1)


@dataclass(frozen=True)
class Segment:
    """Rows ``[start, end)`` of group ``group`` on one page: always under the group's
    title (``continued`` when the group began on an earlier page) and the column
    header; ``subtotal`` when the group ends here."""

    group: int
    start: int
    end: int
    continued: bool
    subtotal: bool


@dataclass(frozen=True)
class AnnexPage:
    title: bool
    segments: tuple[Segment, ...]


@dataclass(frozen=True)
class Heights:
    """Heights in points of the annex's fixed parts."""

    title: float
    group: float
    header: float
    subtotal: float

    @property
    def lead(self) -> float:
        """What stands above a segment's rows."""
        return self.group + self.header


def plan(groups: list[Group], h: Heights, first_room: float | None, page_room: float,
         invoice: str = "") -> tuple[bool, list[AnnexPage]]:
    """Split the groups into pages; returns whether the first page is shared.

    ``first_room`` is the height left where the body ends; the annex starts there when
    its title, the first group's title and header and its first row fit (with the
    subtotal too if that group has one row), else on a fresh page of ``page_room``.
    A group's last row never leaves its subtotal alone on the next page.
    """
    def opening(g: Group) -> float:
        return h.lead + g.span(0, 1) + (h.subtotal if len(g.rows) == 1 else 0)

    shared = first_room is not None and first_room >= h.title + opening(groups[0]) - EPSILON
    room = (first_room if shared else page_room) - h.title
    pages: list[AnnexPage] = []
    segments: list[Segment] = []
    fresh = not shared

    def new_page() -> None:
        nonlocal segments, room, fresh
        pages.append(AnnexPage(not pages, tuple(segments)))
        segments, room, fresh = [], page_room, True

    for gi, g in enumerate(groups):
        start, continued, n = 0, False, len(g.rows)
        while True:
            avail = room - h.lead
            end = g.fit(start, avail) if avail > 0 else start
            if end == n and g.span(start, n) + h.subtotal <= avail + EPSILON:
                segments.append(Segment(gi, start, n, continued, True))
                room -= h.lead + g.span(start, n) + h.subtotal
                fresh = False
                break
            if end == n:
                end = n - 1  # the last row goes over with the subtotal
            if end <= start:
                if fresh and not segments:
                    raise LayoutError(invoice, "a call-details row with its headings",
                                      Box(0, 0, 0, h.lead + g.span(start, start + 1)
                                          + h.subtotal), "leave", "a whole page",
                                      Box(0, 0, 0, page_room))
                new_page()
                continue
            segments.append(Segment(gi, start, end, continued, False))
            new_page()
            start, continued = end, True
    if segments:
        pages.append(AnnexPage(not pages, tuple(segments)))
    return shared, pages


def page_height(page: AnnexPage, groups: list[Group], h: Heights) -> float:
    """Height a planned page takes."""
    total = h.title if page.title else 0.0
    for s in page.segments:
        total += h.lead + groups[s.group].span(s.start, s.end)
        total += h.subtotal if s.subtotal else 0.0
    return total


class RowWriter:
    """Writes text cells straight into the canvas content stream, cached per string."""

    def __init__(self, canvas: Canvas, rtl: bool, invoice: str) -> None:
        self.canvas = canvas
        self.rtl = rtl
        self.invoice = invoice
        self.doc = _reportlab.document(canvas)
        self.font_name = "Sans"
        self.font = fonts.font(self.font_name)
        self._ops: dict[str, tuple[str, float]] = {}
        self._fit: dict[tuple[str, float], str] = {}
        self._prefix: str | None = None

    def _ascii_prefix(self) -> str | None:
        self._prefix = _reportlab.ascii_prefix(self.font, SIZE, self.doc)
        return self._prefix

    def encoded(self, value: str) -> tuple[str, float] | None:
        """PDF operators and width for ``value``, or None if it needs shaping/bidi."""
        hit = self._ops.get(value)
        if hit is None:
            if value.isascii() and value.isprintable():
                # Most unique cells (times, called numbers): printable ASCII is its own
                # encoding in the font's first subset (see _reportlab.ascii_prefix).
                prefix = self._prefix or self._ascii_prefix()
                ops = (f"{prefix}{_reportlab.escape_pdf(value)}) Tj" if prefix else
                       _reportlab.show_text(self.font, value, SIZE, self.doc))
                hit = (ops, self.font.stringWidth(value, SIZE))
            elif not text.is_plain(value):
                hit = ("", -1.0)
            else:
                hit = (_reportlab.show_text(self.font, value, SIZE, self.doc),
                       self.font.stringWidth(value, SIZE))
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
            hit = text.ellipsize(value, width, SIZE, rtl=self.rtl)
            if len(self._fit) >= CACHE_LIMIT:
                self._fit.clear()
            self._fit[key] = hit
        return hit

    def row(self, y: float, cells: list[tuple[float, str, bool, float]]) -> None:
        """Cells are (physical anchor x, text, right-aligned, column width); ``y`` is the
        baseline. Text wider than its column is a :class:`LayoutError` (cut record text
        with :meth:`fit` first)."""
        out = ["BT"]
        slow = []
        known = self._ops
        for x, value, right, limit in cells:
            if not value:
                continue
            ops, w = known.get(value) or self.encoded(value) or ("", -1.0)
            if w < 0:
                slow.append((x, value, right, limit))
                continue
            if w > limit + EPSILON:
                self._too_wide(x, y, value, w, right, limit)
            out.append(f"1 0 0 1 {x - w if right else x:.2f} {y:.2f} Tm {ops}")
        out.append("ET")
        if len(out) > 2:
            _reportlab.append(self.canvas, " ".join(out))
        for x, value, right, limit in slow:
            w = text.width(value, SIZE, rtl=self.rtl)
            if w > limit + EPSILON:
                self._too_wide(x, y, value, w, right, limit)
            text.draw(self.canvas, x, y, value, SIZE, align="right" if right else "left",
                      rtl=self.rtl)

    def _too_wide(self, x: float, y: float, value: str, w: float, right: bool,
                  limit: float) -> None:
        x0 = x - w if right else x
        c0 = x - limit if right else x
        raise LayoutError(self.invoice, f"call-details cell {value!r}",
                          Box(x0, y, x0 + w, y + SIZE), "leave", "its column",
                          Box(c0, y, c0 + limit, y + SIZE))


class Annex:
    """Lays out and draws the call-details pages of one invoice."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.fmt = ctx.fmt
        self._dates: dict[tuple[int, int, int], str] = {}
        # Per-document caches of the strings rows repeat: plain dicts are cheaper than
        # the formatters' own caches, which hash the locale on every call.
        self._amounts: dict[Decimal, str] = {}
        self._durations: dict[int, str] = {}
        self._latin = self.fmt.numbering == "latn"
        w = ctx.brand.content_width
        self.widths = [width * w for _, width in COLUMNS]
        # The line box every row has: the locale's dates, times and digits, and Latin.
        sample_day = ctx.record.invoice.period.start
        samples = [ctx.date(sample_day), self.fmt.duration(3599), ctx.amount(Decimal(0)),
                   self._volume(1536), "+0123456789 Ag"]
        self.ascent, self.descent = metrics(ctx, samples, SIZE)
        self.pitch = self.ascent + self.descent + 2 * ROW_PAD
        self._tall: dict[str, tuple[float, float]] = {}
        self.groups = self._groups(ctx.record)
        self.heights = self._heights()

    # -- planning ----------------------------------------------------------------------

    def _extent(self, destination: str) -> tuple[float, float]:
        """Ascent and descent of a row with this destination (cached; most are plain)."""
        hit = self._tall.get(destination)
        if hit is None:
            a, d = text.extent(destination, SIZE, rtl=self.ctx.rtl)
            hit = self._tall[destination] = (max(a, self.ascent), max(d, self.descent))
        return hit

    def _groups(self, record: BillingRecord) -> list[Group]:
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
                # Heights per distinct destination: they repeat, and most rows are plain.
                tall = {d: sum(self._extent(d)) + 2 * ROW_PAD
                        for d in {u.destination for u in rows}}
                sums = None
                if max(tall.values()) > self.pitch + EPSILON:
                    sums = [0.0, *accumulate(tall[u.destination] for u in rows)]
                out.append(Group(service, kind, rows, sum((u.amount for u in rows),
                                                          Decimal(0)), sums, self.pitch))
        return out

    def _heights(self) -> Heights:
        ctx = self.ctx
        t_asc, t_desc = metrics(ctx, [ctx.label("call_details")], 12, True)
        titles = [self._group_title(g, c) for g in self.groups for c in (False, True)]
        g_asc, g_desc = metrics(ctx, titles, 8.5, True)
        h_asc, h_desc = metrics(ctx, [ctx.label(k) for k in HEADERS], SIZE, True)
        s_asc, s_desc = metrics(ctx, [self._subtotal_label(g) for g in self.groups]
                                + [ctx.amount(g.total) for g in self.groups], SIZE, True)
        self._title_metrics = (t_asc, t_desc)
        self._group_metrics = (g_asc, g_desc)
        self._header_metrics = (h_asc, h_desc)
        self._subtotal_metrics = (s_asc, s_desc)
        return Heights(title=3 * mm + t_asc + t_desc + 1 * mm,
                       group=2 * mm + g_asc + g_desc + 0.8 * mm,
                       header=h_asc + h_desc + 2 * ROW_PAD + 0.6,
                       subtotal=1 + s_asc + s_desc + 2 * ROW_PAD + 1.5 * mm)

    def pages(self, first: Box | None, page: Box) -> tuple[bool, list[AnnexPage]]:
        """The annex pages; the first shares the box ``first`` (what the body left on
        its last page) when it fits there."""
        if not self.groups:
            return False, []
        return plan(self.groups, self.heights, first.height if first else None,
                    page.height, self.ctx.invoice)

    # -- drawing -----------------------------------------------------------------------

    def _group_title(self, g: Group, continued: bool) -> str:
        title = f"{g.service.label} · {g.service.id} — {self.ctx.loc.usage_type(g.kind)}"
        return self.ctx.label("continued", title=title) if continued else title

    def _subtotal_label(self, g: Group) -> str:
        return f"{self.ctx.label('subtotal')} — {self.ctx.loc.usage_type(g.kind)}"

    def columns(self, f: Frame) -> list[tuple[float, bool, float]]:
        """Physical anchor, right-aligned and width of each column."""
        out = []
        for (start, width), end_aligned in zip(COLUMNS, END_ALIGNED, strict=True):
            offset = (start + width) * f.width if end_aligned else start * f.width
            out.append((f.x(offset), end_aligned != f.rtl, width * f.width))
        return out

    def draw_page(self, f: Frame, page: AnnexPage, writer: RowWriter) -> None:
        ctx, b, h = self.ctx, f.brand, self.heights
        needed = page_height(page, self.groups, h)
        if needed > f.box.height + EPSILON:
            raise LayoutError(ctx.invoice, "call-details page",
                              Box(f.box.x0, f.top - needed, f.box.x1, f.top), "leave",
                              f.name, f.box)
        y = f.top
        if page.title:
            t_asc, _ = self._title_metrics
            f.text(0, y - 3 * mm - t_asc, ctx.label("call_details"), 12, bold=True,
                   color=b.primary, max_width=f.width)
            y -= h.title
        cols = self.columns(f)
        (x0, r0, w0), (x1, r1, w1), (x2, r2, w2), (x3, r3, w3), (x4, r4, w4), (x5, r5, w5) = cols
        g_asc, _ = self._group_metrics
        row = writer.row
        for seg in page.segments:
            g = self.groups[seg.group]
            base = y - 2 * mm - g_asc
            count = f.text(f.width, base, ctx.label("records", count=ctx.count(len(g.rows))),
                           SIZE, align="end", color=b.muted)
            f.text(0, base, self._group_title(g, seg.continued), 8.5, bold=True,
                   color=b.primary, max_width=f.width - count - 4 * mm)
            y -= h.group
            self._header(f, y, cols)
            y -= h.header
            data = g.kind is UsageType.data
            uniform = g.sums is None
            ascent, height = self.ascent, self.pitch
            for u in g.rows[seg.start:seg.end]:
                if not uniform:
                    ascent, descent = self._extent(u.destination)
                    height = ascent + descent + 2 * ROW_PAD
                day, clock_ = self._clock(u)
                if data:
                    quantity = self._volume(u.volume_kb)
                elif u.duration_s is None:
                    quantity = ""
                else:
                    quantity = self._durations.get(u.duration_s)
                    if quantity is None:
                        quantity = self._durations[u.duration_s] = self.fmt.duration(
                            u.duration_s)
                cost = self._amounts.get(u.amount)
                if cost is None:
                    cost = self._amounts[u.amount] = ctx.amount(u.amount)
                row(y - ROW_PAD - ascent, [
                    (x0, day, r0, w0), (x1, clock_, r1, w1), (x2, u.called or "", r2, w2),
                    (x3, writer.fit(u.destination, w3), r3, w3), (x4, quantity, r4, w4),
                    (x5, cost, r5, w5)])
                y -= height
            if seg.subtotal:
                s_asc, _ = self._subtotal_metrics
                f.rule(y - 0.5, offset=0.45 * f.width, width=0.55 * f.width, thickness=0.3)
                base = y - 1 - ROW_PAD - s_asc
                amount = f.text(f.width, base, ctx.amount(g.total), SIZE, bold=True,
                                align="end")
                f.text(0.45 * f.width, base, self._subtotal_label(g), SIZE, bold=True,
                       max_width=0.55 * f.width - amount - 3 * mm)
                y -= h.subtotal

    def _header(self, f: Frame, y: float, cols) -> None:
        h_asc, _ = self._header_metrics
        f.band(y - self.heights.header + 0.3, self.heights.header - 0.3, f.brand.accent)
        for (start, width), end_aligned, name in zip(COLUMNS, END_ALIGNED, HEADERS,
                                                     strict=True):
            offset = (start + width) * f.width if end_aligned else start * f.width
            f.text(offset, y - ROW_PAD - h_asc, self.ctx.label(name), SIZE, bold=True,
                   align="end" if end_aligned else "start", max_width=width * f.width,
                   color=f.brand.muted)

    def _clock(self, u: Usage) -> tuple[str, str]:
        s = u.start
        key = (s.year, s.month, s.day)
        day = self._dates.get(key)
        if day is None:
            day = self._dates[key] = self.ctx.date(s.date())
        clock = f"{s.hour:02d}:{s.minute:02d}:{s.second:02d}"
        return day, (clock if self._latin else self.fmt.digits(clock))

    def _volume(self, kb: int | None) -> str:
        if kb is None:
            return ""
        label = self.ctx.label
        if kb >= 1024 * 1024:
            return label("volume_gb", value=self.fmt.decimal(round(Decimal(kb) / 1048576, 2)))
        if kb >= 1024:
            return label("volume_mb", value=self.fmt.decimal(round(Decimal(kb) / 1024, 1)))
        return label("volume_kb", value=self.fmt.integer(kb))
