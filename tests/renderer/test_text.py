"""renderer.fonts and renderer.text, checked on real PDFs with poppler's own tools.

Each test draws a few lines through the public API onto a small canvas (ReportLab
``invariant=1``) and reads the file back the way subscribers' software does:
``pdffonts`` for embedding, ``pdftotext`` (reading order, and ``-raw`` content-stream
order) for what copy-paste, search and screen readers get, ``pdftotext -bbox`` for where
words landed, and ``pdftoppm`` for the pixels.

poppler wraps right-to-left text it outputs in RLE/PDF marks (U+202B, U+202C) and puts
the spaces around a number inside a right-to-left line where its own simple reordering
puts them; :func:`logical` removes the marks, and the mixed-direction checks compare
with the spaces taken out, which still pins the order of every letter and digit.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from reportlab.lib.pagesizes import A4
from reportlab.pdfbase.pdfmetrics import stringWidth
from reportlab.pdfgen.canvas import Canvas

from invoicer.renderer import fonts, text

INVOICE_FA = "صورتحساب تلفن همراه"
MIXED_FA = "شماره ۱۲۳ تماس +989121234567"
PLEASE_PAY = "لطفاً تا ۱۴۰۵/۰۸/۲۰ پرداخت کنید"  # tanwin (a mark) and a date
ROMANIAN = "Factură pentru abonat: ș ț ă î â Ș Ț Ă Î Â"
RUSSIAN = "Счёт за услуги связи: Ёлкина Жанна Юрьевна"
PORTUGUESE = "Fatura: Maria da Conceição Souza — São Paulo"
DUTCH = "Factuur: één ĳsje, ’t Hôtel — € 12,30"

# Every letter of the six locales, the digits and separators CLDR gives them, and
# the symbols invoices print (Babel inserts LRM, NBSP and NARROW NBSP itself).
ALPHABETS = {
    "en": "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
          " .,;:!?'\"()[]{}/\\-+*=%&#@$€£¥¢§°_|~^<>",
    "pt_BR": "ÁÂÃÀÇÉÊÍÓÔÕÚÜáâãàçéêíóôõúü R$ ª º",
    "ro_RO": "ĂÂÎȘȚăâîșț ŞŢşţ „“ «»",
    "ru_RU": "АБВГДЕЁЖЗИЙКЛМНОПРСТУФХЦЧШЩЪЫЬЭЮЯабвгдеёжзийклмнопрстуфхцчшщъыьэюя № ₽ «»",
    "nl_NL": "ĲĳÉËÏÖÜÁÈÓéëïöüáèóà ’‘",
    "fa_IR": "آابپتثجچحخدذرزژسشصضطظعغفقکگلمنوهیئءؤأإۀةيك"
             "۰۱۲۳۴۵۶۷۸۹٠١٢٣٤٥٦٧٨٩٫٬،؛؟«»\u200c\u200d ﷼ ًٌٍَُِّْٔ",
    "symbols": "\u00a0\u202f\u200e\u200f\u2212–—…•·×÷±≤≥→←↑↓✓",
}

BIDI_MARKS = re.compile("[\u202a-\u202e\u2066-\u2069]")


# --- helpers ----------------------------------------------------------------------------


@pytest.fixture(scope="module", autouse=True)
def _poppler():
    missing = [t for t in ("pdftotext", "pdffonts", "pdftoppm") if shutil.which(t) is None]
    if missing:
        message = f"{missing} not found: apt-get install poppler-utils"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    fonts.register()


def run(*cmd: str | Path) -> str:
    return subprocess.run([str(c) for c in cmd], capture_output=True, check=True,
                          timeout=60).stdout.decode("utf-8")


def make_pdf(path: Path, lines, pagesize=A4) -> Path:
    """One page with ``lines``: tuples (x, y, text, draw keywords)."""
    canvas = Canvas(str(path), pagesize=pagesize, invariant=1, initialFontName="Sans")
    for x, y, value, kw in lines:
        text.draw(canvas, x, y, value, kw.pop("size", 12), **kw)
    canvas.showPage()
    canvas.save()
    return path


def extract(path: Path, raw: bool = False) -> str:
    return run("pdftotext", "-enc", "UTF-8", *(["-raw"] if raw else []), path, "-")


def logical(s: str) -> str:
    """Extracted text without poppler's bidi marks, whitespace runs made one space."""
    return " ".join(BIDI_MARKS.sub("", s).split())


def squeeze(s: str) -> str:
    return re.sub(r"\s+", "", BIDI_MARKS.sub("", s))


def words(path: Path) -> list[tuple[float, float, str]]:
    """(xMin, xMax, text) of each word poppler finds."""
    html = run("pdftotext", "-bbox", "-enc", "UTF-8", path, "-")
    return [(float(a), float(b), w) for a, b, w in re.findall(
        r'<word xMin="([\d.]+)" yMin="[\d.]+" xMax="([\d.]+)" yMax="[\d.]+">([^<]*)</word>',
        html)]


def rtl_page(tmp_path: Path, value: str, **kw) -> Path:
    """``value`` right-aligned on a page of Persian text, as on a fa_IR invoice."""
    lines = [(550, 780 - 30 * i, s, {"align": "right", "rtl": True})
             for i, s in enumerate(("مشترک گرامی", "خلاصه صورتحساب", "هزینه مکالمات"))]
    lines.append((550, 600, value, {"align": "right", "rtl": True, **kw}))
    return make_pdf(tmp_path / "fa.pdf", lines)


def single(tmp_path: Path, value: str, **kw) -> Path:
    return make_pdf(tmp_path / "one.pdf", [(40, 700, value, kw)])


def ink_columns(tmp_path: Path, pdf: Path, dpi: int = 100) -> tuple[int, int]:
    """Leftmost and rightmost pixel column holding ink (greyscale < 128)."""
    run("pdftoppm", "-gray", "-r", str(dpi), "-singlefile", pdf, tmp_path / "page")
    data = (tmp_path / "page.pgm").read_bytes()
    magic, w, h, _maxval, pixels = data.split(maxsplit=4)
    assert magic == b"P5"
    w, h = int(w), int(h)
    cols = [x for x in range(w) if any(pixels[y * w + x] < 128 for y in range(h))]
    return cols[0], cols[-1]


# --- fonts ------------------------------------------------------------------------------


def test_register_is_idempotent_and_cheap():
    before = {name: fonts.font(name) for name in ("Sans", "Arabic", "Mono")}
    start = time.perf_counter()
    for _ in range(1000):
        fonts.register()
    assert time.perf_counter() - start < 0.05
    assert before == {name: fonts.font(name) for name in before}


def test_missing_font_names_the_debian_package(monkeypatch, tmp_path):
    monkeypatch.setattr(fonts, "_fonts", {})
    monkeypatch.setattr(fonts, "_coverage", {})
    monkeypatch.setattr(fonts, "FILES", (
        fonts.FontFile("Sans", tmp_path / "NotoSans-Regular.ttf", "fonts-noto-core"),))
    with pytest.raises(fonts.FontMissingError, match="apt-get install fonts-noto-core"):
        fonts.register()


@pytest.mark.parametrize("locale", sorted(ALPHABETS))
def test_every_locale_alphabet_is_covered(locale):
    missing = fonts.missing_glyphs(ALPHABETS[locale], families=("Sans", "Mono"))
    assert not missing, fonts.describe(missing)


@pytest.mark.parametrize("char", ["🧾", "\U0010fffd", "\ue000", "\U0001f4de"])
def test_characters_no_font_has_are_reported(char):
    assert fonts.missing_glyphs(f"Total {char} ۱۲۳") == {char}
    assert not fonts.covers(char, "Sans")


def test_a_character_no_font_has_prints_as_replacement(tmp_path):
    assert extract(single(tmp_path, "Café 🧾 ok")).strip() == "Café \ufffd ok"


def test_rare_symbols_come_from_fallback_fonts(tmp_path):
    value = "Zusatzleistung ﷺ ș <> & 𝄞 ∮ 𝐀 ✓ ☎"
    assert not fonts.missing_glyphs(value)
    pdf = single(tmp_path, value)
    assert squeeze(extract(pdf)) == squeeze(value)
    assert {"NotoMusic-Regular", "NotoSansMath-Regular", "DejaVuSans"} <= {
        row.split()[0].split("+")[-1] for row in run("pdffonts", pdf).splitlines()[2:]}


def test_covers_tells_fonts_apart():
    assert fonts.covers(RUSSIAN + ROMANIAN, "Sans")
    assert not fonts.covers(INVOICE_FA, "Sans")
    assert fonts.covers(INVOICE_FA, "Arabic")
    assert fonts.covers("\u2212", "Symbols") and not fonts.covers("\u2212", "Sans")
    assert fonts.font_for("\u2212") == "Symbols"
    assert fonts.font_for("ب", bold=True) == "Arabic-Bold"


def test_fonts_are_embedded_and_subset(tmp_path):
    pdf = make_pdf(tmp_path / "fonts.pdf", [
        (40, 800, ROMANIAN, {}),
        (40, 780, RUSSIAN, {"bold": True}),
        (40, 760, "4680000000104750 1080 0000", {"mono": True}),
        (40, 740, "−5,00 € → ok", {}),
        (550, 720, INVOICE_FA, {"align": "right", "rtl": True}),
        (550, 700, INVOICE_FA, {"align": "right", "rtl": True, "bold": True}),
    ])
    rows = run("pdffonts", pdf).splitlines()[2:]
    names = {row.split()[0].split("+")[-1] for row in rows}
    assert names == {"NotoSans-Regular", "NotoSans-Bold", "NotoSansMono-Regular",
                     "DejaVuSans", "NotoSansArabic-Regular", "NotoSansArabic-Bold"}
    for row in rows:
        name, kind, _enc, emb, sub, uni, *_ = row.split()
        assert (kind, emb, sub, uni) == ("TrueType", "yes", "yes", "yes"), row
        assert re.fullmatch(r"[A-Z]{6}\+\S+", name), row


# --- extraction: what readers and screen readers get ------------------------------------


@pytest.mark.parametrize("raw", [False, True], ids=["reading-order", "raw"])
@pytest.mark.parametrize("bold", [False, True], ids=["regular", "bold"])
def test_persian_extracts_in_logical_order(tmp_path, raw, bold):
    pdf = single(tmp_path, INVOICE_FA, bold=bold, rtl=True)
    assert logical(extract(pdf, raw)) == INVOICE_FA


@pytest.mark.parametrize("raw", [False, True], ids=["reading-order", "raw"])
def test_mixed_persian_keeps_numbers_and_order(tmp_path, raw):
    out = extract(rtl_page(tmp_path, MIXED_FA), raw)
    line = next(x for x in out.splitlines() if "شماره" in x) if not raw else out
    assert squeeze(MIXED_FA) in squeeze(line)
    assert "+989121234567" in out  # the phone number stays one left-to-right piece


def test_marks_ligatures_and_zwnj_extract_exactly(tmp_path):
    # tanwin and tashdid (marks), lam-alef (a ligature), ZWNJ inside a word
    value = "لطفاً اوّل اطلاعات را می‌خواهم"
    assert logical(extract(rtl_page(tmp_path, value))).endswith(value)


def test_no_presentation_forms_or_private_codes_reach_the_text(tmp_path):
    out = extract(rtl_page(tmp_path, PLEASE_PAY + " " + INVOICE_FA + " اطلاعات"))
    odd = [c for c in out if 0xFB50 <= ord(c) <= 0xFEFF or 0xE000 <= ord(c) <= 0xF8FF
           or ord(c) >= 0xF0000]
    assert not odd, [hex(ord(c)) for c in odd]
    assert squeeze(PLEASE_PAY) in squeeze(out)


@pytest.mark.parametrize("raw", [False, True], ids=["reading-order", "raw"])
@pytest.mark.parametrize("value", [ROMANIAN, RUSSIAN, PORTUGUESE, DUTCH,
                                   "IR-2026-0001", "+989121234567", "−1.234,50 €"])
def test_latin_and_cyrillic_extract_exactly(tmp_path, value, raw):
    assert extract(single(tmp_path, value), raw).strip() == value


def test_text_is_data_not_markup(tmp_path):
    value = "<b>Total</b> &amp; (1) \\ ) ( %PDF"
    assert extract(single(tmp_path, value)).strip() == value
    assert extract(single(tmp_path, value, bold=True, rtl=True)).strip() == value


# --- layout: visual order, shaping, alignment -------------------------------------------


def test_right_to_left_runs_are_laid_out_right_to_left(tmp_path):
    # -bbox lists each word's characters in page order: Persian words read reversed.
    pdf = single(tmp_path, MIXED_FA, rtl=True)
    left_to_right = [w for _, _, w in sorted(words(pdf))]
    assert left_to_right == ["+989121234567", "تماس"[::-1], "۱۲۳", "شماره"[::-1]]


def test_persian_is_shaped(tmp_path):
    # Joined letters take their contextual forms, which are narrower than the isolated
    # forms a naive draw would print; the ink on the page matches the shaped width.
    size = 40
    shaped = text.width(INVOICE_FA, size, rtl=True)
    isolated = stringWidth(INVOICE_FA, "Arabic", size)
    assert shaped < 0.85 * isolated
    pdf = single(tmp_path, INVOICE_FA, size=size, rtl=True)
    first, last = ink_columns(tmp_path, pdf, dpi=72)
    assert abs((last - first) - shaped) < 6
    assert abs(first - 40) < 4


@pytest.mark.parametrize("align", ["left", "right", "center"])
def test_alignment_anchors(tmp_path, align):
    w = text.width(RUSSIAN, 12)
    pdf = make_pdf(tmp_path / "a.pdf", [(300, 700, RUSSIAN, {"align": align})])
    x0 = min(a for a, _, _ in words(pdf))
    x1 = max(b for _, b, _ in words(pdf))
    expected = {"left": 300, "right": 300 - w, "center": 300 - w / 2}[align]
    assert abs(x0 - expected) < 0.5 and abs((x1 - x0) - w) < 0.5


def test_draw_returns_the_width_and_leaves_the_canvas_font(tmp_path):
    canvas = Canvas(str(tmp_path / "w.pdf"), invariant=1, initialFontName="Sans")
    assert text.draw(canvas, 10, 10, RUSSIAN, 9) == pytest.approx(
        stringWidth(RUSSIAN, "Sans", 9))
    assert text.draw(canvas, 10, 30, INVOICE_FA, 9, rtl=True) == text.width(
        INVOICE_FA, 9, rtl=True)
    assert text.draw(canvas, 10, 50, "", 9) == 0
    assert canvas._fontname == "Sans"


def test_top_down_canvas(tmp_path):
    path = tmp_path / "td.pdf"
    canvas = Canvas(str(path), pagesize=A4, bottomup=0, invariant=1, initialFontName="Sans")
    text.draw(canvas, 40, 100, RUSSIAN, 12)
    text.draw(canvas, 550, 130, INVOICE_FA, 12, align="right", rtl=True)
    canvas.save()
    assert logical(extract(path)) == f"{RUSSIAN} {INVOICE_FA}"
    html = run("pdftotext", "-bbox", path, "-")
    ys = [float(y) for y in re.findall(r'<word xMin="[\d.]+" yMin="([\d.]+)"', html)]
    assert 80 < min(ys) < 100 < 110 < max(ys) < 130  # upright, baselines at 100 and 130


def test_same_drawing_gives_same_bytes(tmp_path):
    lines = [(40, 700, ROMANIAN, {}), (550, 680, MIXED_FA, {"align": "right", "rtl": True})]
    a = make_pdf(tmp_path / "a.pdf", [(*line[:3], dict(line[3])) for line in lines])
    b = make_pdf(tmp_path / "b.pdf", [(*line[:3], dict(line[3])) for line in lines])
    assert a.read_bytes() == b.read_bytes()


# --- ellipsis and wrapping --------------------------------------------------------------

LONG_LATIN = "Chamadas internacionais para Portugal, Angola e Moçambique — pacote mensal"
LONG_FA = "هزینه تماس‌های بین‌المللی با شماره +989121234567 در دوره صورتحساب"


@pytest.mark.parametrize("value,rtl", [(LONG_LATIN, False), (LONG_FA, True),
                                       (RUSSIAN, False)])
@pytest.mark.parametrize("max_width", [2, 12, 40, 95, 160, 1000])
def test_ellipsis_never_exceeds_max_width(tmp_path, value, rtl, max_width):
    cut = text.ellipsize(value, max_width, 10, rtl=rtl)
    assert text.width(cut, 10, rtl=rtl) <= max_width
    if text.width(value, 10, rtl=rtl) <= max_width:
        assert cut == value
    elif cut:
        assert cut.endswith(text.ELLIPSIS)
        assert value.startswith(cut[:-1].rstrip())
    canvas = Canvas(str(tmp_path / "e.pdf"), invariant=1, initialFontName="Sans")
    drawn = text.draw(canvas, 500, 700, value, 10, max_width=max_width, align="right",
                      rtl=rtl)
    assert drawn <= max_width


@pytest.mark.parametrize("value,rtl", [(LONG_LATIN, False), (LONG_FA, True)])
def test_ellipsis_as_printed(tmp_path, value, rtl):
    pdf = single(tmp_path, value, size=10, max_width=150, rtl=rtl)
    boxes = words(pdf)
    assert min(a for a, _, _ in boxes) >= 40 - 0.01
    assert max(b for _, b, _ in boxes) <= 40 + 150 + 0.01
    cut = text.ellipsize(value, 150, 10, rtl=rtl)  # cut in logical order, then reordered
    assert cut.endswith(text.ELLIPSIS) and logical(extract(pdf)) == cut


def test_wrap_fits_and_ends_with_ellipsis():
    lines = text.wrap(LONG_LATIN + " " + LONG_LATIN, 120, 10)
    assert len(lines) > 2 and all(text.width(s, 10) <= 120 for s in lines)
    assert " ".join(lines) == LONG_LATIN + " " + LONG_LATIN
    two = text.wrap(LONG_LATIN + " " + LONG_LATIN, 120, 10, bold=True, max_lines=2)
    assert len(two) == 2 and two[-1].endswith(text.ELLIPSIS)
    assert all(text.width(s, 10, bold=True) <= 120 for s in two)
    fa = text.wrap(LONG_FA, 90, 10, rtl=True)
    assert " ".join(fa) == LONG_FA and all(text.width(s, 10, rtl=True) <= 90 for s in fa)
    assert text.wrap("a\nb\n\nc", 100, 10) == ["a", "b", "", "c"]
    assert text.wrap("Supercalifragilistic", 30, 10)[0] != "Supercalifragilistic"
    assert text.wrap("", 100, 10) == []


# --- the fast path ----------------------------------------------------------------------


def test_fast_path_covers_plain_text_only():
    assert text.is_plain(ROMANIAN) and text.is_plain(RUSSIAN, bold=True)
    assert text.is_plain("+989121234567") and text.is_plain("IR-2026-0001", mono=True)
    assert not text.is_plain(INVOICE_FA)
    assert not text.is_plain("−5")  # U+2212 only in the fallback font
    assert not text.is_plain("a\tb")
    assert text.font_name(bold=True) == "Sans-Bold"


def test_widths_are_cached_per_size_and_weight():
    text._widths.clear()
    a = text.width("14/10/2026", 8)
    assert text.width("14/10/2026", 8) == a == stringWidth("14/10/2026", "Sans", 8)
    assert text.width("14/10/2026", 8, bold=True) != a
    assert text.width("14/10/2026", 16) == pytest.approx(2 * a)
    assert len(text._widths) == 3


def test_metrics_are_width_and_extent_of_the_same_key():
    text._metrics.clear()
    for value, bold, rtl in (("Total 12,50", False, False), ("Brașov", True, False),
                             ("لطفاً مبلغ", False, True), ("𝄞 clef", False, False)):
        for size in (7, 9.5):
            expected = (text.width(value, size, bold, rtl=rtl),
                        *text.extent(value, size, bold, rtl=rtl))
            assert text.metrics(value, size, bold, False, rtl) == expected
            assert text.metrics(value, size, bold, False, rtl) == expected  # cached
