"""Print files: documents merged into one print-ready, duplex PDF with sheet marks.

A transport: it takes PDF bytes and writes a file; which invoices go into which batch,
and in what order, is the print-batching workflow's (``invoicer.workflows.printing``).

The batch PDF (:class:`BatchPdfWriter`):

- reuses the documents byte for byte (content streams, fonts, images are copied raw,
  never re-rendered or recompressed);
- pads every document with a blank page to an even page count, so with duplex
  printing each document starts on the front of a new sheet (an odd page);
- draws on the front of every sheet a QR code ``B<batch>|D<seq>|S<i>/<n>`` (batch,
  document sequence, sheet i of n) so an inserter can keep a subscriber's sheets
  together. It sits in the left margin strip near the bottom, outside the content
  area and far from the DIN 5008 address window, and is an appended content stream of
  vector operators (the geometry of :mod:`renderer.codes`: dark runs of modules as
  rectangles in module units, one fill, DeviceGray);
- streams: each document is parsed with pikepdf (qpdf), its objects renumbered and
  written straight to the output file, then dropped. Memory stays flat whatever the
  batch size (qpdf's own page merging keeps every copied page in memory: ~60 kB a
  page, 1.2 GB for 20,000 pages).

Output is deterministic (no clock, no random ids): the same documents give the same
bytes.
"""

from __future__ import annotations

import hashlib
import io
import itertools
import logging
import math
import os
import re
import zlib
from array import array
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import BinaryIO

import pikepdf

from invoicer.renderer.codes import QR_QUIET_MODULES, qr_runs
from invoicer.renderer.layout import WINDOW_LEFT

__all__ = [
    "MARK_BOTTOM",
    "MARK_LEFT",
    "MARK_MODULE",
    "MM",
    "BatchPdfWriter",
    "MarksAhead",
    "PrintBatchError",
    "batch_name",
    "iter_marks",
    "mark_operators",
    "mark_payload",
    "mark_position",
    "parse_batch_id",
]

log = logging.getLogger(__name__)

MM = 72 / 25.4
"""One millimetre in PDF points."""

# --- the sheet mark ---------------------------------------------------------------------
#
# 1/60 in (0.423 mm) modules: whole printer dots at 300 dpi (5) and 600 dpi (10), and
# 2.5 pixels at 150 dpi, where zbar still reads every symbol when the mark sits on the
# 1/300 in grid (it missed ~1 in 100 off the grid, and read none at 1/75 in modules). The
# renderer's 0.508 mm payment-QR module would not fit a 15 mm margin. Version 2 at
# level M holds 26 bytes: B<7 digits>|D<6>|S<3>/<3>. Every symbol of a batch has the
# same size and place, which is what an inserter's camera wants.
MARK_MODULE = 72 / 60
MARK_QUIET = QR_QUIET_MODULES
MARK_VERSION = 2
MARK_ERROR = "M"
# zxing-cpp (C++) makes a mark in ~0.11 ms CPU, mask chosen by ISO 18004's penalties;
# segno (pure Python) took ~0.47 ms even with a fixed mask (0.75 ms choosing it), as
# much as merging a page.
MARK_LEFT = 3 * MM
"""Preferred distance of the mark's quiet zone from the left edge of the sheet."""
MARK_BOTTOM = 20 * MM
"""Distance of the mark's quiet zone from the bottom edge: clear of the footer line."""
MARK_GRID = 72 / 300
"""Marks are placed on whole 1/300 in from the top-left corner: whole printer dots."""


class PrintBatchError(Exception):
    """A batch cannot be closed or pulled as it stands (a person has to look)."""


def batch_name(batch_id: int) -> str:
    """``B<id>``: how a batch is named in keys, marks, manifests and the CLI."""
    return f"B{batch_id}"


def parse_batch_id(text: str | int) -> int:
    """``12``, ``"12"`` or ``"B12"`` -> 12."""
    value = str(text).strip()
    value = value[1:] if value[:1] in ("B", "b") else value
    if not value.isdigit() or int(value) < 1:
        raise ValueError(f"not a batch id: {text!r} (expected e.g. B12)")
    return int(value)


def mark_payload(batch_id: int, seq: int, sheet: int, sheets: int) -> str:
    """What the sheet mark says: ``B<batch>|D<seq>|S<sheet>/<sheets>``."""
    return f"{batch_name(batch_id)}|D{seq}|S{sheet}/{sheets}"


# --- the sheet mark ---------------------------------------------------------------------


def mark_operators(payload: str) -> tuple[int, bytes]:
    """A QR code for ``payload`` as PDF operators in module units, and its side.

    Returns ``(side, operators)``: ``side`` in modules, quiet zone included; the
    operators fill the whole square white, then every horizontal run of dark modules
    as one path filled black in DeviceGray, rows counted from the top, exactly as
    :mod:`renderer.codes` draws payment QR codes. Scale and place them with ``cm``.
    """
    data = payload.encode("ascii")
    try:
        n, runs = qr_runs(data, MARK_ERROR, version=MARK_VERSION)
    except ValueError:  # a batch id beyond seven digits: a bigger symbol
        n, runs = qr_runs(data, MARK_ERROR)
    q = MARK_QUIET
    top = q + n - 1
    rects = b"\n".join(b"%d %d %d 1 re" % (q + col, top - row, length)
                       for row, col, length in runs)
    side = n + 2 * q
    return side, b"1 g\n0 0 %d %d re\nf\n0 g\n%s\nf" % (side, side, rects)


def _make_marks(batch_id: int, keys: list[tuple[int, int, int]]) -> list[tuple[int, bytes]]:
    return [mark_operators(mark_payload(batch_id, *key)) for key in keys]


class MarksAhead:
    """The sheet marks of a batch, made ahead in a helper process, in print order.

    A mark cost about as much as merging its page when segno (pure Python) made it,
    so on a machine with a second core a helper process makes them while this one
    merges (a third off a 10,000-document close then; with zxing-cpp a mark is ~0.11
    ms and the helper saves less: not re-measured). At most ``window`` chunks of ``chunk``
    marks wait in memory. Called as ``marks(seq, sheet, sheets)``; a call out of the
    expected order (a document whose page count differs from the ledger's, which
    fails the batch right after) or a helper that died is answered in-process.
    """

    def __init__(self, batch_id: int, sheets: Iterable[tuple[int, int]], *,
                 workers: int | None = None, chunk: int = 256, window: int = 4) -> None:
        self._batch_id = batch_id
        keys = ((seq, sheet, n) for seq, n in sheets for sheet in range(1, n + 1))
        self._chunks = iter(lambda: list(itertools.islice(keys, chunk)), [])
        self._window = window
        self._pending: deque[tuple[list[tuple[int, int, int]], Future]] = deque()
        self._ready: deque[tuple[tuple[int, int, int], tuple[int, bytes]]] = deque()
        workers = (1 if (os.cpu_count() or 1) > 1 else 0) if workers is None else workers
        self._pool: ProcessPoolExecutor | None = None
        if workers:
            try:
                self._pool = ProcessPoolExecutor(workers)
                self._fill()
            except (OSError, BrokenProcessPool, AssertionError) as exc:
                # AssertionError: multiprocessing refuses children of a daemon process.
                log.info("sheet marks made in-process: %s", exc)
                self._stop()

    def _fill(self) -> None:
        assert self._pool is not None
        while len(self._pending) < self._window:
            keys = next(self._chunks, None)
            if keys is None:
                return
            self._pending.append((keys, self._pool.submit(_make_marks, self._batch_id, keys)))

    def _stop(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
        self._pool, self._pending = None, deque()
        self._ready.clear()

    def __call__(self, seq: int, sheet: int, sheets: int) -> tuple[int, bytes]:
        key = (seq, sheet, sheets)
        if not self._ready and self._pending:
            keys, future = self._pending.popleft()
            try:
                self._ready.extend(zip(keys, future.result(), strict=True))
                self._fill()
            except (BrokenProcessPool, OSError) as exc:
                log.warning("sheet-mark helper failed (%s); making them in-process", exc)
                self._stop()
        if self._ready and self._ready[0][0] == key:
            return self._ready.popleft()[1]
        self._stop()  # out of order: the rest is made here, as asked
        return mark_operators(mark_payload(self._batch_id, seq, sheet, sheets))

    def __enter__(self) -> MarksAhead:
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop()


def mark_position(box: tuple[float, float, float, float], margin_left: float,
                  side: float) -> tuple[float, float]:
    """Lower-left corner (points) of a mark ``side`` points square on a page ``box``.

    In the left margin strip: ``MARK_LEFT`` from the left edge, or closer to it when
    the margin is narrow, never into the content area; ``MARK_BOTTOM`` above the
    bottom edge; both on the 1/300 in grid counted from the top-left corner.
    """
    x0, y0, _, y1 = box
    left = math.floor(min(MARK_LEFT, margin_left - side) / MARK_GRID + 1e-6) * MARK_GRID
    if left < 0:
        raise PrintBatchError(f"a {side / MM:.1f} mm sheet mark does not fit a "
                              f"{margin_left / MM:.1f} mm left margin")
    if left + side > WINDOW_LEFT:  # never near the envelope window, whatever the margin
        raise PrintBatchError(f"a {side / MM:.1f} mm sheet mark would reach the window")
    below_top = round((y1 - y0 - MARK_BOTTOM - side) / MARK_GRID) * MARK_GRID
    return x0 + left, y1 - below_top - side


# --- the batch PDF ----------------------------------------------------------------------

# A qpdf-unparsed literal string (qpdf escapes every parenthesis inside one, so they do
# not nest), or an indirect reference. Strings are matched only to be skipped: the text
# "12 0 R" inside one is not a reference.
_TOKENS = re.compile(rb"\((?:[^\\()]|\\.)*\)|(?<![\d.])(\d+) (\d+) R(?![\w])", re.S)
_INHERITABLE = ("/Resources", "/MediaBox", "/CropBox", "/Rotate")
_DROP = (pikepdf.Name.Pages, pikepdf.Name.Catalog)


class BatchPdfWriter:
    """Writes documents one after another into one PDF file, holding none of them.

    Each document is parsed with pikepdf; the objects its pages reach are renumbered
    and written out at once (stream data copied raw), and the document is dropped.
    Memory held: one offset per object and the current page-tree node. Pages get a
    two-level page tree (nodes of :attr:`KIDS` pages). Catalog-level features of the
    documents (outlines, named destinations, forms) are left out: this is a print job.

    ``add()`` pads every document to an even page count with a blank page the size of
    its last page and puts the sheet mark on every odd page (the front of a sheet).
    ``close()`` writes the page tree, catalog, cross-reference table and trailer and
    returns ``(pages, sha256, size)``.
    """

    KIDS = 128

    def __init__(self, out: BinaryIO, *, batch_id: int, margin_left: float,
                 title: str = "", producer: str = "invoicer",
                 marks: Callable[[int, int, int], tuple[int, bytes]] | None = None) -> None:
        self._out = out
        # marks(seq, sheet, sheets) -> mark_operators() of that sheet's payload.
        self._marks = marks or (lambda seq, sheet, sheets: mark_operators(
            mark_payload(batch_id, seq, sheet, sheets)))
        self._sha = hashlib.sha256()
        self._pos = 0
        self._offsets = array("Q", [0])  # by object number; 0 is the free-list head
        self._batch_id = batch_id
        self._margin_left = margin_left
        self._info = (title, producer)
        # The /ID is derived from the batch and its documents: same batch, same bytes.
        self._id = hashlib.sha256(b"invoicer print batch %d" % batch_id)
        self._write(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
        self._catalog = self._reserve()
        self._root = self._reserve()
        self._nodes: list[tuple[int, int]] = []
        self._node: int | None = None
        self._kids: list[int] = []
        # The first stream of every marked page: "q", so that whatever state the
        # document's own content leaves behind, the mark (after "Q") starts clean.
        self._push = self._reserve()
        self._object(self._push, b"<< /Length 2 >>\nstream\nq\n\nendstream")
        self.pages = 0
        self.documents = 0

    # -- low level --

    def _write(self, data: bytes) -> None:
        self._out.write(data)
        self._sha.update(data)
        self._pos += len(data)

    def _reserve(self) -> int:
        self._offsets.append(0)
        return len(self._offsets) - 1

    def _object(self, number: int, body: bytes) -> None:
        self._offsets[number] = self._pos
        self._write(b"%d 0 obj\n%s\nendobj\n" % (number, body))

    def _stream(self, number: int, data: bytes) -> None:
        packed = zlib.compress(data, 6)
        self._object(number, b"<< /Filter /FlateDecode /Length %d >>\nstream\n%s\nendstream"
                     % (len(packed), packed))

    def _parent(self) -> int:
        """The page-tree node the next page goes under."""
        if self._node is None or len(self._kids) == self.KIDS:
            self._flush_node()
            self._node = self._reserve()
        return self._node

    def _flush_node(self) -> None:
        if self._node is not None and self._kids:
            kids = b" ".join(b"%d 0 R" % k for k in self._kids)
            self._object(self._node, b"<< /Type /Pages /Parent %d 0 R /Kids [ %s ] /Count %d >>"
                         % (self._root, kids, len(self._kids)))
            self._nodes.append((self._node, len(self._kids)))
            self._node, self._kids = None, []

    # -- documents --

    def add(self, data: bytes, *, seq: int) -> int:
        """Append one document (PDF bytes) as document ``seq``; return its page count."""
        self._id.update(hashlib.sha256(data).digest())
        with pikepdf.open(io.BytesIO(data)) as src:
            if src.is_encrypted:
                raise ValueError("encrypted PDF")
            pages = [page.obj for page in src.pages]
            if not pages:
                raise ValueError("no pages")
            numbers: dict[tuple[int, int], int] = {}
            queue: list[tuple[int, int]] = []

            def renumber(match: re.Match[bytes]) -> bytes:
                if match.group(1) is None:
                    return match.group(0)  # a string: left alone
                key = (int(match.group(1)), int(match.group(2)))
                number = numbers.get(key)
                if number is None:
                    number = numbers[key] = self._reserve()
                    queue.append(key)
                return b"%d 0 R" % number

            for page in pages:
                numbers[page.objgen] = self._reserve()
            sheets = (len(pages) + 1) // 2
            box: list[float] = []
            for k, page in enumerate(pages):
                for name in _INHERITABLE:
                    if name not in page:
                        value = _inherited(page, name)
                        if value is not None:
                            page[name] = value
                if int(page.get("/Rotate", 0)) % 360:
                    raise ValueError("rotated pages are not supported")
                shown = page.get("/CropBox") or page.get("/MediaBox")
                if shown is None:
                    raise ValueError("a page without a MediaBox")
                box = [float(v) for v in shown]
                del page["/Parent"]
                contents = b""
                if k % 2 == 0:
                    contents = self._marked_contents(page, renumber, box, seq, k // 2 + 1,
                                                     sheets)
                body = _TOKENS.sub(renumber, page.unparse(resolved=True))
                self._object(numbers[page.objgen], b"<< /Parent %d 0 R %s%s"
                             % (self._parent(), contents, body[2:]))
                self._kids.append(numbers[page.objgen])
            if len(pages) % 2:
                blank = self._reserve()
                self._object(blank, b"<< /Type /Page /Parent %d 0 R /MediaBox [ %s ] "
                             b"/Resources << >> >>"
                             % (self._parent(), b" ".join(b"%.4f" % v for v in box)))
                self._kids.append(blank)
            while queue:
                key = queue.pop()
                self._copy(src.get_object(key), numbers[key], renumber)
        self.pages += 2 * sheets
        self.documents += 1
        return len(pages)

    def _marked_contents(self, page: pikepdf.Dictionary,
                         renumber: Callable[[re.Match[bytes]], bytes],
                         box: list[float], seq: int, sheet: int, sheets: int) -> bytes:
        """``/Contents`` with the page's own streams wrapped in q/Q and the mark after."""
        own = b""
        if "/Contents" in page:
            contents = page.Contents
            # An array (even an indirect one) is inlined: /Contents takes streams only.
            own = _TOKENS.sub(renumber, contents.unparse(resolved=isinstance(
                contents, pikepdf.Array)))
            if own.startswith(b"["):
                own = own[1:-1].strip()
            del page["/Contents"]
        side, operators = self._marks(seq, sheet, sheets)
        x, y = mark_position((box[0], box[1], box[2], box[3]), self._margin_left,
                             side * MARK_MODULE)
        mark = self._reserve()
        self._stream(mark, b"\nQ\nq %.4f 0 0 %.4f %.4f %.4f cm\n%s\nQ\n"
                     % (MARK_MODULE, MARK_MODULE, x, y, operators))
        return b"/Contents [ %d 0 R %s %d 0 R ] " % (self._push, own, mark)

    def _copy(self, obj: pikepdf.Object, number: int,
              renumber: Callable[[re.Match[bytes]], bytes]) -> None:
        if isinstance(obj, pikepdf.Stream):
            raw = obj.read_raw_bytes()
            head = obj.stream_dict
            if "/Length" in head:
                del head["/Length"]  # written from the bytes themselves below
            text = _TOKENS.sub(renumber, head.unparse(resolved=True))
            self._object(number, b"%s/Length %d >>\nstream\n%s\nendstream"
                         % (text[:-2], len(raw), raw))
        elif isinstance(obj, pikepdf.Dictionary) and obj.get("/Type") in _DROP:
            # Reached through a link or a back-pointer: the document's own page tree or
            # catalog has no place in the batch.
            self._object(number, b"null")
        else:
            self._object(number, _TOKENS.sub(renumber, obj.unparse(resolved=True)))

    def close(self) -> tuple[int, str, int]:
        """Finish the file; return ``(pages, sha256 hex, size in bytes)``."""
        self._flush_node()
        kids = b" ".join(b"%d 0 R" % node for node, _ in self._nodes)
        self._object(self._root, b"<< /Type /Pages /Kids [ %s ] /Count %d >>"
                     % (kids, self.pages))
        # Duplex by default in viewers' print dialogs: the file is laid out for it.
        self._object(self._catalog, b"<< /Type /Catalog /Pages %d 0 R /ViewerPreferences "
                     b"<< /Duplex /DuplexFlipLongEdge >> >>" % self._root)
        info = self._reserve()
        title, producer = self._info
        self._object(info, b"<< /Title %s /Producer %s >>"
                     % (_pdf_string(title), _pdf_string(producer)))
        xref = self._pos
        count = len(self._offsets)
        self._write(b"xref\n0 %d\n0000000000 65535 f \n" % count)
        for start in range(1, count, 4096):
            self._write(b"".join(b"%010d 00000 n \n" % offset
                                 for offset in self._offsets[start:start + 4096]))
        file_id = self._id.hexdigest()[:32].encode()
        self._write(b"trailer\n<< /Size %d /Root %d 0 R /Info %d 0 R /ID [ <%s> <%s> ] >>\n"
                    b"startxref\n%d\n%%%%EOF\n"
                    % (count, self._catalog, info, file_id, file_id, xref))
        self._out.flush()
        return self.pages, self._sha.hexdigest(), self._pos


def _inherited(page: pikepdf.Dictionary, name: str) -> pikepdf.Object | None:
    """An attribute a page inherits from its page-tree ancestors (its own parent goes)."""
    node = page
    for _ in range(64):  # a cycle in a broken page tree must not hang the batch
        if "/Parent" not in node:
            return None
        node = node.Parent
        if name in node:
            return node[name]
    return None


def _pdf_string(text: str) -> bytes:
    """A PDF literal string (ASCII; anything else becomes ``?``)."""
    raw = text.encode("ascii", "replace")
    return b"(" + raw.replace(b"\\", b"\\\\").replace(b"(", b"\\(").replace(b")", b"\\)") + b")"


def iter_marks(batch_id: int, sheets_per_document: Iterable[int]) -> Iterator[str]:
    """Every mark payload of a batch in print order (for checks and the print shop)."""
    for seq, sheets in enumerate(sheets_per_document, start=1):
        for sheet in range(1, sheets + 1):
            yield mark_payload(batch_id, seq, sheet, sheets)
