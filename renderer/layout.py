"""Page areas, the boxes everything is drawn in, and the flow of the body onto pages.

The layout is correct by construction, in three steps:

1. **Areas.** Each page is a set of named, disjoint boxes (:class:`PageAreas`): reserved
   ones (on page 1 the head, the address window, the facts and the payment slip with
   its code's quiet zone; on every page the footer, and the header on the others) and
   one **body** frame that the flowing content fills. The areas are built from the
   brand's geometry and checked once per page: no two of them meet.
2. **Flow.** :func:`flow` stacks rows of known height top-down into the body frames,
   moving on to the next page when a row does not fit, so each row owns a slot: a box
   inside a body frame, apart from every other slot.
3. **Frames.** Everything is drawn through a :class:`Frame` bound to one box (a slot
   or a reserved area). Each text, rule, band, image and payment symbol works out its box
   first and is drawn only if it lies inside the frame and clear of the text and symbols
   already drawn there.

So nothing can leave its box, and boxes never meet. A bug that would make something
collide does not overprint: rendering stops with :class:`LayoutError`, naming the
invoice and the two boxes.

Coordinates given to a :class:`Frame` are *logical*: ``x`` offsets run from the start
edge of its box (left in left-to-right locales, right in ``fa_IR``), so one layout serves
both directions. Physical things (the envelope window) use physical positions.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from reportlab.lib.units import mm
from reportlab.pdfgen.canvas import Canvas

from invoicer.renderer import _reportlab, text
from invoicer.renderer.brand import Brand

# DIN 5008 form B window envelope (C5/6, DL): 20 mm from the left, 45 mm from the top,
# 85 x 45 mm. The address sits inside with a few millimetres of play on every side.
WINDOW_LEFT = 20 * mm
WINDOW_TOP = 45 * mm
WINDOW_WIDTH = 85 * mm
WINDOW_HEIGHT = 45 * mm
WINDOW_PADDING = 4 * mm

HEADER_HEIGHT = 16 * mm     # brand line on continuation pages (with the gap below)
FOOTER_HEIGHT = 10 * mm     # page x of y, invoice number (the legal line is below it)
GAP = 4 * mm                # between the body and a reserved area

EPSILON = 0.01  # points: rounding in box arithmetic, far below anything visible


@dataclass(frozen=True, slots=True)
class Box:
    """A rectangle in physical PDF points, ``y`` upwards from the foot of the page."""

    x0: float
    y0: float
    x1: float
    y1: float

    @property
    def width(self) -> float:
        return self.x1 - self.x0

    @property
    def height(self) -> float:
        return self.y1 - self.y0

    def inside(self, other: Box) -> bool:
        return (self.x0 >= other.x0 - EPSILON and self.x1 <= other.x1 + EPSILON
                and self.y0 >= other.y0 - EPSILON and self.y1 <= other.y1 + EPSILON)

    def overlaps(self, other: Box) -> bool:
        """True if the interiors meet (touching edges do not)."""
        return (self.x0 < other.x1 - EPSILON and other.x0 < self.x1 - EPSILON
                and self.y0 < other.y1 - EPSILON and other.y0 < self.y1 - EPSILON)

    def below(self, y: float) -> Box:
        """The part of this box under ``y``."""
        return Box(self.x0, self.y0, self.x1, min(self.y1, y))

    def __str__(self) -> str:
        return (f"[x {self.x0 / mm:.1f}–{self.x1 / mm:.1f} mm, "
                f"y {self.y0 / mm:.1f}–{self.y1 / mm:.1f} mm from the foot]")


class LayoutError(RuntimeError):
    """Something would leave its frame or cross another box: nothing is overprinted.

    ``invoice`` is the invoice number; ``what``/``box`` the thing being placed and
    ``other``/``other_box`` the frame it would leave or the box it would cross.
    """

    def __init__(self, invoice: str, what: str, box: Box, relation: str, other: str,
                 other_box: Box) -> None:
        self.invoice, self.what, self.box = invoice, what, box
        self.other, self.other_box = other, other_box
        super().__init__(f"invoice {invoice}: {what} {box} would {relation} {other} "
                         f"{other_box}")


@dataclass(frozen=True)
class PageAreas:
    """The areas of one page: the body frame and the reserved areas around it."""

    page: Box
    body: Box
    reserved: tuple[tuple[str, Box], ...]

    def check(self, invoice: str) -> None:
        """Every area inside the page and no two of them meeting, or :class:`LayoutError`."""
        named = [("body", self.body), *self.reserved]
        for i, (name, box) in enumerate(named):
            if not box.inside(self.page):
                raise LayoutError(invoice, name, box, "leave", "the page", self.page)
            for other, other_box in named[:i]:
                if box.overlaps(other_box):
                    raise LayoutError(invoice, name, box, "cross", other, other_box)

    def area(self, name: str) -> Box:
        return dict(self.reserved)[name]


def page_box(brand: Brand) -> Box:
    return Box(0, 0, brand.page_width, brand.page_height)


def content(brand: Brand, y0: float, y1: float) -> Box:
    """The full content width between two heights."""
    return Box(brand.margin_left, y0, brand.page_width - brand.margin_right, y1)


def header_box(brand: Brand) -> Box:
    top = brand.page_height - brand.margin_top
    return content(brand, top - HEADER_HEIGHT + GAP, top)


def footer_box(brand: Brand) -> Box:
    """Page x of y, the invoice number and the legal line: under a rule 5 mm above the
    bottom margin, and reaching into it. The body stops ``FOOTER_HEIGHT`` above the
    margin, which keeps the band a print shop's sheet mark uses (20 mm up, in the left
    margin) clear of the content's edge."""
    return content(brand, brand.margin_bottom - 8 * mm, brand.margin_bottom + 5.5 * mm)


def body_bottom(brand: Brand) -> float:
    return brand.margin_bottom + FOOTER_HEIGHT


def mark_box(brand: Brand) -> Box:
    """Above the content area: where the duplicate mark stands on every page."""
    top = brand.page_height - brand.margin_top
    return content(brand, top + 0.5 * mm, brand.page_height - 2 * mm)


# --- drawing inside a box ----------------------------------------------------------------


_PHYSICAL = {"start": "left", "end": "right", "center": "center"}
_PHYSICAL_RTL = {"start": "right", "end": "left", "center": "center"}


def _named(what: str, detail: str | None) -> str:
    return what if detail is None else f"{what} {detail[:40]!r}"


class Frame:
    """Drawing in logical coordinates inside one box, refusing to leave it or overprint.

    ``text`` and ``symbol`` boxes are remembered: a later one that would overlap them
    raises :class:`LayoutError`. Rules and bands are backgrounds: they only must stay
    inside the frame.
    """

    def __init__(self, canvas: Canvas, brand: Brand, rtl: bool, box: Box, name: str,
                 invoice: str) -> None:
        self.canvas = canvas
        self.brand = brand
        self.rtl = rtl
        self.box = box
        self.name = name
        self.invoice = invoice
        self.left = box.x0
        self.width = box.width
        self.top = box.y1
        self.bottom = box.y0
        # Boxes of the text and symbols drawn so far: (x0, y0, x1 - EPSILON,
        # y1 - EPSILON, what, detail, x1, y1); a Box and a name are made from an entry
        # only for an error.
        self._drawn: list[tuple[float, float, float, float, str, str | None, float,
                                float]] = []

    def sub(self, box: Box, name: str) -> Frame:
        """A frame for a part of this one (``box`` must lie inside it)."""
        self._place(name, box, occupy=False)
        return Frame(self.canvas, self.brand, self.rtl, box, name, self.invoice)

    def x(self, offset: float) -> float:
        """Physical x of a logical offset from the start edge of the box."""
        return self.left + self.width - offset if self.rtl else self.left + offset

    def span(self, offset: float, width: float) -> float:
        """Physical left x of a logical span ``[offset, offset + width]``."""
        return self.left + self.width - offset - width if self.rtl else self.left + offset

    # -- checks --------------------------------------------------------------------------

    def _place(self, what: str, box: Box, occupy: bool = True,
               detail: str | None = None) -> None:
        # ``detail`` (the text drawn) joins ``what`` only in an error: formatting a name
        # for each of a page's labels cost more than checking them.
        if occupy:
            self._occupy(what, detail, box.x0, box.y0, box.x1, box.y1)
            return
        frame = self.box
        if not (box.x0 >= frame.x0 - EPSILON and box.x1 <= frame.x1 + EPSILON
                and box.y0 >= frame.y0 - EPSILON and box.y1 <= frame.y1 + EPSILON):
            raise LayoutError(self.invoice, _named(what, detail), box, "leave", self.name,
                              frame)

    def _occupy(self, what: str, detail: str | None, x0: float, y0: float, x1: float,
                y1: float) -> None:
        """:meth:`_place` of a box that others must not cross, given by its edges (a
        text's box is made only if an error names it)."""
        frame = self.box
        if not (x0 >= frame.x0 - EPSILON and x1 <= frame.x1 + EPSILON
                and y0 >= frame.y0 - EPSILON and y1 <= frame.y1 + EPSILON):
            raise LayoutError(self.invoice, _named(what, detail), Box(x0, y0, x1, y1),
                              "leave", self.name, frame)
        # Box.overlaps, with each drawn box's far edges less EPSILON kept beside it
        x1e, y1e = x1 - EPSILON, y1 - EPSILON
        for ox0, oy0, ox1, oy1, other, other_detail, bx1, by1 in self._drawn:
            if x0 < ox1 and ox0 < x1e and y0 < oy1 and oy0 < y1e:
                raise LayoutError(self.invoice, _named(what, detail), Box(x0, y0, x1, y1),
                                  "cross", _named(other, other_detail),
                                  Box(ox0, oy0, bx1, by1))
        self._drawn.append((x0, y0, x1e, y1e, what, detail, x1, y1))

    def room(self, offset: float, align: str) -> float:
        """Width available from a logical offset to the box's edge, per alignment."""
        if align == "start":
            return self.width - offset
        if align == "end":
            return offset
        return 2 * min(offset, self.width - offset)

    # -- drawing -------------------------------------------------------------------------

    def text(self, offset: float, y: float, value: str, size: float, *, bold: bool = False,
             align: str = "start", max_width: float | None = None, color=None,
             mono: bool = False) -> float:
        """Draw one line at a logical offset with its baseline at ``y``.

        ``align`` is start, end or center: ``start`` text hangs from ``offset`` towards
        the end edge, ``end`` text ends at ``offset``. With ``max_width`` the text is cut
        with "…" to fit (record text); without, text that does not fit is a
        :class:`LayoutError` (amounts and dates are never cut).
        """
        if not value:
            return 0.0
        # room(offset, align), the alignment's physical side and x(offset), inlined:
        # a page places a few hundred texts
        width = self.width
        if align == "start":
            limit = width - offset
        elif align == "end":
            limit = offset
        else:
            limit = 2 * min(offset, width - offset)
        if max_width is not None:
            limit = min(max_width, limit)
        rtl = self.rtl
        shown = value
        w, ascent, descent = text.metrics(value, size, bold, mono, rtl)
        if w > limit + EPSILON and max_width is not None:
            shown = text.ellipsize(value, limit, size, bold=bold, mono=mono, rtl=rtl)
            if not shown:
                return 0.0
            w, ascent, descent = text.metrics(shown, size, bold, mono, rtl)
        if rtl:
            x = self.left + width - offset
            physical = _PHYSICAL_RTL[align]
        else:
            x = self.left + offset
            physical = _PHYSICAL[align]
        x0 = x - w if physical == "right" else x - w / 2 if physical == "center" else x
        self._occupy("text", shown, x0, y - descent, x0 + w, y + ascent)
        # what text.draw(x, align=physical) does, with the width and left edge known
        if color is None:
            text.draw_at(self.canvas, x0, y, shown, size, bold=bold, mono=mono, rtl=rtl)
        else:
            _reportlab.append_in_color(
                self.canvas, color, text.placed(self.canvas, x0, y, shown, size, bold, mono,
                                                rtl), self.brand.text)
        return w

    def rule(self, y: float, offset: float = 0, width: float | None = None,
             color=None, thickness: float = 0.5) -> None:
        width = self.width - offset if width is None else width
        x = self.span(offset, width)
        self._place("rule", Box(x, y - thickness / 2, x + width, y + thickness / 2),
                    occupy=False)
        self.canvas.setStrokeColor(color or self.brand.muted)
        self.canvas.setLineWidth(thickness)
        self.canvas.line(x, y, x + width, y)

    def band(self, y: float, height: float, color, offset: float = 0,
             width: float | None = None, radius: float = 0) -> None:
        """A filled rectangle from ``y`` (bottom) up ``height``: a background."""
        width = self.width - offset if width is None else width
        x = self.span(offset, width)
        self._place("band", Box(x, y, x + width, y + height), occupy=False)
        _reportlab.fill_color(self.canvas, color)
        if radius:
            self.canvas.roundRect(x, y, width, height, radius, stroke=0, fill=1)
        else:
            self.canvas.rect(x, y, width, height, stroke=0, fill=1)
        _reportlab.fill_color(self.canvas, self.brand.text)

    def outline(self, y: float, height: float, color, offset: float = 0,
                width: float | None = None, thickness: float = 1) -> None:
        """A stroked rectangle from ``y`` (bottom) up ``height``; the stroke stays inside."""
        width = self.width - offset if width is None else width
        x = self.span(offset, width)
        half = thickness / 2
        self._place("outline", Box(x - half, y - half, x + width + half, y + height + half),
                    occupy=False)
        self.canvas.saveState()
        self.canvas.setStrokeColor(color)
        self.canvas.setLineWidth(thickness)
        self.canvas.rect(x, y, width, height, stroke=1, fill=0)
        self.canvas.restoreState()

    def symbol(self, what: str, symbol, offset: float, y: float) -> Box:
        """Draw a payment symbol (quiet zones included) with its bottom at ``y``."""
        w, h = symbol.size
        x = self.span(offset, w)
        box = Box(x, y, x + w, y + h)
        self._place(what, box)
        symbol.draw(self.canvas, x, y)
        return box

    def image(self, path: str, offset: float, y: float, width: float, height: float) -> None:
        x = self.span(offset, width)
        self._place("logo", Box(x, y, x + width, y + height))
        _reportlab.draw_image(self.canvas, path, x, y, width, height,
                              anchor="se" if self.rtl else "sw")


# --- rows and the flow ------------------------------------------------------------------


@dataclass
class Row:
    """A piece of the body with a known height, drawn into its slot.

    ``keep_with_next``: a heading that moves to the next page with the row after it.
    ``continued``: rows repeated above this one when it opens a new page (a table's
    title "(continued)" and its column header). ``page_one``: must be on page 1.
    """

    height: float
    draw: Callable[[Frame], None]
    keep_with_next: bool = False
    continued: Sequence[Row] = ()
    page_one: bool = False
    name: str = "row"


@dataclass
class PagePlan:
    """What goes on one page: its areas, body rows with their slots, an annex slice."""

    areas: PageAreas
    rows: list[tuple[Row, Box]] = field(default_factory=list)
    annex: object | None = None
    annex_box: Box | None = None

    def free(self) -> Box:
        """The part of the body below the last row."""
        if not self.rows:
            return self.areas.body
        return self.areas.body.below(self.rows[-1][1].y0)


def flow(rows: Sequence[Row], first: PageAreas, next_page: PageAreas,
         invoice: str) -> list[PagePlan]:
    """Place rows top-down in the body frames of page 1, then of continuation pages.

    A row that does not fit opens a new page; a heading marked ``keep_with_next`` goes
    along with it, else the row's ``continued`` rows are repeated above it. A row taller
    than a whole body frame, or a ``page_one`` row that lands elsewhere, is a
    :class:`LayoutError`.
    """
    pages = [PagePlan(first)]
    y = first.body.y1

    def put(row: Row) -> None:
        nonlocal y
        body = pages[-1].areas.body
        slot = Box(body.x0, y - row.height, body.x1, y)
        if not slot.inside(body):
            raise LayoutError(invoice, row.name, slot, "leave", "the body frame", body)
        if row.page_one and len(pages) > 1:
            raise LayoutError(invoice, row.name, slot, "leave", "page 1's body",
                              first.body)
        pages[-1].rows.append((row, slot))
        y -= row.height

    for row in rows:
        if y - row.height < pages[-1].areas.body.y0 - EPSILON and pages[-1].rows:
            carried: list[Row] = []
            while pages[-1].rows and pages[-1].rows[-1][0].keep_with_next:
                carried.insert(0, pages[-1].rows.pop()[0])
            pages.append(PagePlan(next_page))
            y = next_page.body.y1
            for c in carried or row.continued:
                put(c)
        put(row)
    return pages
