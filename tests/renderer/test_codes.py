"""Payment codes drawn as vectors: they decode to exactly their input, and keep their room.

Each symbol is drawn onto a one-page PDF over a grey panel, rasterised with poppler's
``pdftoppm`` and read back with ``zbarimg``, the way a scanner or phone would see print.
zbar is always told the one symbology expected (``-Sdisable -S<name>.enable``), so a
decode also proves the symbology, and ``-Sbinary`` makes it hand over the symbol's bytes
as they are: without it zbar guesses a QR code's character set (it reads windows-1251
as Latin-1) and appends a newline.
"""

from __future__ import annotations

import io
import math
import os
import shutil
import subprocess
from dataclasses import FrozenInstanceError
from decimal import Decimal
from pathlib import Path

import pytest
import segno
from PIL import Image
from reportlab.lib.units import mm
from reportlab.pdfgen.canvas import Canvas

from invoicer.billing.paycodes import PaymentCodeError, epc, febraban, gost
from invoicer.renderer import codes

GREY = 0.8  # the panel behind the symbol: 204 in the raster, neither white nor dark
GREY_PX = round(GREY * 255)
MARGIN = 6 * mm

GOST_FIELDS = {
    "Name": "ООО «Телеком Ромашка»",
    "PersonalAcc": "40702810138250123017",
    "BankName": "ПАО Сбербанк",
    "BIC": "044525225",
    "CorrespAcc": "30101810400000000225",
    "Sum": "10475",
    "Purpose": "Оплата услуг связи по счёту OI-2026-11-0000123",
    "PayeeINN": "7707083893",
    "PersAcc": "1234567890",
}
EPC_FIELDS = {
    "IBAN": "DE89370400440532013000",
    "BIC": "COBADEFFXXX",
    "beneficiary": "Telekom Beispiel GmbH",
    "remittance_text": "Rechnung 2026-11 Kundennr. 1234567890, Grüße aus Köln",
}
GOST_PAYLOAD = gost.build(GOST_FIELDS)
EPC_PAYLOAD = epc.build(EPC_FIELDS, Decimal("104.75"))
FEBRABAN_CODE = febraban.build(4, 6, 10475, "0108", "0000001234567890202611200")

SYMBOLOGY = {"ITF": "i25", "Code 128": "code128"}


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        message = f"{name} is not installed (Debian: poppler-utils, zbar-tools)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path


def _pdf(symbol: codes.PaymentSymbol) -> bytes:
    """A one-page PDF: a grey panel with ``symbol`` drawn MARGIN in from the lower left."""
    w, h = symbol.size
    buffer = io.BytesIO()
    canvas = Canvas(
        buffer, pagesize=(w + 2 * MARGIN, h + 2 * MARGIN), invariant=1, pageCompression=0
    )
    canvas.setFillGray(GREY)
    canvas.rect(0, 0, w + 2 * MARGIN, h + 2 * MARGIN, stroke=0, fill=1)
    symbol.draw(canvas, MARGIN, MARGIN)
    canvas.showPage()
    canvas.save()
    return buffer.getvalue()


def _raster(pdf: bytes, directory: Path, dpi: int) -> Path:
    source = directory / "symbol.pdf"
    source.write_bytes(pdf)
    subprocess.run(
        [_tool("pdftoppm"), "-png", "-gray", "-r", str(dpi), "-singlefile", source,
         directory / f"symbol-{dpi}"],
        check=True,
    )  # fmt: skip
    return directory / f"symbol-{dpi}.png"


def _zbar(png: Path, symbology: str) -> bytes:
    """The bytes zbar reads from ``png`` in ``symbology`` (empty when it reads nothing)."""
    found = subprocess.run(
        [_tool("zbarimg"), "--nodbus", "--raw", "-q", "-Sdisable", f"-S{symbology}.enable",
         "-Sbinary", png],
        capture_output=True,
        check=False,  # exit status 4 means "no symbol found": the assertion says more
    )  # fmt: skip
    return found.stdout


def _symbology(symbol: codes.PaymentSymbol) -> str:
    return "qrcode" if isinstance(symbol, codes.QrCode) else SYMBOLOGY[symbol.symbology]


def _expected(symbol: codes.PaymentSymbol) -> bytes:
    return symbol.data if isinstance(symbol, codes.QrCode) else symbol.data.encode("ascii")


KINDS = {
    "itf": lambda: codes.itf(FEBRABAN_CODE),
    "code128": lambda: codes.code128("OI-2026-11-0000123/ACC 1234567890"),
    "gost_qr": lambda: codes.qr(GOST_PAYLOAD),
    "epc_qr": lambda: codes.qr(EPC_PAYLOAD),
}


@pytest.fixture(scope="module", params=sorted(KINDS))
def drawn(request, tmp_path_factory):
    """Each kind of symbol, its PDF and its raster at 150 dpi, made once for the module."""
    symbol = KINDS[request.param]()
    pdf = _pdf(symbol)
    return symbol, pdf, _raster(pdf, tmp_path_factory.mktemp(request.param), 150), request.param


def test_decodes_to_exactly_the_input_at_150_dpi(drawn):
    symbol, _, png, _ = drawn
    assert _zbar(png, _symbology(symbol)) == _expected(symbol)


def test_quiet_zones_are_white_and_nothing_is_drawn_outside_the_size(drawn):
    symbol, _, png, _ = drawn
    image = Image.open(png).convert("L")
    scale = 150 / 72
    w, h = symbol.size
    # The symbol's box in pixels, top-left origin; edges blur over 1 px (anti-aliasing).
    left, top = MARGIN * scale, image.height - (MARGIN + h) * scale
    right, bottom = (MARGIN + w) * scale, image.height - MARGIN * scale
    quiet = symbol.quiet_modules * symbol.module * scale
    is_qr = isinstance(symbol, codes.QrCode)

    def region(x0, y0, x1, y1):
        box = (math.ceil(x0) + 1, math.ceil(y0) + 1, math.floor(x1) - 1, math.floor(y1) - 1)
        assert box[0] < box[2] and box[1] < box[3], box
        return image.crop(box).getextrema()

    for outside in ((0, 0, image.width, top), (0, bottom, image.width, image.height),
                    (0, 0, left, image.height), (right, 0, image.width, image.height)):  # fmt: skip
        assert region(*outside) == (GREY_PX, GREY_PX), f"drawn outside .size: {outside}"
    quiet_zones = [(left, top, left + quiet, bottom), (right - quiet, top, right, bottom)]
    if is_qr:
        quiet_zones += [(left, top, right, top + quiet), (left, bottom - quiet, right, bottom)]
    for zone in quiet_zones:
        assert region(*zone) == (255, 255), f"quiet zone not blank: {zone}"
    # ... and the quiet zone is no wider than said: the first dark pixels are right after it.
    first_column = image.crop(
        (math.floor(left + quiet), math.ceil(top) + 1, math.ceil(left + quiet) + 1, bottom - 1)
    )
    assert first_column.getextrema()[0] < 64


def test_drawn_as_vectors_one_filled_path_and_no_images(drawn):
    symbol, pdf, _, _ = drawn
    assert b"/Subtype /Image" not in pdf and b" Do" not in pdf and b"\nBI" not in pdf
    shapes = len(symbol.runs) if isinstance(symbol, codes.QrCode) else len(symbol.bars)
    drawing = pdf[pdf.index(b"\nq\n") : pdf.index(b"\nQ\n")]  # what draw() wrote
    assert drawing.count(b" re") == shapes + 1  # + the white box under the symbol
    assert drawing.split().count(b"f") == 2  # one fill for the box, one for all the dark


def test_the_same_code_draws_the_same_bytes(drawn):
    symbol, pdf, _, kind = drawn
    again = KINDS[kind]()
    assert again is not symbol
    assert again == symbol
    assert _pdf(again) == pdf
    assert _pdf(symbol) == pdf


def test_qr_still_decodes_at_100_dpi_two_pixels_a_module(tmp_path):
    # At 60 dpi a 0.508 mm module is 1.2 pixels and zbar reads neither payload (nor at
    # 72 dpi); it needs about 2 pixels a module, which 100 dpi gives.
    for payload in (GOST_PAYLOAD, EPC_PAYLOAD):
        symbol = codes.qr(payload)
        assert symbol.module * 100 / 72 >= 2
        assert _zbar(_raster(_pdf(symbol), tmp_path, 100), "qrcode") == payload.encode()


@pytest.mark.parametrize(
    "reference",
    ["7", "12345", "ABC-123456789-xyz", "Ref: 0042 ~{|}` \\ \"quoted\"", "RF18539007547034",
     "A" * 48],
)  # fmt: skip
def test_code128_references_decode_exactly(tmp_path, reference):
    # Odd digit runs, charset switches between B and C, every kind of punctuation and the
    # longest reference billing accepts: python-barcode's encoder chooses the code sets.
    symbol = codes.code128(reference)
    assert symbol.size[0] <= 150 * mm
    assert _zbar(_raster(_pdf(symbol), tmp_path, 150), "code128") == reference.encode()


def test_spec_example_febraban_code_decodes(tmp_path):
    code = "84680000001047501080000001234567890202611200"
    assert _zbar(_raster(_pdf(codes.itf(code)), tmp_path, 150), "i25") == code.encode()


def test_gost_payload_declaring_windows_1251_is_encoded_in_windows_1251(tmp_path):
    payload = GOST_PAYLOAD.replace("ST00012", "ST00011", 1)
    symbol = codes.qr(payload)
    assert symbol.data == payload.encode("windows-1251")
    assert _zbar(_raster(_pdf(symbol), tmp_path, 150), "qrcode") == symbol.data


def test_qr_encodes_utf8_payloads_as_utf8_without_eci():
    gost_qr, epc_qr = codes.qr(GOST_PAYLOAD), codes.qr(EPC_PAYLOAD)
    assert gost_qr.data == GOST_PAYLOAD.encode("utf-8")
    # All of the EPC text fits Latin-1, which a guessing encoder would pick; line 3 says 1.
    assert epc_qr.data == EPC_PAYLOAD.encode("utf-8") != EPC_PAYLOAD.encode("latin-1")
    assert codes.qr("BCD\n002\n2\nSCT").data == b"BCD\n002\n2\nSCT"
    assert codes.qr("Grüße", encoding="latin-1").data == b"Gr\xfc\xdfe"


def test_qr_keeps_error_level_m_where_a_stronger_one_would_fit():
    # The shortest EPC payloads fit version 3 at level Q too, which segno picks by default.
    payload = "BCD\n002\n1\nSCT\n\nA\nNO9386011117947"
    epc.parse(payload)
    assert segno.make_qr(payload.encode(), error="M").error == "Q"
    assert (codes.qr(payload).error, codes.qr(payload).version) == ("M", 3)
    assert codes.qr(EPC_PAYLOAD).error == codes.qr(GOST_PAYLOAD).error == "M"


def test_geometry_is_sized_for_print_and_phone_cameras():
    bars = codes.itf(FEBRABAN_CODE)
    assert bars.module == pytest.approx(0.254 * mm)
    assert {width for _, width in bars.bars} == {1, 3}  # narrow : wide = 1 : 3
    assert bars.modules * bars.module == pytest.approx(102.87 * mm)  # FEBRABAN's 103 mm
    assert bars.size == pytest.approx((113.03 * mm, 13 * mm))
    assert bars.quiet_modules * bars.module >= 5 * mm

    reference = codes.code128("ABCDEFGH")  # code set B: 11 modules a character
    assert reference.modules == 11 * 8 + 35
    assert reference.size[0] == pytest.approx((11 * 8 + 35 + 20) * 0.254 * mm)

    for payload in (GOST_PAYLOAD, EPC_PAYLOAD):
        symbol = codes.qr(payload)
        assert symbol.module >= 0.4 * mm
        assert symbol.quiet_modules == 4
        assert symbol.modules == 17 + 4 * symbol.version
        assert symbol.size[0] == symbol.size[1] == (symbol.modules + 8) * symbol.module
        dark = sum(length for *_, length in symbol.runs)
        assert len(symbol.runs) < 0.6 * dark  # runs merged: far fewer rectangles than modules


def test_symbols_are_frozen_data():
    symbol = codes.qr(EPC_PAYLOAD)
    with pytest.raises(FrozenInstanceError):
        symbol.module = 1  # type: ignore[misc]
    assert codes.qr(EPC_PAYLOAD) == symbol


def test_symbol_picks_the_builder_for_each_scheme():
    assert codes.symbol("febraban", FEBRABAN_CODE) == codes.itf(FEBRABAN_CODE)
    assert codes.symbol("code128", "REF-1") == codes.code128("REF-1")
    assert codes.symbol("gost_qr", GOST_PAYLOAD) == codes.qr(GOST_PAYLOAD)
    assert codes.symbol("epc_qr", EPC_PAYLOAD) == codes.qr(EPC_PAYLOAD)
    with pytest.raises(PaymentCodeError) as error:
        codes.symbol("pix", "000201")
    assert error.value.field == "scheme"


@pytest.mark.parametrize(
    "code",
    [
        FEBRABAN_CODE[:-1],  # 43 digits: python-barcode alone would pad it with a 0
        FEBRABAN_CODE[:3] + str((int(FEBRABAN_CODE[3]) + 1) % 10) + FEBRABAN_CODE[4:],
        "2" + FEBRABAN_CODE[1:],  # a bank boleto, not a collection code
    ],
)
def test_itf_refuses_what_is_not_a_valid_febraban_code(code):
    with pytest.raises(PaymentCodeError):
        codes.itf(code)


def test_code128_refuses_what_billing_would_refuse():
    for reference in ("", "Счёт 12", "tab\there", "X" * 49):
        with pytest.raises(PaymentCodeError):
            codes.code128(reference)


def test_qr_refuses_an_unknown_error_level():
    with pytest.raises(ValueError, match="L, M, Q or H"):
        codes.qr(EPC_PAYLOAD, error="X")
