"""More invoice shapes than the test suite checks: the layout test at scale.

    python bench/layout.py                         # 10,000 shapes, seed 1, all cores
    python bench/layout.py --shapes 50000 --seed 7 --workers 2

Draws shapes with the strategy of ``tests/renderer/shapes.py`` (0–13 history periods,
0–60 calls, 0–10 payments and adjustments, 1–5 services, long texts, every locale,
payment method, kind and detail), renders each, and checks it as the suite does: no
word box from ``pdftotext -bbox`` overlaps another, and zbar reads exactly the record's
payment code on page 1. Prints the rate and every failing shape (its JSON is written
next to the report, ``layout-failures/``); exits 1 if any failed.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def check(data: dict, detail: str, previous: tuple | None) -> list[str]:
    """Runs in a worker: parse, render and judge one shape."""
    import logging

    from invoicer.billing import parse_record
    from invoicer.renderer import LayoutError, PreviousInvoice, RenderOptions, render
    from tests.renderer.test_layout import problems

    logging.disable(logging.WARNING)  # shortened addresses are expected at these lengths
    record = parse_record(json.dumps(data, ensure_ascii=False))
    options = RenderOptions(detail=detail,
                            previous=PreviousInvoice(*previous) if previous else None)
    try:
        pdf = render(record, options)
    except LayoutError as exc:
        return [f"LayoutError: {exc}"]
    return problems(pdf, record, scan_unpayable=False)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shapes", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    args = parser.parse_args()

    from hypothesis import HealthCheck, given, seed, settings

    from tests.renderer.shapes import shapes

    drawn = []

    @seed(args.seed)
    @settings(max_examples=args.shapes, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(shapes())
    def draw(shape):
        prev = shape.options.previous
        drawn.append((shape.label, shape.data, shape.options.detail,
                      (prev.period_start, prev.period_end, prev.currency, dict(prev.charges))
                      if prev else None))

    t0 = time.perf_counter()
    draw()
    t1 = time.perf_counter()
    failures = []
    out = Path("layout-failures")
    with ProcessPoolExecutor(args.workers) as pool:
        futures = [(label, data, pool.submit(check, data, detail, prev))
                   for label, data, detail, prev in drawn]
        for label, data, future in futures:
            found = future.result()
            if found:
                out.mkdir(exist_ok=True)
                path = out / f"{data['invoice']['number']}.json"
                path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
                failures.append(f"{label}: {found[:2]} ({path})")
    t2 = time.perf_counter()
    print(f"{len(drawn)} shapes (seed {args.seed}): drawn in {t1 - t0:.0f} s, rendered and "
          f"checked in {t2 - t1:.0f} s on {args.workers} workers "
          f"({len(drawn) / (t2 - t1):.1f} shapes/s); {len(failures)} failed")
    for line in failures:
        print(line)
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
