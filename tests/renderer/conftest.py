"""Render helpers for renderer tests: samples by invoice number, and the real PDF tools."""

from __future__ import annotations

import json
import subprocess
from datetime import UTC
from functools import cache
from pathlib import Path

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
