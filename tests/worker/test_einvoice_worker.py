"""The Celery path (``invoicer.process_record`` on a real worker, Redis, PostgreSQL, S3 on
moto, aiosmtpd) runs the same pipeline as ``invoicer run``: an XRechnung record's XML
lands in S3 beside the PDF and in the e-mail, and the same invoice number with other
content is dead-lettered as ``conflict``."""

from __future__ import annotations

import copy
import json
import time
from email import message_from_bytes, policy

import pytest
from lxml import etree

from invoicer.renderer.einvoice.xsd import schema_path
from tests.test_einvoice_delivery import EINVOICES, SAMPLE

pytestmark = pytest.mark.parametrize("broker", ["redis"], indirect=True)


def _wait(what, timeout: float = 90):
    deadline = time.monotonic() + timeout
    while not (found := what()):
        assert time.monotonic() < deadline
        time.sleep(0.3)
    return found


def test_celery_task_archives_and_mails_the_xml_and_refuses_a_conflict(harness,
                                                                       s3_admin):
    number = next(n for n, f in EINVOICES.items() if f == "xrechnung-cii")
    record = SAMPLE[number]
    operator = record["operator"]["id"]
    first = harness.tmp / "first.json"
    first.write_text(json.dumps(record) + "\n", encoding="utf-8")
    other = copy.deepcopy(record)
    other["invoice"]["due_date"] = "2026-12-31"
    second = harness.tmp / "second.json"
    second.write_text(json.dumps(other) + "\n", encoding="utf-8")

    harness.celery.worker("w1", concurrency=1)
    from celery import Celery as Client

    client = Client(broker=harness.env["INVOICER_BROKER_URL"])
    try:
        client.send_task("invoicer.process_record", args=[str(first)], queue="invoicer")
        invoice = _wait(lambda: (i := harness.ledger.invoices.get(operator, number))
                        and i.status == "archived" and i)
        [(_, _, data)] = _wait(lambda: list(harness.smtp.handler.received))
        client.send_task("invoicer.process_record", args=[str(second)], queue="invoicer")
        rejects = _wait(lambda: [r for run in _run_ids(harness)
                                 for r in harness.ledger.runs.rejects(run)])
    finally:
        client.close()

    key = invoice.einvoice_key
    xml = s3_admin.get_object(Bucket=harness.bucket, Key=f"archive/{key}")["Body"].read()
    schema = etree.XMLSchema(etree.parse(str(schema_path("cii"))))
    assert schema.validate(etree.fromstring(xml)), schema.error_log.last_error
    message = message_from_bytes(data, policy=policy.default)
    files = {p.get_filename(): p.get_content() for p in message.iter_attachments()}
    assert files[f"{number}.xml"] == xml
    [reject] = rejects
    assert (reject.reason, reject.path, reject.invoice_number) == (
        "conflict", "invoice.due_date", number)
    time.sleep(1)  # nothing else arrives: no second mail for the refused record
    assert len(harness.smtp.handler.received) == 1


def _run_ids(world) -> list[int]:
    import sqlalchemy as sa

    with world.ledger.engine.connect() as conn:
        return list(conn.execute(sa.text("select id from runs order by id")).scalars())
