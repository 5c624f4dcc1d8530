"""The ReportLab internals the renderer relies on: all of them, and only here.

ReportLab's public drawing API sets up a text object, a font and an escape for every
string; the call-details annex writes up to 100,000 rows, and shaped Persian needs
glyphs that have no code point. So a few internals are used, each wrapped below with
what it is for. Nothing else in the renderer touches a ReportLab name that starts with an
underscore or a private attribute.

What is relied on (ReportLab 5.1; ``tests/renderer/test_reportlab.py`` exercises each one
against the installed version and names the function here that breaks):

==============================================  =========================================
internal                                        used by
==============================================  =========================================
``Canvas._doc`` (the ``PDFDocument``)           font subsets are per document
``Canvas._code`` (the page's operator list)     writing prepared text operators
``TTFont.splitString(text, doc)``,              encoding a string for a document's
``TTFont.getSubsetInternalName(n, doc)``        font subsets
``TTFont.state[doc].subsets``                   rewriting a subset's ``ToUnicode``
``TTFont.face``: ``charToGlyph``,               private codes for shaped glyphs;
``charWidths``, ``getCharWidth``,               line metrics (ascent, descent)
``unitsPerEm``, ``ascent``, ``descent``
``PDFDocument.idToObject``, font ``ToUnicode``  rewriting a subset's ``ToUnicode``
and ``BaseFont``, a stream's ``content``
``PDFDocument.Pages.pages[-1]``: ``stream``,    deflating each page as it is finished
``compression``, ``Contents``
``ShapedStr``, ``ShapeData`` (pdfbase.ttfonts)  pre-shaped glyph runs with positions
``lib.rl_accel.escapePDF``                      escaping a PDF string
``PDFDocument._pdfVersion``, ``._ID``           PDF/A-3: version 1.7, a fixed file ID
``TTFont._asciiReadable``, ``TTFont.State``,    printable ASCII as its own encoding
``TTFont.state``                                (``ascii_prefix``)
``TTFontFace.makeSubset``, ``ttfonts.SUBSETN``,  font subsets written as ReportLab does,
``makeToUnicodeCMap``, ``FF_SYMBOLIC``,         cached (``add_font_objects``)
``FF_NONSYMBOLIC``, ``PDFTrueTypeFont``
``Canvas._extgstate``, ``._enforceColorSpace``, cached fill colours (``fill_color``,
``._fillColorObj``                              ``append_in_color``)
a page's ``Canvas._code`` entries joined by     several operators in one entry
newlines into its stream (``showPage``)         (``append_in_color``)
``PDFDocument.encrypt``, ``pdfdoc.NoEncryption`` objects formatted once a process
                                                (``constant``, ``template``, font
                                                streams, page streams) only unencrypted
``PDFPage``: ``check_format`` and ``format``   a finished page's dictionary from a
of a plain page, ``__NoDefault__``,             template (``_FinishedPage``)
``PDFResourceDictionary``, ``pdfdoc.BasicFonts``
``TTFontFace``: ``_ttf_data``, ``glyphPos``,    font programs built as ``makeSubset``
``hmetrics``, ``get_table``,                    builds them, from parts read once a
``get_table_pos``; ``ttfonts.TTFontMaker``,     process (``subset_program``)
``GF_*`` component flags
``PDFArray.format``'s layout without           a subset's ``Widths`` written without a
``rl_config.pdfMultiLine``                      call per number (``_widths_array``)
``Canvas._setXObjects``, ``pdfdoc._digester``,  images decoded once a process
``PDFImageXObject._smask``, ``.smask``,         (``draw_image``)
``PDFDocument.Reference/addForm/getXObjectName``
==============================================  =========================================

:func:`verify` checks that each of these still exists (cheap; run once when the fonts
are registered), so a ReportLab upgrade that removes one fails at start-up with this
module's name in the message, never half-way through a bill run.
"""

from __future__ import annotations

import contextlib
import copy
import io
import os
import re
import struct
import zlib
from collections.abc import Callable

import reportlab
from reportlab import rl_config
from reportlab.lib.colors import Color
from reportlab.lib.rl_accel import escapePDF
from reportlab.pdfbase import pdfdoc, ttfonts
from reportlab.pdfbase.pdfdoc import (
    PDFArray,
    PDFDictionary,
    PDFName,
    PDFObject,
    PDFObjectReference,
    PDFStream,
)
from reportlab.pdfbase.ttfonts import ShapeData, ShapedStr, TTFont
from reportlab.pdfgen.canvas import Canvas

__all__ = [
    "ReportLabChanged",
    "ShapeData",
    "ShapedStr",
    "add_font_objects",
    "append",
    "append_in_color",
    "ascii_prefix",
    "compress_finished_page",
    "constant",
    "document",
    "draw_image",
    "escape_pdf",
    "fill_color",
    "glyph_code",
    "line_metrics",
    "nominal_cmap",
    "replace_to_unicode",
    "set_file_id",
    "set_pdf_version",
    "shape_data",
    "show_text",
    "subsets",
    "template",
    "verify",
]


class ReportLabChanged(RuntimeError):
    """The installed ReportLab no longer has an internal this module relies on."""

    def __init__(self, what: str) -> None:
        super().__init__(
            f"ReportLab {reportlab.Version} changed an internal the invoice renderer relies "
            f"on: {what}. Adapt invoicer/renderer/_reportlab.py (and run "
            "tests/renderer/test_reportlab.py), or pin ReportLab to the last version that "
            "passes it.")


# --- the canvas ------------------------------------------------------------------------


def document(canvas: Canvas) -> pdfdoc.PDFDocument:
    """The document a canvas writes to: fonts subset and encode per document."""
    return canvas._doc


def append(canvas: Canvas, code: str) -> None:
    """Append ready PDF operators to the current page (what ``addLiteral`` does, without
    its per-call ``str()`` and attribute look-ups, for the annex's thousands of rows)."""
    canvas._code.append(code)


def compress_finished_page(canvas: Canvas) -> None:
    """Deflate the page just finished (after ``showPage``) instead of at ``save()``.

    ReportLab keeps every page's content stream as text until the document is saved;
    for a 1,500-page call-details annex that is ~35 MB held only to be compressed at
    the end. The stream is marked with its filter so ReportLab does not deflate it again.
    """
    page = canvas._doc.Pages.pages[-1]
    if page.stream and page.compression:
        page.Contents = _PageStream(PDFDictionary({"Filter": PDFName("FlateDecode")}),
                                    zlib.compress(page.stream.encode("latin-1")))
        page.Contents.__Comment__ = "page stream"
        page.stream = None
        if type(page) is pdfdoc.PDFPage:
            page.__class__ = _FinishedPage  # a subclass that only formats faster


class _FinishedPage(pdfdoc.PDFPage):
    """A page whose stream :func:`compress_finished_page` deflated: its dictionary is
    formatted from a template made by ReportLab once a process per page size, rotation
    and procedure set, with holes for the three objects it refers to (its stream, the
    page tree, the fonts). Anything else on a page (images, annotations, transparency,
    boxes...) takes ``PDFPage.format``."""

    def format(self, document) -> bytes:
        if (self.Override_default_compilation or self.MediaBox is not None
                or self.Resources is not None or self.Parent is not None
                or self.Contents is None or self.Annots or self.XObjects
                or getattr(self, "ExtGState", None) or self._colorsUsed or self._shadingUsed
                or type(self.Trans) is not PDFDictionary or self.Trans.dict
                or not isinstance(document.encrypt, pdfdoc.NoEncryption)
                or "Type" in self.__dict__
                or any(getattr(self, name) is not None for name in _PAGE_UNSET)):
            return super().format(document)
        # what check_format and PDFCatalog.format register, in their order
        self.Parent = document.Reference(document.Pages)
        contents = document.Reference(self.Contents)
        key = ("page", self.pagewidth, self.pageheight, self.Rotate, bool(self.hasImages))
        return template(key, lambda holes: _page_dictionary(holes, key),
                        [contents, self.Parent, PDFObjectReference(pdfdoc.BasicFonts)],
                        document).format(document)


#: PDFPage.__NoDefault__ entries a finished page leaves unset (``Trans`` and
#: ``Rotate`` are always set by ``showPage``; the others are checked above).
_PAGE_UNSET = tuple(sorted(
    set(pdfdoc.PDFPage.__NoDefault__)
    - {"Parent", "MediaBox", "Resources", "Contents", "Rotate", "Trans", "Annots"}))


def _page_dictionary(holes: list[PDFObject], key: tuple) -> PDFDictionary:
    """What ``PDFPage.check_format`` and ``format`` write for a plain page."""
    _, width, height, rotate, images = key
    resources = pdfdoc.PDFResourceDictionary()
    resources.Font = holes[2]
    if images:
        resources.allProcs()
    else:
        resources.basicProcs()
    return PDFDictionary({
        "Type": PDFName("Page"), "Contents": holes[0], "Parent": holes[1],
        "MediaBox": PDFArray([0, 0, height, width] if rotate in (90, 270)
                             else [0, 0, width, height]),
        "Resources": resources, "Rotate": rotate, "Trans": PDFDictionary({}),
    })


class _PageStream(PDFStream):
    """A finished page's deflated stream that lets go of its bytes once written out.

    ReportLab formats a document once (a second ``save`` raises) and collects every
    object's bytes before joining them; a page stream still held while its bytes sit in
    that collection is a second copy of every page (~5 MB for 100,000 calls). A second
    ``format`` fails loudly in ReportLab ("stream content not set"), never silently.
    """

    def format(self, document) -> bytes:
        content = self.content
        if (content is not None and isinstance(document.encrypt, pdfdoc.NoEncryption)
                and len(self.dictionary.dict) == 1):
            # PDFStream.format of a /FlateDecode stream, without its dictionary copies
            data = b"<<\n/Filter /FlateDecode /Length %d\n>>\nstream\n%sendstream\n" % (
                len(content), content)
        else:
            data = super().format(document)
        self.content = None
        return data


class Output:
    """Where a canvas saves its PDF (``Canvas(Output(), ...)``, then :meth:`getvalue`).

    ReportLab writes the finished document in one ``write``; a ``BytesIO`` would copy
    those bytes into its own buffer, and the copy is the render's peak memory for a large
    annex. This keeps the bytes ReportLab made.
    """

    def __init__(self) -> None:
        self._parts: list[bytes] = []

    def write(self, data: bytes) -> int:
        self._parts.append(bytes(data))  # no copy for bytes
        return len(data)

    def getvalue(self) -> bytes:
        """The PDF's bytes (joined only if ReportLab ever writes in pieces)."""
        if len(self._parts) != 1:
            self._parts = [b"".join(self._parts)]
        return self._parts[0]


def set_pdf_version(doc: pdfdoc.PDFDocument, version: tuple[int, int]) -> None:
    """Raise the header's PDF version to at least ``version`` (ReportLab has no setter)."""
    doc._pdfVersion = max(doc._pdfVersion, version)


def set_file_id(doc: pdfdoc.PDFDocument, file_id: bytes) -> None:
    """Write the trailer's ``/ID`` as two copies of ``file_id`` (16 bytes). ReportLab's
    invariant mode makes one from the content; PDF/A wants it to name the document,
    the same for every render of the same invoice."""
    doc._ID = b"\n[<%s><%s>]\n" % ((file_id.hex().upper().encode(),) * 2)


# --- TrueType fonts --------------------------------------------------------------------


#: Escapes a PDF string's parentheses and backslashes (ReportLab's C accelerator).
escape_pdf = escapePDF


def show_text(font: TTFont, text: str, size: float, doc: pdfdoc.PDFDocument) -> str:
    """``/F1+0 7 Tf (...) Tj`` operators showing ``text`` in ``font`` (no position).

    What ReportLab's text object writes for one TrueType string, without its per-call
    set-up. The glyphs are assigned to the document's subsets as a side effect.
    """
    prefix = ascii_prefix(font, size, doc) if text.isascii() and text.isprintable() else None
    if prefix is not None:
        return f"{prefix}{escapePDF(text)}) Tj"
    return " ".join(
        f"{font.getSubsetInternalName(n, doc)} {size:g} Tf ({escapePDF(chunk)}) Tj"
        for n, chunk in font.splitString(text, doc))


_ascii_identity: dict[str, bool] = {}


def ascii_prefix(font: TTFont, size: float, doc: pdfdoc.PDFDocument) -> str | None:
    """``/F1+0 7 Tf (`` when printable ASCII text in ``font`` is its own encoding in
    ``doc``, else None.

    With ReportLab's ``ttfAsciiReadable`` (the default) a font's first subset maps
    U+0020..U+007E to the same byte codes in every document, fixed when the document's
    subset state is made: ``splitString`` of such text is then the text itself, in
    subset 0. Skipping its per-character loop halves the cost of a unique cell (a time,
    a called number). None until the document's state exists (the first string of a
    font takes the ordinary path, which makes it), so fonts are still registered with
    the document in the order they are first drawn.
    """
    identity = _ascii_identity.get(font.fontName)
    if identity is None:
        face = font.face
        identity = _ascii_identity[font.fontName] = bool(
            font._asciiReadable and not getattr(face, "_full_font", None)
            and all(c in face.charToGlyph for c in range(32, 127)))
    if not identity or doc not in font.state:
        return None
    return f"{font.getSubsetInternalName(0, doc)} {size:g} Tf ("


def fill_color(canvas: Canvas, color) -> None:
    """``canvas.setFillColor(color)`` for an opaque RGB colour, with its operator cached.

    Writes what ReportLab writes (``r g b rg``; an alpha of 1 is the graphics state's
    default and writes nothing) without its type dispatch and alpha bookkeeping, which
    cost more than the text drawn in that colour. Anything else goes to ReportLab.
    """
    hit = _fill_codes.get(id(color))
    if (hit is None or hit[0] is not color or canvas._enforceColorSpace is not None
            or canvas._extgstate._d.get("ca", 1) != 1):
        canvas.setFillColor(color)
        if (hit is None and type(color) is Color and color.alpha in (None, 1)
                and len(_fill_codes) < 256):
            # keyed by identity (the entry keeps the colour alive, so its id stays its
            # own): brand colours are a handful of long-lived objects
            _fill_codes[id(color)] = (color, canvas._code[-1])
        return
    canvas._code.append(hit[1])
    canvas._fillColorObj = color


_fill_codes: dict[int, tuple[Color, str]] = {}


def append_in_color(canvas: Canvas, color, code: str, reset) -> None:
    """``fill_color(color)``, ``append(code)``, ``fill_color(reset)`` in one call: for a
    label drawn in its own colour on a page whose text colour is ``reset``.

    With both colours' operators cached, the three are one entry of the page's operator
    list, joined by newlines: ReportLab joins a page's entries with newlines, so the
    stream is the same bytes, and the last entry ends as the reset's own would.
    """
    hit, back = _fill_codes.get(id(color)), _fill_codes.get(id(reset))
    if (hit is None or hit[0] is not color or back is None or back[0] is not reset
            or canvas._enforceColorSpace is not None
            or canvas._extgstate._d.get("ca", 1) != 1):
        fill_color(canvas, color)
        canvas._code.append(code)
        fill_color(canvas, reset)
        return
    canvas._code.append(f"{hit[1]}\n{code}\n{back[1]}")
    canvas._fillColorObj = reset


class _Formatted(PDFObject):
    """A PDF object whose bytes were formatted before (the same in every document)."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    def format(self, document) -> bytes:
        return self.data


class _Hole(PDFObject):
    """Where a reference goes in a template (see :func:`_templated`)."""

    def __init__(self, n: int) -> None:
        self.n = n

    def format(self, document) -> bytes:
        return b"\x00hole%d\x00" % self.n


_HOLES = re.compile(rb"\x00hole(\d+)\x00")


class _Template(PDFObject):
    """An object whose bytes are the same in every document but for the numbers of the
    objects it refers to: formatted once per process around holes for those references.
    A dictionary that holds it writes a reference to it, as ReportLab does for fonts."""

    __RefOnly__ = 1

    def __init__(self, parts: tuple[bytes, ...], refs: list[PDFObjectReference]) -> None:
        self.parts = parts
        self.refs = refs

    def format(self, document) -> bytes:
        parts = self.parts
        out = [parts[0]]
        for ref, part in zip(self.refs, parts[1:], strict=True):
            out += (ref.format(document), part)
        return b"".join(out)


_templates: dict[tuple, tuple[tuple[bytes, ...], tuple[int, ...]]] = {}


def template(key: tuple, make: Callable[[list[PDFObject]], PDFObject],
             refs: list[PDFObjectReference], doc: pdfdoc.PDFDocument) -> PDFObject:
    """An object that is the same in every document but for the objects it refers to
    (``refs``), formatted by ReportLab once a process for ``key``: ``make(holes)`` must
    build it with ``holes[i]`` where ``refs[i]`` belongs, and be the same for the same
    key. Register it with ``doc.Reference``; it formats as ``make(refs)`` would."""
    if not isinstance(doc.encrypt, pdfdoc.NoEncryption):
        return make(refs)
    return _templated(key, make, refs, doc)


_constants: dict[str, bytes] = {}


def constant(key: str, make: Callable[[], PDFObject], doc: pdfdoc.PDFDocument) -> PDFObject:
    """``make()``, an object without references that is the same in every document (the
    ICC profile's stream), formatted by ReportLab once a process. ``key`` names it in
    the code (a fixed set: the cache does not grow with the documents)."""
    if not isinstance(doc.encrypt, pdfdoc.NoEncryption):
        return make()
    data = _constants.get(key)
    if data is None:
        data = _constants[key] = make().format(doc)
    return _Formatted(data)


def _templated(key: tuple, make: Callable[[list[_Hole]], PDFObject],
               refs: list[PDFObjectReference], doc: pdfdoc.PDFDocument) -> _Template:
    """``make(holes)`` (an object with ``holes[i]`` where ``refs[i]`` belongs) as a
    :class:`_Template`, formatted on the first call for ``key`` only."""
    hit = _templates.get(key)
    if hit is None:
        pieces = _HOLES.split(make([_Hole(i) for i in range(len(refs))]).format(doc))
        hit = (tuple(pieces[0::2]), tuple(int(n) for n in pieces[1::2]))
        if len(_templates) >= 4 * _SUBSET_CACHE_MAX:
            _templates.clear()
        _templates[key] = hit
    parts, order = hit
    return _Template(parts, [refs[i] for i in order])


_SUBSET_CACHE_MAX = 256
_subset_cache: dict[tuple, tuple[bytes, bytes, bytes]] = {}


#: Each width's bytes as ``pdfdoc.format`` writes a number, per (type, value): a font's
#: advances are a few hundred distinct numbers, formatted once a process.
_width_bytes: dict[tuple[type, float], bytes] = {}


def _widths_array(widths: list[float], doc: pdfdoc.PDFDocument) -> bytes:
    """``PDFArray(widths).format(doc)``: a subset's ``Widths``, the same bytes without a
    ``format`` call per number (a new subset's 128 to 256 of them)."""
    if rl_config.pdfMultiLine or len(_width_bytes) >= 65_536:
        return PDFArray(widths).format(doc)
    items = []
    for w in widths:
        key = (type(w), w)
        b = _width_bytes.get(key)
        if b is None:
            b = _width_bytes[key] = pdfdoc.format(w, doc)
        items.append(b)
    # PDFArray.format without pdfMultiLine: a line break before every tenth number
    for i in reversed(range(10, len(items), 10)):
        items.insert(i, b"\n ")
    return b"[ " + b" ".join(items) + b" ]"


def add_font_objects(font: TTFont, doc: pdfdoc.PDFDocument) -> None:
    """What ``TTFont.addObjects`` writes (every subset: font dictionary, ``Widths``,
    ``ToUnicode`` CMap, font descriptor and font program), the same bytes, with the
    costly parts cached per process.

    A subset is a list of code points; its font program (``makeSubset``, then deflate),
    CMap and widths depend on that list only, and small invoices of one bill run share
    most of them (the first subset holds ASCII and the labels' letters). Building and
    deflating a subset is otherwise a fifth of a small invoice's cost. ReportLab's own
    ``addObjects`` is used whenever the document is not compressed.
    """
    if not doc.compression or not isinstance(doc.encrypt, pdfdoc.NoEncryption):
        TTFont.addObjects(font, doc)
        return
    state = font.state.get(doc)
    if state is None:
        state = font.state[doc] = TTFont.State(font._asciiReadable)
    state.frozen = 1
    face = font.face
    deflate = PDFArray([PDFName(pdfdoc.PDFZCompress.pdfname)])
    for n, subset in enumerate(state.subsets):
        internal_name = font.getSubsetInternalName(n, doc)[1:]
        base_font = b"".join((ttfonts.SUBSETN(n), b"+", face.name,
                              face.subfontNameX)).decode("pdfdoc")
        key = (face.filename, base_font, tuple(subset))
        hit = _subset_cache.get(key)
        if hit is None:
            # the two streams as PDFStream formats them (the same in every document)
            widths = _widths_array(list(map(face.getCharWidth, subset)), doc)
            cmap = zlib.compress(ttfonts.makeToUnicodeCMap(base_font, subset).encode("utf8"))
            program = subset_program(face, subset)
            hit = (widths, PDFStream(PDFDictionary({"Filter": deflate}), cmap).format(doc),
                   PDFStream(PDFDictionary({"Length1": len(program), "Filter": deflate}),
                             zlib.compress(program)).format(doc))
            if len(_subset_cache) >= _SUBSET_CACHE_MAX:
                _subset_cache.clear()
            _subset_cache[key] = hit
        widths, cmap, program = hit

        to_unicode = doc.Reference(_Formatted(cmap), "toUnicodeCMap:" + base_font)
        program_ref = doc.Reference(_Formatted(program),
                                    f"fontFile:{face.filename}({base_font})")

        def descriptor(holes, face=face, base_font=base_font):
            flags = (face.flags & ~ttfonts.FF_NONSYMBOLIC) | ttfonts.FF_SYMBOLIC
            return PDFDictionary({
                "Type": "/FontDescriptor", "Ascent": face.ascent,
                "CapHeight": face.capHeight, "Descent": face.descent, "Flags": flags,
                "FontBBox": PDFArray(face.bbox), "FontName": PDFName(base_font),
                "ItalicAngle": face.italicAngle, "StemV": face.stemV,
                "FontFile2": holes[0], "MissingWidth": face.defaultWidth,
            })

        descriptor_ref = doc.Reference(
            _templated(("descriptor", face.filename, base_font), descriptor, [program_ref],
                       doc),
            "fontDescriptor:" + base_font)

        last = len(subset) - 1

        def font_dict(holes, internal_name=internal_name, base_font=base_font, last=last,
                      widths=widths):
            pdf_font = pdfdoc.PDFTrueTypeFont()
            pdf_font.Name = internal_name
            pdf_font.BaseFont = base_font
            pdf_font.FirstChar = 0
            pdf_font.LastChar = last
            pdf_font.Widths = _Formatted(widths)
            pdf_font.ToUnicode, pdf_font.FontDescriptor = holes
            return pdf_font

        # The key holds the subset's key: the same subset under the same internal name
        # (fonts are numbered in the order a document first uses them).
        pdf_font = _templated(("font", internal_name, key), font_dict,
                              [to_unicode, descriptor_ref], doc)
        doc.Reference(pdf_font, internal_name)
        doc.idToObject["BasicFonts"].dict[internal_name] = pdf_font
    del font.state[doc]


class _FaceParts:
    """What ``TTFontFace.makeSubset`` reads from a face for every subset and is the same
    each time: the tables it copies, and each glyph's data with the places of its
    components' glyph numbers (a composite glyph's), read once a process."""

    def __init__(self, face: ttfonts.TTFontFace) -> None:
        self.copied = []
        for tag in ("name", "OS/2", "cvt ", "fpgm", "prep"):
            with contextlib.suppress(KeyError):  # optional (cvt, fpgm, prep)
                self.copied.append((tag, face.get_table(tag)))
        self.post = b"\x00\x03\x00\x00" + face.get_table("post")[4:16] + b"\x00" * 16
        self.hhea = face.get_table("hhea")
        self.maxp = face.get_table("maxp")
        self.head = face.get_table("head")
        self.glyf = face.get_table_pos("glyf")[0]
        #: glyph number -> (its bytes, ((offset of a component's number, number), ...));
        #: at most the font's glyphs
        self.glyphs: dict[int, tuple[bytes, tuple[tuple[int, int], ...]]] = {}

    def glyph(self, face: ttfonts.TTFontFace,
              gid: int) -> tuple[bytes, tuple[tuple[int, int], ...]]:
        hit = self.glyphs.get(gid)
        if hit is None:
            start = face.glyphPos[gid]
            length = face.glyphPos[gid + 1] - start
            data = face._ttf_data[self.glyf + start:self.glyf + start + length]
            components = []
            if length and struct.unpack_from(">h", data)[0] < 0:
                if length <= 2:
                    raise _OddGlyph(gid)  # makeSubset's two passes disagree on it
                at, flags = 10, ttfonts.GF_MORE_COMPONENTS
                while flags & ttfonts.GF_MORE_COMPONENTS:
                    flags, component = struct.unpack_from(">HH", data, at)
                    components.append((at + 2, component))
                    at += 8 if flags & ttfonts.GF_ARG_1_AND_2_ARE_WORDS else 6
                    if flags & ttfonts.GF_WE_HAVE_A_SCALE:
                        at += 2
                    elif flags & ttfonts.GF_WE_HAVE_AN_X_AND_Y_SCALE:
                        at += 4
                    elif flags & ttfonts.GF_WE_HAVE_A_TWO_BY_TWO:
                        at += 8
            hit = self.glyphs[gid] = (data, tuple(components))
        return hit


class _OddGlyph(Exception):
    pass


_face_parts: dict[ttfonts.TTFontFace, _FaceParts] = {}


def _set_ushort(table: bytes, offset: int, value: int) -> bytes:
    return table[:offset] + struct.pack(">H", value) + table[offset + 2:]


def subset_program(face: ttfonts.TTFontFace, subset: list[int]) -> bytes:
    """``face.makeSubset(subset)``: the same TrueType program, from tables and glyphs
    read once a process instead of for every subset (makeSubset copies the whole glyph
    table and reads each glyph through Python method calls: ~2.5 M instructions a
    subset). Anything this does not expect goes to ``makeSubset``."""
    parts = _face_parts.get(face)
    if parts is None:
        if len(_face_parts) >= 64:
            _face_parts.clear()
        parts = _face_parts[face] = _FaceParts(face)
    try:
        return _subset_program(face, parts, subset)
    except (_OddGlyph, struct.error, IndexError):
        return face.makeSubset(subset)


def _subset_program(face: ttfonts.TTFontFace, parts: _FaceParts, subset: list[int]) -> bytes:
    # Glyph numbers in the subset: 0 first, each code's glyph, then the components of
    # composite glyphs (makeSubset's order).
    glyph_map = [0]
    glyph_set = {0: 0}
    code_to_glyph = {}
    char_to_glyph = face.charToGlyph
    for code in subset:
        original = char_to_glyph.get(code, 0)
        if original not in glyph_set:
            glyph_set[original] = len(glyph_map)
            glyph_map.append(original)
        code_to_glyph[code] = glyph_set[original]
    glyphs = []
    n = 0
    while n < len(glyph_map):
        glyph = parts.glyph(face, glyph_map[n])
        glyphs.append(glyph)
        n += 1
        for _, component in glyph[1]:
            if component not in glyph_set:
                glyph_set[component] = len(glyph_map)
                glyph_map.append(component)

    output = ttfonts.TTFontMaker()
    for tag, table in parts.copied:
        output.add(tag, table)
    output.add("post", parts.post)
    count = len(glyph_map)

    hmetrics = face.hmetrics
    hmtx = []
    for original in glyph_map:
        aw, lsb = hmetrics[original]
        hmtx.append(int(aw))
        hmtx.append(int(lsb))
    n = len(hmtx) - 2  # where the run of equal advances at the end starts
    while n and hmtx[n] == hmtx[n - 2]:
        n -= 2
    n += 2
    hmtx = hmtx[:n] + hmtx[n + 1::2]
    output.add("hmtx", struct.pack(f">{len(hmtx)}H", *hmtx))
    output.add("hhea", _set_ushort(parts.hhea, 34, n >> 1))
    output.add("maxp", _set_ushort(parts.maxp, 4, count))

    cmap = [0, 1, 1, 0, 0, 12, 6, 10 + len(subset) * 2, 0, 0, len(subset),
            *map(code_to_glyph.get, subset)]
    output.add("cmap", struct.pack(f">{len(cmap)}H", *cmap))

    offsets = []
    glyf = []
    pos = 0
    for data, components in glyphs:
        offsets.append(pos)
        if components:
            patched = bytearray(data)
            for at, component in components:
                struct.pack_into(">H", patched, at, glyph_set[component])
            data = bytes(patched)
        glyf.append(data)
        pos += len(data)
        if pos % 4:
            glyf.append(b"\0" * (4 - pos % 4))
            pos += 4 - pos % 4
    offsets.append(pos)
    output.add("glyf", b"".join(glyf))
    if (pos + 1) >> 1 > 0xFFFF:
        index_format = 1
        output.add("loca", struct.pack(f">{len(offsets)}L", *offsets))
    else:
        index_format = 0
        output.add("loca", struct.pack(f">{len(offsets)}H",
                                       *[o >> 1 for o in offsets]))
    output.add("head", _set_ushort(parts.head, 50, index_format))
    return output.makeStream()


def subsets(font: TTFont, doc: pdfdoc.PDFDocument) -> list[tuple[str, list[int]]] | None:
    """``(object name, code points)`` of each subset ``font`` has in ``doc``; None if
    the font is not used there. Read before ``addObjects`` embeds the subsets."""
    state = font.state.get(doc)
    if state is None:
        return None
    return [(font.getSubsetInternalName(n, doc)[1:], list(codes))
            for n, codes in enumerate(state.subsets)]


def replace_to_unicode(doc: pdfdoc.PDFDocument, name: str,
                       make: Callable[[str], str]) -> None:
    """Replace the ``ToUnicode`` CMap of the embedded subset ``name`` (after
    ``addObjects``); ``make`` gets the subset's ``BaseFont`` and returns the CMap text."""
    font_obj = doc.idToObject[name]
    cmap = doc.idToObject[font_obj.ToUnicode.name]
    cmap.content = make(font_obj.BaseFont)


def nominal_cmap(font: TTFont) -> dict[int, int]:
    """A copy of the font's own character-to-glyph map (before any private code)."""
    return dict(font.face.charToGlyph)


def nominal_width(font: TTFont, code: int) -> float:
    """Advance of code point ``code`` in 1/1000 em, or -1 if the font has none."""
    return font.face.charWidths.get(code, -1)


def glyph_code(font: TTFont, code: int, gid: int, advance: float) -> None:
    """Make code point ``code`` draw glyph ``gid`` with ``advance`` (1/1000 em) in every
    document that uses ``font``: how a shaped glyph without a code point gets one."""
    font.face.charToGlyph[code] = gid
    font.face.charWidths[code] = advance


def char_width(font: TTFont, code: int) -> float:
    """The ``Widths`` entry ReportLab writes for ``code`` (1/1000 em)."""
    return font.face.getCharWidth(code)


def units_per_em(font: TTFont) -> int:
    return font.face.unitsPerEm


def line_metrics(font: TTFont) -> tuple[float, float]:
    """``(ascent, descent)`` in 1/1000 em as written to the PDF font descriptor.

    PDF readers, poppler's text boxes included, take a line's height from these.
    """
    return float(font.face.ascent), float(font.face.descent)


def shape_data(cluster: int, x_advance: float, y_advance: float, x_offset: float,
               y_offset: float, width: float) -> ShapeData:
    """One glyph's position for a :class:`ShapedStr` (1/1000 em)."""
    return ShapeData(cluster, x_advance, y_advance, x_offset, y_offset, width)


# --- images ----------------------------------------------------------------------------


#: Image XObjects made from files, ready to copy into a document: ``(path, mask)`` ->
#: ``(mtime_ns, size, image, soft mask or None)``. A brand's logo is the same file on
#: every invoice of the operator, and ReportLab decodes, converts and deflates it anew
#: for every document (8 ms CPU for a 680x240 RGBA PNG: more than rendering a 20-call
#: invoice). Kept per process, checked against the file's mtime and size on each use.
_IMAGES: dict[tuple[str, str], tuple[int, int, pdfdoc.PDFImageXObject,
                                     pdfdoc.PDFImageXObject | None]] = {}
_IMAGES_MAX = 64


def _image_objects(path: str, mask: str | None
                   ) -> tuple[pdfdoc.PDFImageXObject, pdfdoc.PDFImageXObject | None]:
    stat = os.stat(path)
    key = (path, str(mask))
    cached = _IMAGES.get(key)
    if cached is not None and cached[:2] == (stat.st_mtime_ns, stat.st_size):
        return cached[2], cached[3]
    # What ``Canvas.drawImage`` makes for a file name (and names it by), built once.
    name = pdfdoc._digester(f"{path}{mask}".encode())
    image = pdfdoc.PDFImageXObject(name, path, mask=mask)
    image.name = name
    smask = image.__dict__.pop("_smask", None)
    if len(_IMAGES) >= _IMAGES_MAX:
        _IMAGES.clear()
    _IMAGES[key] = (stat.st_mtime_ns, stat.st_size, image, smask)
    return image, smask


def draw_image(canvas: Canvas, path: str, x: float, y: float, width: float, height: float,
               *, anchor: str, mask: str | None = "auto") -> None:
    """``canvas.drawImage(path, ...)`` with the file's image objects made once a process.

    The decoded, deflated image (and its soft mask, for a PNG with alpha) is registered
    in the canvas's document under the name ``drawImage`` gives it, as ``drawImage``
    would register it; ``drawImage`` then finds it there and only draws. The bytes are
    those ``drawImage`` writes alone (``tests/renderer/test_reportlab.py``).
    """
    image, smask = _image_objects(path, mask)
    doc = canvas._doc
    ref_name = doc.getXObjectName(image.name)
    if doc.idToObject.get(ref_name) is None:
        # Copies: registering sets the object's name in this document on it.
        mine = copy.copy(image)
        canvas._setXObjects(mine)
        doc.Reference(mine, ref_name)
        doc.addForm(image.name, mine)
        if smask is not None:
            mask_name = doc.getXObjectName(smask.name)
            if doc.idToObject.get(mask_name) is None:
                theirs = copy.copy(smask)
                canvas._setXObjects(theirs)
                mine.smask = doc.Reference(theirs, mask_name)
            else:
                mine.smask = PDFObjectReference(mask_name)
    canvas.drawImage(path, x, y, width, height, preserveAspectRatio=True, anchor=anchor,
                     mask=mask)


# --- start-up check --------------------------------------------------------------------

_verified = False


def _probes() -> dict[str, Callable[[], bool]]:
    probe = Canvas(io.BytesIO())
    return {
        "Canvas._doc (the PDFDocument)":
            lambda: isinstance(probe._doc, pdfdoc.PDFDocument),
        "Canvas._code (the page's list of operator strings)":
            lambda: isinstance(probe._code, list),
        "PDFDocument.Pages.pages": lambda: isinstance(probe._doc.Pages.pages, list),
        "PDFDocument.idToObject": lambda: isinstance(probe._doc.idToObject, dict),
        "PDFPage.__NoDefault__ / Override_default_compilation, PDFResourceDictionary "
        "(allProcs, basicProcs), pdfdoc.BasicFonts": lambda: all(
            n in pdfdoc.PDFPage.__NoDefault__
            for n in ("Parent", "MediaBox", "Resources", "Contents", "Rotate", "Trans",
                      "Annots"))
            and hasattr(pdfdoc.PDFPage, "Override_default_compilation")
            and callable(getattr(pdfdoc.PDFResourceDictionary, "allProcs", None))
            and callable(getattr(pdfdoc.PDFResourceDictionary, "basicProcs", None))
            and pdfdoc.BasicFonts == "BasicFonts",
        "TTFontMaker, GF_MORE_COMPONENTS / GF_ARG_1_AND_2_ARE_WORDS / GF_WE_HAVE_A_SCALE "
        "/ GF_WE_HAVE_AN_X_AND_Y_SCALE / GF_WE_HAVE_A_TWO_BY_TWO, TTFontFace.get_table / "
        "get_table_pos": lambda: callable(getattr(ttfonts, "TTFontMaker", None))
            and all(isinstance(getattr(ttfonts, n, None), int) for n in (
                "GF_MORE_COMPONENTS", "GF_ARG_1_AND_2_ARE_WORDS", "GF_WE_HAVE_A_SCALE",
                "GF_WE_HAVE_AN_X_AND_Y_SCALE", "GF_WE_HAVE_A_TWO_BY_TWO"))
            and all(callable(getattr(ttfonts.TTFontFace, n, None))
                    for n in ("get_table", "get_table_pos")),
        "PDFDocument.encrypt, pdfdoc.NoEncryption": lambda: isinstance(
            probe._doc.encrypt, pdfdoc.NoEncryption),
        "PDFDocument._pdfVersion (a tuple) and _ID": lambda: isinstance(
            probe._doc._pdfVersion, tuple) and hasattr(probe._doc, "_ID"),
        "TTFont.splitString / getSubsetInternalName / addObjects": lambda: all(
            callable(getattr(TTFont, n, None))
            for n in ("splitString", "getSubsetInternalName", "addObjects")),
        "TTFont.State (per-document subsets)": lambda: hasattr(TTFont, "State"),
        "ShapeData(cluster, x_advance, y_advance, x_offset, y_offset, width)":
            lambda: ShapeData(1, 2.0, 3.0, 4.0, 5.0, 6.0).x_offset == 4.0,
        "TTFontFace.makeSubset, ttfonts.SUBSETN / makeToUnicodeCMap / FF_SYMBOLIC / "
        "FF_NONSYMBOLIC, pdfdoc.PDFTrueTypeFont":
            lambda: all(
                hasattr(ttfonts, n) for n in ("TTFontFace", "SUBSETN", "makeToUnicodeCMap",
                                              "FF_SYMBOLIC", "FF_NONSYMBOLIC"))
            and callable(getattr(ttfonts.TTFontFace, "makeSubset", None))
            and hasattr(pdfdoc, "PDFTrueTypeFont"),
        "Canvas._extgstate._d, ._enforceColorSpace, ._fillColorObj": lambda: isinstance(
            probe._extgstate._d, dict) and hasattr(probe, "_enforceColorSpace")
            and hasattr(probe, "_fillColorObj"),
        "a page's Canvas._code entries joined by newlines (showPage, PDFPage.setStream)":
            _code_joined_by_newlines,
        "Canvas._setXObjects, pdfdoc._digester, PDFDocument.Reference / addForm / "
        "getXObjectName, PDFImageXObject":
            lambda: callable(getattr(probe, "_setXObjects", None))
            and callable(getattr(pdfdoc, "_digester", None))
            and all(callable(getattr(probe._doc, n, None))
                    for n in ("Reference", "addForm", "getXObjectName"))
            and hasattr(pdfdoc, "PDFImageXObject"),
        "ShapedStr(text, shape data)":
            lambda: ShapedStr("x", [ShapeData(0, 1.0, 0.0, 0.0, 0.0, 1.0)]) == "x",
    }


def _code_joined_by_newlines() -> bool:
    canvas = Canvas(io.BytesIO(), pageCompression=0)
    canvas._code[:] = ["0 g", "1 g"]
    canvas.showPage()
    return "\n0 g\n1 g\n" in canvas._doc.Pages.pages[-1].stream


def verify() -> None:
    """Raise :class:`ReportLabChanged` if an internal listed above is gone (cheap, once)."""
    global _verified
    if _verified:
        return
    for what, probe in _probes().items():
        try:
            ok = probe()
        except Exception as exc:  # any failure means the internal moved
            raise ReportLabChanged(f"{what} ({type(exc).__name__}: {exc})") from exc
        if not ok:
            raise ReportLabChanged(what)
    _verified = True


def verify_font(font: TTFont) -> None:
    """Check the per-instance internals of a TrueType font once it is loaded."""
    face = getattr(font, "face", None)
    for name in ("charToGlyph", "charWidths", "getCharWidth", "unitsPerEm", "ascent",
                 "descent", "_ttf_data", "glyphPos", "hmetrics"):
        if not hasattr(face, name):
            raise ReportLabChanged(f"TTFont.face.{name}")
    if not isinstance(getattr(font, "_asciiReadable", None), int):
        raise ReportLabChanged("TTFont._asciiReadable")
    if not callable(getattr(getattr(font, "state", None), "get", None)):
        raise ReportLabChanged("TTFont.state (a mapping of document to subset state)")
