"""Reading PDFs back with the tools a print shop would trust (poppler, zbar): the sheet
marks zbar decodes on a page, the words ``pdftotext -bbox`` finds and where."""

from __future__ import annotations

import re
import subprocess
from html import unescape
from pathlib import Path


def run(*args: str) -> str:
    """Run a command; its stdout (it must succeed)."""
    return subprocess.run(args, check=True, capture_output=True, text=True).stdout


MARK = re.compile(r"B\d+\|D\d+\|S\d+/\d+")


def marks_on(pdf: Path, page: int, tmp: Path) -> list[str]:
    """The sheet marks zbar reads on one page rasterised at 150 dpi (other QR codes,
    such as EPC and GOST payment codes, left out)."""
    png = tmp / f"p{page}"
    run("pdftoppm", "-r", "150", "-f", str(page), "-l", str(page), "-singlefile", "-png",
        str(pdf), str(png))
    result = subprocess.run(["zbarimg", "-q", "--raw", "-Sdisable", "-Sqrcode.enable",
                             f"{png}.png"], capture_output=True, text=True)
    return [code for code in result.stdout.split() if MARK.fullmatch(code)]


def words_on(pdf: Path, page: int) -> list[tuple[float, float, float, float, str]]:
    """``pdftotext -bbox`` words of one page, in points from the top-left corner."""
    html = run("pdftotext", "-bbox", "-f", str(page), "-l", str(page), str(pdf), "-")
    return [(float(a), float(b), float(c), float(d), unescape(w)) for a, b, c, d, w in
            re.findall(r'xMin="([\d.]+)" yMin="([\d.]+)" xMax="([\d.]+)" yMax="([\d.]+)">'
                       r"([^<]*)</word>", html)]

