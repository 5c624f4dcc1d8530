"""What the self-service tests share: sample records run into the subscriber world, the
e-mails the world's mailer wrote, and the confirmation link in one of them."""

from __future__ import annotations

import email
import json
import re
from email import policy
from pathlib import Path

from invoicer.billing import parse_record
from invoicer.pipeline import Services, process_record
from tests.conftest import SAMPLES

#: Sample records added to the world: (number, phone).
EXTRA = {
    "VT-2026-11-0003345": "+79131234567",   # volga, ru_RU, GOST QR
    "PT-2026-11-0012012": "+31612345678",   # polder, nl_NL, EPC QR, a logo
    "AB-2026-11-0000721": "+989121234567",  # alborz, fa_IR, a Code 128 reference
    "AM-2026-11-0031337": "+447700900123",  # albion, en, direct debit
}


def add_samples(sub, numbers=tuple(EXTRA)) -> dict[str, object]:
    """Run sample records through the pipeline into the subscriber world."""
    raw = {json.loads(line)["invoice"]["number"]: line
           for line in (SAMPLES / "invoices.jsonl").read_bytes().split(b"\n") if line.strip()}
    run = sub.ledger.runs.start("self-service-samples")
    services = Services(ledger=sub.ledger, archive=sub.archive)
    for n, number in enumerate(numbers, 1):
        assert process_record(raw[number], line=n, run_id=run,
                              services=services).status == "archived"
    sub.ledger.runs.finish(run)
    return {n: parse_record(raw[n]) for n in numbers}


def mails(sub) -> list[email.message.EmailMessage]:
    files = sorted(Path(sub.tmp, "outbox").glob("*.eml"), key=lambda p: p.stat().st_mtime_ns)
    return [email.message_from_bytes(p.read_bytes(), policy=policy.default) for p in files]


def link_of(message) -> str:
    found = re.search(r"/access/confirm/([A-Za-z0-9_.-]+)\?lang=", message.get_content())
    return found.group(1)
