"""A chunk's records walked in batches, phase by phase (``pipeline.process_records``).

The records of a batch take each step one after the other (all claims, all renders and
archives, all marks, all deliveries) instead of each record taking all its steps in
turn. What must not change: every record's own steps in order, one record's failure
staying its own, and what a record sees of an earlier one of the same account or
invoice number (a batch never holds two of those: the later one starts a new batch).
"""

from __future__ import annotations

import copy

import sqlalchemy as sa

from invoicer.billing import parse_record
from invoicer.billing.synthetic import generate
from invoicer.delivery.archive import FileArchive
from invoicer.delivery.errors import TransientDeliveryError
from invoicer.ledger import Ledger, LedgerConflict
from invoicer.metrics import INVOICES_ARCHIVED
from invoicer.pipeline import BATCH_RECORDS, Services, line_phones, process_records
from tests.conftest import SPEC_EXAMPLE
from tests.ledger.test_together import _commits
from tests.test_bill_shock_pipeline import _current, _expected, _previous, _raw


def _ledger(tmp_path) -> Ledger:
    ledger = Ledger.from_url(f"sqlite:///{tmp_path}/l.db")
    ledger.migrate()
    return ledger


class Recording(FileArchive):
    """A file archive that notes each PDF it stores, and can refuse one (storage down)."""

    def __init__(self, root, log: list, refuse: str | None = None) -> None:
        super().__init__(root)
        self.log, self.refuse = log, refuse

    def put(self, key, data, **kwargs):
        if key.endswith(".pdf"):
            number = key.rsplit("/", 1)[-1].removesuffix(".pdf")
            if number == self.refuse:
                raise TransientDeliveryError("S3 503 Slow Down")
            self.log.append(("put", number))
        return super().put(key, data, **kwargs)


def _record_steps(ledger: Ledger, log: list) -> None:
    """Note each claim and each mark in ``log``, by invoice number."""
    invoices = ledger.invoices
    claim, mark = invoices.claim, invoices.mark_archived

    def claiming(operator, number, **kwargs):
        log.append(("claim", number))
        return claim(operator, number, **kwargs)

    def marking(invoice_id, **kwargs):
        log.append(("mark", invoices.get_by_id(invoice_id).number))
        return mark(invoice_id, **kwargs)

    invoices.claim, invoices.mark_archived = claiming, marking


def test_a_batch_takes_each_step_for_all_its_records_and_each_record_in_order(tmp_path):
    records = list(generate(BATCH_RECORDS + 4, 20, 7))
    numbers = [r["invoice"]["number"] for r in records]
    assert len({(r["operator"]["id"], r["account"]["number"]) for r in records}) == len(records)
    log: list = []
    with _ledger(tmp_path) as ledger:
        _record_steps(ledger, log)
        services = Services(ledger=ledger, archive=Recording(tmp_path / "a", log))
        run = ledger.runs.start("f.jsonl")
        outcomes = process_records([(n, _raw(r)) for n, r in enumerate(records, 1)],
                                   run_id=run, services=services)
    assert [(o.line, o.status, o.invoice_number) for o in outcomes] == [
        (n, "archived", number) for n, number in enumerate(numbers, 1)]
    first, second = numbers[:BATCH_RECORDS], numbers[BATCH_RECORDS:]
    expected = []
    for batch in (first, second):
        expected += [(step, n) for step in ("claim", "put", "mark") for n in batch]
    assert log == expected


def test_a_batch_sees_the_earlier_invoice_of_the_same_account(tmp_path):
    # September and October of one account in one file, as one chunk: October's claim
    # must find September archived, exactly as when each line went alone.
    with _ledger(tmp_path) as ledger:
        archive = FileArchive(tmp_path / "archive")
        services = Services(ledger=ledger, archive=archive)
        run = ledger.runs.start("two-months.jsonl")
        outcomes = process_records([(1, _raw(_previous())), (2, _raw(_current()))],
                                   run_id=run, services=services)
        assert [o.status for o in outcomes] == ["archived", "archived"]
        october = ledger.invoices.get("oi", SPEC_EXAMPLE["invoice"]["number"])
        assert october.previous_number == "OI-2026-10-0000123"
        assert archive.get(october.archive_key) == _expected(_current(), _previous())


def test_a_batch_names_the_field_of_a_conflict_within_it(tmp_path):
    # Another account under the same number: only the number keeps it out of the batch.
    changed = copy.deepcopy(SPEC_EXAMPLE)
    changed["account"]["number"] = "1234567891"
    with _ledger(tmp_path) as ledger:
        services = Services(ledger=ledger, archive=FileArchive(tmp_path / "archive"))
        run = ledger.runs.start("a.jsonl")
        outcomes = process_records(
            [(1, _raw(SPEC_EXAMPLE)), (2, _raw(changed)), (3, _raw(SPEC_EXAMPLE))],
            run_id=run, services=services)
        assert [o.status for o in outcomes] == ["archived", "rejected", "repeated"]
        assert outcomes[1].reason == "conflict"
        # The first line was archived before the second was claimed: its record is there
        # to compare with, so the rejection names the field.
        assert ledger.runs.rejects(run)[0].path == "account.number"


def test_one_record_failing_in_a_batch_leaves_the_others_to_finish(tmp_path):
    records = list(generate(5, 20, 8))
    down = records[2]["invoice"]["number"]
    with _ledger(tmp_path) as ledger:
        archive = Recording(tmp_path / "a", [], refuse=down)
        services = Services(ledger=ledger, archive=archive)
        run = ledger.runs.start("f.jsonl")
        lines = [(n, _raw(r)) for n, r in enumerate(records, 1)]
        outcomes = process_records(lines, run_id=run, services=services)
        assert [(o.status, o.reason) for o in outcomes] == [
            ("archived", None), ("archived", None), ("failed", "transient"),
            ("archived", None), ("archived", None)]
        # The failed one stays claimed; the same lines again finish it, and only it.
        archive.refuse = None
        again = process_records(lines, run_id=run, services=services)
        assert [o.status for o in again] == ["archived"] * 5
        assert ledger.invoices.get(records[2]["operator"]["id"], down).status == "archived"
        assert archive.log.count(("put", down)) == 1


def test_a_batch_s_claims_and_marks_commit_once_each(tmp_path):
    records = list(generate(BATCH_RECORDS, 20, 7))
    with _ledger(tmp_path) as ledger:
        services = Services(ledger=ledger, archive=FileArchive(tmp_path / "a"))
        run = ledger.runs.start("f.jsonl")
        commits = _commits(ledger)
        outcomes = process_records([(n, _raw(r)) for n, r in enumerate(records, 1)],
                                   run_id=run, services=services)
        assert [o.status for o in outcomes] == ["archived"] * BATCH_RECORDS
        # No delivery channels: the claims' commit, the marks', and a business
        # invoice's lines (each recorded as its archive's last step, on its own).
        business = sum(bool(line_phones(parse_record(_raw(r)))) for r in records)
        assert 0 < business < BATCH_RECORDS
        assert commits[0] == 2 + business
        for r in records:
            assert ledger.invoices.get(r["operator"]["id"], r["invoice"]["number"]
                                       ).status == "archived"


def _failing(method, number_of, bad: str, error: Exception):
    """``method`` raising ``error`` whenever it is called for invoice ``bad``."""
    def call(*args, **kwargs):
        if number_of(*args, **kwargs) == bad:
            raise error
        return method(*args, **kwargs)
    return call


def test_a_mark_failing_in_a_batch_undoes_no_other_and_counts_each_once(tmp_path):
    records = list(generate(6, 20, 9))
    bad = records[3]["invoice"]["number"]
    with _ledger(tmp_path) as ledger:
        invoices = ledger.invoices
        invoices.mark_archived = _failing(
            invoices.mark_archived, lambda i, **_: invoices.get_by_id(i).number, bad,
            LedgerConflict("archived with another checksum"))
        services = Services(ledger=ledger, archive=FileArchive(tmp_path / "a"))
        run = ledger.runs.start("f.jsonl")
        before = INVOICES_ARCHIVED._value.get()
        outcomes = process_records([(n, _raw(r)) for n, r in enumerate(records, 1)],
                                   run_id=run, services=services)
        assert [(o.status, o.reason) for o in outcomes] == [
            ("archived", None)] * 3 + [("failed", "LedgerConflict")] + [("archived", None)] * 2
        assert INVOICES_ARCHIVED._value.get() - before == 5  # the batch's undone try: 0
        assert invoices.get(records[3]["operator"]["id"], bad).status == "claimed"


def test_a_claim_failing_in_a_batch_leaves_the_others_claimed_once(tmp_path):
    records = list(generate(6, 20, 10))
    bad = records[1]["invoice"]["number"]
    with _ledger(tmp_path) as ledger:
        invoices = ledger.invoices
        invoices.claim = _failing(invoices.claim, lambda _op, number, **_: number, bad,
                                  RuntimeError("the database went away"))
        services = Services(ledger=ledger, archive=FileArchive(tmp_path / "a"))
        run = ledger.runs.start("f.jsonl")
        outcomes = process_records([(n, _raw(r)) for n, r in enumerate(records, 1)],
                                   run_id=run, services=services)
        assert [(o.status, o.reason) for o in outcomes] == [
            ("archived", None), ("failed", "internal")] + [("archived", None)] * 4
        assert invoices.get(records[1]["operator"]["id"], bad) is None
        with ledger.engine.connect() as conn:
            assert conn.execute(sa.text("SELECT count(*) FROM invoices")).scalar() == 5


def test_a_batch_s_archive_syncs_a_shared_folder_once(tmp_path, monkeypatch):
    import invoicer.delivery.archive.file as file_archive

    synced: list = []
    real = file_archive.fsync_dir
    monkeypatch.setattr(file_archive, "fsync_dir", lambda p: (synced.append(p), real(p)))
    records = list(generate(BATCH_RECORDS, 20, 7))
    with _ledger(tmp_path) as ledger:
        services = Services(ledger=ledger, archive=FileArchive(tmp_path / "a"))
        run = ledger.runs.start("f.jsonl")
        outcomes = process_records([(n, _raw(r)) for n, r in enumerate(records, 1)],
                                   run_id=run, services=services)
    assert [o.status for o in outcomes] == ["archived"] * BATCH_RECORDS
    operators = {r["operator"]["id"] for r in records}
    shared = [p for p in synced if p.parent == tmp_path / "a"]  # the operators' folders
    assert sorted(p.name for p in shared) == sorted(operators)
    assert len(operators) < BATCH_RECORDS  # so some invoices shared a folder
    assert len(synced) == len(set(synced))  # every folder once, when the batch ends


def test_a_batch_whose_folders_cannot_be_synced_stores_none(tmp_path, monkeypatch):
    import invoicer.delivery.archive.file as file_archive

    records = list(generate(4, 20, 7))
    lines = [(n, _raw(r)) for n, r in enumerate(records, 1)]

    def full(_path):
        raise OSError(28, "No space left on device")

    with _ledger(tmp_path) as ledger:
        services = Services(ledger=ledger, archive=FileArchive(tmp_path / "a"))
        run = ledger.runs.start("f.jsonl")
        monkeypatch.setattr(file_archive, "fsync_dir", full)
        outcomes = process_records(lines, run_id=run, services=services)
        assert [o.status for o in outcomes] == ["failed"] * 4
        assert all("No space left" in o.message for o in outcomes)
        assert {ledger.invoices.get(r["operator"]["id"], r["invoice"]["number"]).status
                for r in records} == {"claimed"}  # none marked archived
        monkeypatch.undo()
        again = process_records(lines, run_id=run, services=services)
        assert [o.status for o in again] == ["archived"] * 4
