"""Building blocks of the body: headings, table lines with wrapped cells, paragraphs.

Every row's height comes from the line boxes of the text it holds (see
:func:`renderer.text.extent`), so a row of Persian text is as tall as Noto Sans Arabic
needs and never reaches into the row below. Cells are given the width of their column:
record text (descriptions, labels) wraps within it and is cut with "…" only after
``max_lines``; amounts and dates must fit whole or rendering fails loudly.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from reportlab.lib.units import mm

from invoicer.renderer import text
from invoicer.renderer.context import BODY, Context
from invoicer.renderer.layout import Frame, Row

PAD = 0.8  # points above and below the text of a table line


@dataclass(frozen=True)
class Cell:
    """One cell of a table line.

    ``offset`` is the logical anchor (the start of a ``start`` cell, the end of an
    ``end`` cell); ``width`` the column's width: record text wraps to it (at most
    ``max_lines`` lines, then "…"); None means the text must fit as it is.
    """

    offset: float
    value: str
    align: str = "start"
    width: float | None = None
    muted: bool = False
    max_lines: int = 1


def _lines(ctx: Context, cell: Cell, size: float, bold: bool) -> list[str]:
    if cell.width is None or not cell.value:
        return [cell.value] if cell.value else []
    if cell.max_lines == 1:
        return [cell.value]  # drawn with max_width: cut with "…" if it must be
    return text.wrap(cell.value, cell.width, size, bold, max_lines=cell.max_lines,
                     rtl=ctx.rtl) or [""]


def metrics(ctx: Context, values: Sequence[str], size: float,
            bold: bool = False) -> tuple[float, float]:
    """The tallest ``(ascent, descent)`` among ``values`` at ``size``, in points."""
    ascent = descent = 0.0
    for v in values:
        a, d = text.extent(v, size, bold, rtl=ctx.rtl)
        ascent, descent = max(ascent, a), max(descent, d)
    if not ascent:  # nothing to print: the height of an empty line of the body font
        ascent, descent = text.extent("0", size, bold)
    return ascent, descent


def line(ctx: Context, cells: Sequence[Cell], *, size: float = BODY, bold: bool = False,
         shade: bool = False, keep: bool = False, continued: Sequence[Row] = (),
         name: str = "table line") -> Row:
    """A table line whose height fits its tallest cell (wrapped cells included)."""
    wrapped = [_lines(ctx, c, size, bold) for c in cells]
    ascent, descent = metrics(ctx, [v for lines in wrapped for v in lines], size, bold)
    pitch = ascent + descent
    count = max((len(lines) for lines in wrapped), default=1) or 1
    height = count * pitch + 2 * PAD
    brand = ctx.brand

    def draw(f: Frame) -> None:
        if shade:
            f.band(f.bottom, height, brand.accent)
        for cell, lines in zip(cells, wrapped, strict=True):
            for i, value in enumerate(lines):
                f.text(cell.offset, f.top - PAD - ascent - i * pitch, value, size, bold=bold,
                       align=cell.align, max_width=cell.width,
                       color=brand.muted if cell.muted else None)

    return Row(height, draw, keep_with_next=keep, continued=continued, name=name)


def heading(ctx: Context, title: str, *, size: float = 11, space: float = 3 * mm,
            name: str = "heading") -> Row:
    """A section title with a rule under it; it never ends a page alone."""
    ascent, descent = metrics(ctx, [title], size, True)
    rule_gap = 1.2 * mm
    height = space + ascent + descent + rule_gap + 1

    def draw(f: Frame) -> None:
        baseline = f.top - space - ascent
        f.text(0, baseline, title, size, bold=True, color=ctx.brand.primary,
               max_width=f.width)
        f.rule(baseline - descent - rule_gap / 2, color=ctx.brand.primary, thickness=0.8)

    return Row(height, draw, keep_with_next=True, name=name)


def paragraph(ctx: Context, message: str, *, size: float = BODY, width: float | None = None,
              max_lines: int = 4, color=None, space: float = 0,
              page_one: bool = False, name: str = "paragraph") -> Row:
    """Wrapped text at the start edge."""
    width = width or ctx.brand.content_width
    lines = text.wrap(message, width, size, max_lines=max_lines, rtl=ctx.rtl)
    ascent, descent = metrics(ctx, lines, size)
    pitch = ascent + descent
    height = space + len(lines) * pitch + 2 * PAD

    def draw(f: Frame) -> None:
        for i, value in enumerate(lines):
            f.text(0, f.top - space - PAD - ascent - i * pitch, value, size, color=color,
                   max_width=width)

    return Row(height, draw, page_one=page_one, name=name)


def space(height: float) -> Row:
    """Air between sections."""
    return Row(height, lambda f: None, name="space")
