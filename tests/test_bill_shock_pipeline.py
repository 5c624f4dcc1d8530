"""The bill-shock sentence in the pipeline (issue 12): the previous invoice's figures
come from the ledger and archive, chosen once when the number is claimed, so the
archived PDF, a retry after a crash and a second copy all say the same sentence.

Expected bytes are rendered directly with ``renderer.render`` and the figures built from
the previous *record* (``PreviousInvoice.from_record``), not from the archive the code
under test reads: the two paths must agree byte for byte.
"""

from __future__ import annotations

import copy
import json
import sqlite3

import pytest

from invoicer.billing import parse_record
from invoicer.billing.models import InvoiceKind
from invoicer.delivery.archive import FileArchive
from invoicer.delivery.errors import TransientDeliveryError
from invoicer.ledger import Ledger
from invoicer.pipeline import Services, process_record
from invoicer.renderer import PreviousInvoice, RenderOptions, render
from invoicer.workflows.second_copy import issue_second_copy
from tests.conftest import SPEC_EXAMPLE
from tests.support import pdfs


def _current() -> dict:
    rec = copy.deepcopy(SPEC_EXAMPLE)  # October: charges + taxes 103.75
    rec["history"][-1]["amount"] = "50.00"  # September's invoice: far less
    return rec


def _previous() -> dict:
    """September's invoice of the same account: other charges per category."""
    rec = copy.deepcopy(SPEC_EXAMPLE)
    rec["invoice"].update(number="OI-2026-10-0000123", issue_date="2026-10-05",
                          due_date="2026-10-20",
                          period={"start": "2026-09-01", "end": "2026-09-30"})
    subscription, calls = rec["services"][0]["charges"][:2]
    subscription["amount"], calls["amount"] = "69.90", "13.10"  # same 83.00 in all
    for usage in rec["services"][0]["usage"]:
        usage["start"] = "2026-09" + usage["start"][7:]
    rec["balance"]["payments"][0]["date"] = "2026-09-18"
    rec["balance"]["adjustments"][0]["date"] = "2026-09-20"
    rec["history"] = rec["history"][:-1]
    return rec


def _raw(rec: dict) -> bytes:
    return json.dumps(rec).encode()


def _expected(rec: dict, previous: dict | None, **update) -> bytes:
    record = parse_record(_raw(rec))
    if update:
        record = record.model_copy(update={"invoice": record.invoice.model_copy(update=update)})
    figures = PreviousInvoice.from_record(parse_record(_raw(previous))) if previous else None
    return render(record, RenderOptions(previous=figures))


class FlakyArchive(FileArchive):
    """Refuses the first PDF put (storage down), then works."""

    def __init__(self, root) -> None:
        super().__init__(root)
        self.fail_next_pdf = True

    def put(self, key, data, **kwargs):
        if key.endswith(".pdf") and self.fail_next_pdf:
            self.fail_next_pdf = False
            raise TransientDeliveryError("S3 503 Slow Down")
        return super().put(key, data, **kwargs)


@pytest.mark.parametrize("figures", ["ledger", "archive"])
def test_the_archived_pdf_and_its_second_copy_name_what_moved(tmp_path, figures):
    with Ledger.from_url(f"sqlite:///{tmp_path}/l.db") as ledger:
        ledger.migrate()
        archive = FileArchive(tmp_path / "archive")
        services = Services(ledger=ledger, archive=archive)
        run = ledger.runs.start("runs")
        assert process_record(_raw(_previous()), line=1, run_id=run,
                              services=services).status == "archived"
        if figures == "archive":  # issued before the ledger kept the figures
            with sqlite3.connect(tmp_path / "l.db") as db:
                db.execute("update invoices set charges_by_category = null")
        assert process_record(_raw(_current()), line=2, run_id=run,
                              services=services).status == "archived"
        invoice = ledger.invoices.get("oi", SPEC_EXAMPLE["invoice"]["number"])
        assert invoice.previous_number == "OI-2026-10-0000123"
        pdf = archive.get(invoice.archive_key)
        with_movers = _expected(_current(), _previous())
        assert pdf == with_movers
        assert pdf != _expected(_current(), None)
        (tmp_path / "oct.pdf").write_bytes(pdf)
        text = " ".join(pdfs.run("pdftotext", "-f", "1", "-l", "1", str(tmp_path / "oct.pdf"),
                            "-").split())
        assert "Assinatura -R$ 10,00, Ligações internacionais +R$ 10,00" in text

        copy_ = issue_second_copy(ledger, archive, invoice)
        duplicate = archive.get(copy_.archive_key)
        assert duplicate == _expected(_current(), _previous(), kind=InvoiceKind.duplicate)
        assert issue_second_copy(ledger, archive, invoice).sha256 == copy_.sha256


def test_a_retry_compares_with_what_the_claim_fixed(tmp_path):
    with Ledger.from_url(f"sqlite:///{tmp_path}/l.db") as ledger:
        ledger.migrate()
        archive = FlakyArchive(tmp_path / "archive")
        services = Services(ledger=ledger, archive=archive)
        run = ledger.runs.start("october")
        failed = process_record(_raw(_current()), line=1, run_id=run, services=services)
        assert (failed.status, failed.reason) == ("failed", "transient")
        # September's invoice arrives late, between the attempt and its retry ...
        assert process_record(_raw(_previous()), line=1, run_id=ledger.runs.start("sept"),
                              services=services).status == "archived"
        # ... and the retry still renders what the first attempt rendered.
        assert process_record(_raw(_current()), line=1, run_id=run,
                              services=services).status == "archived"
        invoice = ledger.invoices.get("oi", SPEC_EXAMPLE["invoice"]["number"])
        assert invoice.previous_number is None
        assert archive.get(invoice.archive_key) == _expected(_current(), None)


def test_the_share_is_a_setting_the_bill_run_renders_with(tmp_path, monkeypatch):
    from decimal import Decimal

    from invoicer.backends import services as build_services
    from invoicer.settings import Settings

    monkeypatch.setenv("INVOICER_SHOCK_SHARE", "1.5")  # +108 % is not beyond 150 %
    settings = Settings(db_url=f"sqlite:///{tmp_path}/l.db",
                        archive_url=f"file://{tmp_path}/archive")
    services = build_services(settings, deliver=False)
    try:
        services.ledger.migrate()
        assert services.options.shock_share == Decimal("1.5")
        run = services.ledger.runs.start("x")
        for line, rec in enumerate((_previous(), _current()), 1):
            assert process_record(_raw(rec), line=line, run_id=run,
                                  services=services).status == "archived"
        invoice = services.ledger.invoices.get("oi", SPEC_EXAMPLE["invoice"]["number"])
        quiet = render(parse_record(_raw(_current())),
                       RenderOptions(shock_share=Decimal("1.5")))
        assert services.archive.get(invoice.archive_key) == quiet
        assert quiet != _expected(_current(), None)  # the default share would speak
        assert invoice.shock_share == "1.5"
        # The setting changes later: the second copy keeps the share it was issued with.
        copy_ = issue_second_copy(services.ledger, services.archive, invoice,
                                  options=RenderOptions())
        record = parse_record(_raw(_current()))
        duplicate = record.model_copy(update={"invoice": record.invoice.model_copy(
            update={"kind": InvoiceKind.duplicate})})
        assert services.archive.get(copy_.archive_key) == render(
            duplicate, RenderOptions(shock_share=Decimal("1.5"), previous=PreviousInvoice
                                     .from_record(parse_record(_raw(_previous())))))
    finally:
        services.close()
