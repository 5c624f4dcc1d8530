"""The detailed bill of a 100,000-call invoice: CSV first byte, CSV whole, PDF issue.

    python bench/detailed_bill.py [--calls 100000] [--rounds 3]

A real ``uvicorn`` (one process, ``api:create_app``) on 127.0.0.1 over a SQLite ledger
and a file archive in a temporary folder, holding one invoice of ``--calls`` call
detail records (archived through ``pipeline.process_record`` as a summary invoice, as a
summary operator would have it). The client sends ``GET /details/<token>.csv`` and
times, from the request going out: the first byte of the body (the CSV header), the
first call row, and the last byte; then ``POST …/detailed-bill`` (the PDF rendered from
the archived canonical record and archived, the first time) and the same POST again
(the recorded one). Loopback only; bounded in count and time.
"""

from __future__ import annotations

import argparse
import json
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

from bench.api import start_api  # noqa: E402
from invoicer.api.access import AccessService  # noqa: E402
from invoicer.delivery.archive import FileArchive  # noqa: E402
from invoicer.ledger import Ledger  # noqa: E402
from invoicer.pipeline import Services, process_record  # noqa: E402
from invoicer.renderer import RenderOptions  # noqa: E402
from tests.api.world import MAIN, record  # noqa: E402

NUMBER = "OI-2026-11-0100000"


def _timed_csv(url: str) -> tuple[float, float, float, int, int]:
    """(first byte, first call row, last byte) in seconds, bytes, rows."""
    with httpx.Client(timeout=120) as client:
        started = time.perf_counter()
        first_byte = first_row = None
        size = lines = 0
        with client.stream("GET", url) as got:
            got.raise_for_status()
            for chunk in got.iter_raw():
                now = time.perf_counter() - started
                if first_byte is None:
                    first_byte = now
                size += len(chunk)
                lines += chunk.count(b"\r\n")
                if first_row is None and lines > 1:
                    first_row = now
        return first_byte, first_row, time.perf_counter() - started, size, lines - 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    secret = secrets.token_urlsafe(32)
    server = None
    with tempfile.TemporaryDirectory() as tmp:
        try:
            db_url = f"sqlite:///{tmp}/ledger.db"
            ledger = Ledger.from_url(db_url)
            ledger.migrate()
            rec = record(*MAIN, NUMBER, 2026, 11)
            usage = rec["services"][0]["usage"]
            rec["services"][0]["usage"] = [
                dict(usage[i % len(usage)], called=f"+5521{30000000 + i:08d}")
                if "called" in usage[i % len(usage)] else dict(usage[i % len(usage)])
                for i in range(args.calls)]
            raw = json.dumps(rec).encode()
            run = ledger.runs.start("bench-detailed-bill")
            services = Services(ledger=ledger, archive=FileArchive(Path(tmp) / "archive"),
                                options=RenderOptions(detail="summary"))
            started = time.perf_counter()
            outcome = process_record(raw, line=1, run_id=run, services=services)
            archived = time.perf_counter() - started
            assert outcome.status == "archived", outcome
            invoice = ledger.invoices.get(MAIN[0], NUMBER)
            access = AccessService(ledger, None, secret.encode())
            expires = int(time.time() + 3600)
            csv_url = f"/details/{access.detail_token(invoice, '', expires)}.csv"
            session, _ = access.session_token(MAIN[0], MAIN[1])
            ledger.close()
            server, base = start_api(tmp, db_url, secret)
            results = [_timed_csv(base + csv_url) for _ in range(args.rounds)]
            headers = {"Authorization": f"Bearer {session}"}
            with httpx.Client(base_url=base, timeout=300) as client:
                t0 = time.perf_counter()
                made = client.post(f"/v1/subscriber/invoices/{NUMBER}/detailed-bill",
                                   headers=headers)
                first_issue = time.perf_counter() - t0
                made.raise_for_status()
                t0 = time.perf_counter()
                again = client.post(f"/v1/subscriber/invoices/{NUMBER}/detailed-bill",
                                    headers=headers)
                second_issue = time.perf_counter() - t0
                assert again.json()["sha256"] == made.json()["sha256"]
                t0 = time.perf_counter()
                pdf = client.get(made.json()["pdf"])
                pdf_get = time.perf_counter() - t0
        finally:
            if server is not None:
                server.terminate()
                server.wait(10)
    fb = [r[0] * 1000 for r in results]
    fr = [r[1] * 1000 for r in results]
    whole = [r[2] for r in results]
    size, rows = results[0][3], results[0][4]
    print(f"{args.calls:,} calls; canonical record archived in {archived:.1f} s; "
          f"1 uvicorn process, SQLite ledger, file archive; {args.rounds} rounds")
    print(f"CSV: first byte {statistics.median(fb):.0f} ms (max {max(fb):.0f}), first call "
          f"row {statistics.median(fr):.0f} ms (max {max(fr):.0f}), whole "
          f"{statistics.median(whole):.2f} s; {rows:,} rows, {size / 1e6:.1f} MB")
    print(f"PDF: first POST (render + archive + record) {first_issue:.2f} s, "
          f"{made.json()['pages']} pages, {made.json()['size'] / 1e6:.1f} MB; second POST "
          f"{second_issue * 1000:.0f} ms; download {pdf_get * 1000:.0f} ms "
          f"({len(pdf.content) / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
