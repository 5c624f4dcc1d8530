"""Print batching: joining, sealing, closing into a PDF and manifest, pulling, acknowledging.

The batch PDF is read back with the tools a print shop would trust: ``pdfinfo`` for the
page count, ``pdftoppm`` + ``zbarimg`` for the sheet marks, ``pdftotext -bbox`` for the
text in the envelope window, and pikepdf for the structure.

The 1,001-invoice batch is built quickly from a handful of real invoices archived under
1,001 numbers (``tests.workflows.print_world``). Ledger-level tests (joining, sealing,
acknowledging, races) run on SQLite and on PostgreSQL (the ``db_url`` fixture).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import multiprocessing
import random
import re
import threading
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace

import pikepdf
import pytest
from PIL import Image, ImageChops
from typer.testing import CliRunner

from invoicer.delivery import printfile
from invoicer.delivery.archive import FileArchive, S3Archive
from invoicer.ledger import Ledger, LedgerConflict, PrintCountMismatch, print_sort_key
from invoicer.renderer.brand import brand_for
from invoicer.renderer.layout import WINDOW_HEIGHT, WINDOW_LEFT, WINDOW_TOP, WINDOW_WIDTH
from invoicer.workflows import printing
from tests.support.pdfs import marks_on, run, words_on
from tests.support.servers import s3_url
from tests.workflows.print_world import OPERATOR, PERIOD, queue

MM = 72 / 25.4
BIG = 1001


@pytest.fixture(scope="module")
def big(templates, tmp_path_factory):
    """1,001 paper invoices of mixed length, closed into one batch (SQLite, files)."""
    folder = tmp_path_factory.mktemp("big")
    ledger = Ledger.from_url(f"sqlite:///{folder / 'ledger.db'}")
    ledger.migrate()
    archive = FileArchive(folder / "archive")
    made = queue(ledger, archive, templates, BIG)
    report = printing.close(ledger, archive)
    assert (report.joined, len(report.closed), report.failed) == (BIG, 1, [])
    closed = report.closed[0]
    batch = ledger.print_batches.get(closed.batch_id)
    manifest = json.loads(archive.get(closed.keys.json))
    numbers = {ledger.invoices.get_by_id(i).number: t for i, t in made.items()}
    yield SimpleNamespace(ledger=ledger, archive=archive, closed=closed, batch=batch,
                          manifest=manifest, made=made, by_number=numbers,
                          pdf=archive.root / closed.keys.pdf, folder=folder)
    ledger.close()


# ---------------------------------------------------------------------------- the big batch


def test_every_document_starts_on_an_odd_page_and_pages_add_up(big):
    docs, totals = big.manifest["documents"], big.manifest["totals"]
    assert len(docs) == totals["documents"] == BIG == big.batch.documents
    assert [d["sequence"] for d in docs] == list(range(1, BIG + 1))
    pages = int(re.search(r"Pages:\s+(\d+)", run("pdfinfo", str(big.pdf))).group(1))
    assert sum(d["pages"] for d in docs) == totals["pages"] == pages == big.closed.pages
    assert sum(d["sheets"] for d in docs) == totals["sheets"] == pages // 2
    page = 1
    for d in docs:
        assert d["first_page"] == page and page % 2 == 1
        assert d["pages"] == 2 * d["sheets"] and d["pages"] % 2 == 0
        page += d["pages"]
    # Read back: each document's first page is its invoice's first page (same content
    # stream bytes), and the padding page of an odd-length invoice is blank.
    lengths = {t.pages for t in big.made.values()}
    assert {1, 2, 3} <= lengths and max(lengths) >= 5  # mixed length, as asked
    own_first = {t.sha256: _first_content(t.pdf) for t in big.made.values()}
    with pikepdf.open(big.pdf) as pdf:
        assert len(pdf.pages) == pages
        for d in docs:
            first = pdf.pages[d["first_page"] - 1]
            assert _content(first) == own_first[d["sha256"]], d["invoice"]
            if d["blank_pages"]:
                assert "/Contents" not in pdf.pages[d["first_page"] + d["pages"] - 2]


def _content(page: pikepdf.Page) -> bytes:
    """A batch page's own content stream bytes: between the q and the mark."""
    (own,) = list(page.obj.Contents)[1:-1]
    return own.read_raw_bytes()


def _first_content(pdf: bytes) -> bytes:
    """An invoice's first page content stream bytes."""
    with pikepdf.open(io.BytesIO(pdf)) as doc:
        return doc.pages[0].obj.Contents.read_raw_bytes()


def test_postal_codes_are_in_order_then_accounts(big):
    docs = big.manifest["documents"]
    keys = [print_sort_key(d["postal_code"], d["account"], d["invoice"]) for d in docs]
    assert keys == sorted(keys)
    codes = [d["postal_code"].replace("-", "") for d in docs]
    assert codes == sorted(codes) and len(set(codes)) > 900


def test_hashes_match_the_archive_and_the_ledger(big):
    docs = big.manifest["documents"]
    for d in docs:
        inv = big.ledger.invoices.get(OPERATOR, d["invoice"])
        assert d["sha256"] == inv.sha256 == big.archive.stat(d["archive_key"]).sha256
        assert (d["account"], d["postal_code"], d["country"]) == (
            inv.account, inv.postal_code, inv.country)
    for d in random.Random(3).sample(docs, 25):  # the bytes themselves, for a sample
        assert hashlib.sha256(big.archive.get(d["archive_key"])).hexdigest() == d["sha256"]
    digest = hashlib.sha256(big.pdf.read_bytes()).hexdigest()
    pdf = big.manifest["pdf"]
    assert digest == pdf["sha256"] == big.batch.pdf_sha256 == big.closed.pdf_sha256
    assert digest == big.archive.stat(big.closed.keys.pdf).sha256
    assert pdf["size"] == big.pdf.stat().st_size == big.batch.pdf_size
    assert big.manifest["renderer_versions"] == ["1.0.0"]
    assert big.manifest["service_version"] == printing.service_version()


def test_csv_manifest_says_what_the_json_says(big):
    rows = list(csv.DictReader(io.StringIO(big.archive.get(big.closed.keys.csv).decode())))
    docs, batch_row = rows[:-1], rows[-1]
    assert [r["record"] for r in docs] == ["document"] * BIG
    for row, d in zip(docs, big.manifest["documents"], strict=True):
        assert row["invoice"] == d["invoice"] and row["sha256"] == d["sha256"]
        assert [int(row[k]) for k in ("sequence", "first_page", "pages", "sheets")] == [
            d["sequence"], d["first_page"], d["pages"], d["sheets"]]
        assert (row["account"], row["postal_code"], row["country"]) == (
            d["account"], d["postal_code"], d["country"])
    totals = big.manifest["totals"]
    assert batch_row["record"] == "batch" and batch_row["batch"] == f"B{big.batch.id}"
    assert int(batch_row["documents"]) == totals["documents"]
    assert int(batch_row["pages"]) == totals["pages"]
    assert int(batch_row["sheets"]) == totals["sheets"]
    assert batch_row["sha256"] == big.manifest["pdf"]["sha256"]
    assert batch_row["service_version"] == big.manifest["service_version"]


def test_sheet_marks_decode_to_batch_document_and_sheet(big, tmp_path):
    docs = big.manifest["documents"]
    long_doc = next(d for d in docs if d["sheets"] >= 3)
    sample = [docs[0], docs[-1], long_doc, *random.Random(5).sample(docs, 4)]
    b = big.batch.id
    for d in sample:
        for sheet in range(1, d["sheets"] + 1):
            front = d["first_page"] + 2 * (sheet - 1)
            assert marks_on(big.pdf, front, tmp_path) == [
                f"B{b}|D{d['sequence']}|S{sheet}/{d['sheets']}"], (d, sheet)
        if d is long_doc:  # back sides carry no mark
            assert marks_on(big.pdf, d["first_page"] + 1, tmp_path) == []


def test_address_fills_the_window_and_nothing_else_is_in_it(big, tmp_path):
    docs = big.manifest["documents"]
    x0, y0 = WINDOW_LEFT, WINDOW_TOP
    x1, y1 = WINDOW_LEFT + WINDOW_WIDTH, WINDOW_TOP + WINDOW_HEIGHT
    seen = set()
    for d in docs:  # one first page per template
        template = big.by_number[d["invoice"]]
        if template.sha256 in seen:
            continue
        seen.add(template.sha256)
        words = words_on(big.pdf, d["first_page"])
        inside = {w for a, b, c, e, w in words if a >= x0 and c <= x1 and b >= y0 and e <= y1}
        crossing = [w for a, b, c, e, w in words if not (c <= x0 or a >= x1 or e <= y0 or b >= y1)
                    and not (a >= x0 and c <= x1 and b >= y0 and e <= y1)]
        cust, op = template.record.account.customer, template.record.operator
        address = " ".join([cust.name, *cust.address.lines, cust.address.postal_code,
                            cust.address.city]).split()
        sender = " ".join([op.name, *op.address.lines, op.address.postal_code,
                           op.address.city]).replace(",", " ").split()
        assert set(address) <= inside, set(address) - inside
        assert {w.strip(",") for w in inside} <= {w.strip(",") for w in [*address, *sender]}
        assert not crossing, crossing
    assert len(seen) == len({t.sha256 for t in big.made.values()})


def test_the_mark_is_drawn_on_blank_margin_and_changes_nothing_else(big, tmp_path):
    """Raster of the batch page vs the archived invoice's own page: they differ only
    inside the mark's box, which was blank on the invoice, far from the window."""
    d = big.manifest["documents"][0]
    template = big.by_number[d["invoice"]]
    source = tmp_path / "source.pdf"
    source.write_bytes(template.pdf)
    dpi = 100
    run("pdftoppm", "-r", str(dpi), "-f", "1", "-l", "1", "-singlefile", "-png",
        str(source), str(tmp_path / "src"))
    run("pdftoppm", "-r", str(dpi), "-f", str(d["first_page"]), "-l", str(d["first_page"]),
        "-singlefile", "-png", str(big.pdf), str(tmp_path / "bat"))
    src = Image.open(tmp_path / "src.png").convert("L")
    bat = Image.open(tmp_path / "bat.png").convert("L")
    brand = brand_for(OPERATOR)
    side = 33 * printfile.MARK_MODULE
    x, y = printfile.mark_position((0, 0, brand.page_width, brand.page_height),
                                   brand.margin_left, side)
    scale = dpi / 72
    box = (int(x * scale), int((brand.page_height - y - side) * scale),
           int((x + side) * scale) + 1, int((brand.page_height - y) * scale) + 1)
    changed = ImageChops.difference(src, bat).getbbox()
    assert changed is not None
    assert box[0] <= changed[0] and box[1] <= changed[1]
    assert changed[2] <= box[2] and changed[3] <= box[3], (changed, box)
    assert src.crop(box).getextrema() == (255, 255)  # nothing of the invoice was there
    # Geometry: the mark is in the left margin, well clear of the window and the content.
    assert x >= 0 and x + side <= brand.margin_left <= WINDOW_LEFT
    assert y >= 19 * MM


def test_the_batch_is_closed_and_its_deliveries_are_being_sent(big):
    assert big.batch.state == "closed" and big.batch.closed_at is not None
    for invoice_id in random.Random(9).sample(sorted(big.made), 20):
        (delivery,) = big.ledger.deliveries.for_invoice(invoice_id)
        assert (delivery.channel, delivery.state, delivery.attempts) == ("print", "sending", 1)
        assert delivery.message_id == f"B{big.batch.id}"
        item = big.ledger.print_batches.item(invoice_id)
        assert item.batch_id == big.batch.id and item.first_page % 2 == 1


# ---------------------------------------------------------------------------- small batches


@pytest.fixture
def files(tmp_path) -> FileArchive:
    return FileArchive(tmp_path / "archive")


def test_closed_batch_never_changes_and_latecomers_go_to_a_new_batch(led, files, templates):
    queue(led, files, templates, 7, seed=2)
    (first,) = printing.close(led, files).closed
    before = files.get(first.keys.pdf)
    late = queue(led, files, templates, 3, seed=3)
    assert printing.join_queue(led) == 3
    assert {led.print_batches.item(i).batch_id for i in late} == {first.batch_id + 1}
    assert led.print_batches.get(first.batch_id).documents == 7
    (second,) = printing.close(led, files).closed
    assert second.batch_id == first.batch_id + 1 and second.documents == 3
    assert files.get(first.keys.pdf) == before
    assert [d.seq for d, _ in led.print_batches.documents(first.batch_id)] == list(range(1, 8))
    assert printing.close(led, files).closed == []  # nothing left


def test_joining_is_idempotent_and_one_batch_per_invoice(led, files, templates, race):
    (invoice_id,) = queue(led, files, templates[:1], 1, seed=4)
    items = race(8, lambda i: printing.enqueue(led, invoice_id))
    assert len({(i.invoice_id, i.batch_id) for i in items}) == 1
    assert led.print_batches.get(items[0].batch_id).documents == 1
    assert printing.enqueue(led, invoice_id) == items[0]
    other = led.invoices.claim(OPERATOR, "NOT-ARCHIVED", account="1", period_start=PERIOD,
                              period_end=PERIOD, issue_date=PERIOD, due_date=PERIOD,
                              total=Decimal(1), currency="BRL", locale="pt_BR",
                              delivery_mode="paper").invoice
    led.deliveries.ensure(other.id, "print")
    assert printing.enqueue(led, other.id) is None  # not archived: not printable yet


def test_concurrent_sweeps_put_every_invoice_in_exactly_one_batch(led, files, templates, race):
    made = queue(led, files, templates, 120, seed=5)
    limits = printing.BatchLimits(max_documents=25, max_sheets=10_000)
    joined = race(4, lambda i: printing.join_queue(led, limits=limits))
    assert sum(joined) == 120
    batches = led.reports.print_batches([OPERATOR])
    members = {}
    for b in batches:
        docs = led.print_batches.documents(b.id)
        assert b.documents == len(docs) <= 25
        assert b.sheets == sum(item.sheets for item, _ in docs)
        for item, _ in docs:
            assert item.invoice_id not in members
            members[item.invoice_id] = b.id
        if b.state == "closing":
            assert b.documents == 25
            assert [item.seq for item, _ in docs] == list(range(1, 26))
    assert set(members) == set(made)
    assert sum(b.state == "open" for b in batches) <= 1


def test_a_batch_seals_itself_at_its_size_in_sheets(led, files, templates):
    queue(led, files, templates, 12, seed=6)
    printing.join_queue(led, limits=printing.BatchLimits(max_documents=1000, max_sheets=5))
    batches = sorted(led.reports.print_batches([OPERATOR]), key=lambda b: b.id)
    assert sum(b.documents for b in batches) == 12
    assert len(batches) >= 3 and sum(b.state == "open" for b in batches) <= 1
    for b in batches:
        if b.state == "closing":  # full: 5 sheets, or the next document did not fit
            assert b.sheets <= 5 or b.documents == 1
    report = printing.close(led, files, seal_open=False)
    assert {c.batch_id for c in report.closed} == {b.id for b in batches if b.state == "closing"}
    assert all(led.print_batches.get(b.id).state == "open"
               for b in batches if b.state == "open")


def test_concurrent_close_has_one_winner(led, files, templates, race):
    queue(led, files, templates, 9, seed=7)
    printing.join_queue(led)
    (batch_id,) = printing.seal(led)
    results = race(4, lambda i: printing.close_batch(led, files, batch_id))
    winners = [r for r in results if r is not None]
    assert len(winners) == 1 and led.print_batches.get(batch_id).state == "closed"
    assert printing.close_batch(led, files, batch_id) is None  # closed: nothing to do


def test_concurrent_close_in_two_processes_has_one_winner(tmp_path, templates):
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    with Ledger.from_url(url) as ledger:
        ledger.migrate()
        queue(ledger, FileArchive(tmp_path / "archive"), templates, 9, seed=8)
        printing.join_queue(ledger)
        (batch_id,) = printing.seal(ledger)
    ctx = multiprocessing.get_context("fork")
    gate = ctx.Barrier(2)  # released together, so that they really collide
    procs = []
    for _ in range(2):
        parent, child = ctx.Pipe()
        proc = ctx.Process(target=_close_in_child,
                           args=(url, str(tmp_path), batch_id, gate, child))
        proc.start()
        procs.append((proc, parent))
    results = []
    for proc, parent in procs:
        assert parent.poll(60)
        results.append(parent.recv())
        proc.join(10)
    assert sorted(results) == [False, True]
    with Ledger.from_url(url) as ledger:
        assert ledger.print_batches.get(batch_id).state == "closed"


def _close_in_child(url, folder, batch_id, gate, pipe):
    with Ledger.from_url(url) as ledger:
        gate.wait(30)
        done = printing.close_batch(ledger, FileArchive(Path(folder) / "archive"), batch_id)
    pipe.send(done is not None)


def test_acknowledge_marks_printed_once_and_refuses_wrong_counts(led, files, templates, race):
    made = queue(led, files, templates, 5, seed=9)
    (closed,) = printing.close(led, files).closed
    with pytest.raises(PrintCountMismatch):
        printing.acknowledge(led, closed.batch_id, closed.documents, closed.sheets + 1)
    with pytest.raises(PrintCountMismatch):
        printing.acknowledge(led, closed.batch_id, closed.documents - 1, closed.sheets)
    assert led.print_batches.get(closed.batch_id).state == "closed"
    assert {led.deliveries.for_invoice(i)[0].state for i in made} == {"sending"}

    assert printing.acknowledge(led, closed.batch_id, closed.documents, closed.sheets)
    batch = led.print_batches.get(closed.batch_id)
    assert (batch.state, batch.printed_documents, batch.printed_sheets) == (
        "printed", closed.documents, closed.sheets)
    sent = {i: led.deliveries.for_invoice(i)[0] for i in made}
    assert {d.state for d in sent.values()} == {"sent"}
    assert all(d.sent_at is not None for d in sent.values())

    results = race(4, lambda i: printing.acknowledge(led, closed.batch_id, closed.documents,
                                                     closed.sheets))
    assert results == [False] * 4  # a second acknowledgement changes nothing
    assert {i: led.deliveries.for_invoice(i)[0] for i in made} == sent
    # Announced once, with the acknowledgement: the batch, and each paper delivery.
    (acked,) = led.webhooks.events(types=["print.acknowledged"])
    assert json.loads(acked.body)["data"]["batch"] == {
        "id": closed.batch_id, "documents": closed.documents, "sheets": closed.sheets}
    assert sorted(e.invoice_id for e in led.webhooks.events(types=["delivery.sent"])) == \
        sorted(made)
    assert led.print_batches.get(closed.batch_id) == batch
    with pytest.raises(LookupError):
        printing.acknowledge(led, 10**9, 1, 1)


def test_an_unclosed_batch_cannot_be_acknowledged(led, files, templates):
    queue(led, files, templates, 2, seed=10)
    printing.join_queue(led)
    (batch,) = led.reports.print_batches([OPERATOR])
    with pytest.raises(LedgerConflict):
        printing.acknowledge(led, batch.id, batch.documents, batch.sheets)


def test_an_altered_archived_pdf_stops_the_batch_and_is_reported(tmp_path, templates):
    ledger = Ledger.from_url(f"sqlite:///{tmp_path / 'ledger.db'}")
    ledger.migrate()
    files = FileArchive(tmp_path / "archive")
    made = queue(ledger, files, templates, 4, seed=11)
    victim = ledger.invoices.get_by_id(next(iter(made)))
    path = files.root / victim.archive_key
    path.chmod(0o644)
    path.write_bytes(path.read_bytes().replace(b"Fatura", b"Fatur4", 1))
    report = printing.close(ledger, files)
    assert report.closed == [] and len(report.failed) == 1
    batch = ledger.print_batches.get(report.failed[0][0])
    assert batch.state == "closing" and batch.closer is None  # the claim was released
    assert victim.number in batch.last_error and "SHA-256" in batch.last_error
    assert not files.exists(printing.batch_keys(OPERATOR, batch.id).json)
    assert {ledger.deliveries.for_invoice(i)[0].state for i in made} == {"pending"}
    ledger.close()


def test_a_stale_claim_is_taken_over(led, files, templates):
    queue(led, files, templates, 3, seed=12)
    printing.join_queue(led)
    (batch_id,) = printing.seal(led)
    assert led.print_batches.claim(batch_id, "crashed-closer")
    assert printing.close_batch(led, files, batch_id) is None  # still held
    closed = printing.close_batch(led, files, batch_id, lease=timedelta(0))
    assert closed is not None
    assert not led.print_batches.mark_closed(batch_id, "crashed-closer", pdf_key="x",
                                           pdf_sha256="x", pdf_size=1, csv_key="x",
                                           json_key="x")


def test_pull_writes_verified_files_and_refuses_altered_ones(led, files, templates, tmp_path):
    queue(led, files, templates, 6, seed=13)
    (closed,) = printing.close(led, files).closed
    pulled = printing.pull(led, files, closed.batch_id, tmp_path / "shop")
    assert hashlib.sha256(pulled.pdf.read_bytes()).hexdigest() == closed.pdf_sha256
    assert pulled.csv.read_bytes() == files.get(closed.keys.csv)
    assert json.loads(pulled.json.read_bytes())["pdf"]["sha256"] == closed.pdf_sha256
    stored = files.root / closed.keys.pdf
    stored.chmod(0o644)
    stored.write_bytes(stored.read_bytes()[:-10] + b"%%EOF\n\n\n\n\n")
    with pytest.raises(printing.PrintBatchError):
        printing.pull(led, files, closed.batch_id, tmp_path / "again")
    assert not (tmp_path / "again" / f"B{closed.batch_id}.pdf").exists()
    with pytest.raises(LookupError):
        printing.pull(led, files, 10**9, tmp_path)


def test_close_and_pull_on_s3(tmp_path, templates, bucket, moto_endpoint):
    ledger = Ledger.from_url(f"sqlite:///{tmp_path / 'ledger.db'}")
    ledger.migrate()
    s3 = S3Archive.from_url(s3_url(bucket, moto_endpoint))
    queue(ledger, s3, templates, 12, seed=14)
    (closed,) = printing.close(ledger, s3).closed
    assert s3.stat(closed.keys.pdf).sha256 == closed.pdf_sha256
    pulled = printing.pull(ledger, s3, closed.batch_id, tmp_path / "shop")
    assert hashlib.sha256(pulled.pdf.read_bytes()).hexdigest() == closed.pdf_sha256
    assert len(pikepdf.open(pulled.pdf).pages) == closed.pages
    ledger.close()


# ---------------------------------------------------------------------------- the CLI


def test_cli_list_close_pull_ack(tmp_path, templates, monkeypatch):
    from invoicer.cli import app
    from invoicer.settings import get_settings

    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    monkeypatch.setenv("INVOICER_DB_URL", url)
    monkeypatch.setenv("INVOICER_ARCHIVE_URL", f"file://{tmp_path / 'archive'}")
    monkeypatch.setenv("COLUMNS", "200")
    get_settings.cache_clear()
    try:
        with Ledger.from_url(url) as ledger:
            ledger.migrate()
            queue(ledger, FileArchive(tmp_path / "archive"), templates, 5, seed=15)
        runner = CliRunner()
        assert "no print batches" in runner.invoke(app, ["print", "list"]).output
        result = runner.invoke(app, ["print", "close", "--operator", OPERATOR])
        assert result.exit_code == 0, result.output
        assert "B1" in result.output and "5 paper invoice(s)" in result.output
        listed = runner.invoke(app, ["print", "list", "--state", "closed"])
        assert listed.exit_code == 0 and "B1" in listed.output and "closed" in listed.output
        pulled = runner.invoke(app, ["print", "pull", "B1", str(tmp_path / "shop")])
        assert pulled.exit_code == 0, pulled.output
        assert "verified" in pulled.output
        assert {p.name for p in (tmp_path / "shop").iterdir()} == {"B1.pdf", "B1.csv",
                                                                    "B1.json"}
        manifest = json.loads((tmp_path / "shop" / "B1.json").read_text())
        docs, sheets = manifest["totals"]["documents"], manifest["totals"]["sheets"]
        wrong = runner.invoke(app, ["print", "ack", "B1", "--documents", str(docs),
                                    "--sheets", str(sheets + 1)])
        assert wrong.exit_code == 1 and "refused" in wrong.output
        args = ["print", "ack", "B1", "--documents", str(docs), "--sheets", str(sheets)]
        first = runner.invoke(app, args)
        assert first.exit_code == 0 and "acknowledged" in first.output
        again = runner.invoke(app, args)
        assert again.exit_code == 0 and "already acknowledged" in again.output
        assert runner.invoke(app, ["print", "pull", "B99", str(tmp_path)]).exit_code == 2
        assert runner.invoke(app, ["print", "list", "--state", "bogus"]).exit_code != 0
        assert "printed" in runner.invoke(app, ["print", "list"]).output
    finally:
        get_settings.cache_clear()


def test_join_while_closing_waits_or_goes_to_the_next_batch(led, files, templates, race):
    """A joiner and a sealer never interleave: each invoice is either in the sealed
    batch (numbered) or in the next one."""
    made = queue(led, files, templates, 60, seed=16)
    ids = sorted(made)
    stop = threading.Event()

    def joiner(i: int) -> None:
        for invoice_id in ids[i::3]:
            printing.enqueue(led, invoice_id)
        stop.set()

    def sealer(_: int) -> None:
        while not stop.is_set():
            printing.seal(led)

    race(4, lambda i: sealer(i) if i == 3 else joiner(i))
    printing.seal(led)
    seen = set()
    for b in led.reports.print_batches([OPERATOR]):
        docs = led.print_batches.documents(b.id)
        assert b.state == "closing" and b.documents == len(docs) > 0
        assert [item.seq for item, _ in docs] == list(range(1, len(docs) + 1))
        seen |= {item.invoice_id for item, _ in docs}
    assert seen == set(ids)
