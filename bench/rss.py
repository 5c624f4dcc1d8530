"""Bill-run memory benchmark: peak RSS of the whole `invoicer run` process tree.

    python bench/rss.py --count 10000 [--cdrs 20] [--seed 1] [--einvoice 0.05]
                        [--workers N] [--no-deliver] [--interval 0.5] [--keep DIR]

Generates N mixed-size records with `invoicer samples generate` (3 % without CDRs, 3 %
with twice the mean, the rest around it; the e-invoice share makes some Dutch and
Romanian business records ask for an XML e-invoice), then runs the README's main
command on them, `invoicer run FILE` (delivery on: e-mail .eml and SMS outboxes), with
the file archive, the SQLite ledger and the outboxes in a temporary folder. Meanwhile
the summed RSS of the run's process tree (the `invoicer run` process and every
descendant, read from /proc, or with psutil when it is installed) is sampled every
`--interval` seconds. Prints the peak (and each process's share of it), the RSS at
10 %, 25 %, 50 %, 75 % and 90 % of the run's wall time (a tree whose memory grows with
N shows it there already), and CPU per invoice (getrusage of the finished children:
process start and ledger migration included).

Flat RSS means the peak at 100,000 invoices is within 10 % of the peak at 10,000:

    python bench/rss.py --count 10000
    python bench/rss.py --count 100000     # ~30+ min on a 2-core machine

The generated file is written first and not counted; `--keep DIR` keeps the records,
archive, ledger and outboxes there instead of a temporary folder.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

try:
    import psutil
except ImportError:  # /proc does as well on Linux
    psutil = None

_PAGE = os.sysconf("SC_PAGE_SIZE")


def _children_proc() -> dict[int, list[int]]:
    """pid -> child pids, from /proc/*/stat."""
    kids: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue  # gone meanwhile
        # "pid (comm) state ppid ...": comm may hold spaces and parentheses.
        ppid = int(stat[stat.rindex(b")") + 2:].split(None, 2)[1])
        kids.setdefault(ppid, []).append(int(entry.name))
    return kids


def _rss_proc(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/statm", "rb") as f:
            return int(f.read().split()[1]) * _PAGE
    except (OSError, IndexError, ValueError):
        return 0


def tree_rss(root: int) -> list[int]:
    """The RSS in bytes of ``root`` and of each of its descendants (``root`` first)."""
    if psutil is not None:
        try:
            procs = [psutil.Process(root)]
            procs += procs[0].children(recursive=True)
        except psutil.NoSuchProcess:
            return []
        sizes = []
        for p in procs:
            with contextlib.suppress(psutil.NoSuchProcess):
                sizes.append(p.memory_info().rss)
        return sizes
    kids = _children_proc()
    todo, seen = [root], []
    while todo:
        pid = todo.pop(0)
        seen.append(pid)
        todo += kids.get(pid, [])
    return [_rss_proc(p) for p in seen]


def _children_cpu() -> float:
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return kids.ru_utime + kids.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument("--cdrs", type=int, default=20, help="mean CDRs a record")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--einvoice", type=float, default=0.05,
                        help="share of NL/RO business records asking for an e-invoice")
    parser.add_argument("--workers", type=int, default=0,
                        help="invoicer run's processes [default: its own default]")
    parser.add_argument("--no-deliver", action="store_true")
    parser.add_argument("--interval", type=float, default=0.5, help="seconds between samples")
    parser.add_argument("--keep", type=Path, help="work here instead of a temporary folder")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="invoicer-rss-") as scratch:
        work = args.keep or Path(scratch)
        work.mkdir(parents=True, exist_ok=True)
        src = work / "run.jsonl"
        subprocess.run([sys.executable, "-m", "invoicer", "samples", "generate",
                        "--count", str(args.count), "--cdrs", str(args.cdrs),
                        "--seed", str(args.seed), "--einvoice", str(args.einvoice),
                        "--output", str(src)], cwd=ROOT, check=True,
                       capture_output=True)
        env = {**os.environ, "INVOICER_DB_URL": f"sqlite:///{work}/ledger.db",
               "INVOICER_ARCHIVE_URL": f"file://{work}/archive",
               "INVOICER_MAIL_URL": f"file://{work}/outbox",
               "INVOICER_SMS_URL": f"file://{work}/sms",
               "INVOICER_REJECTS_DIR": str(work / "rejects"),
               "INVOICER_LINK_SECRET": "bench-link-secret-0123456789abcdef0123"}
        cmd = [sys.executable, "-m", "invoicer", "run", str(src),
               *(["--workers", str(args.workers)] if args.workers else []),
               *(["--no-deliver"] if args.no_deliver else [])]
        cpu0, t0 = _children_cpu(), time.monotonic()
        with open(work / "run.out", "w") as out:
            proc = subprocess.Popen(cmd, env=env, cwd=work, stdout=out,
                                    stderr=subprocess.STDOUT)
        samples: list[tuple[float, int, list[int]]] = []

        def sample() -> None:
            while proc.poll() is None:
                sizes = tree_rss(proc.pid)
                if sizes:
                    samples.append((time.monotonic() - t0, sum(sizes), sizes))
                time.sleep(args.interval)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        status = proc.wait()
        wall = time.monotonic() - t0
        cpu = _children_cpu() - cpu0
        sampler.join()
        tail = (work / "run.out").read_text(errors="replace").strip().splitlines()[-3:]
    if status not in (0, 75):
        sys.exit(f"invoicer run exited {status}:\n" + "\n".join(tail))
    mib = 1 << 20
    peak = max(samples, key=lambda s: s[1])

    def each(sizes: list[int]) -> str:
        return " + ".join(f"{size / mib:.0f}" for size in sizes)

    print(f"{args.count} records (cdrs {args.cdrs}, seed {args.seed}, einvoice "
          f"{args.einvoice}), exit {status}, {len(samples)} samples every {args.interval} s")
    print(f"peak RSS of the tree : {peak[1] / mib:7.1f} MiB at {peak[0]:6.1f} s "
          f"({len(peak[2])} processes: {each(peak[2])} MiB, the run's own first)")
    for share in (0.1, 0.25, 0.5, 0.75, 0.9):
        near = min(samples, key=lambda s, t=wall * share: abs(s[0] - t))
        print(f"  at {share:4.0%} of the run: {near[1] / mib:7.1f} MiB ({each(near[2])})")
    print(f"wall {wall:7.1f} s   CPU {cpu:7.1f} s   {cpu / max(args.count, 1) * 1000:6.2f} ms "
          f"CPU per invoice")
    print("run:", " | ".join(tail[-1:]))


if __name__ == "__main__":
    main()
