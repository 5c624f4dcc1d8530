"""The operations team's endpoints over a real uvicorn server: deliveries that need a
person and print batches, each key seeing only its operators."""

from __future__ import annotations

import time

import httpx
import pytest

from invoicer.api import create_app
from invoicer.api.keys import create_key
from invoicer.delivery.archive import FileArchive
from invoicer.ledger import Ledger
from invoicer.settings import Settings
from tests.api.conftest import OTHER, LiveServer, auth
from tests.workflows.print_world import queue

BASE = "/v1/operations"


@pytest.fixture
def ops(tmp_path, templates):
    ledger = Ledger.from_url(f"sqlite:///{tmp_path / 'ledger.db'}")
    ledger.migrate()
    archive = FileArchive(tmp_path / "archive")
    oi = queue(ledger, archive, templates, 5, seed=41)
    vivo = queue(ledger, archive, templates, 3, seed=42, prefix="VV", operator=OTHER)
    # One e-mail of each operator whose outcome is unknown (connection lost after DATA).
    for invoice_id in (min(oi), min(vivo)):
        d = ledger.deliveries.ensure(invoice_id, "email")
        assert ledger.deliveries.transition(d.id, "pending", "sending")
        assert ledger.deliveries.transition(d.id, "sending", "unknown", error="lost after DATA")
    tokens = {
        "ops": create_key(ledger, role="operations", operators=["oi"], name="Oi NOC").token,
        "shop": create_key(ledger, role="print_shop", operators=["oi"], name="Shop").token,
    }
    app = create_app(Settings(db_url="sqlite:///unused", archive_url="file:///unused"),
                     ledger=ledger, archive=archive)
    with LiveServer(app) as server, httpx.Client(base_url=server.url, timeout=30) as http:
        yield ledger, http, tokens
    ledger.close()


def test_deliveries_needing_attention_are_the_keys_operators_only(ops):
    _, http, tokens = ops
    got = http.get(f"{BASE}/deliveries", headers=auth(tokens["ops"]))
    assert got.status_code == 200, got.text
    (row,) = got.json()["deliveries"]
    assert (row["operator"], row["channel"], row["state"], row["last_error"]) == (
        "oi", "email", "unknown", "lost after DATA")
    pending = http.get(f"{BASE}/deliveries", params={"state": "pending"},
                       headers=auth(tokens["ops"])).json()["deliveries"]
    assert {d["operator"] for d in pending} == {"oi"} and len(pending) == 5  # print queue
    # Another operator's: nothing, and no hint that it exists.
    other = http.get(f"{BASE}/deliveries", params={"operator": OTHER},
                     headers=auth(tokens["ops"]))
    assert other.status_code == 200 and other.json() == {"deliveries": []}
    bad = http.get(f"{BASE}/deliveries", params={"state": "lost"}, headers=auth(tokens["ops"]))
    assert bad.status_code == 422
    assert bad.headers["content-type"].startswith("application/problem+json")


def test_operations_endpoints_need_an_operations_key(ops):
    _, http, tokens = ops
    assert http.get(f"{BASE}/deliveries").status_code == 401
    assert http.get(f"{BASE}/deliveries", headers=auth(tokens["shop"])).status_code == 403
    assert http.post(f"{BASE}/print-batches/close",
                     headers=auth(tokens["shop"])).status_code == 403


def test_close_runs_after_the_answer_and_shows_in_the_batch_list(ops):
    ledger, http, tokens = ops
    assert http.get(f"{BASE}/print-batches", headers=auth(tokens["ops"])).json() == {
        "batches": []}
    refused = http.post(f"{BASE}/print-batches/close", params={"operator": OTHER},
                        headers=auth(tokens["ops"]))
    assert refused.status_code == 404
    started = http.post(f"{BASE}/print-batches/close", headers=auth(tokens["ops"]))
    assert started.status_code == 202 and started.json() == {"operators": ["oi"]}
    deadline = time.monotonic() + 30
    while True:
        batches = http.get(f"{BASE}/print-batches",
                           headers=auth(tokens["ops"])).json()["batches"]
        if batches and batches[0]["state"] == "closed":
            break
        assert time.monotonic() < deadline, batches
        time.sleep(0.1)
    (batch,) = batches
    assert (batch["operator"], batch["documents"], batch["last_error"]) == ("oi", 5, None)
    # vivo's queue was not touched: its invoices are still waiting, in no batch.
    assert ledger.reports.print_batches([OTHER]) == []
