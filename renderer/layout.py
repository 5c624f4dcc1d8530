"""Page geometry and the flow of front-matter rows onto pages.

Coordinates given to :class:`Frame` are *logical*: ``x`` runs from the start edge of
the content area (left in left-to-right locales, right in ``fa_IR``), so one layout
serves both directions. Physical things (the envelope window) use physical positions.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from reportlab.lib.units import mm
from reportlab.pdfgen.canvas import Canvas

from invoicer.renderer import text
from invoicer.renderer.brand import Brand

# DIN 5008 form B window envelope (C5/6, DL): 20 mm from the left, 45 mm from the top,
# 85 x 45 mm. The address sits inside with a few millimetres of play on every side.
WINDOW_LEFT = 20 * mm
WINDOW_TOP = 45 * mm
WINDOW_WIDTH = 85 * mm
WINDOW_HEIGHT = 45 * mm
WINDOW_PADDING = 4 * mm

HEADER_HEIGHT = 22 * mm     # brand line on continuation pages
FOOTER_HEIGHT = 10 * mm     # page x of y, invoice number, legal line


class Frame:
    """Drawing helpers in logical coordinates over one page of one brand."""

    def __init__(self, canvas: Canvas, brand: Brand, rtl: bool) -> None:
        self.canvas = canvas
        self.brand = brand
        self.rtl = rtl
        self.left = brand.margin_left
        self.width = brand.content_width

    def x(self, offset: float) -> float:
        """Physical x of a logical offset from the start edge of the content area."""
        return self.left + self.width - offset if self.rtl else self.left + offset

    def span(self, offset: float, width: float) -> float:
        """Physical left x of a logical span ``[offset, offset + width]``."""
        return self.left + self.width - offset - width if self.rtl else self.left + offset

    def text(self, offset: float, y: float, value: str, size: float, *, bold: bool = False,
             align: str = "start", max_width: float | None = None, color=None) -> float:
        """Draw one line at a logical offset; ``align`` is start, end or center.

        ``start`` aligned text hangs from ``offset`` towards the end edge; ``end``
        aligned text ends at ``offset``.
        """
        physical = {"start": "right" if self.rtl else "left",
                    "end": "left" if self.rtl else "right",
                    "center": "center"}[align]
        if color is not None:
            self.canvas.setFillColor(color)
        drawn = text.draw(self.canvas, self.x(offset), y, value, size, bold=bold,
                          align=physical, max_width=max_width, rtl=self.rtl)
        if color is not None:
            self.canvas.setFillColor(self.brand.text)
        return drawn

    def rule(self, y: float, offset: float = 0, width: float | None = None,
             color=None, thickness: float = 0.5) -> None:
        width = self.width - offset if width is None else width
        self.canvas.setStrokeColor(color or self.brand.muted)
        self.canvas.setLineWidth(thickness)
        x = self.span(offset, width)
        self.canvas.line(x, y, x + width, y)

    def band(self, y: float, height: float, color, offset: float = 0,
             width: float | None = None) -> None:
        """A filled rectangle from ``y`` (bottom) up ``height``."""
        width = self.width - offset if width is None else width
        self.canvas.setFillColor(color)
        self.canvas.rect(self.span(offset, width), y, width, height, stroke=0, fill=1)
        self.canvas.setFillColor(self.brand.text)


@dataclass
class Row:
    """A piece of the front matter with a known height, drawn top-down from ``y``."""

    height: float
    draw: Callable[[Frame, float], None]
    keep_with_next: bool = False


@dataclass
class PagePlan:
    """What goes on one page: front-matter rows with their top y, or an annex slice."""

    rows: list[tuple[Row, float]] = field(default_factory=list)
    annex: object | None = None


def flow(rows: list[Row], first_top: float, first_bottom: float, top: float,
         bottom: float) -> list[PagePlan]:
    """Place rows on pages top-down; a row that does not fit starts a new page.

    A heading marked ``keep_with_next`` moves to the next page with the row after it,
    so no section title is left alone at the foot of a page.
    """
    pages = [PagePlan()]
    y, floor = first_top, first_bottom
    i = 0
    while i < len(rows):
        row = rows[i]
        if y - row.height < floor and pages[-1].rows:
            # Take a trailing heading along to the new page.
            carried = []
            while pages[-1].rows and pages[-1].rows[-1][0].keep_with_next:
                carried.insert(0, pages[-1].rows.pop()[0])
            pages.append(PagePlan())
            y, floor = top, bottom
            for c in carried:
                pages[-1].rows.append((c, y))
                y -= c.height
        pages[-1].rows.append((row, y))
        y -= row.height
        i += 1
    return pages
