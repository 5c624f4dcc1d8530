"""The billing system's endpoints: payment status (and the history shows it), bill runs."""

from __future__ import annotations

import json
import time

from tests.api.conftest import auth
from tests.api.subscriber_client import API, bearer, session
from tests.api.world import MAIN, OTHER_OPERATOR, record

BASE = "/v1/billing"
NUMBER = "OI-2026-11-0000123"


def status_url(operator: str, number: str) -> str:
    return f"{BASE}/operators/{operator}/invoices/{number}/payment-status"


def test_payment_status_updates_show_in_the_history(sub):
    key = auth(sub.tokens["billing"])
    partial = {"status": "partially_paid", "date": "2026-11-18", "amount": "50.00"}
    got = sub.http.put(status_url("oi", NUMBER), json=partial, headers=key)
    assert got.status_code == 200, got.text
    assert (got.json()["status"], got.json()["paid_amount"]) == ("partially_paid", "50.00")
    # The same again: no new history row.
    sub.http.put(status_url("oi", NUMBER), json=partial, headers=key)
    paid = sub.http.put(status_url("oi", NUMBER), json={"status": "paid", "date": "2026-11-19"},
                        headers=key).json()
    assert paid["paid_amount"] == "104.75" and paid["paid_on"] == "2026-11-19"
    assert [e["status"] for e in paid["history"]] == ["partially_paid", "paid"]
    assert sub.http.get(status_url("oi", NUMBER), headers=key).json() == paid
    latest = sub.http.get(f"{API}/invoices", headers=bearer(session(sub))).json()["latest"]
    assert (latest["payment_status"], latest["paid_amount"], latest["paid_on"]) == (
        "paid", "104.75", "2026-11-19")


def test_invalid_payment_updates_are_422_and_change_nothing(sub):
    key = auth(sub.tokens["billing"])
    for body in ({"status": "paid"}, {"status": "partially_paid", "date": "2026-11-18"},
                 {"status": "partially_paid", "date": "2026-11-18", "amount": "104.75"},
                 {"status": "paid", "date": "2026-11-18", "amount": "1.001"},
                 {"status": "paid", "date": "2026-11-18", "amount": 10},
                 {"status": "paid", "date": "2026-11-18", "amount": "1e3"},
                 {"status": "overdue", "amount": "1.00"}, {"status": "refunded"}):
        got = sub.http.put(status_url("oi", NUMBER), json=body, headers=key)
        assert got.status_code == 422, (body, got.text)
    assert sub.http.get(status_url("oi", NUMBER), headers=key).json()["history"] == []


def test_billing_keys_reach_only_their_operators(sub):
    vivo, oi = auth(sub.tokens["billing_vivo"]), auth(sub.tokens["billing"])
    body = {"status": "overdue"}
    refused = [sub.http.put(status_url("oi", NUMBER), json=body, headers=vivo),
               sub.http.put(status_url("vivo", NUMBER), json=body, headers=vivo),
               sub.http.put(status_url("oi", "OI-0000"), json=body, headers=oi),
               sub.http.put(status_url("oi", "..%2F" + NUMBER), json=body, headers=oi)]
    assert {r.status_code for r in refused} == {404}
    assert len({r.content for r in refused[:3]}) == 1
    ok = sub.http.put(status_url("vivo", "VV-2026-11-0000042"), json=body, headers=vivo)
    assert ok.status_code == 200
    assert sub.http.put(status_url("oi", NUMBER), json=body,
                        headers=auth(sub.tokens["shop"])).status_code == 403
    assert sub.http.put(status_url("oi", NUMBER), json=body).status_code == 401


def test_a_bill_run_upload_is_run_in_the_background(sub):
    key = auth(sub.tokens["billing"])
    lines = [json.dumps(record("oi", "5555555555", "+5521955555555", f"OI-2026-12-00009{i}",
                               2026, 12)) for i in range(3)]
    got = sub.http.post(f"{BASE}/runs", content="\n".join(lines) + "\n",
                        headers={**key, "Content-Type": "application/x-ndjson"})
    assert got.status_code == 202, got.text
    job = got.json()
    deadline = time.monotonic() + 60
    while job["state"] in ("queued", "running") and time.monotonic() < deadline:
        time.sleep(0.2)
        job = sub.http.get(job["status_url"], headers=key).json()
    assert job["state"] == "done", job
    assert job["outcomes"] == {"archived": 3}
    assert sub.ledger.invoices.get("oi", "OI-2026-12-000091").status == "archived"
    # Another operator's key does not see the job.
    assert sub.http.get(job["status_url"], headers=auth(sub.tokens["billing_vivo"])
                        ).status_code == 404


def test_a_bill_run_with_another_operators_records_is_refused(sub):
    mixed = [record("oi", "5555555555", "+5521955555555", "OI-2026-12-000099", 2026, 12),
             record(*OTHER_OPERATOR, "VV-2026-12-000001", 2026, 12)]
    got = sub.http.post(f"{BASE}/runs", content="\n".join(map(json.dumps, mixed)),
                        headers={**auth(sub.tokens["billing"]),
                                 "Content-Type": "application/x-ndjson"})
    assert got.status_code == 403 and got.json()["operators"] == ["vivo"]
    assert list((sub.tmp / "spool").glob("*")) == []
    assert sub.ledger.invoices.get("oi", "OI-2026-12-000099") is None
    wrong_type = sub.http.post(f"{BASE}/runs", content="x", headers={
        **auth(sub.tokens["billing"]), "Content-Type": "text/plain"})
    assert wrong_type.status_code == 415
    bad_url = sub.http.post(f"{BASE}/runs", json={"source": "file:///etc/passwd"},
                            headers=auth(sub.tokens["billing"]))
    assert bad_url.status_code == 422
    assert MAIN  # the world is untouched


def _wait(sub, job, key):
    deadline = time.monotonic() + 60
    while job["state"] in ("queued", "running") and time.monotonic() < deadline:
        time.sleep(0.2)
        job = sub.http.get(job["status_url"], headers=key).json()
    return job


def test_a_bill_run_from_s3_is_read_with_the_services_s3_client(sub, s3_admin, bucket,
                                                                moto_endpoint):
    key = auth(sub.tokens["billing"])
    lines = [json.dumps(record("oi", "5555555555", "+5521955555555", f"OI-2026-12-00008{i}",
                               2026, 12)) for i in range(2)]
    s3_admin.put_object(Bucket=bucket, Key="exports/run.jsonl",
                        Body=("\n".join(lines) + "\n").encode())
    where = f"?endpoint={moto_endpoint}&region=eu-west-1"
    got = sub.http.post(f"{BASE}/runs", json={"source": f"s3://{bucket}/exports/run.jsonl"
                                                        + where}, headers=key)
    assert got.status_code == 202, got.text
    job = _wait(sub, got.json(), key)
    assert job["state"] == "done" and job["outcomes"] == {"archived": 2}, job
    # A missing object fails the job with the service's own error, not botocore's.
    missing = sub.http.post(f"{BASE}/runs", json={"source": f"s3://{bucket}/nope.jsonl"
                                                            + where}, headers=key)
    job = _wait(sub, missing.json(), key)
    assert job["state"] == "failed" and job["error"].startswith("PermanentDeliveryError"), job
