"""Print-batch benchmark: close a batch of 10,000 one-to-two-page invoices.

    python bench/print_batch.py                 # 10,000 documents (the issue's figures)
    python bench/print_batch.py --documents 2000 --keep /tmp/pb

Set-up (not timed): a handful of real invoices rendered from synthetic records (1 and 2
pages), archived under 10,000 invoice numbers in a file archive, with their ledger rows
(SQLite) and ``print`` deliveries in the print queue.

Then, in a fresh process so that its peak RSS is its own: ``printing.close()``
against the file archive: join the queue, seal, merge (pikepdf, one document at a
time; sheet marks made ahead in a helper process), archive the batch PDF with the
streamed ``Archive.put_file`` and the manifests.

Targets (issue 7): >= 1,000 pages/s merged and peak RSS <= 300 MB.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import date
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

OPERATOR = "oi"
TARGET_PAGES_PER_S = 1000
TARGET_RSS_MB = 300


def templates(count: int = 8) -> list[tuple[bytes, int]]:
    """Real invoices of one and two pages: (PDF bytes, pages), half of each."""
    from invoicer.billing import parse_record
    from invoicer.billing.synthetic import generate
    from invoicer.renderer import render

    found: dict[int, list[tuple[bytes, int]]] = {1: [], 2: []}
    for rec in generate(2000, 3, 17):
        if rec["operator"]["id"] != OPERATOR:
            continue
        pdf = render(parse_record(json.dumps(rec).encode(), line=1))
        pages = pdf.count(b"/Type /Page\n")
        if pages in found and len(found[pages]) < count // 2:
            found[pages].append((pdf, pages))
        if all(len(v) >= count // 2 for v in found.values()):
            break
    return found[1] + found[2]


def setup(folder: Path, documents: int) -> dict:
    """Ledger, archive and print queue for ``documents`` paper invoices."""
    from invoicer.delivery.archive import FileArchive, invoice_key
    from invoicer.ledger import Ledger

    made = templates()
    ledger = Ledger.from_url(f"sqlite:///{folder / 'ledger.db'}")
    ledger.migrate()
    archive = FileArchive(folder / "archive")
    rnd = random.Random(7)
    period = date(2026, 10, 1)
    pages = 0
    for i in range(documents):
        pdf, n = made[rnd.randrange(len(made))]
        number, account = f"OI-BENCH-{i:07d}", f"{rnd.randrange(10**10):010d}"
        claim = ledger.invoices.claim(
            OPERATOR, number, account=account, period_start=period,
            period_end=date(2026, 10, 31), issue_date=date(2026, 11, 5),
            due_date=date(2026, 11, 20), total=Decimal("10.00"), currency="BRL",
            locale="pt_BR", delivery_mode="paper", country="BR",
            postal_code=f"{rnd.randrange(100000):05d}-{rnd.randrange(1000):03d}")
        key = invoice_key(OPERATOR, account, period, number, "pdf")
        sha = hashlib.sha256(pdf).hexdigest()
        archive.put(key, pdf, sha256=sha)
        ledger.invoices.mark_archived(claim.invoice.id, sha256=sha, archive_key=key,
                                      renderer_version="1.0.0", pages=n, size=len(pdf))
        ledger.deliveries.ensure(claim.invoice.id, "print")
        pages += n
    ledger.close()
    return {"documents": documents, "invoice_pages": pages,
            "template_pages": sorted(n for _, n in made)}


def measure(folder: Path, variant: str) -> dict:
    """In a child process: close everything queued; time and peak RSS."""
    from invoicer.delivery.archive import FileArchive
    from invoicer.ledger import Ledger
    from invoicer.workflows import printing

    archive = FileArchive(folder / "archive")
    ledger = Ledger.from_url(f"sqlite:///{folder / 'ledger.db'}")
    started = time.perf_counter()
    joined = printing.join_queue(ledger, OPERATOR)
    sealed = printing.seal(ledger, OPERATOR)
    queued = time.perf_counter() - started
    report = printing.close(ledger, archive, OPERATOR)
    total = time.perf_counter() - started
    closed = report.closed[0]
    return {"variant": variant, "joined": joined, "sealed": sealed,
            "join_seal_s": queued, "close_s": closed.seconds, "total_s": total,
            "batch_pages": closed.pages, "sheets": closed.sheets,
            "pdf_mb": closed.pdf_size / 1e6,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            # The sheet-mark helper process (delivery.printfile.MarksAhead): its own peak.
            "helper_rss_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--documents", type=int, default=10_000)
    parser.add_argument("--keep", type=Path, help="work folder to keep (default: a temp one)")
    parser.add_argument("--measure", nargs=2, metavar=("FOLDER", "VARIANT"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(Path(args.measure[0]), args.measure[1])))
        return 0

    base = args.keep or Path(tempfile.mkdtemp(prefix="print-bench-"))
    base.mkdir(parents=True, exist_ok=True)
    try:
        started = time.perf_counter()
        seed = base / "seed"
        shutil.rmtree(seed, ignore_errors=True)
        seed.mkdir()
        facts = setup(seed, args.documents)
        print(f"set-up: {facts['documents']:,} invoices, {facts['invoice_pages']:,} pages "
              f"(templates of {facts['template_pages']} pages) in "
              f"{time.perf_counter() - started:.1f} s", flush=True)
        results = []
        for variant in ("close",):
            work = base / variant
            shutil.rmtree(work, ignore_errors=True)
            shutil.copytree(seed, work)
            out = subprocess.run([sys.executable, __file__, "--measure", str(work), variant],
                                 check=True, capture_output=True, text=True).stdout
            results.append(json.loads(out.strip().splitlines()[-1]))
    finally:
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)

    print(f"\n{'variant':<10} {'join+seal':>9} {'close':>7} {'invoice pages/s':>16} "
          f"{'batch pages/s':>14} {'PDF':>8} {'peak RSS':>9} {'helper RSS':>11}")
    for r in results:
        print(f"{r['variant']:<10} {r['join_seal_s']:>8.2f}s {r['close_s']:>6.2f}s "
              f"{facts['invoice_pages'] / r['close_s']:>16,.0f} "
              f"{r['batch_pages'] / r['close_s']:>14,.0f} {r['pdf_mb']:>6.0f}MB "
              f"{r['peak_rss_mb']:>7.0f}MB {r['helper_rss_mb']:>9.0f}MB")
    r = results[0]
    print(f"\n{facts['documents']:,} documents -> {r['batch_pages']:,} batch pages "
          f"({r['sheets']:,} sheets). Targets: >= {TARGET_PAGES_PER_S:,} pages/s merged, "
          f"peak RSS <= {TARGET_RSS_MB} MB (the closing process; the sheet-mark helper is "
          f"a fork sharing most of its pages).")
    for r in results:
        rate = facts["invoice_pages"] / r["close_s"]
        ok = rate >= TARGET_PAGES_PER_S and r["peak_rss_mb"] <= TARGET_RSS_MB
        print(f"  {r['variant']}: {'meets' if ok else 'MISSES'} the targets")
    return 0


if __name__ == "__main__":
    sys.exit(main())
