"""Render benchmark: median time per invoice by CDR count, and peak memory.

    python bench/render.py                # the issue's figures
    python bench/render.py --profile 5000 # pyinstrument profile of one render

Each size runs in its own process so peak RSS belongs to that size alone. Times are
wall-clock medians on one core (the process is pinned when the OS allows it).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SIZES = [20, 1000, 5000, 20000, 100000]
TARGETS = {20: "<= 8 ms", 100000: "<= 4 s, peak RSS <= 150 MB"}


def record_json(cdrs: int) -> str:
    """The spec example with ``cdrs`` realistic call-detail records on its one line."""
    from tests.conftest import SPEC_EXAMPLE

    data = json.loads(json.dumps(SPEC_EXAMPLE))
    start = datetime.fromisoformat("2026-10-01T08:00:00-03:00")
    cities = ["Rio de Janeiro", "São Paulo", "Belo Horizonte", "Curitiba", "Salvador",
              "Porto Alegre", "Recife", "Fortaleza", "Brasília", "Manaus", "Internet"]
    usage = []
    for i in range(cdrs):
        kind = ("local", "local", "long_distance", "sms", "data", "international")[i % 6]
        cdr = {"start": (start + timedelta(seconds=97 * i)).isoformat(), "type": kind,
               "destination": cities[i % len(cities)],
               "amount": "0.00" if i % 4 else f"{(i % 90) / 10 + 0.1:.2f}"}
        if kind == "data":
            cdr["volume_kb"] = 512 * (i % 4000)
        else:
            cdr["called"] = f"+55{21900000000 + (i * 7919) % 99999999}"
            if kind != "sms":
                cdr["duration_s"] = 5 + (i * 31) % 3600
        usage.append(cdr)
    data["services"][0]["usage"] = usage
    return json.dumps(data, ensure_ascii=False)


def measure(path: str, repeat: int) -> dict:
    """Runs in a child process: read the line and parse it as a bill run would, then
    render ``repeat`` times. Peak RSS covers all of it."""
    from invoicer.billing import parse_record
    from invoicer.renderer import render

    with open(path, "rb") as f:
        record = parse_record(f.readline())
    cdrs = len(record.services[0].usage)
    render(record)  # warm-up: fonts registered, caches filled as in a bill run
    times, size, pages = [], 0, 0
    for _ in range(repeat):
        t0 = time.perf_counter()
        pdf = render(record)
        times.append(time.perf_counter() - t0)
        size = len(pdf)
    pages = pdf.count(b"/Type /Page\n") or pdf.count(b"/Type /Page ")
    return {"cdrs": cdrs, "median_ms": statistics.median(times) * 1000,
            "min_ms": min(times) * 1000, "runs": repeat, "bytes": size, "pages": pages,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--repeat", type=int, default=0)
    parser.add_argument("--profile", type=int, metavar="CDRS")
    parser.add_argument("--sizes", type=int, nargs="*", default=SIZES)
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {0})
    if args.child is not None:
        print(json.dumps(measure(args.child, args.repeat)))
        return
    if args.profile:
        from pyinstrument import Profiler

        from invoicer.billing import parse_record
        from invoicer.renderer import render

        record = parse_record(record_json(args.profile))
        render(record)
        with Profiler() as p:
            render(record)
        p.print()
        return
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for cdrs in args.sizes:
            path = Path(tmp) / f"{cdrs}.jsonl"
            path.write_text(record_json(cdrs) + "\n", encoding="utf-8")
            repeat = args.repeat or (50 if cdrs <= 20 else 11 if cdrs <= 5000 else 3)
            out = subprocess.run([sys.executable, __file__, "--child", str(path),
                                  "--repeat", str(repeat)],
                                 capture_output=True, text=True, check=True)
            rows.append(json.loads(out.stdout))
    base = next((r for r in rows if r["cdrs"] == 20), rows[0])
    print(f"{'CDRs':>7} {'median ms':>10} {'min ms':>8} {'pages':>6} {'KB':>7} "
          f"{'ms/1000 CDRs':>13} {'peak RSS MB':>12}")
    for r in rows:
        extra = ((r["median_ms"] - base["median_ms"]) / (r["cdrs"] - base["cdrs"]) * 1000
                 if r["cdrs"] > base["cdrs"] else float("nan"))
        print(f"{r['cdrs']:>7} {r['median_ms']:>10.1f} {r['min_ms']:>8.1f} {r['pages']:>6} "
              f"{r['bytes'] / 1024:>7.0f} {extra:>13.1f} {r['peak_rss_mb']:>12.0f}")
    print("targets: 20 CDRs <= 8 ms; each further 1,000 CDRs <= 30 ms; "
          "100,000 CDRs <= 4 s and peak RSS <= 150 MB")


if __name__ == "__main__":
    main()
