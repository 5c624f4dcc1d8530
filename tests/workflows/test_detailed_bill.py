"""The detailed bill workflow on both archives (a folder, and S3 on moto's real server):
made once from the canonical record, archived beside the original, streamed as CSV; a
race of requests stores one object and one row."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import pytest

from invoicer.billing import parse_record
from invoicer.delivery.archive import FileArchive, S3Archive
from invoicer.delivery.errors import ArchiveNotFoundError
from invoicer.ledger import Ledger
from invoicer.pipeline import Services, process_record
from invoicer.renderer import NoDetailsError, render_details
from invoicer.workflows.detailed_bill import csv_stream, detailed_bill_key, issue_detailed_bill
from invoicer.workflows.second_copy import canonical_key
from tests.api.fleet_world import OI_BUSINESS, business_record
from tests.support.servers import s3_url


@pytest.fixture(params=["file", "s3"])
def world(request, tmp_path):
    ledger = Ledger.from_url(f"sqlite:///{tmp_path / 'ledger.db'}")
    ledger.migrate()
    if request.param == "file":
        archive = FileArchive(tmp_path / "archive")
    else:
        archive = S3Archive.from_url(s3_url(request.getfixturevalue("bucket"),
                                            request.getfixturevalue("moto_endpoint")))
    operator, account, contact, lines = OI_BUSINESS
    raw = json.dumps(business_record(operator, account, contact, lines, "OB-1", 2026, 11))
    run = ledger.runs.start("detailed-bill")
    outcome = process_record(raw.encode(), line=1, run_id=run,
                             services=Services(ledger=ledger, archive=archive))
    assert outcome.status == "archived"
    yield ledger, archive, ledger.invoices.get(operator, "OB-1")
    ledger.close()


def test_made_once_beside_the_original_even_when_raced(world):
    ledger, archive, invoice = world
    with ThreadPoolExecutor(6) as pool:
        made = list(pool.map(lambda _: issue_detailed_bill(ledger, archive, invoice),
                             range(6)))
    assert len({(m.sha256, m.created_at) for m in made}) == 1
    key = detailed_bill_key(invoice)
    assert made[0].archive_key == key and key.startswith(
        invoice.archive_key.removesuffix(".pdf"))
    record = parse_record(archive.get(canonical_key(invoice)))
    assert archive.get(key) == render_details(record)
    line = OI_BUSINESS[3][1]
    one = issue_detailed_bill(ledger, archive, invoice, line)
    assert one.archive_key == detailed_bill_key(invoice, line) != key
    assert "+" not in one.archive_key
    assert archive.get(one.archive_key) == render_details(record, line)
    with pytest.raises(NoDetailsError):
        issue_detailed_bill(ledger, archive, invoice, "+5500000000000")


def test_csv_streams_from_the_canonical_record(world):
    _, archive, invoice = world
    body = b"".join(csv_stream(archive, invoice)).decode("utf-8-sig").splitlines()
    assert len(body) == 1 + 3 + 2
    mine = b"".join(csv_stream(archive, invoice, OI_BUSINESS[3][0])).decode("utf-8-sig")
    assert len(mine.splitlines()) == 1 + 3


def test_a_missing_canonical_record_fails_before_any_byte(world, tmp_path):
    ledger, archive, invoice = world
    if isinstance(archive, FileArchive):
        (tmp_path / "archive" / canonical_key(invoice)).unlink()
    else:
        # The archive never deletes: take it away behind its back, with the S3 API.
        archive.client.delete_object(Bucket=archive.bucket,
                                     Key=archive._key(canonical_key(invoice)))
    with pytest.raises(ArchiveNotFoundError):
        csv_stream(archive, invoice)
    with pytest.raises(ArchiveNotFoundError):
        issue_detailed_bill(ledger, archive, invoice)
