"""Render helpers for renderer tests: samples by invoice number, and the real PDF tools."""

from __future__ import annotations

import json
import re
import subprocess
from datetime import UTC
from functools import cache
from pathlib import Path

import pikepdf
import pytest

from invoicer.billing import BillingRecord, parse_record
from invoicer.renderer import render
from tests.conftest import SAMPLES

TOOLS = ("pdftotext", "pdffonts", "pdftoppm", "zbarimg")


@cache
def sample_records() -> dict[str, BillingRecord]:
    out = {}
    with open(SAMPLES / "invoices.jsonl", "rb") as f:
        for line in f:
            record = parse_record(line)
            out[record.invoice.number] = record
    return out


def sample(number: str) -> BillingRecord:
    return sample_records()[number]


def first_of_locale(locale: str) -> BillingRecord:
    return next(r for r in sample_records().values() if r.invoice.locale == locale)


@cache
def rendered(number: str, detail: str = "full") -> bytes:
    from invoicer.renderer import RenderOptions

    return render(sample(number), RenderOptions(detail=detail))


def run(*cmd: str | Path, input: bytes | None = None) -> str:
    return subprocess.run([str(c) for c in cmd], input=input, capture_output=True,
                          check=True, timeout=120).stdout.decode("utf-8")


def pdftotext(pdf: bytes, *args: str) -> str:
    return run("pdftotext", *args, "-", "-", input=pdf)


def write(tmp_path: Path, pdf: bytes, name: str = "invoice.pdf") -> Path:
    path = tmp_path / name
    path.write_bytes(pdf)
    return path


SYMBOLOGY = {"febraban": "i25", "code128": "code128", "gost_qr": "qrcode", "epc_qr": "qrcode"}


def decode_codes(tmp_path: Path, pdf: bytes, scheme: str, page: int = 1,
                 dpi: int = 150) -> list[str]:
    """Rasterise one page and decode the scheme's symbols on it with zbar.

    Only the scheme's symbology is enabled, so a read also proves the symbology. QR
    payloads hold line breaks, so they are read raw (-Sbinary) as one symbol; linear
    codes are read one per line.
    """
    path = write(tmp_path, pdf)
    run("pdftoppm", "-png", "-r", str(dpi), "-f", str(page), "-l", str(page), path,
        tmp_path / "page")
    (png,) = tmp_path.glob("page*.png")
    symbology = SYMBOLOGY[scheme]
    cmd = ["zbarimg", "--nodbus", "--raw", "-q", "-Sdisable", f"-S{symbology}.enable"]
    if symbology == "qrcode":
        cmd.append("-Sbinary")
    out = subprocess.run([*cmd, str(png)], capture_output=True, timeout=60)
    png.unlink()
    decoded = out.stdout.decode("utf-8")
    return [decoded] if symbology == "qrcode" else [x for x in decoded.split("\n") if x]


def word_boxes(pdf: bytes) -> list[list[tuple[float, float, float, float, str]]]:
    """Per page, poppler's word boxes ``(x0, y0, x1, y1, word)`` (``pdftotext -bbox``;
    y grows downwards)."""
    from html import unescape

    html = run("pdftotext", "-bbox", "-", "-", input=pdf)
    pattern = re.compile(r'xMin="([\d.]+)" yMin="([\d.]+)" xMax="([\d.]+)" '
                         r'yMax="([\d.]+)">([^<]*)</word>')
    return [[(float(a), float(b), float(c), float(d), unescape(w))
             for a, b, c, d, w in pattern.findall(page)]
            for page in html.split("<page ")[1:]]


def overlapping(words, tolerance: float = 0.01) -> list[tuple[tuple, tuple]]:
    """Pairs of word boxes whose interiors meet (a sweep over y)."""
    words = sorted(words, key=lambda w: w[1])
    out = []
    for i, a in enumerate(words):
        for b in words[i + 1:]:
            if b[1] >= a[3] - tolerance:
                break
            if (a[0] < b[2] - tolerance and b[0] < a[2] - tolerance
                    and a[1] < b[3] - tolerance and b[1] < a[3] - tolerance):
                out.append((a, b))
    return out


_GOST_CHARSETS = {b"1": "cp1251", b"2": "utf-8", b"3": "koi8-r"}


def page_one_codes(pdf: bytes, dpi: int = 150) -> list[tuple[str, str]]:
    """Every symbol zbar finds on page 1, all symbologies enabled: ``(type, text)``.

    zbar's XML output counts and names the symbols; it mangles bytes above 0x7F when it
    base64-encodes a payload, so a QR payload is read again raw (``-Sbinary``) and
    decoded with the character set its header declares (GOST ``ST0001`` + 1/2/3).
    """
    import tempfile
    import xml.etree.ElementTree as ET

    with tempfile.TemporaryDirectory() as tmp:
        image = f"{Path(tmp) / 'page'}.pgm"
        subprocess.run(["pdftoppm", "-gray", "-r", str(dpi), "-f", "1", "-l", "1",
                        "-singlefile", "-", image[:-4]], input=pdf, check=True,
                       capture_output=True, timeout=120)
        xml = subprocess.run(["zbarimg", "--nodbus", "--xml", "-q", image],
                             capture_output=True, timeout=120).stdout
        if not xml.strip():
            return []
        ns = {"z": "http://zbar.sourceforge.net/2008/barcode"}
        found = []
        for symbol in ET.fromstring(xml).iterfind(".//z:symbol", ns):
            data = symbol.find("z:data", ns)
            plain = data is not None and data.get("format") != "base64"
            found.append((symbol.get("type", "?"), (data.text or "") if plain else None))
        if any(t == "QR-Code" for t, _ in found):
            raw = subprocess.run(["zbarimg", "--nodbus", "--raw", "-q", "-Sdisable",
                                  "-Sqrcode.enable", "-Sbinary", image],
                                 capture_output=True, timeout=120).stdout.rstrip(b"\n")
            charset = (_GOST_CHARSETS.get(raw[6:7], "utf-8") if raw.startswith(b"ST0001")
                       else "utf-8")
            text = raw.decode(charset, errors="replace")
            found = [(t, text if t == "QR-Code" else d) for t, d in found]
    return found


def page_count(pdf: bytes) -> int:
    info = run("pdfinfo", "-", input=pdf)
    return int(next(x for x in info.splitlines() if x.startswith("Pages:")).split()[1])


@pytest.fixture(autouse=True, scope="session")
def _tools_present():
    import shutil

    missing = [t for t in TOOLS if shutil.which(t) is None]
    if missing:
        pytest.fail(f"missing PDF tools {missing}: run scripts/install --test "
                    "(Debian packages poppler-utils, zbar-tools)")


def with_usage(record: BillingRecord, count: int) -> BillingRecord:
    """The record with its first service's usage replaced by ``count`` simple CDRs.

    Usage amounts are not part of reconciliation, so the record stays valid.
    """
    from datetime import timedelta

    data = json.loads(record.model_dump_json(by_alias=True))
    start = record.services[0].usage[0].start if record.services[0].usage else None
    if start is None:
        from datetime import datetime

        start = datetime.combine(record.invoice.period.start, datetime.min.time(),
                                 UTC)
    kinds = ["local", "long_distance", "sms", "data", "international"]
    usage = []
    for i in range(count):
        kind = kinds[i % len(kinds)]
        cdr = {"start": (start + timedelta(minutes=7 * i)).isoformat(), "type": kind,
               "destination": f"Destination {i % 37}", "amount": "0" if i % 3 else "1"}
        if kind == "data":
            cdr["volume_kb"] = 1024 * (i % 900)
        else:
            cdr["called"] = f"+4420{7946000000 + i}"
            if kind != "sms":
                cdr["duration_s"] = 30 + i % 2000
        usage.append(cdr)
    data["services"][0]["usage"] = usage
    return parse_record(json.dumps(data))


def qpdf_check(pdf: bytes, tmp_path) -> str:
    """``qpdf --check`` of ``pdf``: no error, no warning; its report."""
    path = tmp_path / "check.pdf"
    path.write_bytes(pdf)
    proc = subprocess.run(["qpdf", "--check", str(path)], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "WARNING" not in proc.stdout + proc.stderr
    return proc.stdout


def assert_pdfa3b(pdf: pikepdf.Pdf) -> None:
    """The PDF/A-3b marks a validator looks at first: identification, output intent and
    its ICC profile, a fixed file ID, uncompressed XMP agreeing with the Info dictionary."""
    meta = pdf.open_metadata()
    assert meta["pdfaid:part"] == "3" and meta["pdfaid:conformance"] == "B"
    intent = pdf.Root.OutputIntents[0]
    assert intent.S == "/GTS_PDFA1"
    profile = intent.DestOutputProfile
    assert profile.N == 3 and profile.read_bytes()[36:40] == b"acsp"
    assert pdf.trailer.ID[0] == pdf.trailer.ID[1] and len(bytes(pdf.trailer.ID[0])) == 16
    assert pdf.Root.Metadata.get("/Filter") is None
    assert str(meta["dc:title"]) == str(pdf.docinfo.Title)
    assert str(meta["pdf:Producer"]) == str(pdf.docinfo.Producer)
