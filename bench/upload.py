"""A bill run uploaded as one huge line: is ``POST /v1/billing/runs`` linear in it?

    python bench/upload.py [--sizes 5,10,50]

A real ``uvicorn`` in this process on 127.0.0.1 (``create_app``, a SQLite ledger, a file
archive and the thread bill-run queue, all under a temporary folder). For each size
(MB) one valid record is padded to that size with an extra field the contract ignores,
posted as ``application/x-ndjson``, and two times are printed: the POST (upload spooled,
the operators of its line checked) and the whole run (until the job is ``done``: the
line read, parsed, rendered, archived). Loopback only; bounded by the sizes given.
"""

from __future__ import annotations

import argparse
import json
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
import uvicorn  # noqa: E402

from invoicer.api import create_app  # noqa: E402
from invoicer.api.billrun import ThreadBillRunQueue  # noqa: E402
from invoicer.api.keys import create_key  # noqa: E402
from invoicer.ledger import Ledger  # noqa: E402
from invoicer.settings import Settings  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="5,10,50", help="line sizes in MB")
    args = parser.parse_args()
    sample = json.loads((ROOT / "samples" / "invoices.jsonl").read_bytes().splitlines()[0])
    with tempfile.TemporaryDirectory() as tmp:
        db = f"sqlite:///{tmp}/ledger.db"
        settings = Settings(db_url=db, archive_url=f"file://{tmp}/archive",
                            mail_url=f"file://{tmp}/outbox", sms_url=f"file://{tmp}/sms",
                            link_secret="bench-upload-link-secret-0123456789abcdef")
        ledger = Ledger.from_url(db)
        ledger.migrate()
        key = create_key(ledger, role="billing", operators=["oi"], name="bench").token
        runs = ThreadBillRunQueue(settings, Path(tmp) / "spool", workers=1, deliver=False)
        app = create_app(settings, ledger=ledger, bill_runs=runs)
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.bind(("127.0.0.1", 0))
        server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
        threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True).start()
        while not server.started:
            time.sleep(0.01)
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/x-ndjson"}
        print(f"{'MB':>4} {'POST s':>8} {'run s':>8}")
        with httpx.Client(base_url=url, timeout=600) as http:
            for n, mb in enumerate(int(x) for x in args.sizes.split(",")):
                doc = dict(sample, padding="x" * (mb << 20))
                doc["invoice"] = dict(doc["invoice"], number=f"OI-BENCH-{n:06d}")
                body = json.dumps(doc).encode() + b"\n"
                started = time.perf_counter()
                got = http.post("/v1/billing/runs", content=body, headers=headers)
                posted = time.perf_counter() - started
                assert got.status_code == 202, got.text
                job = got.json()
                while job["state"] in ("queued", "running"):
                    time.sleep(0.05)
                    job = http.get(job["status_url"], headers=headers).json()
                total = time.perf_counter() - started
                print(f"{mb:>4} {posted:>8.2f} {total:>8.2f}  {job['state']} "
                      f"{job['outcomes']}", flush=True)
        server.should_exit = True


if __name__ == "__main__":
    main()
