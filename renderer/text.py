"""Text on the canvas: the one place where strings meet ReportLab.

The API (sizes in points; ``y`` is the baseline; every string is one line unless
wrapped)::

    width(text, size, bold=False, *, mono=False, rtl=False) -> float
        Advance width as draw() prints it; cached per (text, size, weight, family).
    draw(canvas, x, y, text, size, *, bold=False, mono=False, align="left",
         max_width=None, rtl=False) -> float
        Draw one line; ``x`` is its left edge, right edge or centre per ``align``;
        returns the width drawn. With ``max_width`` a line that does not fit is cut
        with "…" (cut in logical order, then reordered) and never exceeds it.
    ellipsize(text, max_width, size, *, bold=False, mono=False, rtl=False) -> str
        The logical text draw(..., max_width=...) prints: text, or a prefix + "…".
    wrap(text, width, size, bold=False, max_lines=None, *, mono=False, rtl=False)
        -> list[str]: logical lines no wider than ``width`` (word breaks, then
        character breaks for overlong words; "\\n" is a hard break); with ``max_lines``
        the last line ends with "…".
    extent(text, size, bold=False, *, mono=False, rtl=False) -> (ascent, descent)
        The line box above and below the baseline, as PDF readers report it.
    metrics(text, size, bold=False, mono=False, rtl=False) -> (width, ascent, descent)
        width() and extent() in one cached look-up (the layout's frames).
    is_plain(text, bold=False, mono=False) -> bool
        True when the text needs no fallback font, bidi or shaping (the fast path).
    font_name(bold=False, mono=False) -> str
        ReportLab name of the primary font, for code that must hand ReportLab a name.
    missing_glyphs(text) -> set[str]
        Characters no font has (from :mod:`renderer.fonts`).

``rtl=True`` makes the paragraph direction right-to-left (fa_IR layouts; the caller also
passes ``align="right"``). It only matters for text containing right-to-left
characters: a phone number, an amount or a Latin name alone keeps its order. With
``rtl=False`` a line containing Arabic script takes the direction of its first strong
character (a Persian name on an English invoice still reads right-to-left).

Text is data: nothing here interprets markup, and only plain strings reach the canvas.

How a line is drawn
-------------------
*Fast path* (nearly every row of every invoice): when every character is in the
primary font (Noto Sans / Noto Sans Mono) and none is right-to-left, the string is one
text-show operator, with no bidi or shaping work.

*Complex path* (Arabic script, or characters only a fallback font has; a character
no font has prints as U+FFFD "�"):

1. bidi levels from python-bidi's implementation of the Unicode Bidirectional Algorithm,
   with one deliberate change: a ``+``/``-``/``−`` directly before a digit binds to the
   number, so ``+989121234567`` and ``-5`` stay whole in a right-to-left line (plain
   UBA would move the sign to the number's far side);
2. a font per character from the family's fallback chain (:mod:`renderer.fonts`):
   Arabic script, and the spaces and punctuation among it, in the Arabic font; runs of
   equal (font, level) are put in visual order (UBA rule L2);
3. Arabic and right-to-left runs are shaped with HarfBuzz (uharfbuzz): contextual forms,
   lam-alef and other ligatures, mark positioning, mirrored brackets; positions go
   through ReportLab's ``ShapedStr``, so offsets and kerning are honoured;
4. each shaped glyph gets a code whose ``ToUnicode`` entry is the text it stands for,
   as base letters (U+06xx), never Presentation Forms or private codes (see
   :class:`renderer.fonts.ShapingFont`). Glyphs go out in visual order, which is what
   PDF text extractors expect and reverse; words go out in logical order, one
   text-show each; marks raised or lowered by the shaper are drawn after the line, as
   a baseline shift would split their word for poppler.

What poppler gives back (the tests pin it): ``pdftotext`` returns Persian lines in
logical order, marks, ZWNJ and ligatures included; ``pdftotext -raw`` follows the
content stream, so it gives the words in logical order but one per line (its line
breaks follow the pen, which moves leftwards), and a word-final mark (the tanwin of
"لطفاً") ahead of its word. Around numbers inside a Persian line poppler moves spaces
(its own reordering is simplified); the letters and digits stay in order.

Costs: widths are cached per (text, size, weight, family, direction); shaped lines per
(text, weight, family, direction), independent of size; and the content-stream code of
each drawn string per canvas, so a repeated string costs a dict lookup and one append.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import cache, lru_cache
from typing import Literal
from weakref import WeakKeyDictionary, ref

import uharfbuzz as hb
from bidi import algorithm as _uba
from reportlab.pdfbase.pdfmetrics import stringWidth

from invoicer.renderer import _reportlab, fonts
from invoicer.renderer._reportlab import ShapeData, ShapedStr
from invoicer.renderer.fonts import missing_glyphs

__all__ = [
    "ELLIPSIS",
    "draw",
    "extent",
    "font_name",
    "is_plain",
    "metrics",
    "missing_glyphs",
    "width",
    "wrap",
]

ELLIPSIS = "…"

Align = Literal["left", "right", "center"]

# Explicit bidi controls are removed before layout (billing already strips them from
# records): the algorithm below implements embeddings but not isolates, and a record
# must never be able to reorder the text around it.
_BIDI_CONTROLS = re.compile("[\u202a-\u202e\u2066-\u2069]")
_HARD_BREAKS = re.compile("\r\n|[\n\v\f\r\x1c-\x1e\x85\u2028\u2029]")
_BREAKS = re.compile("[\t\n\v\f\r\x1c-\x1e\x85\u2028\u2029]")
_RTL_CLASSES = frozenset(("R", "AL", "AN"))
_SIGNS = frozenset("+-\u2212")
_SHAPED_FONTS = frozenset(("Arabic", "Arabic-Bold"))
_JOINERS = frozenset("\u200c\u200d")


# --- fonts and the fast path ----------------------------------------------------------


def font_name(bold: bool = False, mono: bool = False) -> str:
    """The registered ReportLab name of the primary font ("Sans", "Sans-Bold", "Mono"...).

    For code that hands a font name to ReportLab itself (chart axis labels). Such text
    gets no fallback, bidi or shaping: check it with :func:`is_plain`.
    """
    fonts.register()
    return ("Mono" if mono else "Sans") + ("-Bold" if bold else "")


@cache
def _fast_chars(primary: str) -> frozenset[str]:
    # Characters the primary font draws as they are, in logical order, whatever the
    # paragraph direction: right-to-left letters and Arabic numbers need the complex
    # path; controls and invisible marks must not reach the canvas.
    return frozenset(
        c for c in fonts.coverage(primary)
        if unicodedata.bidirectional(c) not in _RTL_CLASSES
        and unicodedata.category(c) != "Cc"
        and not fonts.invisible(c)
    )


def is_plain(text: str, bold: bool = False, mono: bool = False) -> bool:
    """True if ``text`` prints correctly as one plain string in :func:`font_name`'s font.

    That is :func:`draw`'s fast path: every character is in the primary font and none
    needs bidi reordering or shaping (Latin, Cyrillic, digits, common symbols).
    """
    return (text.isascii() and text.isprintable()) or _fast_chars(
        font_name(bold, mono)).issuperset(text)




# --- width ----------------------------------------------------------------------------

_WIDTH_CACHE_MAX = 200_000
_widths: dict[tuple[str, float, bool, bool, bool], float] = {}


def width(text: str, size: float, bold: bool = False, *, mono: bool = False,
          rtl: bool = False) -> float:
    """Advance width in points of ``text`` drawn by :func:`draw` at ``size`` points.

    Cached per (text, size, weight, family, direction): repeated strings (dates,
    destinations, column headers) cost one dict lookup. The cache is bounded and is
    emptied, not evicted piecemeal, when full (cheaper; a bill run's vocabulary refills
    it quickly). ``rtl`` rarely changes the result (a bracket may take another font).
    """
    key = (text, size, bold, mono, rtl)
    w = _widths.get(key)
    if w is None:
        w = _measure(text, size, bold, mono, rtl)
        if len(_widths) >= _WIDTH_CACHE_MAX:
            _widths.clear()
        _widths[key] = w
    return w


def extent(text: str, size: float, bold: bool = False, *, mono: bool = False,
           rtl: bool = False) -> tuple[float, float]:
    """``(ascent, descent)`` in points of the line :func:`draw` prints for ``text``.

    The line box of the tallest font the text is drawn with, as the font tells PDF
    readers (``Ascent``/``Descent``): what a text extractor such as poppler reports as
    the words' boxes, and what the layout must keep apart. Latin text in Noto Sans takes
    1.36 em; a line with Persian takes 2.11 em (Noto Sans Arabic leaves room for
    stacked marks). Empty text has no box.
    """
    if not text:
        return 0.0, 0.0
    if is_plain(text, bold, mono):
        em = _plain_extent.get((bold, mono))
        if em is None:
            f = fonts.font(font_name(bold, mono))
            em = _plain_extent[bold, mono] = (f.ascent, f.descent)
        return em[0] * size, em[1] * size
    line = _layout(text, mono, bold, rtl)
    return line.ascent * size, line.descent * size


_width = width
_plain_extent: dict[tuple[bool, bool], tuple[float, float]] = {}

# Width and line box of each string the layout's frames place, per (text, size, weight,
# family, direction): what width() and extent() return for that key, so the same key
# always gives the same three numbers. Cleared when full, like the width cache; smaller,
# as its strings are a page's labels and values (the annex rows do not come here).
_METRICS_MAX = 16_384
_metrics: dict[tuple[str, float, bool, bool, bool], tuple[float, float, float]] = {}


def metrics(text: str, size: float, bold: bool = False, mono: bool = False,
            rtl: bool = False) -> tuple[float, float, float]:
    """``(width, ascent, descent)``: :func:`width` and :func:`extent` in one look-up."""
    key = (text, size, bold, mono, rtl)
    hit = _metrics.get(key)
    if hit is None:
        hit = (width(text, size, bold, mono=mono, rtl=rtl),
               *extent(text, size, bold, mono=mono, rtl=rtl))
        if len(_metrics) >= _METRICS_MAX:
            _metrics.clear()
        _metrics[key] = hit
    return hit


def _measure(text: str, size: float, bold: bool, mono: bool, rtl: bool) -> float:
    if is_plain(text, bold, mono):
        return stringWidth(text, font_name(bold, mono), size)
    return _layout(text, mono, bold, rtl).advance * size / 1000.0


# --- drawing --------------------------------------------------------------------------


def draw(
    canvas,
    x: float,
    y: float,
    text: str,
    size: float,
    *,
    bold: bool = False,
    mono: bool = False,
    align: Align = "left",
    max_width: float | None = None,
    rtl: bool = False,
) -> float:
    """Draw ``text`` as one line with its baseline at ``y``; return the width drawn.

    ``x`` is the left edge (``align="left"``), the right edge (``"right"``) or the centre
    (``"center"``). With ``max_width``, text wider than that is cut in logical order and
    ends with "…"; the drawn width never exceeds ``max_width`` (nothing is drawn when
    not even "…" fits). ``rtl`` sets a right-to-left paragraph direction (see the module
    docstring). Line breaks and tabs inside ``text`` print as spaces. The canvas's
    current font is left alone; the fill colour is used.
    """
    if not text:
        return 0.0
    w = width(text, size, bold, mono=mono, rtl=rtl)
    if max_width is not None and w > max_width:
        text = ellipsize(text, max_width, size, bold=bold, mono=mono, rtl=rtl)
        if not text:
            return 0.0
        w = width(text, size, bold, mono=mono, rtl=rtl)
    if align == "right":
        x -= w
    elif align == "center":
        x -= w / 2.0
    elif align != "left":
        raise ValueError(f"align must be 'left', 'right' or 'center', not {align!r}")

    pre, post = _positioned(canvas, text, size, bold, mono, rtl)
    canvas.addLiteral(f"{pre}{x:.2f} {y:.2f}{post}")
    return w


def draw_at(canvas, x: float, y: float, text: str, size: float, *, bold: bool = False,
            mono: bool = False, rtl: bool = False) -> None:
    """:func:`draw` of text already measured and fitted, ``x`` its left edge: for
    callers that placed its box themselves (the layout's frames)."""
    pre, post = _positioned(canvas, text, size, bold, mono, rtl)
    _reportlab.append(canvas, f"{pre}{x:.2f} {y:.2f}{post}")


def placed(canvas, x: float, y: float, text: str, size: float, bold: bool, mono: bool,
           rtl: bool) -> str:
    """The operators :func:`draw_at` appends (for a caller that appends them together
    with others)."""
    pre, post = _positioned(canvas, text, size, bold, mono, rtl)
    return f"{pre}{x:.2f} {y:.2f}{post}"


# Content-stream code of each drawn string, per canvas: the 100,000-row annex repeats
# dates, destinations and amounts, and re-encoding them (font subset lookup, escaping,
# shaped-glyph adjustments) is most of ReportLab's per-string cost. The code depends on
# the document (its font subsets), hence one cache per canvas, dropped with it. Each
# entry is the code around its position, ``(pre, post)``: the drawn string is
# ``f"{pre}{x:.2f} {y:.2f}{post}"``. The same dictionary keeps, under ``(size, bold,
# mono)``, the ``/F1+0 7 Tf (`` prefix of printable ASCII in that font and size (fixed
# for the document once its font state exists: see _reportlab.ascii_prefix).
_ENCODED_MAX = 20_000  # per canvas; past it strings are encoded each time
_encoded_by_canvas: WeakKeyDictionary = WeakKeyDictionary()
_last_encoded: list = [lambda: None, {}]  # [weak reference to a canvas, its cache]
_ORIGIN = "BT 1 0 0 1 0 0 Tm "


def _canvas_cache(canvas) -> dict:
    last_canvas, cache = _last_encoded
    if last_canvas() is not canvas:
        # a new canvas: one WeakKeyDictionary look-up, then plain identity checks while
        # the same document is drawn (a weak reference: no document is kept alive)
        cache = _encoded_by_canvas.get(canvas)
        if cache is None:
            cache = _encoded_by_canvas[canvas] = {}
        _last_encoded[:] = [ref(canvas), cache]
    return cache


def _positioned(canvas, text: str, size: float, bold: bool, mono: bool,
                rtl: bool) -> tuple[str, str]:
    """``(pre, post)``: the text object drawing ``text`` is ``pre`` + its position (two
    decimals) + ``post``."""
    cache = _canvas_cache(canvas)
    key = (text, size, bold, mono, rtl)
    hit = cache.get(key)
    if hit is not None:
        return hit
    if (text.isascii() and text.isprintable() and canvas.bottomup
            and " Tm " not in text):
        # Printable ASCII is its own encoding in the font's first subset once the
        # document has the font (_reportlab.ascii_prefix): the prefix is looked up
        # once a document, not for every string. (Text holding " Tm " takes _split's
        # other form: see there.)
        pkey = (size, bold, mono)
        prefix = cache.get(pkey)
        if prefix is None:
            prefix = _reportlab.ascii_prefix(fonts.font(font_name(bold, mono)), size,
                                             _reportlab.document(canvas))
            if prefix is not None:
                cache[pkey] = prefix
        if prefix is not None:
            hit = ("BT 1 0 0 1 ", f" Tm {prefix}{_reportlab.escape_pdf(text)}) Tj ET")
    if hit is None:
        hit = _split(_encoded(canvas, text, size, bold, mono, rtl))
    if len(cache) < _ENCODED_MAX:
        cache[key] = hit
    return hit


def _encoded(canvas, text: str, size: float, bold: bool, mono: bool, rtl: bool) -> str:
    """Text-object code drawing ``text`` at the origin."""
    if is_plain(text, bold, mono) and canvas.bottomup:
        # What PDFTextObject writes for one TrueType string, without its per-call
        # set-up: half the cost for the strings that are new on every row (times,
        # numbers called). splitString assigns the glyphs to the document's subsets.
        font = fonts.font(font_name(bold, mono))
        return (_ORIGIN + _reportlab.show_text(font, text, size, _reportlab.document(canvas))
                + " ET")
    t = canvas.beginText(0, 0)
    if is_plain(text, bold, mono):  # a top-down canvas: ReportLab flips the text
        t.setFont(font_name(bold, mono), size)
        t.textLine(text)
    else:
        line = _layout(text, mono, bold, rtl)
        scale = size / 1000.0
        for piece in (*line.pieces, *line.marks):  # words in logical order, then marks
            t.setTextOrigin(piece.x * scale, 0)
            t.setFont(piece.font, size)
            t.textLine(piece.text)
    return t.getCode()


def _split(code: str) -> tuple[str, str]:
    # Simple strings: move the first text matrix; several pieces: translate the whole
    # text object (positions inside it are relative to the line's left end). Plain
    # f-string formatting: ReportLab's fp_str is pure Python here and cost more than the
    # rest of a cached draw.
    if code.startswith(_ORIGIN) and code.count(" Tm ") == 1:
        return "BT 1 0 0 1 ", f" Tm {code[len(_ORIGIN):]}"
    return "q 1 0 0 1 ", f" cm {code} Q"


# --- ellipsis and wrapping ------------------------------------------------------------


def _cut_points(text: str) -> list[int]:
    """Indices where ``text`` may be cut without parting a letter from its marks."""
    points = [0]
    for i in range(1, len(text)):
        c = text[i]
        if (unicodedata.category(c) in ("Mn", "Me", "Mc") or c in _JOINERS
                or text[i - 1] in _JOINERS or "\ufe00" <= c <= "\ufe0f"):
            continue
        points.append(i)
    points.append(len(text))
    return points


def ellipsize(text: str, max_width: float, size: float, *, bold: bool = False,
        mono: bool = False, rtl: bool = False) -> str:
    """The text :func:`draw` prints within ``max_width``: ``text`` itself if it fits,
    else its longest logical prefix followed by "…" that fits, else "".
    """
    if width(text, size, bold, mono=mono, rtl=rtl) <= max_width:
        return text
    points = _cut_points(text)

    def candidate(k: int) -> str:
        return text[: points[k]].rstrip() + ELLIPSIS

    def fits(k: int) -> bool:
        # Not the cached width(): candidates are one-offs that would flush the cache.
        return _measure(candidate(k), size, bold, mono, rtl) <= max_width

    if not fits(0):
        return ""
    # Widths grow with the prefix except for rare shaping changes (a letter turning
    # final): binary search, then step back until it really fits.
    lo, hi = 0, len(points) - 2
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if fits(mid):
            lo = mid
        else:
            hi = mid - 1
    while lo > 0 and not fits(lo):
        lo -= 1
    return candidate(lo)




def wrap(text: str, width: float, size: float, bold: bool = False,
         max_lines: int | None = None, *, mono: bool = False,
         rtl: bool = False) -> list[str]:
    """Break ``text`` into logical lines that each fit ``width`` points.

    Breaks between words; a word wider than a line is broken between characters;
    ``"\\n"`` forces a break. With ``max_lines``, the last allowed line carries the rest,
    cut with "…". Draw each line with :func:`draw` (bidi applies per line, as the
    Unicode algorithm requires). Empty text gives no lines.
    """
    def fits(s: str) -> bool:
        return _measure(s, size, bold, mono, rtl) <= width

    def exact(para: str) -> list[str]:
        # Measures every trial line: right whatever the shaping does across words.
        out: list[str] = []
        current = ""
        for word in para.split():
            trial = f"{current} {word}" if current else word
            if fits(trial):
                current = trial
                continue
            if current:
                out.append(current)
            current = word
            while not fits(current):
                points = _cut_points(current)
                k = 1  # at least one character per line, even if it does not fit
                while k + 1 < len(points) - 1 and fits(current[: points[k + 1]]):
                    k += 1
                out.append(current[: points[k]])
                current = current[points[k]:]
        out.append(current)
        return out

    def estimated(para: str) -> list[str] | None:
        # Adds word widths (cached: words repeat), which is exact for text in the
        # primary font; a line with shaped or fallback text is measured once to confirm.
        # None: a word wider than a line, or an estimate that failed (use exact()).
        space = width_of(" ")
        out: list[str] = []
        current: list[str] = []
        used = 0.0
        for word in para.split():
            w = width_of(word)
            if w > width:
                return None
            if current and used + space + w <= width:
                current.append(word)
                used += space + w
                continue
            if current:
                out.append(" ".join(current))
            current, used = [word], w
        out.append(" ".join(current))
        limit = len(out) if max_lines is None else max_lines
        if all(is_plain(line, bold, mono) or fits(line) for line in out[:limit]):
            return out
        return None

    def width_of(s: str) -> float:
        return _width(s, size, bold, mono=mono, rtl=rtl)  # the parameter hides width()

    lines: list[str] = []
    for para in _HARD_BREAKS.split(text):
        lines += estimated(para) or exact(para)
    while lines and not lines[-1]:
        lines.pop()
    if max_lines is not None and len(lines) > max_lines:
        if max_lines <= 0:
            return []
        rest = " ".join(s for s in lines[max_lines - 1:] if s)
        last = ellipsize(rest, width, size, bold=bold, mono=mono, rtl=rtl)
        if last == rest:  # the rest fits on one line: still show that lines were cut
            last = ellipsize(rest + " " + ELLIPSIS, width, size, bold=bold, mono=mono, rtl=rtl)
        lines = [*lines[: max_lines - 1], last]
    return lines


# --- complex path: bidi, fonts, shaping -----------------------------------------------


@dataclass(frozen=True, slots=True)
class _Piece:
    font: str
    text: str  # visual order; a ShapedStr for shaped glyphs
    x: float  # from the line's left edge, in 1/1000 em


@dataclass(frozen=True, slots=True)
class _Line:
    pieces: tuple[_Piece, ...]  # in logical order of their first character
    marks: tuple[_Piece, ...]  # raised/lowered marks, drawn after the words
    advance: float  # 1/1000 em
    ascent: float  # em above the baseline: the tallest font's line box
    descent: float  # em below the baseline


def _levels(text: str, rtl: bool) -> list[int]:
    """Resolved bidi embedding level per character (UBA up to rule L1)."""
    if not any(unicodedata.bidirectional(c) in _RTL_CLASSES for c in text):
        return [0] * len(text)
    storage = _uba.get_empty_storage()
    base = 1 if rtl else _uba.get_base_level(text)
    storage["base_level"] = base
    storage["base_dir"] = "LR"[base]
    _uba.get_embedding_levels(text, storage)
    chars = storage["chars"]
    for i, ch in enumerate(chars):
        ch["index"] = i
        # A sign directly before a digit belongs to the number: strong L keeps
        # "+98…" / "-5" in one left-to-right piece (UBA alone would split them).
        if (text[i] in _SIGNS and i + 1 < len(text) and text[i + 1].isdigit()
                and (i == 0 or not text[i - 1].isalnum())):
            ch["type"] = ch["orig"] = "L"
    _uba.explicit_embed_and_overrides(storage)
    _uba.resolve_weak_types(storage)
    _uba.resolve_neutral_types(storage, False)
    _uba.resolve_implicit_levels(storage, False)
    levels = [base] * len(text)
    for ch in storage["chars"]:
        levels[ch["index"]] = ch["level"]
    # Characters removed by rule X9 (ZWNJ, ZWJ...) take their neighbour's level so that
    # they stay inside the run they join.
    kept = {ch["index"] for ch in storage["chars"]}
    for i in range(len(text)):
        if i not in kept and i > 0:
            levels[i] = levels[i - 1]
    # L1: trailing whitespace goes back to the paragraph level.
    i = len(text) - 1
    while i >= 0 and (text[i].isspace() or fonts.invisible(text[i])):
        levels[i] = base
        i -= 1
    return levels


def _is_arabic(c: str) -> bool:
    o = ord(c)
    return (0x0600 <= o <= 0x08FF or 0xFB50 <= o <= 0xFDFF or 0xFE70 <= o <= 0xFEFF
            or 0x10E60 <= o <= 0x10EFF or 0x1EE00 <= o <= 0x1EEFF)


def _fonts_of(text: str, chain: tuple[str, ...], arabic: str) -> list[str | None]:
    """Font per character (None: invisible, not drawn); independent of the direction.

    Arabic script takes the Arabic font. Spaces, brackets and punctuation take the
    Arabic font too when the nearest strong letter before them (else after them) is
    Arabic, so that a right-to-left phrase is one shaped run (brackets mirrored by the
    shaper, spacing designed for the script); digits and the signs and separators
    inside numbers always come from the primary font, so amounts look alike
    everywhere. Everything else: the first font of the chain that has it.
    """
    n = len(text)
    context: list[bool | None] = [None] * n
    current = None
    for i, c in enumerate(text):
        if unicodedata.bidirectional(c) in ("L", "R", "AL"):
            current = _is_arabic(c)
        context[i] = current
    first = next((v for v in context if v is not None), False)
    arabic_cov = fonts.coverage(arabic)
    out: list[str | None] = []
    prev = None
    for i, c in enumerate(text):
        name = None
        if fonts.invisible(c):
            out.append(None)
            continue
        if c in _JOINERS and prev is not None:
            name = prev  # ZWNJ/ZWJ must reach the shaper with the letters they act on
        elif c in arabic_cov:
            among_arabic = context[i] if context[i] is not None else first
            if _is_arabic(c):
                name = arabic
            elif among_arabic:
                kind = unicodedata.bidirectional(c)
                in_number = kind in ("CS", "ES", "ET") and (
                    (i > 0 and text[i - 1].isdigit()) or (i + 1 < n and text[i + 1].isdigit()))
                if kind in ("WS", "ON", "B", "S", "CS", "ES", "ET") and not in_number:
                    name = arabic
        if name is None:
            name = next((f for f in chain if c in fonts.coverage(f)), chain[0])
        out.append(name)
        prev = name
    return out


_hb_fonts: dict[str, hb.Font] = {}


def _hb_font(name: str) -> hb.Font:
    f = _hb_fonts.get(name)
    if f is None:
        face = hb.Face(hb.Blob.from_file_path(fonts.font(name).path))
        f = _hb_fonts[name] = hb.Font(face)
    return f


def _visual_order(levels: list[int]) -> list[int]:
    """UBA rule L2 on runs: indices of ``levels`` in left-to-right display order."""
    order = list(range(len(levels)))
    odd = [lv for lv in levels if lv % 2]
    if not odd:
        return order
    for level in range(max(levels), min(odd) - 1, -1):
        i = 0
        while i < len(order):
            if levels[order[i]] >= level:
                j = i
                while j < len(order) and levels[order[j]] >= level:
                    j += 1
                order[i:j] = order[i:j][::-1]
                i = j
            else:
                i += 1
    return order


@lru_cache(maxsize=8192)
def _layout(text: str, mono: bool, bold: bool, rtl: bool) -> _Line:
    """Visual layout of one line at 1000 pt: pieces in logical order with x offsets."""
    fonts.register()
    family = "Mono" if mono else "Sans"
    text = _BIDI_CONTROLS.sub("", _BREAKS.sub(" ", text))
    # A character no font has prints as U+FFFD, visibly and searchably, rather than as
    # an empty .notdef (tests use missing_glyphs() so that this never happens).
    text = "".join(c if fonts.invisible(c) or fonts.font_for(c, family, bold) else "\ufffd"
                   for c in text)
    levels = _levels(text, rtl)
    chain = fonts.chain(family, bold)
    arabic = "Arabic-Bold" if bold else "Arabic"

    # Runs of visible characters with one font and one level (indices into text).
    runs: list[tuple[str, int, list[int]]] = []
    for i, name in enumerate(_fonts_of(text, chain, arabic)):
        if name is None:
            continue
        if runs and runs[-1][0] == name and runs[-1][1] == levels[i]:
            runs[-1][2].append(i)
        else:
            runs.append((name, levels[i], [i]))

    pieces: list[tuple[int, _Piece]] = []
    marks: list[_Piece] = []
    pen = 0.0
    for r in _visual_order([lv for _, lv, _ in runs]):
        name, level, idx = runs[r]
        fonts.font(name)  # fallback fonts are registered on first use
        # Right-to-left runs are shaped whatever their font: the shaper mirrors brackets
        # and orders the glyphs.
        if name in _SHAPED_FONTS or level % 2:
            pen = _shape_run(text, name, level, idx, pen, pieces, marks)
        else:
            s = "".join(text[i] for i in idx)
            pieces.append((idx[0], _Piece(name, s, pen)))
            pen += stringWidth(s, name, 1000)
    pieces.sort(key=lambda p: p[0])
    used = {p.font for _, p in pieces} | {m.font for m in marks}
    ascent = max((fonts.font(n).ascent for n in used), default=0.0)
    descent = max((fonts.font(n).descent for n in used), default=0.0)
    return _Line(tuple(p for _, p in pieces), tuple(marks), pen, ascent, descent)


def _shape_run(text: str, name: str, level: int, idx: list[int], pen: float,
               out: list[tuple[int, _Piece]], marks: list[_Piece]) -> float:
    """Shape one run with HarfBuzz; append one piece per word; return the new pen."""
    rtl = bool(level % 2)
    run = "".join(text[i] for i in idx)
    buf = hb.Buffer()
    buf.add_str(run)
    buf.guess_segment_properties()
    buf.direction = "rtl" if rtl else "ltr"
    # One cluster per character (marks included), so each glyph maps back to the
    # characters it shows: a letter, or two for a ligature such as lam-alef.
    buf.cluster_level = hb.BufferClusterLevel.MONOTONE_CHARACTERS
    hbf = _hb_font(name)
    hb.shape(hbf, buf, {})
    ttf = fonts.font(name)
    k = 1000.0 / ttf.units_per_em

    infos, positions = buf.glyph_infos, buf.glyph_positions
    starts = sorted({g.cluster for g in infos})
    end_of = dict(zip(starts, [*starts[1:], len(run)], strict=True))
    # Text carried by each glyph, walking in logical order (glyphs arrive in visual
    # order). A cluster's text goes to its first glyph. Zero-advance glyphs (marks such
    # as the tanwin of "لطفاً", ZWNJ) hand their text to the glyph before them and carry
    # none themselves: poppler starts a new "word" at every glyph that overlaps its
    # predecessor, which would scatter a word's letters.
    order = range(len(infos) - 1, -1, -1) if rtl else range(len(infos))
    texts: dict[int, str] = {}
    seen: set[int] = set()
    carrier = None
    pending = ""
    for g in order:
        cl = infos[g].cluster
        t = "" if cl in seen else run[cl:end_of[cl]]
        seen.add(cl)
        if positions[g].x_advance == 0:
            if carrier is None:
                pending += t
            else:
                texts[carrier] += t
            t = ""
        elif carrier is None:
            t, pending = pending + t, ""
            carrier = g
        else:
            carrier = g
        texts[g] = t
    if pending:  # nothing but zero-advance glyphs: keep the text somewhere
        texts[next(iter(order))] = pending

    def flush(chars: list[str], data: list[ShapeData], first: int, x: float) -> None:
        if chars:
            out.append((idx[first], _Piece(name, ShapedStr("".join(chars), data), x)))

    chars: list[str] = []
    data: list[ShapeData] = []
    first = len(run)
    word_x = pen
    word_is_space = None
    for g, (info, pos) in enumerate(zip(infos, positions, strict=True)):
        cl = info.cluster
        # One piece per word and per space, so that words can be written in logical
        # order (pdftotext -raw follows the content stream).
        is_space = run[cl].isspace()
        if is_space is not word_is_space:
            flush(chars, data, first, word_x)
            chars, data, first, word_x, word_is_space = [], [], len(run), pen, is_space
        # A ligature stands for several characters; extractors reverse right-to-left
        # glyph sequences into logical order, so its text is given in visual order too
        # (lam-alef maps to "ال" and comes out as "لا"). Mirrored brackets keep their
        # logical character.
        gtext = texts[g][::-1] if rtl else texts[g]
        x_adv = pos.x_advance * k
        code = ttf.code_for(info.codepoint, gtext, x_adv)
        sd = _reportlab.shape_data(cl, x_adv, pos.y_advance * k, pos.x_offset * k,
                                   pos.y_offset * k, _reportlab.char_width(ttf, code))
        if not gtext and pos.y_offset:
            # A raised or lowered mark (tashdid, kasra...) needs a text rise, and poppler
            # ends a word wherever the baseline moves: such marks, which carry no text,
            # are drawn after the whole line instead of inside their word.
            marks.append(_Piece(name, ShapedStr(chr(code), [sd]), pen))
            pen += x_adv
            continue
        chars.append(chr(code))
        data.append(sd)
        first = min(first, cl)
        pen += x_adv
    flush(chars, data, first, word_x)
    return pen
