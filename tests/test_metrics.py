"""A bill run seen from outside: its webhooks at a loopback receiver match the ledger;
metrics across processes, the standard multiprocess way (the pool's processes write
their counters under ``PROMETHEUS_MULTIPROC_DIR``; ``invoicer metrics`` and a worker's
``/metrics`` server add them up); a JSON log line per event, masked, with the run and
the invoice."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import httpx
from typer.testing import CliRunner

from invoicer.cli import app
from invoicer.ledger import Ledger
from invoicer.settings import Settings, get_settings
from tests.support.servers import WebhookReceiver, closed_port

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "samples" / "invoices.jsonl"


def _value(text: str, name: str, **labels: str) -> float | None:
    want = ",".join(f'{k}="{v}"' for k, v in labels.items())
    pattern = rf"^{re.escape(name)}{re.escape('{' + want + '}') if want else ''} (\S+)$"
    found = re.search(pattern, text, re.M)
    return float(found.group(1)) if found else None


def test_a_bill_runs_processes_add_up_in_metrics_and_logs_are_json(tmp_path, monkeypatch):
    lines = SAMPLES.read_text(encoding="utf-8").splitlines()[:4]
    bad = json.loads(lines[0])
    bad["invoice"]["number"] = "BAD-1"
    bad["delivery"]["email"] = "not-an-address maria@example.com"
    bad["totals"]["total_due"] = "1.00"  # does not add up: rejected
    source = tmp_path / "run.jsonl"
    source.write_text("\n".join([*lines, json.dumps(bad)]) + "\n", encoding="utf-8")
    prom = tmp_path / "prom"
    prom.mkdir()
    env = {"INVOICER_DB_URL": f"sqlite:///{tmp_path}/ledger.db",
           "INVOICER_ARCHIVE_URL": f"file://{tmp_path}/archive",
           "INVOICER_MAIL_URL": f"file://{tmp_path}/outbox",
           "INVOICER_SMS_URL": f"file://{tmp_path}/sms",
           "INVOICER_LOG_FORMAT": "json", "INVOICER_LOG_LEVEL": "INFO",
           "INVOICER_CHUNK_LINES": "2", "PROMETHEUS_MULTIPROC_DIR": str(prom)}
    with Ledger.from_url(env["INVOICER_DB_URL"]) as ledger, WebhookReceiver() as receiver:
        ledger.migrate()
        ledger.webhooks.add_endpoint("*", receiver.url, "w" * 32)
        run = subprocess.run([sys.executable, "-m", "invoicer", "run", str(source),
                              "--workers", "2"],
                             env={**os.environ, **env, "PYTHONPATH": str(ROOT.parent)},
                             cwd=tmp_path, capture_output=True, text=True, timeout=300)
        # The run sent its events at the end: what the receiver got is the ledger's.
        events = ledger.webhooks.events()
    assert "webhooks: " in run.stdout and " 0 waiting" in run.stdout, run.stdout
    assert sorted(h.event_id for h in receiver.received) == sorted(e.event_id for e in events)
    types = [e.type for e in events]
    assert types.count("invoice.issued") == 4 and types.count("invoice.rejected") == 1
    assert types.count("delivery.sent") >= 4
    assert len(list(prom.glob("counter_*.db"))) >= 2  # the pool's processes, each its file

    for name, value in env.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    try:
        text = CliRunner().invoke(app, ["metrics"]).output
    finally:
        get_settings.cache_clear()
    assert _value(text, "invoicer_invoices_rendered_total") == 4, run.stderr
    assert _value(text, "invoicer_invoices_archived_total") == 4
    assert _value(text, "invoicer_invoices_rejected_total") == 1
    assert _value(text, "invoicer_render_seconds_count") == 4
    assert _value(text, "invoicer_archive_seconds_count") == 4
    assert _value(text, "invoicer_pages_rendered_total") >= 4
    assert _value(text, "invoicer_invoices", status="archived") == 4  # the ledger agrees
    assert _value(text, "invoicer_rejects") == 1

    # A worker's /metrics server reads the same folder (Celery's prefork pool writes
    # there exactly as this run's pool did).
    from invoicer.worker import serve_metrics

    server = serve_metrics(Settings(worker_metrics_port=closed_port()))
    try:
        host, port = server.server_address[:2]
        scraped = httpx.get(f"http://{host}:{port}/metrics").text
    finally:
        server.shutdown()
        server.server_close()
    assert _value(scraped, "invoicer_invoices_rendered_total") == 4

    # The run's log: JSON lines, one event each, with the run, and no personal data.
    records = [json.loads(line) for line in run.stderr.splitlines() if line.startswith("{")]
    assert records, run.stderr
    assert all({"ts", "level", "logger", "message"} <= set(r) for r in records)
    assert "maria@example.com" not in run.stderr
    archived = [r for r in records if r["message"].startswith("invoice archived")]
    assert len(archived) == 4
    assert all(r["run_id"] == 1 and r["invoice"] and "chunk" in r for r in archived)
    (rejected,) = [r for r in records if r["message"].startswith("record rejected")]
    assert rejected["run_id"] == 1 and rejected["line"] == 5


def test_the_worker_serves_no_metrics_without_a_multiprocess_folder(monkeypatch, capsys):
    from invoicer.worker import serve_metrics

    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    assert serve_metrics(Settings(worker_metrics_port=closed_port())) is None
    assert "PROMETHEUS_MULTIPROC_DIR" in capsys.readouterr().err
    assert serve_metrics(Settings()) is None
