"""The bill-run queues behind ``POST /v1/billing/runs`` with an ``s3://`` source (moto's
real S3 server): read once, refused whole if it holds another operator's records."""

from __future__ import annotations

import json
import time
from pathlib import Path
from types import SimpleNamespace

from invoicer.api.billrun import BillRunSource, CeleryBillRunQueue, ThreadBillRunQueue
from invoicer.ledger import Ledger
from invoicer.settings import Settings


def _put(s3_admin, bucket: str, key: str, operators: list[str]) -> str:
    body = "".join(json.dumps({"operator": {"id": op}}) + "\n" for op in operators)
    s3_admin.put_object(Bucket=bucket, Key=key, Body=body.encode())
    return f"s3://{bucket}/{key}"


def _wait(queue, job_id: str, states: set[str]):
    deadline = time.monotonic() + 30
    while (job := queue.status(job_id)).state not in states:
        assert time.monotonic() < deadline, job
        time.sleep(0.05)
    return job


def test_the_thread_queue_reads_an_s3_source_once_and_refuses_foreign_records(
        tmp_path, s3_admin, bucket, moto_endpoint):
    ran: list[bytes] = []

    def run_file(path: Path, settings, **_):
        ran.append(path.read_bytes())
        return SimpleNamespace(run_id=7, outcomes={"archived": 2})

    queue = ThreadBillRunQueue(Settings(), tmp_path / "spool", s3_endpoint=moto_endpoint,
                               run_file=run_file)
    bad = queue.enqueue(BillRunSource(("oi",), 1, url=_put(s3_admin, bucket, "bad.jsonl",
                                                           ["oi", "vivo"])))
    job = _wait(queue, bad.id, {"refused", "failed", "done"})
    assert job.state == "refused" and "vivo" in job.error and ran == []
    good = queue.enqueue(BillRunSource(("oi",), 1, url=_put(s3_admin, bucket, "good.jsonl",
                                                            ["oi", "oi"])))
    job = _wait(queue, good.id, {"refused", "failed", "done"})
    assert (job.state, job.run_id, job.outcomes) == ("done", 7, {"archived": 2})
    assert len(ran) == 1 and ran[0].count(b"\n") == 2


def test_the_celery_queue_checks_an_s3_source_before_it_is_enqueued(
        tmp_path, s3_admin, bucket, moto_endpoint):
    sent: list[tuple] = []
    with Ledger.from_url(f"sqlite:///{tmp_path}/l.db") as ledger:
        ledger.migrate()
        queue = CeleryBillRunQueue(ledger, tmp_path / "spool", s3_endpoint=moto_endpoint,
                                   send=lambda name, args=(), **_: sent.append((name, *args)))
        bad = queue.enqueue(BillRunSource(("oi",), 1, url=_put(s3_admin, bucket, "b.jsonl",
                                                               ["vivo"])))
        assert _wait(queue, bad.id, {"refused", "failed"}).state == "refused"
        url = _put(s3_admin, bucket, "g.jsonl", ["oi"])
        good = queue.enqueue(BillRunSource(("oi",), 1, url=url))
        deadline = time.monotonic() + 30
        while queue.status(good.id).run_id is None:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        run_id = queue.status(good.id).run_id
        assert sent == [("invoicer.bill_run", url, run_id)]
        assert ledger.runs.get(run_id).source == url
        assert list((tmp_path / "spool").glob("*")) == []  # the checked copy is gone
