"""Fonts of the invoice: registered once per process, embedded and subset in every PDF.

Logical names (ReportLab font names, usable with any canvas once :func:`register` ran):

================  ==========================================  ========================
name              file (Debian package)                       role
================  ==========================================  ========================
``Sans``          NotoSans-Regular (fonts-noto-core)          Latin Extended, Cyrillic
``Sans-Bold``     NotoSans-Bold (fonts-noto-core)             idem, bold
``Mono``          NotoSansMono-Regular (fonts-noto-mono)      payment lines, codes
``Mono-Bold``     NotoSansMono-Bold (fonts-noto-mono)         idem, bold
``Arabic``        NotoSansArabic-Regular (fonts-noto-core)    Arabic script (Persian)
``Arabic-Bold``   NotoSansArabic-Bold (fonts-noto-core)       idem, bold
``Symbols``       DejaVuSans (fonts-dejavu-core)              fallback: − → ✓ ☎ ≤ ...
``Symbols-Bold``  DejaVuSans-Bold (fonts-dejavu-core)         idem, bold
``Symbols2``      NotoSansSymbols2-Regular (fonts-noto-core)  fallback: more symbols
``Math``          NotoSansMath-Regular (fonts-noto-core)      fallback: 𝐀 ∮ ⨁ ...
``Music``         NotoMusic-Regular (fonts-noto-core)         fallback: 𝄞 ♩ ...
================  ==========================================  ========================

A *family* (``"Sans"`` or ``"Mono"``) is an ordered chain of these fonts: each character
is drawn with the first font of the chain whose cmap has it (see :func:`chain` and
:func:`font_for`); :mod:`renderer.text` does that split. ReportLab's ``TTFont`` embeds
only the glyphs used (subsets of 256 glyphs, each a ``TrueType`` font with a
``ToUnicode`` map), so registering large fonts costs nothing in the PDF.

Coverage is read from the fonts' own cmaps with fontTools, independently of ReportLab:
:func:`covers` and :func:`missing_glyphs` let tests prove that no sample text ever
prints as a blank box ("tofu").
"""

from __future__ import annotations

import threading
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from fontTools.ttLib import TTFont as _FTFont
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont

from invoicer.renderer import _reportlab

__all__ = [
    "FAMILIES",
    "FILES",
    "FontFile",
    "FontMissingError",
    "ShapingFont",
    "chain",
    "coverage",
    "covers",
    "describe",
    "font",
    "font_for",
    "invisible",
    "missing_glyphs",
    "register",
]

FONT_ROOT = Path("/usr/share/fonts/truetype")


@dataclass(frozen=True)
class FontFile:
    """One TrueType file behind a logical font name, and the Debian package shipping it."""

    name: str
    path: Path
    package: str


_NOTO = "fonts-noto-core"
_NOTO_MONO = "fonts-noto-mono"
_DEJAVU = "fonts-dejavu-core"

FILES: tuple[FontFile, ...] = (
    FontFile("Sans", FONT_ROOT / "noto/NotoSans-Regular.ttf", _NOTO),
    FontFile("Sans-Bold", FONT_ROOT / "noto/NotoSans-Bold.ttf", _NOTO),
    FontFile("Mono", FONT_ROOT / "noto/NotoSansMono-Regular.ttf", _NOTO_MONO),
    FontFile("Mono-Bold", FONT_ROOT / "noto/NotoSansMono-Bold.ttf", _NOTO_MONO),
    FontFile("Arabic", FONT_ROOT / "noto/NotoSansArabic-Regular.ttf", _NOTO),
    FontFile("Arabic-Bold", FONT_ROOT / "noto/NotoSansArabic-Bold.ttf", _NOTO),
    FontFile("Symbols", FONT_ROOT / "dejavu/DejaVuSans.ttf", _DEJAVU),
    FontFile("Symbols-Bold", FONT_ROOT / "dejavu/DejaVuSans-Bold.ttf", _DEJAVU),
    FontFile("Symbols2", FONT_ROOT / "noto/NotoSansSymbols2-Regular.ttf", _NOTO),
    FontFile("Math", FONT_ROOT / "noto/NotoSansMath-Regular.ttf", _NOTO),
    FontFile("Music", FONT_ROOT / "noto/NotoMusic-Regular.ttf", _NOTO),
)

# Fallback order per family and weight. Arabic sits before Symbols so that Arabic
# punctuation and digits come from the font designed with the letters around them. The
# last three have one weight only: a rare symbol in a bold label prints regular rather
# than as a blank box.
_RARE = ("Symbols2", "Math", "Music")
FAMILIES: dict[tuple[str, bool], tuple[str, ...]] = {
    ("Sans", False): ("Sans", "Arabic", "Symbols", *_RARE),
    ("Sans", True): ("Sans-Bold", "Arabic-Bold", "Symbols-Bold", *_RARE),
    ("Mono", False): ("Mono", "Sans", "Arabic", "Symbols", *_RARE),
    ("Mono", True): ("Mono-Bold", "Sans-Bold", "Arabic-Bold", "Symbols-Bold", *_RARE),
}

# Invisible format characters: they steer bidi or joining but have no ink, so they are
# never drawn (text.py drops them after bidi resolution) and never count as missing.
# ZWNJ/ZWJ are absent on purpose: they must reach the shaper (Persian "می‌خواهم").
_INVISIBLE = frozenset(
    "\u00ad\u061c\u200b\u200e\u200f\u202a\u202b\u202c\u202d\u202e"
    "\u2060\u2066\u2067\u2068\u2069\ufeff"
)


class FontMissingError(RuntimeError):
    """A font file is not installed; the message names the Debian package to install."""


class ShapingFont(TTFont):
    """A ``TTFont`` that can draw glyphs with no code point of their own.

    Shaped Arabic uses contextual forms and ligatures which the cmap does not reach (or
    reaches only through Presentation Forms code points, which text extraction and
    search do not fold back). :meth:`code_for` gives each such glyph a private code
    point (plane 15, never used by real text here) *per (glyph, text) pair* and remembers
    the logical text it stands for; :meth:`addObjects` then writes that text into the
    PDF ``ToUnicode`` map. Copy-paste, search, screen readers and ``pdftotext`` so get
    the base Arabic letters (``ب``, not ``ﺑ``), and ``لا`` for the lam-alef ligature.
    A glyph whose text is carried by its neighbour (a mark) maps to the empty string.
    """

    _PRIVATE_BASE = 0xF0000

    def __init__(self, name: str, filename: str) -> None:
        super().__init__(name, filename)
        self.path = filename
        self._codes: dict[tuple[int, str, float], int] = {}
        self._texts: dict[int, str] = {}
        self._lock = threading.Lock()
        _reportlab.verify_font(self)
        self.units_per_em: int = _reportlab.units_per_em(self)
        self.cmap: dict[int, int] = _reportlab.nominal_cmap(self)  # before private codes
        ascent, descent = _reportlab.line_metrics(self)
        #: Line box above and below the baseline, in em, as PDF readers take it.
        self.ascent = ascent / 1000.0
        self.descent = -descent / 1000.0

    def code_for(self, gid: int, text: str, advance: float) -> int:
        """Code point that draws glyph ``gid`` and extracts as ``text``.

        ``advance`` is the glyph's advance in 1/1000 em as shaped (the PDF ``Widths``
        entry): text extractors place characters by ``Widths``, so a zero-advance glyph
        (ZWNJ, a mark) that kept its nominal width would overlap its neighbour and split
        the word.
        """
        if (len(text) == 1 and self.cmap.get(ord(text)) == gid
                and abs(_reportlab.nominal_width(self, ord(text)) - advance) < 0.5):
            return ord(text)  # the nominal glyph: the ordinary mapping is already right
        # The advance belongs to the key: the same glyph standing for the same text can
        # be shaped to another width elsewhere (kerning, a joining neighbour), and the
        # first width seen in this process must not leak into a later document.
        key = (gid, text, round(advance, 3))
        code = self._codes.get(key)
        if code is None:
            with self._lock:
                code = self._codes.get(key)
                if code is None:
                    code = self._PRIVATE_BASE + len(self._codes)
                    _reportlab.glyph_code(self, code, gid, advance)
                    self._texts[code] = text
                    self._codes[key] = code
        return code

    def addObjects(self, doc) -> None:
        """Embed the subsets as ReportLab does, then fix ``ToUnicode`` of private codes."""
        subsets = _reportlab.subsets(self, doc)
        if not any(code in self._texts or code > 0xFFFF
                   for _, subset in subsets or () for code in subset):
            _reportlab.add_font_objects(self, doc)  # ReportLab's bytes, cached
            return
        super().addObjects(doc)
        for name, subset in subsets or ():
            # ReportLab writes "%04X": wrong for characters beyond U+FFFF (𝄞), which
            # need a UTF-16 surrogate pair; those subsets are rewritten too.
            if not any(code in self._texts or code > 0xFFFF for code in subset):
                continue
            _reportlab.replace_to_unicode(
                doc, name, lambda base, subset=subset: _to_unicode_cmap(base, subset,
                                                                        self._texts))


def _utf16_hex(text: str) -> str:
    return text.encode("utf-16-be").hex().upper()


def _to_unicode_cmap(name: str, subset: list[int], texts: dict[int, str]) -> str:
    """A ToUnicode CMap as ReportLab writes it, with private codes mapped to their text."""
    def dst(code: int) -> str:
        text = texts.get(code, chr(code))
        # A glyph with no text of its own (a mark whose letter carries it) maps to
        # nothing, so no extractor duplicates the mark.
        return _utf16_hex(text) if text else ""

    pairs = [f"<{i:02X}> <{dst(c)}>" for i, c in enumerate(subset)]
    return "\n".join([
        "/CIDInit /ProcSet findresource begin",
        "12 dict begin",
        "begincmap",
        f"/CIDSystemInfo << /Registry ({name}) /Ordering ({name}) /Supplement 0 >> def",
        f"/CMapName /{name} def",
        "/CMapType 2 def",
        "1 begincodespacerange",
        f"<00> <{len(subset) - 1:02X}>",
        "endcodespacerange",
        # bfchar blocks hold at most 100 entries (PDF 1.7, 9.10.3)
        *(line for k in range(0, len(pairs), 100) for line in (
            f"{len(pairs[k:k + 100])} beginbfchar", *pairs[k:k + 100], "endbfchar")),
        "endcmap",
        "CMapName currentdict /CMap defineresource pop",
        "end",
        "end",
    ])


_lock = threading.Lock()
_fonts: dict[str, ShapingFont] = {}
_coverage: dict[str, frozenset[str]] = {}


#: Registered with ReportLab at once; the fallbacks only when a text first needs one.
#: Parsing a TrueType file costs ReportLab ~3 MB of tables, and most invoices never
#: print a character outside Noto Sans.
PRIMARY = frozenset({"Sans", "Sans-Bold", "Mono", "Mono-Bold"})


def register() -> None:
    """Register the primary fonts with ReportLab and read every font's coverage, once.

    Idempotent and cheap after the first call (one dict lookup). Raises
    :class:`FontMissingError` naming the Debian package when a file is missing.
    Fallback fonts are registered by :func:`font` on first use.
    """
    if _coverage:
        return
    with _lock:
        if _coverage:
            return
        _reportlab.verify()
        missing = [f for f in FILES if not f.path.is_file()]
        if missing:
            packages = " ".join(sorted({f.package for f in missing}))
            raise FontMissingError(
                "invoice fonts not installed: "
                + ", ".join(str(f.path) for f in missing)
                + f" (install the Debian package(s): apt-get install {packages})"
            )
        coverage = {}
        # One str per character for all the sets: fonts overlap (32,000 entries over
        # 11,000 characters), and every pool process holds these sets for good.
        chars: dict[int, str] = {}
        for f in FILES:
            if f.name in PRIMARY:
                _load(f)
            # fontTools reads the cmap independently of ReportLab's parser; lazy=True
            # decodes only the cmap table (a few ms per font).
            with _FTFont(str(f.path), lazy=True) as ft:
                coverage[f.name] = frozenset(
                    chars.get(cp) or chars.setdefault(cp, chr(cp)) for cp in ft.getBestCmap())
        # baseFontFor: canvases and graphics (charts) made from now on default to Sans
        # instead of Helvetica, one of the 14 standard fonts that are never embedded
        # (pdffonts would list it; PDF/A forbids it). Canvas(initialFontName="Sans")
        # says the same explicitly.
        pdfmetrics.registerFontFamily("Sans", normal="Sans", bold="Sans-Bold",
                                      italic="Sans", boldItalic="Sans-Bold",
                                      baseFontFor="canvas graphics")
        pdfmetrics.registerFontFamily("Mono", normal="Mono", bold="Mono-Bold",
                                      italic="Mono", boldItalic="Mono-Bold")
        _coverage.update(coverage)  # last: it is the "registered" flag read unlocked


def _load(f: FontFile) -> ShapingFont:
    font = ShapingFont(f.name, str(f.path))
    pdfmetrics.registerFont(font)
    _fonts[f.name] = font
    return font


def font(name: str) -> ShapingFont:
    """The registered ReportLab font behind a logical name (registering if needed)."""
    hit = _fonts.get(name)
    if hit is not None:
        return hit
    register()
    with _lock:
        return _fonts.get(name) or _load(next(f for f in FILES if f.name == name))


def coverage(name: str) -> frozenset[str]:
    """Characters the font ``name`` has a glyph for (from its cmap)."""
    register()
    return _coverage[name]


def chain(family: str = "Sans", bold: bool = False) -> tuple[str, ...]:
    """Fallback order of font names for ``family`` ("Sans" or "Mono") and weight."""
    return FAMILIES[family, bold]


def font_for(char: str, family: str = "Sans", bold: bool = False) -> str | None:
    """First font of the family's chain that has ``char``; None if no font has it."""
    register()
    for name in FAMILIES[family, bold]:
        if char in _coverage[name]:
            return name
    return None


def invisible(char: str) -> bool:
    """True for format characters that are never drawn (bidi marks, soft hyphen, ...)."""
    return char in _INVISIBLE


def covers(text: str, font: str) -> bool:
    """True if the single font ``font`` (a logical name) has a glyph for every character.

    Invisible format characters (see :func:`invisible`) count as covered.
    """
    cov = coverage(font)
    return all(c in cov or c in _INVISIBLE for c in text)


def missing_glyphs(text: str, families: Iterable[str] = ("Sans",)) -> set[str]:
    """Characters of ``text`` that would print as a blank box.

    A character is missing when no font of the family chain has it, in the regular or
    the bold weight (labels may be bold, so both must cover). Line breaks and invisible
    format characters are not drawn and never missing.
    """
    register()
    out = set()
    for c in set(text):
        if c in _INVISIBLE or c in "\n\r\t":
            continue
        for family in families:
            for bold in (False, True):
                if not any(c in _coverage[n] for n in FAMILIES[family, bold]):
                    out.add(c)
    return out


def describe(chars: Iterable[str]) -> list[str]:
    """``U+XXXX NAME`` for each character: readable test failure messages."""
    return [f"U+{ord(c):04X} {unicodedata.name(c, '?')}" for c in sorted(chars)]
