"""Invoices for the subscriber tests and the API bench: three accounts, two operators.

``oi`` account ``1234567890`` (phone ``+5521987654321``) has 14 monthly invoices (the
history shows 13); ``oi`` account ``2222222222`` (``+5521911112222``) has two; ``vivo``
account ``3333333333`` (``+5511933334444``) has one. Every one is rendered, archived
(PDF and canonical record) and recorded through ``pipeline.process_record``, as a bill
run would.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from datetime import date

from invoicer.delivery.archive import Archive
from invoicer.ledger import Ledger
from invoicer.pipeline import Services, process_record
from tests.conftest import SPEC_EXAMPLE

MAIN = ("oi", "1234567890", "+5521987654321")
NEIGHBOUR = ("oi", "2222222222", "+5521911112222")
OTHER_OPERATOR = ("vivo", "3333333333", "+5511933334444")
STRANGER = "+5521900000000"  # no invoice was ever sent to it


@dataclass(frozen=True)
class Issued:
    operator: str
    account: str
    phone: str
    number: str
    issue_date: date


def _month(year: int, month: int, shift: int) -> tuple[int, int]:
    index = year * 12 + month - 1 + shift
    return index // 12, index % 12 + 1


def record(operator: str, account: str, phone: str, number: str, year: int, month: int
           ) -> dict:
    """The spec's example, re-dated to ``year-month`` and re-addressed."""
    rec = copy.deepcopy(SPEC_EXAMPLE)
    py, pm = _month(year, month, -1)
    rec["invoice"].update(number=number, issue_date=f"{year}-{month:02d}-05",
                          due_date=f"{year}-{month:02d}-20",
                          period={"start": f"{py}-{pm:02d}-01", "end": f"{py}-{pm:02d}-28"})
    rec["operator"]["id"] = operator
    if operator != "oi":
        rec["operator"]["name"] = "Vivo S.A."
    rec["account"]["number"] = account
    rec["delivery"]["phone"] = phone
    for service in rec["services"]:
        service["id"] = phone
        for usage in service["usage"]:
            usage["start"] = f"{py}-{pm:02d}" + usage["start"][7:]
    rec["balance"]["payments"][0]["date"] = f"{py}-{pm:02d}-18"
    rec["balance"]["adjustments"][0]["date"] = f"{py}-{pm:02d}-20"
    return rec


def populate(ledger: Ledger, archive: Archive, *, main_months: int = 14) -> list[Issued]:
    """Render, archive and record the world's invoices; returns them, oldest first."""
    plan: list[tuple[tuple[str, str, str], str, int, int]] = []
    for i in range(main_months):
        y, m = _month(2026, 11, i - main_months + 1)
        plan.append((MAIN, f"OI-{y}-{m:02d}-0000123", y, m))
    plan.append((NEIGHBOUR, "OI-2026-10-0000777", 2026, 10))
    plan.append((NEIGHBOUR, "OI-2026-11-0000777", 2026, 11))
    plan.append((OTHER_OPERATOR, "VV-2026-11-0000042", 2026, 11))
    run = ledger.runs.start("subscriber-world")
    services = Services(ledger=ledger, archive=archive)
    issued = []
    for line, ((operator, account, phone), number, y, m) in enumerate(plan, 1):
        raw = json.dumps(record(operator, account, phone, number, y, m)).encode()
        outcome = process_record(raw, line=line, run_id=run, services=services)
        assert outcome.status == "archived", outcome
        issued.append(Issued(operator, account, phone, number, date(y, m, 5)))
    ledger.runs.finish(run)
    return issued
