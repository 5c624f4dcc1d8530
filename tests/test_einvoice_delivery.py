"""E-invoices end to end (issue 15): the XML of XRechnung, Peppol BIS 3 and RO_CIUS is
archived beside the PDF under the same key with ``.xml``, attached to the e-mail next to
the PDF, downloadable by signed link and listed in the run summary; Factur-X stays
inside the PDF. Every XML that reaches the archive or a mailbox is checked against the
official XML Schema of its syntax (the one ``renderer.einvoice.xsd`` ships), read back
with lxml here, independently of the code that wrote it.

Real peers: ``invoicer run`` in subprocesses (file archive, file outbox), S3 on moto's
server and aiosmtpd for the in-process path, and the HTTP API under uvicorn.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from email import message_from_bytes, policy
from pathlib import Path

import httpx
import pikepdf
import pytest
from lxml import etree

from invoicer.api import create_app
from invoicer.api.keys import create_key
from invoicer.backends import services as build_services
from invoicer.delivery.archive import FileArchive
from invoicer.ledger import Ledger
from invoicer.pipeline import process_record
from invoicer.renderer.einvoice import FORMATS
from invoicer.renderer.einvoice.xsd import schema_path
from invoicer.settings import Settings
from tests.api.conftest import LiveServer
from tests.conftest import SAMPLES
from tests.support.servers import s3_url

BESIDE = {"xrechnung-cii", "xrechnung-ubl", "peppol-bis3", "ro-cius"}


def _samples() -> dict[str, dict]:
    # split on LF only: records hold U+2028 and friends, which splitlines() breaks on
    lines = [x for x in (SAMPLES / "invoices.jsonl").read_bytes().split(b"\n") if x]
    return {json.loads(line)["invoice"]["number"]: json.loads(line) for line in lines}


SAMPLE = _samples()
EINVOICES = {n: r["delivery"]["einvoice"]["format"] for n, r in SAMPLE.items()
             if r["delivery"].get("einvoice")}


def _valid(xml: bytes, fmt: str) -> None:
    """The XML passes the official XSD of its syntax (CII D16B / UBL 2.1)."""
    schema = etree.XMLSchema(etree.parse(str(schema_path(FORMATS[fmt].syntax))))
    doc = etree.fromstring(xml, etree.XMLParser(resolve_entities=False, no_network=True))
    assert schema.validate(doc), (fmt, schema.error_log.last_error)


def _attachments(data: bytes) -> dict[str, tuple[str, bytes]]:
    message = message_from_bytes(data, policy=policy.default)
    return {part.get_filename(): (part.get_content_type(), part.get_content())
            for part in message.iter_attachments()}


def test_the_samples_cover_every_format():
    assert set(EINVOICES.values()) == set(FORMATS)


# ------------------------------------------------------------------ invoicer run (files)


def _env(tmp: Path) -> dict[str, str]:
    return {**os.environ, "INVOICER_DB_URL": f"sqlite:///{tmp}/ledger.db",
            "INVOICER_ARCHIVE_URL": f"file://{tmp}/archive",
            "INVOICER_MAIL_URL": f"file://{tmp}/outbox",
            "INVOICER_SMS_URL": f"file://{tmp}/sms", "INVOICER_LINK_SECRET": "s" * 32}


def _cli(tmp: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "invoicer", *args], env=_env(tmp),
                          capture_output=True, text=True, timeout=300, cwd=tmp)


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_cli_run_archives_mails_and_lists_the_xml_and_a_rerun_changes_nothing(tmp_path):
    src = tmp_path / "einvoices.jsonl"
    src.write_text("".join(json.dumps(SAMPLE[n], ensure_ascii=False) + "\n"
                           for n in EINVOICES), encoding="utf-8")
    first = _cli(tmp_path, "run", str(src), "--workers", "2")
    assert first.returncode == 0, first.stdout + first.stderr
    for fmt in FORMATS:
        assert fmt in first.stdout, first.stdout
    assert "archived beside the PDF (.xml)" in first.stdout
    assert "inside the PDF (factur-x.xml)" in first.stdout

    archive, outbox = tmp_path / "archive", tmp_path / "outbox"
    mails = {}
    for path in outbox.glob("*.eml"):
        message = message_from_bytes(path.read_bytes(), policy=policy.default)
        mails[message["To"].addresses[0].addr_spec] = path.read_bytes()
    for number, fmt in EINVOICES.items():
        rec = SAMPLE[number]
        start = rec["invoice"]["period"]["start"][:7]
        base = archive / rec["operator"]["id"] / rec["account"]["number"] / start / number
        pdf = base.with_suffix(".pdf").read_bytes()
        files = _attachments(mails[rec["delivery"]["email"]])
        if fmt in BESIDE:
            xml = base.with_suffix(".xml").read_bytes()
            _valid(xml, fmt)
            assert files[f"{number}.xml"] == ("application/xml", xml)
            assert files[f"{number}.pdf"] == ("application/pdf", pdf)
        else:  # Factur-X: one file, the XML inside the PDF
            assert not base.with_suffix(".xml").exists()
            assert set(files) == {f"{number}.pdf"}
            with pikepdf.open(base.with_suffix(".pdf")) as doc:
                embedded = doc.attachments["factur-x.xml"].get_file().read_bytes()
            _valid(embedded, fmt)

    shown = _cli(tmp_path, "runs", "show", "1")
    assert shown.returncode == 0, shown.stderr
    assert "E-invoices" in shown.stdout and "inside the PDF" in shown.stdout
    for fmt in FORMATS:
        assert fmt in shown.stdout

    before = (_tree(archive), _tree(outbox))
    again = _cli(tmp_path, "run", str(src), "--workers", "1")
    assert again.returncode == 0, again.stdout + again.stderr
    assert "already done" in again.stdout and "E-invoices" not in again.stdout
    assert (_tree(archive), _tree(outbox)) == before  # immutable: nothing added or changed


# ------------------------------------------------------------------ S3 + SMTP in process


def test_s3_archive_and_smtp_get_the_xml_once(tmp_path, bucket, moto_endpoint, smtp_server,
                                             s3_admin):
    settings = Settings(db_url=f"sqlite:///{tmp_path}/ledger.db",
                        archive_url=s3_url(bucket, moto_endpoint), mail_url=smtp_server.url,
                        sms_url=f"file://{tmp_path}/sms", link_secret="k" * 32,
                        mail_from="invoices@spreewelle.example")
    services = build_services(settings)
    services.ledger.migrate()
    try:
        number = next(n for n, f in EINVOICES.items() if f == "xrechnung-ubl")
        raw = json.dumps(SAMPLE[number]).encode()
        run = services.ledger.runs.start("s3-test")
        outcome = process_record(raw, line=1, run_id=run, services=services)
        assert (outcome.status, outcome.einvoice) == ("archived", "xrechnung-ubl")
        invoice = services.ledger.invoices.get(SAMPLE[number]["operator"]["id"], number)
        key = invoice.einvoice_key
        assert key == invoice.archive_key.removesuffix(".pdf") + ".xml"
        head = s3_admin.head_object(Bucket=bucket, Key=f"archive/{key}")
        assert head["ContentType"] == "application/xml"
        xml = services.archive.get(key)
        _valid(xml, "xrechnung-ubl")
        assert (invoice.einvoice_sha256, invoice.einvoice_size) == (
            services.archive.stat(key).sha256, len(xml))
        [(_, rcpts, data)] = smtp_server.handler.received
        assert rcpts == [SAMPLE[number]["delivery"]["email"]]
        assert _attachments(data)[f"{number}.xml"] == ("application/xml", xml)
        # Again, from another run: already done, nothing archived twice, no second mail.
        objects = s3_admin.list_objects_v2(Bucket=bucket)["KeyCount"]
        again = process_record(raw, line=1, run_id=services.ledger.runs.start("s3-test-2"),
                               services=services)
        assert again.status == "already_done"
        assert s3_admin.list_objects_v2(Bucket=bucket)["KeyCount"] == objects == 3
        assert len(smtp_server.handler.received) == 1
    finally:
        services.close()


def test_an_xml_that_fails_its_schema_is_never_archived_or_sent(tmp_path, monkeypatch):
    from invoicer.renderer.einvoice import xsd

    number = next(n for n, f in EINVOICES.items() if f == "peppol-bis3")
    archive = FileArchive(tmp_path / "archive")
    with Ledger.from_url(f"sqlite:///{tmp_path}/l.db") as ledger:
        ledger.migrate()
        from invoicer.pipeline import Services
        services = Services(ledger=ledger, archive=archive)
        real = xsd.check

        def broken(xml, syntax):  # the generated document, one element off the schema
            real(xml.replace(b"<cbc:ID>", b"<cbc:Nonsense/><cbc:ID>", 1), syntax)

        monkeypatch.setattr(xsd, "check", broken)
        outcome = process_record(json.dumps(SAMPLE[number]).encode(), line=1,
                                 run_id=ledger.runs.start("x"), services=services)
        assert (outcome.status, outcome.reason) == ("failed", "einvoice")
        assert "XML Schema" in outcome.message
        assert archive.list("") == []  # nothing of it archived
        monkeypatch.setattr(xsd, "check", real)
        retry = process_record(json.dumps(SAMPLE[number]).encode(), line=1,
                               run_id=ledger.runs.start("y"), services=services)
        assert retry.status == "archived"


# ------------------------------------------------------------------ downloads


@pytest.fixture
def api(tmp_path):
    archive = FileArchive(tmp_path / "archive")
    ledger = Ledger.from_url(f"sqlite:///{tmp_path}/ledger.db")
    ledger.migrate()
    from invoicer.pipeline import Services
    services = Services(ledger=ledger, archive=archive)
    run = ledger.runs.start("api")
    for line, number in enumerate(EINVOICES, 1):
        outcome = process_record(json.dumps(SAMPLE[number]).encode(), line=line, run_id=run,
                                 services=services)
        assert outcome.status == "archived", outcome
    operators = sorted({SAMPLE[n]["operator"]["id"] for n in EINVOICES})
    key = create_key(ledger, role="billing", operators=operators, name="test billing").token
    app = create_app(Settings(db_url=f"sqlite:///{tmp_path}/ledger.db"), ledger=ledger,
                     archive=archive, link_secret=b"l" * 32)
    with LiveServer(app) as server, httpx.Client(base_url=server.url, timeout=10) as client:
        yield client, key, ledger, archive
    ledger.close()


def test_billing_and_subscriber_apis_serve_the_xml_by_signed_link(api):
    client, key, ledger, archive = api
    headers = {"Authorization": f"Bearer {key}"}
    for number, fmt in EINVOICES.items():
        operator = SAMPLE[number]["operator"]["id"]
        docs = client.get(f"/v1/billing/operators/{operator}/invoices/{number}/documents",
                          headers=headers)
        assert docs.status_code == 200, docs.text
        body = docs.json()
        assert body["einvoice_format"] == fmt
        pdf = client.get(body["pdf"])
        assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")
        invoice = ledger.invoices.get(operator, number)
        if fmt in BESIDE:
            xml = client.get(body["einvoice"])
            assert xml.status_code == 200
            assert xml.headers["content-type"].startswith("application/xml")
            assert f'filename="{number}.xml"' in xml.headers["content-disposition"]
            assert xml.content == archive.get(invoice.einvoice_key)
            _valid(xml.content, fmt)
            # The same token, another document of the invoice: a tampered token is 404.
            assert client.get(body["einvoice"].replace(".xml", "x.xml")).status_code == 404
        else:
            assert body["einvoice"] is None
            assert client.get(body["pdf"].removesuffix(".pdf") + ".xml").status_code == 404
    # Another operator's key sees nothing.
    other = create_key(ledger, role="billing", operators=["oi"], name="other").token
    number = next(iter(EINVOICES))
    operator = SAMPLE[number]["operator"]["id"]
    assert client.get(f"/v1/billing/operators/{operator}/invoices/{number}/documents",
                      headers={"Authorization": f"Bearer {other}"}).status_code == 404


def test_subscriber_history_links_the_xml(api):
    client, _, ledger, _ = api
    number = next(n for n, f in EINVOICES.items() if f == "ro-cius")
    rec = SAMPLE[number]
    from invoicer.api.access import AccessService
    from invoicer.delivery.sms import MemorySmsGateway
    access = AccessService(ledger, MemorySmsGateway(), b"l" * 32)
    token, _ = access.session_token(rec["operator"]["id"], rec["account"]["number"])
    history = client.get("/v1/subscriber/invoices", headers={"Authorization": f"Bearer {token}"})
    assert history.status_code == 200, history.text
    [item] = [i for i in history.json()["invoices"] if i["number"] == number]
    assert item["einvoice_format"] == "ro-cius"
    xml = client.get(item["einvoice"])
    assert xml.status_code == 200
    _valid(xml.content, "ro-cius")


def test_a_bill_run_posted_to_the_api_reports_its_einvoices(tmp_path):
    from collections import Counter

    from invoicer.api.billrun import ThreadBillRunQueue

    settings = Settings(db_url=f"sqlite:///{tmp_path}/ledger.db",
                        archive_url=f"file://{tmp_path}/archive",
                        mail_url=f"file://{tmp_path}/outbox", sms_url=f"file://{tmp_path}/sms",
                        link_secret="x" * 32)
    ledger = Ledger.from_url(settings.db_url)
    ledger.migrate()
    operators = sorted({SAMPLE[n]["operator"]["id"] for n in EINVOICES})
    key = create_key(ledger, role="billing", operators=operators, name="billing").token
    app = create_app(settings, ledger=ledger, link_secret=b"x" * 32,
                     bill_runs=ThreadBillRunQueue(settings, tmp_path / "spool", workers=1))
    headers = {"Authorization": f"Bearer {key}"}
    body = b"".join(json.dumps(SAMPLE[n]).encode() + b"\n" for n in EINVOICES)
    try:
        with LiveServer(app) as server, httpx.Client(base_url=server.url, timeout=30) as http:
            job = http.post("/v1/billing/runs", content=body,
                            headers={**headers, "Content-Type": "application/x-ndjson"})
            assert job.status_code == 202, job.text
            deadline = time.monotonic() + 120
            while (state := http.get(job.json()["status_url"], headers=headers).json()
                   )["state"] in ("queued", "running"):
                assert time.monotonic() < deadline, state
                time.sleep(0.2)
    finally:
        ledger.close()
    assert state["outcomes"] == {"archived": len(EINVOICES)}
    assert state["einvoices"] == dict(Counter(EINVOICES.values()))
