"""Subscriber API under wrk: history and PDF download against a trivial request, one run.

    python bench/api_load.py [--connections 200] [--duration 10] [--workers 2] [--pg URL]

Needs ``wrk`` (Debian: ``apt-get install wrk``). Starts a real ``uvicorn`` with
``--workers`` processes on 127.0.0.1, the ledger in PostgreSQL (127.0.0.1:5432, trust,
database ``test``, a schema of its own dropped afterwards) and a file archive holding the
subscriber world of the tests (``tests/api/world.py``), then runs wrk with
``--connections`` open connections for ``--duration`` seconds against, in turn:

- ``trivial``: a path the API does not have (a 404 problem document): the whole server
  stack, routing and middleware, no database and no archive: the ceiling of this server
  configuration;
- ``history``: ``GET /v1/subscriber/invoices`` with a link grant (token check, ledger
  query, JSON);
- ``pdf``: ``GET /invoices/<token>.pdf`` (signed link, ledger look-up, archive read).

Prints requests/s, p50 and p99 latency (wrk's ``--latency``) and the server's CPU per
request (every uvicorn process, from /proc: the figure least moved by other jobs on the
machine) for each, and history's throughput as a share of the trivial one. Loopback
only; bounded in time.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

from bench.api import served_world  # noqa: E402
from invoicer.api import UVICORN_OPTIONS  # noqa: E402

_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def _ms(value: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", value).groups()
    return float(number) * _UNITS[unit]


def wrk(url: str, connections: int, duration: int, header: str | None) -> dict[str, float]:
    """One wrk run; requests/s, p50, p99 (ms) and non-2xx/3xx responses."""
    threads = max(1, min(4, os.cpu_count() or 1))
    cmd = ["wrk", "-t", str(threads), "-c", str(connections), "-d", f"{duration}s",
           "--latency", "--timeout", "10s"]
    if header:
        cmd += ["-H", header]
    out = subprocess.run([*cmd, url], capture_output=True, text=True, check=True,
                         timeout=duration + 60).stdout
    p50 = re.search(r"^\s+50%\s+(\S+)", out, re.M)
    p99 = re.search(r"^\s+99%\s+(\S+)", out, re.M)
    rps = re.search(r"^Requests/sec:\s+([\d.]+)", out, re.M)
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    requests = re.search(r"(\d+) requests in", out)
    sockets = re.search(r"Socket errors: (.*)", out)
    if not (p50 and p99 and rps):
        raise SystemExit(f"unexpected wrk output:\n{out}")
    return {"rps": float(rps.group(1)), "p50": _ms(p50.group(1)), "p99": _ms(p99.group(1)),
            "non2xx": int(errors.group(1)) if errors else 0,
            "requests": int(requests.group(1)) if requests else 0,
            "socket_errors": sockets.group(1) if sockets else ""}


def tree_cpu(pid: int) -> float:
    """CPU seconds (user + system) used so far by ``pid`` and its descendants (the
    uvicorn workers), from /proc: the server's own cost a request, whatever else the
    machine runs."""
    total, todo = 0.0, [pid]
    tick = os.sysconf("SC_CLK_TCK")
    while todo:
        one = todo.pop()
        try:
            fields = Path(f"/proc/{one}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
            for task in Path(f"/proc/{one}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
        except (FileNotFoundError, ProcessLookupError):
            continue
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--connections", type=int, default=200)
    parser.add_argument("--duration", type=int, default=10, help="seconds per endpoint")
    parser.add_argument("--workers", type=int, default=2, help="uvicorn processes")
    parser.add_argument("--pg", default=None, help="PostgreSQL URL (default: local trust)")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed (Debian: apt-get install wrk)")

    results: dict[str, dict[str, float]] = {}
    with served_world(args.pg, workers=args.workers, wait=60) as (server, base, token,
                                                                  invoice):
        auth = f"Authorization: Bearer {token}"
        checks = [("trivial", "/no-such-path", None, 404),
                  ("history", "/v1/subscriber/invoices", auth, 200),
                  ("pdf", f"/invoices/{token}.pdf", None, 200)]
        for name, path, header, status in checks:
            got = httpx.get(base + path, headers=dict([header.split(": ", 1)])
                            if header else None, timeout=10)
            if got.status_code != status:
                raise SystemExit(f"{name}: {got.status_code} {got.text[:200]}")
            wrk(base + path, 20, 2, header)  # warm-up: pools, caches, every worker
            before = tree_cpu(server.pid)
            results[name] = wrk(base + path, args.connections, args.duration, header)
            results[name]["cpu_ms"] = (tree_cpu(server.pid) - before) * 1000 / max(
                1, results[name]["requests"])

    print(f"wrk -c {args.connections} -d {args.duration}s per endpoint; uvicorn "
          f"{args.workers} worker(s) as invoicer serve runs it (loop {UVICORN_OPTIONS['loop']}, "
          f"http {UVICORN_OPTIONS['http']}); PostgreSQL ledger; PDF of {invoice.size:,} bytes")
    print(f"{'endpoint':10} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'CPU ms/req':>11}  errors")
    for name, r in results.items():
        bad = r["non2xx"] if name != "trivial" else 0
        print(f"{name:10} {r['rps']:9.0f} {r['p50']:8.1f} {r['p99']:8.1f} {r['cpu_ms']:11.3f}  "
              f"{bad} {r['socket_errors']}".rstrip())
    share = results["history"]["rps"] / results["trivial"]["rps"]
    worst = max(results["history"]["p99"], results["pdf"]["p99"])
    print(f"history throughput = {share:.0%} of trivial (target >= 30 %); "
          f"worst p99 {worst:.0f} ms (target <= 150 ms)")


if __name__ == "__main__":
    main()
