"""Render page 1 of a sample per locale (plus the business fleet) to PNG previews.

    python samples/render_previews.py      # writes samples/previews/*.png

Needs pdftoppm (Debian poppler-utils). The previews are what the README shows.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from invoicer.billing import parse_record  # noqa: E402
from invoicer.renderer import render  # noqa: E402

PREVIEWS = {
    "pt_BR": "OI-2026-11-0000123",
    "ro_RO": "CT-2026-11-0000457",
    "ru_RU": "VT-2026-11-0003345",
    "nl_NL": "PT-2026-11-0012012",
    "fa_IR": "AB-2026-11-0000721",
    "en": "AM-2026-11-0066666",
    "business": "OI-2026-10-0100052",
}


def main() -> None:
    records = {}
    with open(HERE / "invoices.jsonl", "rb") as f:
        for line in f:
            record = parse_record(line)
            records[record.invoice.number] = record
    out = HERE / "previews"
    out.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        for name, number in PREVIEWS.items():
            pdf = Path(tmp) / f"{name}.pdf"
            pdf.write_bytes(render(records[number]))
            subprocess.run(["pdftoppm", "-png", "-r", "60", "-f", "1", "-l", "1",
                            "-singlefile", str(pdf), str(out / name)], check=True)
            print(out / f"{name}.png")


if __name__ == "__main__":
    main()
