"""The ReportLab internals the renderer relies on (``renderer/_reportlab.py``), each
checked against the installed ReportLab by what it must produce.

This test stands in for an upper version pin: a ReportLab release that changes one of
these fails here, naming the function, before any invoice is rendered with it.
"""

from __future__ import annotations

import io
import subprocess

import pikepdf
import pytest
import reportlab
from reportlab.pdfgen.canvas import Canvas

from invoicer.renderer import _reportlab, fonts, text
from tests.renderer.conftest import pdftotext


def _canvas() -> tuple[Canvas, io.BytesIO]:
    fonts.register()
    buffer = io.BytesIO()
    return Canvas(buffer, pageCompression=1, invariant=1), buffer


def test_every_internal_is_where_the_renderer_expects_it():
    _reportlab._verified = False
    _reportlab.verify()
    fonts.register()
    for f in fonts.FILES:
        _reportlab.verify_font(fonts.font(f.name))


def test_a_missing_internal_fails_with_a_message_naming_version_and_module(monkeypatch):
    monkeypatch.setattr(_reportlab, "_verified", False)
    monkeypatch.setattr(_reportlab, "_probes", lambda: {"Canvas._code": lambda: False})
    with pytest.raises(_reportlab.ReportLabChanged) as caught:
        _reportlab.verify()
    message = str(caught.value)
    assert reportlab.Version in message and "Canvas._code" in message
    assert "renderer/_reportlab.py" in message


def test_show_text_and_append_write_extractable_text_in_the_documents_subsets():
    canvas, buffer = _canvas()
    doc = _reportlab.document(canvas)
    ops = _reportlab.show_text(fonts.font("Sans"), "Ligações São Paulo 12,50", 9, doc)
    assert ops.endswith("Tj") and " 9 Tf " in f" {ops}"
    _reportlab.append(canvas, f"BT 1 0 0 1 72 700 Tm {ops} ET")
    canvas.showPage()
    canvas.save()
    assert "Ligações São Paulo 12,50" in pdftotext(buffer.getvalue())


def test_the_ascii_shortcut_writes_what_reportlab_splitstring_writes():
    """show_text skips splitString for printable ASCII; the operators must be the same
    ReportLab itself would write, in the same document, before and after other text
    took subset codes (an ASCII letter never moves)."""
    canvas, _ = _canvas()
    doc = _reportlab.document(canvas)
    font = fonts.font("Sans")

    def reportlab_ops(value: str) -> str:
        return " ".join(f"{font.getSubsetInternalName(n, doc)} 7 Tf "
                        f"({_reportlab.escape_pdf(chunk)}) Tj"
                        for n, chunk in font.splitString(value, doc))

    assert _reportlab.ascii_prefix(font, 7, doc) is None  # no state yet: ReportLab's path
    samples = ["12:04:59", "+40 721 000 111", "a(b)\\c ~", "Brașov", "€ 1.234,50", " "]
    for value in samples:
        assert _reportlab.show_text(font, value, 7, doc) == reportlab_ops(value), value
    assert _reportlab.ascii_prefix(font, 7, doc) is not None
    for value in ["Ünïcödé — " * 30, *samples]:  # past a subset's 256 codes
        assert _reportlab.show_text(font, value, 7, doc) == reportlab_ops(value), value


def test_cached_font_objects_are_the_bytes_reportlab_writes(monkeypatch):
    """add_font_objects (subset programs, widths and CMaps cached per process) writes
    byte for byte what TTFont.addObjects writes, on a miss and on a hit, with a second
    subset in use."""

    def pdf() -> bytes:
        canvas, buffer = _canvas()
        text.draw(canvas, 72, 700, "Factură Brașov — 12:04:59 € (x)", 9)
        text.draw(canvas, 72, 680, "Счёт Ünïcödé " + "".join(map(chr, range(0x100, 0x1C0))),
                  9, bold=True)
        canvas.showPage()
        canvas.save()
        return buffer.getvalue()

    _reportlab._subset_cache.clear()
    cached_miss, cached_hit = pdf(), pdf()
    assert len(_reportlab._subset_cache) >= 3  # two fonts, the bold one in two subsets
    monkeypatch.setattr(_reportlab, "add_font_objects",
                        lambda font, doc: _reportlab.TTFont.addObjects(font, doc))
    assert cached_miss == cached_hit == pdf()


def test_subset_program_is_what_makesubset_makes():
    """Every font, subsets of every size (composite glyphs and their components, codes
    the font lacks): the font program is makeSubset's, byte for byte."""
    import random

    fonts.register()
    rng = random.Random(11)
    for f in fonts.FILES:
        face = fonts.font(f.name).face
        codes = sorted(face.charToGlyph)
        for trial in range(12):
            subset = [0, *rng.sample(codes, min(rng.choice((1, 7, 60, 128, 255)),
                                                len(codes)))]
            if trial % 4 == 0:
                subset.append(0x10FFFF)  # not in the font: glyph 0
            assert _reportlab.subset_program(face, subset) == face.makeSubset(subset), (
                f.name, trial)


def test_widths_array_is_what_pdfarray_formats():
    import random

    from reportlab.pdfbase.pdfdoc import PDFArray

    doc = _reportlab.document(_canvas()[0])
    rng = random.Random(7)
    for n in (0, 1, 9, 10, 11, 20, 21, 128, 256):
        widths = [rng.choice((0, 572, 1000, 260.5, 333.3333, -12, 600.0)) for _ in range(n)]
        assert _reportlab._widths_array(widths, doc) == PDFArray(widths).format(doc), n


def test_constant_and_template_objects_are_the_bytes_reportlab_writes():
    """Objects formatted once a process (the ICC stream, the output intent) write what
    ReportLab writes for them in each document, whatever the objects' numbers."""
    from reportlab.pdfbase.pdfdoc import PDFArray, PDFDictionary, PDFName, PDFStream

    def stream():
        return PDFStream(PDFDictionary({"N": 3, "Filter": PDFName("FlateDecode")}),
                         b"x" * 40)

    def intent(refs):
        return PDFDictionary({"Type": PDFName("OutputIntent"), "Profile": refs[0],
                              "Sizes": PDFArray([1, 2.5])})

    def pdf(cached: bool, extra: int) -> bytes:
        canvas, buffer = _canvas()
        doc = _reportlab.document(canvas)
        for i in range(extra):  # other objects first: other numbers
            doc.Reference(PDFDictionary({"N": i}))
        if cached:
            ref = doc.Reference(_reportlab.constant("test stream", stream, doc))
            obj = _reportlab.template(("test intent",), intent, [ref], doc)
        else:
            ref = doc.Reference(stream())
            obj = intent([ref])
        doc.Catalog.OpenAction = doc.Reference(obj)
        canvas.showPage()
        canvas.save()
        return buffer.getvalue()

    for extra in (0, 3, 12, 0):  # the first call of each formats, the others reuse
        assert pdf(True, extra) == pdf(False, extra), extra


def test_fill_color_writes_what_setfillcolor_writes():
    from reportlab.lib.colors import Color, HexColor

    colours = [HexColor("#1a4f8b"), Color(0.2, 0.4, 0.6), Color(0.1, 0.1, 0.1, alpha=0.5)]
    ours, theirs = _canvas()[0], _canvas()[0]
    for _ in range(2):  # the second round takes the cached operators
        for colour in colours + colours[:2]:
            _reportlab.fill_color(ours, colour)
            theirs.setFillColor(colour)
    assert ours._code == theirs._code
    assert ours._fillColorObj == theirs._fillColorObj


def test_append_in_color_writes_what_fill_color_append_fill_color_write():
    """One operator-list entry with the colour, the text and the reset joined by
    newlines: the same page stream as the three calls, cached colours or not."""
    from reportlab.lib.colors import Color, HexColor

    text_colour, label = HexColor("#222222"), HexColor("#1a4f8b")
    translucent = Color(0.1, 0.1, 0.1, alpha=0.5)

    def pdf(together: bool) -> bytes:
        canvas, buffer = _canvas()
        for round_ in range(2):  # the second round takes the cached operators
            for i, colour in enumerate((label, translucent, Color(0.3, 0.2, 0.1), label)):
                code = f"BT 1 0 0 1 72 {700 - 20 * i - 100 * round_} Tm ET"
                if together:
                    _reportlab.append_in_color(canvas, colour, code, text_colour)
                else:
                    _reportlab.fill_color(canvas, colour)
                    _reportlab.append(canvas, code)
                    _reportlab.fill_color(canvas, text_colour)
                assert canvas._fillColorObj is text_colour
        canvas.showPage()
        canvas.save()
        return buffer.getvalue()

    _reportlab._fill_codes.clear()
    assert pdf(True) == pdf(False) == pdf(True)


def test_subsets_and_to_unicode_rewrite_keep_shaped_persian_and_astral_text_searchable():
    canvas, buffer = _canvas()
    text.draw(canvas, 300, 700, "لطفاً مبلغ را پرداخت کنید", 12, align="right", rtl=True)
    text.draw(canvas, 72, 650, "clef 𝄞", 12)
    doc = _reportlab.document(canvas)
    arabic = _reportlab.subsets(fonts.font("Arabic"), doc)
    assert arabic and all(isinstance(name, str) and codes for name, codes in arabic)
    canvas.showPage()
    canvas.save()
    out = pdftotext(buffer.getvalue())
    assert "لطفاً مبلغ را پرداخت کنید" in out and "𝄞" in out


def test_finished_pages_are_deflated_once_and_the_file_is_valid(tmp_path):
    canvas, buffer = _canvas()
    for page in range(3):
        text.draw(canvas, 72, 700, f"page {page}", 12)
        canvas.showPage()
        _reportlab.compress_finished_page(canvas)
    canvas.save()
    path = tmp_path / "pages.pdf"
    path.write_bytes(buffer.getvalue())
    subprocess.run(["qpdf", "--check", str(path)], check=True, capture_output=True)
    with pikepdf.open(path) as pdf:
        for page in pdf.pages:
            assert page.Contents.get("/Filter") == "/FlateDecode"
    assert "page 2" in pdftotext(buffer.getvalue())


def test_finished_pages_write_the_dictionary_pdfpage_writes(monkeypatch, tmp_path):
    """A finished page's dictionary comes from a template (per size, rotation and
    procedure set); pages with anything else take PDFPage.format. Both write what
    ReportLab writes, in documents whose objects have other numbers."""
    from PIL import Image
    from reportlab.lib.colors import Color
    from reportlab.lib.pagesizes import A4, landscape, letter

    image = tmp_path / "dot.png"
    Image.new("RGB", (4, 4), (0, 90, 200)).save(image)

    def pdf() -> bytes:
        canvas, buffer = _canvas()
        for i, (size, rotate) in enumerate(((A4, 0), (letter, 0), (landscape(A4), 90),
                                            (A4, 270), (A4, 0), (A4, 0))):
            canvas.setPageSize(size)
            canvas.setPageRotation(rotate)
            text.draw(canvas, 72, 400, f"page {i}", 12, bold=i % 2 == 1)
            if i == 4:
                canvas.drawImage(str(image), 72, 72, 20, 20)  # XObject resources
            if i == 5:
                canvas.setFillColor(Color(0.2, 0.2, 0.2, alpha=0.5))  # ExtGState
                canvas.rect(72, 72, 20, 20, fill=1)
            canvas.showPage()
            _reportlab.compress_finished_page(canvas)
        canvas.save()
        return buffer.getvalue()

    ours, again = pdf(), pdf()
    monkeypatch.setattr(_reportlab._FinishedPage, "format",
                        _reportlab.pdfdoc.PDFPage.format)
    assert ours == again == pdf()


def test_saving_into_output_keeps_reportlabs_bytes_and_lets_go_of_the_pages():
    """The render's peak memory for a large annex: the finished pages are not held twice
    while ReportLab joins the file, and the file is not copied again by a buffer."""
    def draw(canvas):
        for page in range(3):
            text.draw(canvas, 72, 700, f"page {page}", 12)
            canvas.showPage()
            _reportlab.compress_finished_page(canvas)

    reference, buffer = _canvas()
    draw(reference)
    reference.save()
    out = _reportlab.Output()
    canvas = Canvas(out, invariant=1, pageCompression=1)
    draw(canvas)
    pages = list(_reportlab.document(canvas).Pages.pages)
    assert all(page.Contents.content for page in pages)
    canvas.save()
    assert out.getvalue() == buffer.getvalue()
    assert all(page.Contents.content is None for page in pages)
    with pytest.raises(ValueError, match="stream content not set"):
        pages[0].Contents.format(_reportlab.document(canvas))  # never formatted twice


def test_line_metrics_are_what_pdf_readers_get_from_the_font_descriptor(tmp_path):
    """The layout sizes rows with these; poppler sizes word boxes with the descriptor."""
    canvas, buffer = _canvas()
    text.draw(canvas, 72, 700, "Noto", 12)
    text.draw(canvas, 300, 650, "فارسی", 12, align="right", rtl=True)
    canvas.showPage()
    canvas.save()
    path = tmp_path / "m.pdf"
    path.write_bytes(buffer.getvalue())
    seen = {}
    with pikepdf.open(path) as pdf:
        for font in pdf.pages[0].Resources.Font.values():
            descriptor = (font.get("/FontDescriptor")
                          or font.DescendantFonts[0].FontDescriptor)
            seen[str(font.BaseFont).split("+")[-1]] = (float(descriptor.Ascent),
                                                       float(descriptor.Descent))
    for name, logical in (("NotoSans-Regular", "Sans"), ("NotoSansArabic-Regular", "Arabic")):
        ascent, descent = _reportlab.line_metrics(fonts.font(logical))
        assert seen[name] == pytest.approx((ascent, descent), abs=0.5), name


def test_shape_data_positions_a_shaped_string():
    data = _reportlab.shape_data(0, 500.0, 0.0, 10.0, -20.0, 480.0)
    shaped = _reportlab.ShapedStr("x", [data])
    assert shaped == "x" and shaped.__shapeData__[0].x_offset == 10.0


def _with_images(draw) -> bytes:
    buffer = io.BytesIO()
    canvas = Canvas(buffer, pageCompression=1, invariant=1)
    draw(canvas)
    canvas.showPage()
    canvas.save()
    return buffer.getvalue()


def test_a_cached_image_writes_the_bytes_drawimage_writes_and_follows_the_file(tmp_path):
    from PIL import Image

    logo = tmp_path / "logo.png"
    Image.new("RGBA", (120, 40), (200, 30, 30, 128)).save(logo)  # a soft mask
    flat = tmp_path / "flat.png"
    Image.new("RGB", (30, 30), (0, 90, 200)).save(flat)  # none
    places = [(str(logo), 10, 10, "sw"), (str(flat), 200, 10, "se"),
              (str(logo), 300, 300, "se")]  # the logo twice: one object, drawn twice

    def reportlab(canvas):
        for path, x, y, anchor in places:
            canvas.drawImage(path, x, y, 90, 30, preserveAspectRatio=True, anchor=anchor,
                             mask="auto")

    def cached(canvas):
        for path, x, y, anchor in places:
            _reportlab.draw_image(canvas, path, x, y, 90, 30, anchor=anchor)

    expected = _with_images(reportlab)
    assert expected.count(b"/Subtype /Image") == 3  # logo, its soft mask, the flat one
    assert _with_images(cached) == expected
    assert _with_images(cached) == expected  # from the cache this time
    # The operator replaces the logo: the next invoice has the new one.
    Image.new("RGBA", (60, 20), (0, 0, 0, 255)).save(logo)
    assert _with_images(cached) == _with_images(reportlab) != expected
