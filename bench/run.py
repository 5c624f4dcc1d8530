"""Bill-run benchmark: end-to-end `invoicer run` versus render-only, same records.

    python bench/run.py [--count 10000] [--workers 2] [--rounds 3]

Records: generated (billing.synthetic), mixed like a real run: most 1-2 pages, some
10-20, a few 50+. Render-only parses and renders in the same process pool shape and
throws the PDF away; end-to-end adds archive (file) and ledger (SQLite) with the
embedded defaults. Target: end-to-end >= 80 % of render-only.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def make_records(path: Path, count: int) -> None:
    """~94 % with ~20 CDRs, ~5 % with ~800 (10-20 pages), ~1 % with ~3,500 (50+)."""
    from invoicer.billing.synthetic import generate

    mix = [(int(count * 0.94), 20, 11), (int(count * 0.05), 800, 12)]
    mix.append((count - sum(n for n, _, _ in mix), 3500, 13))
    lines = []
    for n, cdrs, seed in mix:
        lines += [json.dumps(r, ensure_ascii=False, separators=(",", ":"))
                  for r in generate(n, cdrs, seed)]
    random.Random(5).shuffle(lines)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def _render_chunk(chunk: list[bytes]) -> int:
    from invoicer.billing import parse_record
    from invoicer.renderer import render

    pages = 0
    for raw in chunk:
        pages += render(parse_record(raw)).count(b"/Type /Page\n")
    return pages


def _cpu() -> float:
    """CPU seconds of this process and its finished children: a load-independent
    figure, so a busy machine cannot hide (or fake) what archive and ledger cost."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def render_only(path: Path, workers: int) -> tuple[float, float, int, int]:
    from invoicer.settings import Settings

    per_chunk = Settings().chunk_lines  # the records a bill run's chunk holds
    lines = path.read_bytes().splitlines()
    chunks = [lines[i:i + per_chunk] for i in range(0, len(lines), per_chunk)]
    t0, c0 = time.perf_counter(), _cpu()
    with ProcessPoolExecutor(workers) as pool:
        pages = sum(pool.map(_render_chunk, chunks))
    return time.perf_counter() - t0, _cpu() - c0, len(lines), pages


def end_to_end(path: Path, workers: int, tmp: Path, *deliver: str
               ) -> tuple[float, float, str]:
    env = {**os.environ, "INVOICER_DB_URL": f"sqlite:///{tmp}/ledger.db",
           "INVOICER_ARCHIVE_URL": f"file://{tmp}/archive",
           "INVOICER_MAIL_URL": f"file://{tmp}/outbox", "INVOICER_SMS_URL": f"file://{tmp}/sms",
           "INVOICER_LINK_SECRET": "bench-link-secret-0123456789abcdef0123"}
    t0, c0 = time.perf_counter(), _cpu()
    extra = [*deliver, *(["--workers", str(workers)] if workers else [])]
    out = subprocess.run([sys.executable, "-m", "invoicer", "run", str(path), *extra],
                         env=env, cwd=ROOT, capture_output=True, text=True, check=True)
    return time.perf_counter() - t0, _cpu() - c0, out.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2,
                        help="render-only pool size (one per core)")
    parser.add_argument("--run-workers", type=int, default=0,
                        help="invoicer run pool size [default: its own default]")
    parser.add_argument("--rounds", type=int, default=1,
                        help="run the three phases this many times, one after the other, "
                             "and print each round and the medians: other jobs on the "
                             "machine load the phases of one round differently")
    args = parser.parse_args()
    rounds = []
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "run.jsonl"
        make_records(src, args.count)
        for n in range(args.rounds):
            r_time, r_cpu, records, pages = render_only(src, args.workers)
            a_time, a_cpu, _ = end_to_end(src, args.run_workers, Path(tmp) / f"a{n}",
                                          "--no-deliver")
            e_time, e_cpu, _ = end_to_end(src, args.run_workers, Path(tmp) / f"b{n}")
            rounds.append(((r_time, r_cpu), (a_time, a_cpu), (e_time, e_cpu)))
            if args.rounds > 1:
                per = [cpu / records * 1000 for _, cpu in rounds[-1]]
                print(f"round {n + 1}: CPU ms/invoice render only {per[0]:.2f}, "
                      f"archive+ledger {per[1]:.2f}, with delivery {per[2]:.2f}; "
                      f"delivery {per[2] - per[1]:.2f}, whole / render only "
                      f"{per[2] / per[0]:.3f}", flush=True)
    (r_time, r_cpu), (a_time, a_cpu), (e_time, e_cpu) = (
        (statistics.median(r[i][0] for r in rounds), statistics.median(r[i][1] for r in rounds))
        for i in range(3))
    print(f"{records} records, {pages} pages, render-only pool {args.workers} workers"
          + (f"; medians of {args.rounds} rounds" if args.rounds > 1 else ""))
    for label, t, cpu in (("render only", r_time, r_cpu), ("archive+ledger", a_time, a_cpu),
                          ("with delivery", e_time, e_cpu)):
        print(f"{label:15}: {t:7.1f} s  {records / t:8.1f} invoices/s  {pages / t:8.1f} pages/s"
              + ("" if t is r_time else f"  {r_time / t:6.1%} of render only")
              + f"\n{'':17}CPU {cpu:7.1f} s  {cpu / records * 1000:6.2f} ms/invoice"
              + ("" if t is r_time else f"  render-only CPU is {r_cpu / cpu:6.1%} of it"))
    if args.rounds > 1:
        ratios = [r[2][1] / r[0][1] for r in rounds]
        print("whole run / render only, CPU, per round: "
              + ", ".join(f"{x:.3f}" for x in ratios)
              + f"; median {statistics.median(ratios):.3f}")
    print("target: archive+ledger >= 80 % of render only (times include process start "
          "and ledger migration); delivery: e-mail .eml + SMS outbox + ledger states")


if __name__ == "__main__":
    main()
