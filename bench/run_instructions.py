"""A bill run against render-only in instructions, which the machine's load does not move.

    python bench/run_instructions.py [--small 10] [--large 60]

Needs valgrind. Runs this script's ``--measure`` part under ``valgrind
--tool=callgrind`` four times: render-only (parse + render, as ``bench/run.py``'s
render-only phase) and the whole run in one process (``runner.run_file`` with one
worker, the embedded defaults: file archive, SQLite ledger, file outboxes), each over
``--small`` and ``--large`` records of ``bench/run.py``'s mix after 20 records rendered
to warm up. The difference between the two sizes, per record, takes start-up out.
Instructions are not seconds: the kernel's work (fsyncs, file creation) is not counted
and cache misses weigh nothing, so this is a second figure beside ``bench/run.py``'s CPU
time, not a replacement. Takes about ten minutes (valgrind runs ~50x slower).
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
WARM = 20


def measure(mode: str, count: int) -> None:
    """The part run under valgrind: warm up, then render ``count`` records, or run them."""
    from bench.run import make_records
    from invoicer.billing import parse_record
    from invoicer.renderer import render

    tmp = Path(tempfile.mkdtemp(prefix="run-instructions-"))
    make_records(tmp / "all.jsonl", 200)
    lines = (tmp / "all.jsonl").read_bytes().splitlines()
    for raw in lines[:WARM]:
        render(parse_record(raw))
    measured = lines[WARM:WARM + count]
    if mode == "render":
        for raw in measured:
            render(parse_record(raw))
        return
    from invoicer.runner import run_file
    from invoicer.settings import Settings

    os.environ.update(INVOICER_DB_URL=f"sqlite:///{tmp}/ledger.db",
                      INVOICER_ARCHIVE_URL=f"file://{tmp}/archive",
                      INVOICER_MAIL_URL=f"file://{tmp}/outbox",
                      INVOICER_SMS_URL=f"file://{tmp}/sms",
                      INVOICER_LINK_SECRET="bench-link-secret-0123456789abcdef0123")
    (tmp / "run.jsonl").write_bytes(b"\n".join(measured) + b"\n")
    run_file(tmp / "run.jsonl", Settings(), workers=1, deliver=True, own_process=True)


def _instructions(mode: str, count: int) -> int:
    with tempfile.TemporaryDirectory() as out:
        done = subprocess.run(
            ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}/cg.out",
             sys.executable, __file__, "--measure", mode, str(count)],
            capture_output=True, text=True, check=True, cwd=ROOT)
    found = re.findall(r"Collected : (\d+)", done.stderr)
    if not found:
        raise SystemExit(f"no instruction count in valgrind's output:\n{done.stderr[-2000:]}")
    return int(found[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--small", type=int, default=10)
    parser.add_argument("--large", type=int, default=60)
    parser.add_argument("--measure", nargs=2, metavar=("MODE", "COUNT"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        measure(args.measure[0], int(args.measure[1]))
        return
    per = {}
    for mode in ("render", "run"):
        small, large = _instructions(mode, args.small), _instructions(mode, args.large)
        per[mode] = (large - small) / (args.large - args.small)
        print(f"{mode:7}: {small:,} instructions with {args.small} records, {large:,} with "
              f"{args.large}: {per[mode] / 1e6:.1f} M a record", flush=True)
    print(f"whole run / render only, instructions: {per['run'] / per['render']:.3f}")


if __name__ == "__main__":
    main()
