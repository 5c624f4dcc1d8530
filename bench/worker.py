"""Celery bench: a bill run through Celery workers versus the in-process `invoicer run`.

    python bench/worker.py [--count 10000] [--concurrency 2] [--run-workers 0]

The same generated records (bench/run.py's mix: most 1-2 pages, some 10-20, a few
50+) go once through `invoicer run` (a process pool in one process tree) and once
through `invoicer enqueue` to `celery -A invoicer.worker worker -c N` on Redis (127.0.0.1:6379,
database 8, flushed). Both use a PostgreSQL ledger (a fresh schema each, database
`test` on 127.0.0.1), a file archive, e-mail to an aiosmtpd on loopback (run in this
process) and SMS to a file outbox.

Timing: the in-process run is the wall time of the `invoicer run` command (process
start and ledger migration included, as an operator sees it); the Celery run is from
`invoicer enqueue` to the last chunk done in the ledger (the worker is started and
warm before: workers live for days), the coordinator's split included.
Target: Celery >= 85 % of in-process throughput.
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as a script, this folder comes first on sys.path and this file would shadow the
# service's worker.py; put the repository first instead.
ROOT = Path(__file__).resolve().parent.parent
HERE = Path(__file__).resolve().parent
sys.path[:] = [str(ROOT)] + [p for p in sys.path if Path(p or ".").resolve() != HERE]

import argparse  # noqa: E402
import email  # noqa: E402
import os  # noqa: E402
import secrets  # noqa: E402
import signal  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402

PG = os.environ.get("INVOICER_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/test")
BROKER = os.environ.get("INVOICER_BENCH_BROKER", "redis://127.0.0.1:6379/8")


class CountingSmtp:
    """aiosmtpd on loopback that counts the Message-IDs it accepts."""

    def __init__(self) -> None:
        from aiosmtpd.controller import Controller

        self.ids: dict[str, int] = {}
        self._lock = threading.Lock()
        outer = self

        class Handler:
            async def handle_DATA(self, server, session, envelope):
                mid = email.message_from_bytes(envelope.original_content)["Message-ID"]
                with outer._lock:
                    outer.ids[mid] = outer.ids.get(mid, 0) + 1
                return "250 2.0.0 Ok"

        import socket

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.controller = Controller(Handler(), hostname="127.0.0.1", port=self.port)
        self.controller.start()

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}?timeout=10&local_hostname=bench.test"

    def reset(self) -> None:
        with self._lock:
            self.ids.clear()


def _schema(admin, name: str) -> str:
    import sqlalchemy as sa

    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{name}" CASCADE'))
        conn.execute(sa.text(f'CREATE SCHEMA "{name}"'))
    return f"{PG}?options=-csearch_path%3D{name}"


def _env(tmp: Path, db_url: str, smtp: CountingSmtp) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "INVOICER_DB_URL": db_url,
            "INVOICER_ARCHIVE_URL": f"file://{tmp}/archive",
            "INVOICER_MAIL_URL": smtp.url, "INVOICER_MAIL_FROM": "bills@bench.test",
            "INVOICER_SMS_URL": f"file://{tmp}/sms",
            "INVOICER_LINK_SECRET": "bench-link-secret-0123456789abcdef0123",
            "INVOICER_BROKER_URL": BROKER}


def in_process(src: Path, tmp: Path, db_url: str, smtp: CountingSmtp, workers: int
               ) -> float:
    extra = ["--workers", str(workers)] if workers else []
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "invoicer", "run", str(src), *extra],
                   env=_env(tmp, db_url, smtp), cwd=ROOT, check=True,
                   stdout=subprocess.DEVNULL)
    return time.perf_counter() - t0


def through_celery(src: Path, tmp: Path, db_url: str, smtp: CountingSmtp,
                   concurrency: int) -> float:
    from invoicer.ledger import Ledger

    env = _env(tmp, db_url, smtp)
    subprocess.run(["redis-cli", "-u", BROKER, "flushdb"], check=True,
                   stdout=subprocess.DEVNULL)
    log = open(tmp / "worker.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen([sys.executable, "-m", "celery", "-A", "invoicer.worker", "worker",
                             "-c", str(concurrency), "--without-gossip",
                             "--without-mingle", "--loglevel=INFO"],
                            env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while b"ready." not in (tmp / "worker.log").read_bytes():
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError((tmp / "worker.log").read_text(errors="replace"))
            time.sleep(0.2)
        ledger = Ledger.from_url(db_url)
        t0 = time.perf_counter()
        out = subprocess.run([sys.executable, "-m", "invoicer", "enqueue", str(src)], env=env,
                             cwd=ROOT, check=True, capture_output=True, text=True).stdout
        run_id = int(out.split()[1])
        while True:
            progress = ledger.reports.run_progress(run_id)
            if progress.finished:
                break
            time.sleep(0.25)
        elapsed = time.perf_counter() - t0
        ledger.close()
        return elapsed
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(60)
        log.close()
        subprocess.run(["redis-cli", "-u", BROKER, "flushdb"], stdout=subprocess.DEVNULL)


def main() -> None:
    import sqlalchemy as sa

    from bench.run import make_records

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=2,
                        help="Celery worker processes (celery worker -c)")
    parser.add_argument("--run-workers", type=int, default=0,
                        help="invoicer run pool size [default: its own, cores + 1]")
    args = parser.parse_args()
    admin = sa.create_engine(PG.replace("postgresql://", "postgresql+psycopg://", 1),
                             isolation_level="AUTOCOMMIT")
    smtp = CountingSmtp()
    tag = f"bench_{secrets.token_hex(3)}"
    load0 = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        src = tmp / "run.jsonl"
        make_records(src, args.count)
        results = {}
        for label, run in (("in-process", lambda t, db: in_process(
                               src, t, db, smtp, args.run_workers)),
                           ("celery", lambda t, db: through_celery(
                               src, t, db, smtp, args.concurrency))):
            smtp.reset()
            work = tmp / label
            work.mkdir()
            seconds = run(work, _schema(admin, f"{tag}_{label.replace('-', '_')}"))
            dupes = sum(1 for n in smtp.ids.values() if n > 1)
            results[label] = (seconds, len(smtp.ids), dupes)
        with admin.connect() as conn:
            for label in results:
                conn.execute(sa.text(
                    f'DROP SCHEMA IF EXISTS "{tag}_{label.replace("-", "_")}" CASCADE'))
    smtp.controller.stop()
    print(f"{args.count} records; Celery: 1 worker, -c {args.concurrency}, Redis; "
          f"in-process: invoicer run --workers {args.run_workers or 'default'}; "
          "PostgreSQL ledger, file archive, aiosmtpd, SMS file outbox")
    base = args.count / results["in-process"][0]
    for label, (seconds, emails, dupes) in results.items():
        rate = args.count / seconds
        print(f"{label:10}: {seconds:7.1f} s  {rate:7.1f} invoices/s  {rate / base:6.1%} "
              f"of in-process  ({emails} e-mails, {dupes} duplicated)")
    print(f"load average before: {load0[0]:.2f} {load0[1]:.2f} {load0[2]:.2f}; "
          f"after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print("target: celery >= 85 % of in-process")


if __name__ == "__main__":
    main()
