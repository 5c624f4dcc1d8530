"""The print file: documents merged into one duplex PDF with sheet marks.

Read back with the tools a print shop would trust: ``pdftotext`` for the text,
``pdftoppm`` + ``zbarimg`` for the sheet marks, and pikepdf for the structure.
"""

from __future__ import annotations

import hashlib
import io
import json

import pikepdf
import pytest
from PIL import Image, ImageChops

from invoicer.billing import parse_record
from invoicer.billing.synthetic import generate
from invoicer.delivery import printfile
from invoicer.renderer import render
from invoicer.renderer.brand import brand_for
from tests.support.pdfs import marks_on, run

MM = 72 / 25.4


def test_writer_copies_what_documents_share_or_inherit(tmp_path):
    """A PDF unlike ReportLab's: inherited MediaBox and Resources, a contents array, a
    shared font, a string that looks like a reference, an annotation pointing back."""
    src = pikepdf.new()
    font = src.make_indirect(pikepdf.Dictionary(Type=pikepdf.Name.Font,
                                                Subtype=pikepdf.Name.Type1,
                                                BaseFont=pikepdf.Name.Helvetica))
    for text in ("first", "second", "third"):
        src.add_blank_page(page_size=(500, 700))
        page = src.pages[-1]
        page.obj.Contents = pikepdf.Array([
            src.make_stream(b"BT /F1 12 Tf 72 600 Td (" + text.encode() + b") Tj ET"),
            src.make_stream(b"BT /F1 8 Tf 72 580 Td (1 0 R \\(x\\)) Tj ET"),
        ])
        page.obj.Resources = pikepdf.Dictionary(Font=pikepdf.Dictionary(F1=font))
        page.obj.Annots = src.make_indirect(pikepdf.Array([src.make_indirect(
            pikepdf.Dictionary(Type=pikepdf.Name.Annot, Subtype=pikepdf.Name.Text,
                               Rect=[0, 0, 10, 10], P=page.obj,
                               Contents=pikepdf.String("see 3 0 R")))]))
    # Move MediaBox and Resources of the first page up to the page tree.
    src.Root.Pages.MediaBox = src.pages[0].obj.MediaBox
    del src.pages[0].obj["/MediaBox"]
    buffer = io.BytesIO()
    src.save(buffer)
    out = tmp_path / "out.pdf"
    with open(out, "wb") as f:
        writer = printfile.BatchPdfWriter(f, batch_id=7, margin_left=18 * MM)
        assert writer.add(buffer.getvalue(), seq=1) == 3
        assert writer.add(buffer.getvalue(), seq=2) == 3
        pages, sha, size = writer.close()
    assert pages == 8 and size == out.stat().st_size
    assert sha == hashlib.sha256(out.read_bytes()).hexdigest()
    text = run("pdftotext", str(out), "-")
    assert text.count("first") == 2 and text.count("1 0 R (x)") == 6
    with pikepdf.open(out) as merged:
        assert [float(p.mediabox[3]) for p in merged.pages] == [700.0] * 8
        annot = merged.pages[0].Annots[0]
        assert annot.P.objgen == merged.pages[0].objgen
        assert str(annot.Contents) == "see 3 0 R"
    assert marks_on(out, 3, tmp_path) == ["B7|D1|S2/2"]
    assert marks_on(out, 5, tmp_path) == ["B7|D2|S1/2"]


def test_the_same_batch_gives_the_same_bytes(templates, tmp_path):
    def make() -> bytes:
        buffer = io.BytesIO()
        writer = printfile.BatchPdfWriter(buffer, batch_id=3, margin_left=18 * MM)
        for seq, t in enumerate(templates, start=1):
            writer.add(t.pdf, seq=seq)
        writer.close()
        return buffer.getvalue()

    assert make() == make()


def test_marks_made_ahead_equal_marks_made_here_and_survive_surprises():
    sheets = [(seq, 1 + seq % 3) for seq in range(1, 40)]
    expected = {(seq, sheet, n): printfile.mark_operators(printfile.mark_payload(7, seq, sheet, n))
                for seq, n in sheets for sheet in range(1, n + 1)}
    order = list(expected)
    # A real helper process, small chunks so that several are in flight.
    with printfile.MarksAhead(7, sheets, workers=1, chunk=5, window=2) as marks:
        assert marks._pool is not None
        assert [marks(*key) for key in order] == [expected[key] for key in order]
    # A document whose PDF has more pages than the ledger said: asked out of order,
    # answered correctly in-process from there on.
    with printfile.MarksAhead(7, sheets, workers=1, chunk=5) as marks:
        assert marks(*order[0]) == expected[order[0]]
        assert marks(1, 9, 9) == printfile.mark_operators(printfile.mark_payload(7, 1, 9, 9))
        assert marks._pool is None
        assert marks(*order[1]) == expected[order[1]]
    # No helper at all (one core, or a daemon process that may not fork).
    with printfile.MarksAhead(7, sheets, workers=0) as marks:
        assert [marks(*key) for key in order[:5]] == [expected[key] for key in order[:5]]


def test_the_mark_fits_narrow_margins_and_refuses_too_narrow_ones():
    side = 33 * printfile.MARK_MODULE
    a4 = (0, 0, 595.2756, 841.8898)
    x, _ = printfile.mark_position(a4, 15 * MM, side)  # the narrowest brand margin
    assert x >= 0 and x + side <= 15 * MM
    x, _ = printfile.mark_position(a4, 18 * MM, side)
    assert x == pytest.approx(printfile.MARK_LEFT, abs=printfile.MARK_GRID)
    assert (x * 300 / 72) == pytest.approx(round(x * 300 / 72), abs=1e-6)  # on the grid
    with pytest.raises(printfile.PrintBatchError):
        printfile.mark_position(a4, 10 * MM, side)
    side_modules, ops = printfile.mark_operators(printfile.mark_payload(1234567, 123456,
                                                                        123, 456))
    assert side_modules == 33 and ops.startswith(b"1 g\n0 0 33 33 re\nf\n0 g\n")
    assert printfile.parse_batch_id("B12") == printfile.parse_batch_id("12") == 12
    with pytest.raises(ValueError):
        printfile.parse_batch_id("B-1")


@pytest.fixture(scope="module")
def one_per_operator() -> dict[str, bytes]:
    """A rendered invoice of every operator brand (margins differ: alborz is RTL)."""
    found: dict[str, bytes] = {}
    for raw in generate(60, 5, 29):
        operator = raw["operator"]["id"]
        if operator not in found:
            found[operator] = render(parse_record(json.dumps(raw).encode(), line=1))
    return found


@pytest.mark.parametrize("operator", ["albion", "alborz", "carpati", "oi", "polder", "volga"])
def test_the_mark_reads_on_every_brand_and_lands_on_blank_margin(operator, one_per_operator,
                                                                 tmp_path):
    pdf = one_per_operator[operator]
    brand = brand_for(operator)
    out = tmp_path / "batch.pdf"
    with open(out, "wb") as f:
        writer = printfile.BatchPdfWriter(f, batch_id=4321, margin_left=brand.margin_left)
        pages = writer.add(pdf, seq=17)
        writer.close()
    sheets = (pages + 1) // 2
    assert marks_on(out, 1, tmp_path) == [f"B4321|D17|S1/{sheets}"]
    source = tmp_path / "source.pdf"
    source.write_bytes(pdf)
    run("pdftoppm", "-r", "100", "-f", "1", "-l", "1", "-singlefile", "-png", str(source),
        str(tmp_path / "src"))
    run("pdftoppm", "-r", "100", "-f", "1", "-l", "1", "-singlefile", "-png", str(out),
        str(tmp_path / "bat"))
    src = Image.open(tmp_path / "src.png").convert("L")
    bat = Image.open(tmp_path / "bat.png").convert("L")
    side = 33 * printfile.MARK_MODULE
    x, y = printfile.mark_position((0, 0, brand.page_width, brand.page_height),
                                   brand.margin_left, side)
    scale = 100 / 72
    box = (int(x * scale), int((brand.page_height - y - side) * scale),
           int((x + side) * scale) + 1, int((brand.page_height - y) * scale) + 1)
    changed = ImageChops.difference(src, bat).getbbox()
    assert changed and box[0] <= changed[0] and box[1] <= changed[1]
    assert changed[2] <= box[2] and changed[3] <= box[3]
    assert src.crop(box).getextrema() == (255, 255)

