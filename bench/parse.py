"""Parse benchmark (issue 18): a 100,000-call record, parse CPU against render CPU.

    python bench/parse.py                  # the issue's figures, one fresh process
    python bench/parse.py --cdrs 20000     # another size
    python bench/parse.py --profile parse  # cProfile of the parse (or: render)

The record is bench/render.py's: the spec example with ``--cdrs`` realistic CDRs on its
one line (14.6 MB for 100,000). A fresh child process reads the line from a file,
parses it as a bill run does (``parse_record`` on the raw bytes), then renders it once.
Times are CPU times of that process (``time.process_time``), so a loaded machine moves
both about alike and their ratio is what counts. Peak RSS is ``ru_maxrss`` of the child,
taken after the parse and again after the render (so it says which phase reached it).

Targets (issue 18): parse <= 15 % of render CPU; peak RSS <= 120 MB.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(path: str) -> dict:
    """Runs in the child: read, parse, render once; CPU seconds and peak RSS."""
    from invoicer.billing import parse_record
    from invoicer.renderer import render

    start_rss = _rss_mb()
    with open(path, "rb") as f:
        raw = f.readline()
    t0 = time.process_time()
    record = parse_record(raw)
    parse_s = time.process_time() - t0
    del raw
    parse_rss = _rss_mb()
    t0 = time.process_time()
    pdf = render(record)
    render_s = time.process_time() - t0
    return {"cdrs": sum(len(s.usage) for s in record.services), "parse_s": parse_s,
            "render_s": render_s, "bytes": len(pdf), "start_rss_mb": start_rss,
            "parse_rss_mb": parse_rss, "peak_rss_mb": _rss_mb()}


def profile(path: str, what: str) -> None:
    import cProfile
    import pstats

    from invoicer.billing import parse_record
    from invoicer.renderer import render

    with open(path, "rb") as f:
        raw = f.readline()
    prof = cProfile.Profile()
    if what == "parse":
        prof.runcall(parse_record, raw)
    else:
        record = parse_record(raw)
        prof.runcall(render, record)
    pstats.Stats(prof).sort_stats("cumulative").print_stats(30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--write", help=argparse.SUPPRESS)
    parser.add_argument("--cdrs", type=int, default=100_000)
    parser.add_argument("--profile", choices=["parse", "render"])
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {0})
    if args.child is not None:
        print(json.dumps(measure(args.child)))
        return
    if args.write is not None:
        from render import record_json

        Path(args.write).write_text(record_json(args.cdrs) + "\n", encoding="utf-8")
        return
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"{args.cdrs}.jsonl"
        # Written by a process of its own: a child inherits its parent's peak RSS as
        # its own starting ru_maxrss (Linux keeps it across exec), so the parent that
        # starts the measured child must stay small.
        subprocess.run([sys.executable, __file__, "--write", str(path), "--cdrs",
                        str(args.cdrs)], check=True)
        if args.profile:
            profile(str(path), args.profile)
            return
        out = subprocess.run([sys.executable, __file__, "--child", str(path)],
                             capture_output=True, text=True, check=True)
        size = path.stat().st_size
    r = json.loads(out.stdout)
    print(f"{r['cdrs']:,} CDRs, line of {size / 1e6:.1f} MB, PDF of {r['bytes'] / 1024:.0f} KB")
    print(f"parse CPU   {r['parse_s']:7.3f} s")
    print(f"render CPU  {r['render_s']:7.3f} s")
    print(f"parse/render {r['parse_s'] / r['render_s']:6.1%}   (target <= 15 %)")
    print(f"peak RSS    {r['peak_rss_mb']:7.0f} MB (after import {r['start_rss_mb']:.0f}, "
          f"after parse {r['parse_rss_mb']:.0f})   (target <= 120 MB)")


if __name__ == "__main__":
    main()
