"""Instructions per render under callgrind: the shared render bench's ratio, free of the
machine's noise.

    python bench/instructions.py [--bench ../shared/bench] [--engines invoicer,floor_canvas]
                                 [--calls 20] [--renders 20]

On a shared machine the CPU time of a 5-10 ms render moves by a third between runs, and
so does the ratio of two engines timed side by side. ``valgrind --tool=callgrind``
counts instructions, which do not depend on what else the machine runs: the same
code, inputs and environment give the same count within a fraction of a percent. For each
engine of the shared bench (``../shared/bench/engines``), two processes run under
callgrind: both import the engine, prepare ``--renders`` records of ``--calls`` CDRs
(the bench's own ``gen.generate`` with seeds 1..N, prepared outside the count as the
bench does) and render twice to warm up; one then renders each record once. The
difference of the two totals divided by the renders is one render's instructions.

Instructions are not seconds (cache misses, branch mispredictions and the C
accelerator's work weigh differently), so this complements the bench's CPU times, it
does not replace them. Needs valgrind (Debian: ``apt-get install valgrind``); each
engine takes a minute or two (a Python process under callgrind runs ~50x slower).
"""

from __future__ import annotations

import argparse
import importlib
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def child(bench: str, engine: str, calls: int, renders: int) -> None:
    """Runs under callgrind: warm up, then ``renders`` renders of prepared records."""
    sys.path.insert(0, bench)
    import gen

    mod = importlib.import_module(f"engines.{engine}")
    prepare = getattr(mod, "prepare", None)
    prep = (lambda r: prepare(r, engine)) if prepare else (lambda r: r)
    count = int(os.environ["INSTRUCTIONS_RENDERS"])
    records = [prep(gen.generate(calls, seed)) for seed in range(1, renders + 1)]
    mod.render(prep(gen.generate(calls, 0)))
    mod.render(prep(gen.generate(calls, 9999)))
    for record in records[:count]:
        mod.render(record)


def collected(bench: str, engine: str, calls: int, renders: int, count: int) -> int:
    """Instructions callgrind counted for a child that renders ``count`` records."""
    with tempfile.TemporaryDirectory() as tmp:
        out = subprocess.run(
            ["valgrind", "--tool=callgrind", f"--callgrind-out-file={tmp}/cg.out",
             sys.executable, __file__, "--child", engine, "--bench", bench,
             "--calls", str(calls), "--renders", str(renders)],
            env={**os.environ, "INSTRUCTIONS_RENDERS": str(count)},
            capture_output=True, text=True, check=True)
    found = re.search(r"Collected : (\d+)", out.stderr)
    if found is None:
        raise SystemExit(f"no count from callgrind:\n{out.stderr[-2000:]}")
    return int(found.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bench", default=str(ROOT.parent / "shared" / "bench"))
    parser.add_argument("--engines", default="invoicer,floor_canvas")
    parser.add_argument("--calls", type=int, default=20)
    parser.add_argument("--renders", type=int, default=20)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    bench = str(Path(args.bench).resolve())
    if args.child:
        child(bench, args.child, args.calls, args.renders)
        return
    per_render = {}
    for engine in args.engines.split(","):
        base = collected(bench, engine, args.calls, args.renders, 0)
        full = collected(bench, engine, args.calls, args.renders, args.renders)
        per_render[engine] = (full - base) / args.renders
        print(f"{engine:14s} {per_render[engine] / 1e6:8.2f} M instructions a render "
              f"({args.calls} CDRs, {args.renders} renders)", flush=True)
    first, *others = per_render
    for other in others:
        print(f"{first} / {other}: {per_render[first] / per_render[other]:.3f}")


if __name__ == "__main__":
    main()
