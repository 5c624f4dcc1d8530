"""The file SMS outbox: JSON lines, once per reference across instances, processes and
torn writes."""

from __future__ import annotations

import json
import multiprocessing
from datetime import UTC, datetime
from pathlib import Path

import pytest

from invoicer.delivery.errors import PermanentDeliveryError
from invoicer.delivery.sms import (
    FileSmsOutbox,
    SmsResult,
)

SAMPLES = Path(__file__).resolve().parents[3] / "samples" / "invoices.jsonl"
LINK = "https://t.example/i/Ab3dE9"
TOKEN = "s3cret-token"
PHONE = "+5521987654321"


def test_file_outbox_lines(tmp_path):
    clock = lambda: datetime(2026, 11, 5, 9, 30, tzinfo=UTC)  # noqa: E731
    outbox = FileSmsOutbox(tmp_path / "sms", clock=clock)
    outbox.send(PHONE, "Olá 😀", reference="oi:OI-1:sms:1")
    (line,) = (tmp_path / "sms" / "outbox.jsonl").read_bytes().split(b"\n")[:-1]
    assert json.loads(line) == {
        "message_id": outbox.messages()[0].message_id, "reference": "oi:OI-1:sms:1",
        "to": PHONE, "text": "Olá 😀", "encoding": "ucs2", "segments": 1,
        "at": "2026-11-05T09:30:00Z"}


def test_file_outbox_idempotent_across_instances_and_restarts(tmp_path):
    first = FileSmsOutbox(tmp_path / "sms")
    sent = first.send(PHONE, "hello", reference="r-1")
    # Another process (or the same after a restart) sees the line and sends nothing.
    second = FileSmsOutbox(tmp_path / "sms")
    again = second.send(PHONE, "hello", reference="r-1")
    assert again == SmsResult(sent.message_id, 1, already_sent=True)
    second.send(PHONE, "next", reference="r-2")
    # The first instance catches up with what the second appended.
    assert first.send(PHONE, "next", reference="r-2").already_sent
    assert [m.reference for m in first.messages()] == ["r-1", "r-2"]


def test_file_outbox_index_holds_no_references_and_reads_hits_back(tmp_path):
    # The index grows by a hash and an offset per message, not by the reference and its
    # result: a bill run's outbox is not kept whole in every process.
    outbox = FileSmsOutbox(tmp_path / "sms")
    first = outbox.send(PHONE, "hello", reference="r-1")
    outbox.send(PHONE, "torn", reference="r-2")
    assert all(isinstance(k, int) and isinstance(v, int) for k, v in outbox._index.items())
    # A reference whose hash collides with one sent is compared whole: it is sent.
    outbox._index[hash("r-3")] = outbox._index[hash("r-1")]
    assert not outbox.send(PHONE, "other", reference="r-3").already_sent
    assert outbox.send(PHONE, "hello", reference="r-1") == SmsResult(
        first.message_id, 1, already_sent=True)
    assert outbox.send(PHONE, "other", reference="r-3").already_sent
    # After a torn last line, a new line starts on a fresh line and is found again.
    with open(tmp_path / "sms" / "outbox.jsonl", "ab") as f:
        f.write(b'{"reference": "half')
    sent = outbox.send(PHONE, "after", reference="r-4")
    assert FileSmsOutbox(tmp_path / "sms").send(PHONE, "after", reference="r-4") == \
        SmsResult(sent.message_id, 1, already_sent=True)
    assert outbox.send(PHONE, "after", reference="r-4").already_sent


def _send_all(args: tuple[str, list[str]]) -> int:
    root, references = args
    outbox = FileSmsOutbox(root)
    return sum(not outbox.send(PHONE, f"text {r}", reference=r).already_sent
               for r in references)


def test_file_outbox_idempotent_across_processes(tmp_path):
    references = [f"r-{i}" for i in range(30)]
    jobs = [(str(tmp_path / "sms"), references[i:] + references[:i]) for i in range(6)]
    with multiprocessing.get_context("fork").Pool(6) as pool:
        written = sum(pool.map(_send_all, jobs))
    lines = (tmp_path / "sms" / "outbox.jsonl").read_bytes().split(b"\n")[:-1]
    assert written == 30
    assert sorted(json.loads(line)["reference"] for line in lines) == sorted(references)


def test_file_outbox_survives_a_torn_last_line(tmp_path):
    outbox = FileSmsOutbox(tmp_path / "sms")
    outbox.send(PHONE, "one", reference="r-1")
    with open(outbox.path, "ab") as f:
        f.write(b'{"message_id":"sms-x","reference":"r-2","to"')  # a crash mid-write
    fresh = FileSmsOutbox(tmp_path / "sms")
    assert not fresh.send(PHONE, "two", reference="r-2").already_sent
    assert [m.reference for m in fresh.messages()] == ["r-1", "r-2"]


def test_file_outbox_where_it_cannot_write_is_permanent(tmp_path):
    (tmp_path / "sms").write_text("a file, not a folder")
    with pytest.raises(PermanentDeliveryError):
        FileSmsOutbox(tmp_path / "sms").send(PHONE, "hi", reference="r-1")
