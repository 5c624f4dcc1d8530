"""An invoice number is issued once, with one content (contract 1.1, ``conflict``).

The same number with other content (any field but ``delivery``) is rejected as
``conflict`` and dead-lettered, naming the invoice, the content hash issued and the
first field that differs; the same content again (re-serialised, another e-mail
address) is "already done". Through ``pipeline.process_record`` on both databases, the
CLI's ``invoicer run`` and the billing API's upload (which run the same pipeline; the
Celery tasks do too, through ``runs.run_chunk``).
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
import time

import httpx

from invoicer.api import create_app
from invoicer.api.billrun import ThreadBillRunQueue
from invoicer.api.keys import create_key
from invoicer.billing import parse_record
from invoicer.billing.content import content_sha256
from invoicer.delivery.archive import FileArchive
from invoicer.ledger import Ledger
from invoicer.pipeline import Services, process_record
from invoicer.settings import Settings
from tests.api.conftest import LiveServer
from tests.conftest import SPEC_EXAMPLE

NUMBER = SPEC_EXAMPLE["invoice"]["number"]


def _raw(rec: dict, **dumps) -> bytes:
    return json.dumps(rec, **dumps).encode()


def _changed(path: str, value) -> dict:
    rec = copy.deepcopy(SPEC_EXAMPLE)
    *parents, last = path.split(".")
    node = rec
    for name in parents:
        node = node[name]
    node[last] = value
    return rec


def test_content_is_the_meaning_not_the_bytes():
    base = parse_record(_raw(SPEC_EXAMPLE))
    same = copy.deepcopy(SPEC_EXAMPLE)
    same["balance"]["previous"] = "120.5"  # "120.50": one amount
    same["delivery"]["email"] = "other@example.com"  # how it travels is not content
    same["schema"] = "billing-record/1.1"  # the same invoice in the newer envelope
    again = parse_record(_raw(same, indent=1, sort_keys=True, ensure_ascii=False))
    assert content_sha256(again) == content_sha256(base)
    for path, value in (("invoice.due_date", "2026-11-21"),
                        ("account.customer.name", "Maria C. Souza"),
                        ("invoice.kind", "duplicate")):
        assert content_sha256(parse_record(_raw(_changed(path, value)))) != \
            content_sha256(base), path


def test_other_content_under_an_issued_number_is_a_conflict(db_url, tmp_path):
    archive = FileArchive(tmp_path / "archive")
    with Ledger.from_url(db_url) as ledger:
        ledger.migrate()
        services = Services(ledger=ledger, archive=archive)
        run = ledger.runs.start("a.jsonl")
        assert process_record(_raw(SPEC_EXAMPLE), line=1, run_id=run,
                              services=services).status == "archived"
        issued = ledger.invoices.get("oi", NUMBER)
        pdf = archive.get(issued.archive_key)
        objects = archive.list("")

        other = _changed("account.customer.name", "Maria C. Souza")
        rerun = ledger.runs.start("b.jsonl")
        outcome = process_record(_raw(other), line=4, run_id=rerun, services=services)
        assert (outcome.status, outcome.reason) == ("rejected", "conflict")
        assert NUMBER in outcome.message and issued.content_sha256 in outcome.message
        assert "account.customer.name" in outcome.message
        [reject] = ledger.runs.rejects(rerun)
        assert (reject.line, reject.reason, reject.path, reject.invoice_number) == (
            4, "conflict", "account.customer.name", NUMBER)
        # Nothing replaced: the archive and the ledger hold the first issue.
        assert archive.list("") == objects and archive.get(issued.archive_key) == pdf
        assert ledger.invoices.get("oi", NUMBER).content_sha256 == issued.content_sha256

        # The same content again, however written and wherever sent: already done.
        same = copy.deepcopy(SPEC_EXAMPLE)
        same["delivery"]["email"] = "maria.souza@example.com"
        again = process_record(_raw(same, indent=2, sort_keys=True), line=9, run_id=rerun,
                               services=services)
        assert again.status == "already_done"
        # A changed amount deep in a service names that field.
        money = copy.deepcopy(SPEC_EXAMPLE)
        money["services"][0]["label"] = "Oi Mobile — another plan"
        moved = process_record(_raw(money), line=10, run_id=rerun, services=services)
        assert (moved.reason, "services[0].label" in moved.message) == ("conflict", True)


def test_a_conflict_within_one_file_is_not_a_repeat(tmp_path):
    with Ledger.from_url(f"sqlite:///{tmp_path}/l.db") as ledger:
        ledger.migrate()
        services = Services(ledger=ledger, archive=FileArchive(tmp_path / "archive"))
        run = ledger.runs.start("a.jsonl")
        assert process_record(_raw(SPEC_EXAMPLE), line=1, run_id=run,
                              services=services).status == "archived"
        assert process_record(_raw(SPEC_EXAMPLE), line=2, run_id=run,
                              services=services).status == "repeated"
        third = process_record(_raw(_changed("invoice.due_date", "2026-11-25")), line=3,
                               run_id=run, services=services)
        assert (third.status, third.reason) == ("rejected", "conflict")
        assert "invoice.due_date" in third.message


def test_a_claim_not_yet_archived_already_fixes_the_content(tmp_path):
    with Ledger.from_url(f"sqlite:///{tmp_path}/l.db") as ledger:
        ledger.migrate()
        services = Services(ledger=ledger, archive=FileArchive(tmp_path / "archive"))
        record = parse_record(_raw(SPEC_EXAMPLE))
        # A worker claimed it and died before archiving anything.
        ledger.invoices.claim(
            "oi", NUMBER, account="1234567890", period_start=record.invoice.period.start,
            period_end=record.invoice.period.end, issue_date=record.invoice.issue_date,
            due_date=record.invoice.due_date, total=record.totals.total_due,
            currency="BRL", locale="pt_BR", delivery_mode="electronic",
            content_sha256=content_sha256(record))
        run = ledger.runs.start("b.jsonl")
        other = process_record(_raw(_changed("invoice.due_date", "2026-11-25")), line=1,
                               run_id=run, services=services)
        assert (other.status, other.reason) == ("rejected", "conflict")
        assert ledger.runs.rejects(run)[0].path == "invoice.number"  # nothing to diff yet
        assert process_record(_raw(SPEC_EXAMPLE), line=2, run_id=run,
                              services=services).status == "archived"


def test_cli_run_reports_the_conflict(tmp_path):
    src = tmp_path / "run.jsonl"
    src.write_text(json.dumps(SPEC_EXAMPLE) + "\n"
                   + json.dumps(_changed("invoice.due_date", "2026-11-25")) + "\n")
    env = {**os.environ, "INVOICER_DB_URL": f"sqlite:///{tmp_path}/ledger.db",
           "INVOICER_ARCHIVE_URL": f"file://{tmp_path}/archive"}
    result = subprocess.run([sys.executable, "-m", "invoicer", "run", str(src),
                             "--workers", "1", "--no-deliver"], env=env, capture_output=True,
                            text=True, timeout=120, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "rejected" in result.stdout and "conflict" in result.stdout
    assert "conflict: line 2, invoice OI-2026-11-0000123" in " ".join(result.stdout.split())
    with Ledger.from_url(f"sqlite:///{tmp_path}/ledger.db") as ledger:
        [reject] = ledger.runs.rejects(1)
        assert (reject.line, reject.reason, reject.path) == (2, "conflict", "invoice.due_date")
    # Listed for an operator with the run, not only counted.
    shown = subprocess.run([sys.executable, "-m", "invoicer", "runs", "show", "1"], env=env,
                           capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    text = " ".join(shown.stdout.split())
    assert "Rejected lines" in text and "conflict" in text and "invoice.due_date" in text


def test_billing_api_upload_dead_letters_the_conflict(tmp_path):
    settings = Settings(db_url=f"sqlite:///{tmp_path}/ledger.db",
                        archive_url=f"file://{tmp_path}/archive",
                        mail_url=f"file://{tmp_path}/outbox", sms_url=f"file://{tmp_path}/sms",
                        link_secret="x" * 32)
    ledger = Ledger.from_url(settings.db_url)
    ledger.migrate()
    key = create_key(ledger, role="billing", operators=["oi"], name="billing").token
    ops = create_key(ledger, role="operations", operators=["oi"], name="ops").token
    others = create_key(ledger, role="operations", operators=["vivo"], name="ops v").token
    queue = ThreadBillRunQueue(settings, tmp_path / "spool", workers=1)
    app = create_app(settings, ledger=ledger, bill_runs=queue, link_secret=b"x" * 32)
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/x-ndjson"}

    def upload(rec: dict) -> dict:
        job = client.post("/v1/billing/runs", content=_raw(rec) + b"\n", headers=headers)
        assert job.status_code == 202, job.text
        deadline = time.monotonic() + 120
        while (state := client.get(job.json()["status_url"], headers=headers).json()
               )["state"] in ("queued", "running"):
            assert time.monotonic() < deadline, state
            time.sleep(0.1)
        return state

    try:
        with LiveServer(app) as server, httpx.Client(base_url=server.url, timeout=30) as client:
            assert upload(SPEC_EXAMPLE)["outcomes"] == {"archived": 1}
            state = upload(_changed("account.customer.name", "Someone Else"))
            assert state["outcomes"] == {"rejected": 1}
            [reject] = ledger.runs.rejects(state["run_id"])
            assert (reject.reason, reject.path) == ("conflict", "account.customer.name")
            assert upload(SPEC_EXAMPLE)["outcomes"] == {"already_done": 1}
            # Listed for the operator's on-call, and for nobody else.
            listed = client.get("/v1/operations/conflicts",
                                headers={"Authorization": f"Bearer {ops}"})
            assert listed.status_code == 200, listed.text
            [item] = listed.json()["conflicts"]
            assert (item["invoice"], item["field"], item["run_id"]) == (
                NUMBER, "account.customer.name", state["run_id"])
            assert client.get("/v1/operations/conflicts", headers={
                "Authorization": f"Bearer {others}"}).json() == {"conflicts": []}
    finally:
        ledger.close()
