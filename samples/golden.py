"""Golden renders of the samples: what each one looks like, kept in the repository.

    python samples/golden.py          # rewrite samples/golden/ from the current renderer

For every record of ``samples/invoices.jsonl``, ``samples/golden/`` holds

- ``<invoice number>.txt``: the text layer of every page (``pdftotext -layout``, pages
  separated by form feeds), so a change of wording, number or layout is a text diff;
- ``<invoice number>-<page>.png``: the first pages and the last at 24 dpi in grey, so a
  change of how it looks is a picture to review (GitHub shows image diffs).

``tests/renderer/test_golden.py`` renders the samples again and compares them with these
files: a layout change fails it until the files are regenerated with the command above
and the diff is reviewed. Needs pdftotext and pdftoppm (Debian poppler-utils).
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

GOLDEN = HERE / "golden"
DPI = 24
IMAGED_PAGES = 3  # the first pages hold the varied layout; the last page closes it


def records():
    """The sample records, in file order."""
    from invoicer.billing import parse_record

    with open(HERE / "invoices.jsonl", "rb") as f:
        return [parse_record(line) for line in f]


def imaged(pages: int) -> list[int]:
    """Page numbers that get a picture."""
    return sorted({*range(1, min(pages, IMAGED_PAGES) + 1), pages})


def artifacts(pdf: bytes, number: str, out: Path) -> list[Path]:
    """Write the text layer and page images of one rendered sample into ``out``."""
    path = out / f"{number}.pdf"
    path.write_bytes(pdf)
    text = out / f"{number}.txt"
    subprocess.run(["pdftotext", "-layout", "-enc", "UTF-8", str(path), str(text)],
                   check=True, capture_output=True, timeout=300)
    pages = text.read_text(encoding="utf-8").count("\f")
    written = [text]
    for page in imaged(pages):
        stem = out / f"{number}-{page}"
        subprocess.run(["pdftoppm", "-png", "-gray", "-r", str(DPI), "-f", str(page),
                        "-l", str(page), "-singlefile", str(path), str(stem)],
                       check=True, capture_output=True, timeout=300)
        written.append(stem.with_suffix(".png"))
    path.unlink()
    return written


def main() -> None:
    from invoicer.renderer import render

    GOLDEN.mkdir(exist_ok=True)
    for old in GOLDEN.iterdir():
        if old.suffix in (".txt", ".png"):
            old.unlink()
    with tempfile.TemporaryDirectory() as tmp:
        for record in records():
            for path in artifacts(render(record), record.invoice.number, Path(tmp)):
                path.replace(GOLDEN / path.name)
                print(GOLDEN / path.name)


if __name__ == "__main__":
    main()
