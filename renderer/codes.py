"""Payment codes drawn as vectors: filled rectangles on a ReportLab canvas, no raster images.

The payable code is the one part of an invoice a machine has to read, on paper from an
office laser printer and on a phone screen or camera, so every symbol here is built once
from its code into plain geometry (which modules are dark) and drawn as filled rectangles
at a fixed, print-friendly module size with its quiet zones. The human-readable text (the
FEBRABAN typeable line from :func:`billing.paycodes.febraban.parse`, the Code 128 reference)
is the layout's job; this module only says how much room the symbol takes.

API::

    itf(code: str) -> Barcode
        FEBRABAN arrecadação barcode: the 44 digits as Interleaved 2 of 5 (checked first).
    code128(code: str) -> Barcode
        A generic payment reference (printable ASCII, checked first) as Code 128.
    qr(payload: str, error: str = "M", *, encoding: str | None = None) -> QrCode
        A payment QR (GOST R 56042-2014 ``ST0001…``, EPC069-12 ``BCD…``) at a fixed level.
    qr_runs(data: bytes, level: str, *, version: int | None = None) -> (side, runs)
        Any QR symbol as its dark runs (the print files' sheet marks use it too).
    symbol(scheme: str, code: str) -> PaymentSymbol
        The right one of the three for a billing record's ``payment.scheme``.

    Barcode / QrCode (frozen; PaymentSymbol is their Protocol):
        .size -> (width, height)            points, quiet zones included
        .draw(canvas, x, y) -> None         lower-left corner of .size at (x, y)

Geometry on paper (module widths are whole hundredths of an inch: whole printer dots at
300 and 600 dpi, so bars of one width print alike instead of rounding differently):

- ITF: narrow bar 0.254 mm (10 mil), wide = 3 x narrow, 13 mm tall, quiet zones of 20
  narrow modules (5.08 mm) each side. Interleaved 2 of 5 is what FEBRABAN's layout
  requires; 1:3 and 13 mm are bank-slip practice; and as 44 digits are 405 modules, this
  narrow bar gives the 103 mm-long symbol of Brazilian bank slips (the length bank-slip
  software such as pyboleto derives its narrow bar from). The quiet zone meets both the
  ~5 mm of bank-slip guidance and ISO/IEC 16390's 10X. 113 mm x 13 mm in all.
- Code 128: module 0.254 mm, 13 mm tall, 10-module quiet zones (ISO/IEC 15417); a
  48-character reference (the most :mod:`billing.paycodes.code128` accepts) is 148 mm.
- QR: module 0.508 mm (20 mil; at least ~0.4 mm for phone cameras at reading distance),
  4-module quiet zone (ISO/IEC 18004). An EPC payload at its 331-byte limit is version
  13 at level M: 69 + 8 modules = 39 mm square.

Every draw paints the whole ``.size`` white first, because quiet zones and the spaces
between bars are read as "light": on a tinted brand panel they would lose contrast.
Building and drawing are pure: the same code draws the same bytes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

import zxingcpp
from barcode.codex import Code128 as _Code128
from barcode.itf import ITF as _ITF
from reportlab.lib.units import inch, mm

from invoicer.billing.paycodes import PaymentCodeError, epc, febraban, gost
from invoicer.billing.paycodes import code128 as code128_check

if TYPE_CHECKING:
    from reportlab.pdfgen.canvas import Canvas

__all__ = [
    "CODE128_HEIGHT",
    "CODE128_MODULE",
    "CODE128_QUIET_MODULES",
    "ITF_HEIGHT",
    "ITF_NARROW",
    "ITF_QUIET_MODULES",
    "ITF_WIDE_RATIO",
    "QR_MODULE",
    "QR_QUIET_MODULES",
    "Barcode",
    "PaymentSymbol",
    "QrCode",
    "code128",
    "itf",
    "qr",
    "symbol",
]

MIL = inch / 1000

ITF_NARROW = 10 * MIL  # 0.254 mm
ITF_WIDE_RATIO = 3  # FEBRABAN's 1:3; ISO/IEC 16390 allows 2-3, and 3 reads most reliably
ITF_HEIGHT = 13 * mm
# 5.08 mm: at least the 5 mm of bank-slip practice and twice ISO/IEC 16390's 10X.
ITF_QUIET_MODULES = 20

CODE128_MODULE = 10 * MIL
CODE128_HEIGHT = 13 * mm
CODE128_QUIET_MODULES = 10

QR_MODULE = 20 * MIL  # 0.508 mm
QR_QUIET_MODULES = 4


class PaymentSymbol(Protocol):
    """Something the layout places by its size and then draws."""

    @property
    def size(self) -> tuple[float, float]:
        """``(width, height)`` in points, quiet zones included."""
        ...

    def draw(self, canvas: Canvas, x: float, y: float) -> None:
        """Draw with the lower-left corner of :attr:`size` at ``(x, y)``."""
        ...


@dataclass(frozen=True, slots=True)
class Barcode:
    """A linear barcode as geometry: bars in modules, sizes in points.

    ``bars`` holds ``(start, width)`` of each bar in modules, counted from the first bar;
    ``modules`` is the width from the first bar to the end of the last; ``module`` is the
    narrow element in points, ``height`` the bar height in points, and ``quiet_modules``
    the quiet zone on each side, in modules.
    """

    symbology: str
    data: str
    bars: tuple[tuple[int, int], ...]
    modules: int
    module: float
    height: float
    quiet_modules: int
    _path: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        q = self.quiet_modules
        box = (self.modules + 2 * q, 1)
        object.__setattr__(
            self, "_path", _path(box, ((q + start, 0, width, 1) for start, width in self.bars))
        )

    @property
    def size(self) -> tuple[float, float]:
        """``(width, height)`` in points: both quiet zones and the bars."""
        return ((self.modules + 2 * self.quiet_modules) * self.module, self.height)

    def draw(self, canvas: Canvas, x: float, y: float) -> None:
        """Draw the quiet zones and bars with the lower-left corner at ``(x, y)``."""
        _paint(canvas, (x, y, self.module, self.height), self._path)


@dataclass(frozen=True, slots=True)
class QrCode:
    """A QR code as geometry: dark runs of modules, sizes in points.

    ``runs`` holds ``(row, column, length)`` of each horizontal run of dark modules, rows
    counted from the top, quiet zone excluded; ``modules`` is the side of the symbol in
    modules (``17 + 4 * version``); ``data`` is the exact bytes in the symbol.
    """

    data: bytes
    version: int
    error: str
    modules: int
    runs: tuple[tuple[int, int, int], ...]
    module: float
    quiet_modules: int
    _path: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        q, side = self.quiet_modules, self.modules + 2 * self.quiet_modules
        # PDF y grows upwards, QR rows downwards: row 0 is the top row of the symbol.
        top = q + self.modules - 1
        rects = ((q + col, top - row, length, 1) for row, col, length in self.runs)
        object.__setattr__(self, "_path", _path((side, side), rects))

    @property
    def size(self) -> tuple[float, float]:
        """``(width, height)`` in points: the symbol and its quiet zone, a square."""
        side = (self.modules + 2 * self.quiet_modules) * self.module
        return (side, side)

    def draw(self, canvas: Canvas, x: float, y: float) -> None:
        """Draw the quiet zone and modules with the lower-left corner at ``(x, y)``."""
        _paint(canvas, (x, y, self.module, self.module), self._path)


def itf(code: str) -> Barcode:
    """The FEBRABAN arrecadação barcode for the 44-digit ``code``, as Interleaved 2 of 5.

    The code is checked with :func:`billing.paycodes.febraban.parse` first (raising
    :class:`~billing.paycodes.PaymentCodeError`): python-barcode would quietly pad an
    odd-length number with a leading 0 and print a different code.
    """
    febraban.parse(code)
    pattern = _ITF(code, narrow=1, wide=ITF_WIDE_RATIO).build()[0]
    return Barcode(
        "ITF", code, _bars(pattern), len(pattern), ITF_NARROW, ITF_HEIGHT, ITF_QUIET_MODULES
    )


def code128(code: str) -> Barcode:
    """The Code 128 barcode for a payment reference (printable ASCII, at most 48 characters).

    Checked with :func:`billing.paycodes.code128.validate` first, which raises
    :class:`~billing.paycodes.PaymentCodeError`.
    """
    code128_check.validate(code)
    pattern = _Code128(code).build()[0]  # start, data, check, stop: 11 * n + 35 modules
    return Barcode(
        "Code 128",
        code,
        _bars(pattern),
        len(pattern),
        CODE128_MODULE,
        CODE128_HEIGHT,
        CODE128_QUIET_MODULES,
    )


def qr(payload: str, error: str = "M", *, encoding: str | None = None) -> QrCode:
    """The QR code for a payment ``payload`` at error correction ``error`` (L, M, Q, H).

    The payload goes into the symbol as bytes in ``encoding``; by default that is the
    character set the payload itself declares (GOST R 56042 ``ST0001`` + 1/2/3 for
    windows-1251/UTF-8/KOI8-R, EPC069-12 line 3), else UTF-8, so a banking app that
    trusts the header reads the text that was meant. No ECI segment is added: both
    standards carry the character set in the payload, and banking-app readers that do not
    know ECI could take its header for data.
    ``error`` is kept exactly, never raised to a stronger level that happens to fit the
    same version: EPC069-12 asks for level M.
    """
    # zxing-cpp's writer (C++): it takes the payload as bytes we encoded ourselves (no
    # guessing between Latin-1 and UTF-8), keeps the error level asked for, adds no ECI,
    # scores the eight masks as ISO/IEC 18004 says and hands over the bare module
    # matrix, so runs can be merged and drawn our way. It builds a version-13 GOST
    # payload in ~1 ms where segno (pure Python, used before) took ~16 ms: on a bill
    # run of QR invoices, more than the rest of a small invoice's rendering. It also
    # switches to alphanumeric or numeric segments where that makes the symbol smaller
    # (every reader decodes them to the same bytes).
    level = error.upper()
    if level not in ("L", "M", "Q", "H"):
        raise ValueError(f"error correction level must be L, M, Q or H, got {error!r}")
    data = payload.encode(encoding or _declared_encoding(payload))
    side, runs = qr_runs(data, level)
    return QrCode(
        data=data,
        version=(side - 17) // 4,
        error=level,
        modules=side,
        runs=runs,
        module=QR_MODULE,
        quiet_modules=QR_QUIET_MODULES,
    )


def qr_runs(data: bytes, level: str, *, version: int | None = None
            ) -> tuple[int, tuple[tuple[int, int, int], ...]]:
    """A QR symbol of ``data`` at error level ``level`` (and ``version``, else the
    smallest that holds it) as ``(side, runs)``: its side in modules, quiet zone
    excluded, and ``(row, column, length)`` of each horizontal run of dark modules, rows
    from the top. ``ValueError`` if ``data`` does not fit. The payment QR codes and the
    print files' sheet marks are both made here."""
    options = {} if version is None else {"version": version}
    made = zxingcpp.create_barcode(data, zxingcpp.BarcodeFormat.QRCode, ec_level=level,
                                   **options)
    if made.ec_level != level:  # never silently another level (EPC069-12 asks for M)
        raise ValueError(f"QR made at level {made.ec_level}, not {level}")
    image = made.to_image(scale=1, add_quiet_zones=False)  # one byte a module, 0 = dark
    side = image.shape[0]
    modules = bytes(image)
    return side, tuple((row, start, length)
                       for row in range(side)
                       for start, length in _runs(modules[row * side:(row + 1) * side], 0))


_BUILDERS: dict[str, Callable[[str], PaymentSymbol]] = {
    "febraban": itf,
    "code128": code128,
    "gost_qr": qr,
    "epc_qr": qr,
}


def symbol(scheme: str, code: str) -> PaymentSymbol:
    """The symbol for a billing record's ``payment.scheme`` and ``payment.code``."""
    try:
        build = _BUILDERS[scheme]
    except KeyError:
        raise PaymentCodeError(
            "scheme", f"no printable symbol for payment scheme {scheme!r}"
        ) from None
    return build(code)


def _bars(pattern: str) -> tuple[tuple[int, int], ...]:
    """``(start, width)`` of the dark runs of a python-barcode pattern of ``1`` and ``0``."""
    return tuple(_runs(pattern.encode("ascii"), ord("1")))


def _runs(line: bytes | bytearray, dark: int) -> list[tuple[int, int]]:
    """``(start, length)`` of each run of ``dark`` values in ``line``."""
    runs: list[tuple[int, int]] = []
    start = None
    for i, value in enumerate(line):
        if value == dark:
            if start is None:
                start = i
        elif start is not None:
            runs.append((start, i - start))
            start = None
    if start is not None:
        runs.append((start, len(line) - start))
    return runs


def _declared_encoding(payload: str) -> str:
    """The character set a GOST or EPC payload declares in its header; UTF-8 otherwise."""
    if payload.startswith(gost.FORMAT + gost.VERSION) and len(payload) > 6:
        return gost.ENCODINGS.get(payload[6], "utf-8")
    lines = payload.split("\n", 3)
    if len(lines) > 2 and lines[0].removesuffix("\r") == epc.SERVICE_TAG:
        return epc.CHARSETS.get(lines[2].removesuffix("\r"), "utf-8")
    return "utf-8"


def _path(box: tuple[int, int], rects: Iterable[tuple[int, int, int, int]]) -> str:
    """PDF operators that fill ``box`` white and then ``rects`` black, in module units.

    Module units keep every operand a small integer, so the operators do not depend on
    where the symbol goes and are written once, when the symbol is built: drawing is then
    one append, where ReportLab's path object costs ~3 µs a rectangle (4 ms for a
    version-13 QR code), and the stream is about half the size of one in points. All the
    dark rectangles are one path filled once: anti-aliasing renderers cover their union,
    so no hairline seams show between touching rows of a QR code. ``g`` is DeviceGray:
    black then prints on the black toner/ink alone (RGB black may become four-colour
    black, whose misregistration blurs bar edges).
    """
    dark = "\n".join(f"{x} {y} {w} {h} re" for x, y, w, h in rects)
    return f"1 g\n0 0 {box[0]} {box[1]} re\nf\n0 g\n{dark}\nf"


def _paint(canvas: Canvas, place: tuple[float, float, float, float], path: str) -> None:
    """Write ``path`` (from :func:`_path`) scaled to ``place``: ``(x, y, module w, module h)``."""
    x, y, sx, sy = place
    canvas.saveState()
    canvas.translate(x, y)
    canvas.scale(sx, sy)
    canvas.addLiteral(path)
    canvas.restoreState()
