"""``/healthz``, ``/readyz`` and ``/metrics`` on a real uvicorn: readiness with each of
the ledger, the archive and the broker really down (nothing listening on their port),
and metrics that count what the ledger holds."""

from __future__ import annotations

import os
import re
import socket
from pathlib import Path

import httpx
import pytest

from invoicer import backends
from invoicer.api import create_app
from invoicer.delivery.archive import FileArchive, S3Archive
from invoicer.ledger import Ledger
from invoicer.settings import Settings
from tests.api.conftest import LiveServer
from tests.support.servers import closed_port, s3_url

REDIS = "redis://127.0.0.1:6379/15"


def _redis_up() -> None:
    try:
        socket.create_connection(("127.0.0.1", 6379), timeout=2).close()
    except OSError as exc:
        if os.environ.get("CI"):
            pytest.fail(f"Redis not reachable ({exc}); CI is set: it is required")
        pytest.skip(f"Redis not reachable: {exc}")


@pytest.fixture
def ledger(tmp_path: Path):
    with Ledger.from_url(f"sqlite:///{tmp_path / 'ledger.db'}") as led:
        led.migrate()
        yield led


def _serve(settings: Settings, ledger: Ledger, archive):
    app = create_app(settings, ledger=ledger, archive=archive, link_secret=b"k" * 32,
                     readiness=backends.readiness_checks(settings, ledger, archive))
    return LiveServer(app)


def test_everything_up_is_ready(ledger, tmp_path):
    _redis_up()
    settings = Settings(api_bill_runs="celery", broker_url=REDIS)
    with _serve(settings, ledger, FileArchive(tmp_path / "archive")) as server:
        assert httpx.get(f"{server.url}/healthz").json() == {"status": "ok"}
        ready = httpx.get(f"{server.url}/readyz", timeout=10)
        assert ready.status_code == 200
        assert ready.json() == {"status": "ready", "checks": {
            "ledger": "ok", "archive": "ok", "broker": "ok"}}
        assert "/readyz" not in httpx.get(f"{server.url}/openapi.json").text


@pytest.mark.parametrize("down", ["ledger", "archive", "broker"])
def test_one_collaborator_down_is_not_ready_but_alive(down, ledger, tmp_path, aws_env):
    _redis_up()
    dead = closed_port()
    broker = f"redis://127.0.0.1:{dead}/0" if down == "broker" else REDIS
    settings = Settings(api_bill_runs="celery", broker_url=broker)
    archive = (S3Archive.from_url(s3_url("invoices", f"http://127.0.0.1:{dead}"))
               if down == "archive" else FileArchive(tmp_path / "archive"))
    probed = (Ledger.from_url(f"postgresql://postgres@127.0.0.1:{dead}/test")
              if down == "ledger" else ledger)
    with _serve(settings, probed, archive) as server:
        ready = httpx.get(f"{server.url}/readyz", timeout=20)
        assert ready.status_code == 503
        checks = ready.json()["checks"]
        assert checks.pop(down) != "ok"
        assert set(checks.values()) == {"ok"}
        assert httpx.get(f"{server.url}/healthz").status_code == 200
    if probed is not ledger:
        probed.close()


def _value(text: str, name: str, **labels: str) -> float | None:
    want = ",".join(f'{k}="{v}"' for k, v in labels.items())
    pattern = rf"^{re.escape(name)}{re.escape('{' + want + '}') if want else ''} (\S+)$"
    found = re.search(pattern, text, re.M)
    return float(found.group(1)) if found else None


def test_metrics_show_the_ledger_and_the_work(ledger, facts, tmp_path):
    ledger.webhooks.add_endpoint("oi", "http://127.0.0.1:9/h", "s" * 32)
    for n in range(3):
        invoice = ledger.invoices.claim("oi", f"M-{n}", **facts()).invoice
        ledger.invoices.mark_archived(invoice.id, sha256="d" * 64, archive_key=f"k{n}",
                                      renderer_version="t")
        d = ledger.deliveries.ensure(invoice.id, "email").id
        ledger.deliveries.transition(d, "pending", "sending")
        ledger.deliveries.transition(d, "sending", "sent" if n else "failed_permanent")
    ledger.invoices.claim("oi", "M-9", **facts())
    # What the bounce handling announces (its state machine is another module's).
    ledger.webhooks.emit("delivery.bounced", "oi", {"delivery": {"id": 1}}, invoice_id=1)
    with _serve(Settings(), ledger, FileArchive(tmp_path / "archive")) as server:
        response = httpx.get(f"{server.url}/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    assert _value(text, "invoicer_ledger_up") == 1
    assert _value(text, "invoicer_deliveries", channel="email", state="sent") == 2
    assert _value(text, "invoicer_deliveries", channel="email", state="failed_permanent") == 1
    assert _value(text, "invoicer_invoices", status="archived") == 3
    assert _value(text, "invoicer_invoices", status="claimed") == 1
    assert _value(text, "invoicer_webhook_backlog", endpoint="1") == 7  # 3 x 2, a bounce
    assert _value(text, "invoicer_rejects") == 0
    assert _value(text, "invoicer_events", type="delivery.failed") == 1
    assert _value(text, "invoicer_events", type="invoice.issued") == 3
    assert _value(text, "invoicer_bounces") == 1 and _value(text, "invoicer_fallbacks") == 0
    # The work counters are there from the start (a scraper sees 0, not a gap).
    for name in ("invoicer_invoices_rendered_total", "invoicer_invoices_archived_total",
                 "invoicer_invoices_rejected_total", "invoicer_pages_rendered_total",
                 "invoicer_print_batches_closed_total", "invoicer_render_seconds_count",
                 "invoicer_archive_seconds_count"):
        assert _value(text, name) is not None, name


def test_an_unreadable_ledger_is_a_gauge_not_a_failed_scrape(tmp_path):
    dead = Ledger.from_url(f"postgresql://postgres@127.0.0.1:{closed_port()}/test")
    with _serve(Settings(), dead, FileArchive(tmp_path / "archive")) as server:
        response = httpx.get(f"{server.url}/metrics", timeout=20)
    dead.close()
    assert response.status_code == 200
    assert _value(response.text, "invoicer_ledger_up") == 0
