"""The consumption-history chart: one bar per earlier period, drawn as vectors.

Drawn here rather than with ReportLab's chart widgets because every label must go
through :mod:`renderer.text` (Persian month names are shaped, digits are the locale's)
and through the frame, which knows each label's box. In right-to-left locales the time
axis runs from right to left, as the rest of the page does.

A ``YYYY-MM`` history period is named by the month holding its 15th day: in the Solar
Hijri calendar, the month that covers most of it.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from reportlab.lib.units import mm

from invoicer.renderer import text
from invoicer.renderer.context import Context
from invoicer.renderer.layout import Frame, Row
from invoicer.renderer.rows import metrics

LABEL = 6          # points: axis labels
HEIGHT = 46 * mm   # the whole row: title, plot and month labels
TICKS = 4


def nice_ticks(low: Decimal, high: Decimal, count: int = TICKS) -> list[Decimal]:
    """Round axis values covering ``[low, high]``: steps of 1, 2, 2.5 or 5 × 10^n."""
    low, high = min(low, Decimal(0)), max(high, Decimal(0))
    if high == low:
        high = low + 1
    raw = (high - low) / count
    exponent = raw.adjusted()
    unit = Decimal(1).scaleb(exponent)
    step = next(m * unit for m in (Decimal(1), Decimal(2), Decimal("2.5"), Decimal(5),
                                   Decimal(10)) if m * unit >= raw)
    first = (low / step).to_integral_value(rounding="ROUND_FLOOR") * step
    ticks = [first]
    while ticks[-1] < high:
        ticks.append(ticks[-1] + step)
    return ticks


def history_row(ctx: Context) -> Row:
    """Title and bars of ``record.history`` (up to 13 periods)."""
    history = ctx.record.history
    fmt = ctx.fmt
    title = ctx.label("history")
    months = [fmt.month_parts(date(*map(int, h.period.split("-")), 15)) for h in history]
    ticks = nice_ticks(min(h.amount for h in history), max(h.amount for h in history))
    places = max(0, -min(t.normalize().as_tuple().exponent for t in ticks))
    tick_labels = [fmt.number(t, places) for t in ticks]

    t_asc, t_desc = metrics(ctx, [title], 11, True)
    l_asc, l_desc = metrics(ctx, [v for pair in months for v in pair] + tick_labels, LABEL)
    line = l_asc + l_desc

    def draw(f: Frame) -> None:
        b = ctx.brand
        f.text(0, f.top - t_asc, title, 11, bold=True, color=b.primary, max_width=f.width)
        gutter = max(text.width(v, LABEL, rtl=ctx.rtl) for v in tick_labels) + 2 * mm
        plot_top = f.top - t_asc - t_desc - 2 * mm - l_asc
        plot_bottom = f.bottom + 2 * line + 1 * mm
        plot_width = f.width - gutter - 2 * mm
        lo, hi = ticks[0], ticks[-1]
        scale = (plot_top - plot_bottom) / float(hi - lo)

        def y_of(v: Decimal) -> float:
            return plot_bottom + float(v - lo) * scale

        for tick, label in zip(ticks, tick_labels, strict=True):
            y = y_of(tick)
            f.rule(y, offset=gutter, width=plot_width, thickness=0.2 if tick else 0.5)
            f.text(gutter - 1.5 * mm, y - (l_asc - l_desc) / 2, label, LABEL, align="end",
                   color=b.muted)
        slot = plot_width / len(history)
        for i, (entry, (name, year)) in enumerate(zip(history, months, strict=True)):
            start = gutter + i * slot
            y0, y1 = sorted((y_of(Decimal(0)), y_of(entry.amount)))
            if y1 - y0 > 0.05:
                f.band(y0, y1 - y0, b.primary, offset=start + slot * 0.2, width=slot * 0.6)
            centre = start + slot / 2
            f.text(centre, plot_bottom - 1 * mm - l_asc, name, LABEL, align="center",
                   max_width=slot - 1, color=b.muted)
            f.text(centre, plot_bottom - 1 * mm - line - l_asc, year, LABEL, align="center",
                   max_width=slot - 1, color=b.muted)

    return Row(HEIGHT, draw, name="consumption history")
