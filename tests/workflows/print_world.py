"""Paper invoices for print-batch tests: a few real renders archived under many numbers.

A handful of real invoices of 1 to 5+ pages are rendered once (the ``templates``
fixture, in ``tests/conftest.py``) and :func:`queue` archives them under as many
invoice numbers as a test needs, with their ledger rows and pending print deliveries,
without rendering each. The ledger's postal codes are random, so the batch order
exercises the sort; the printed address is the template's.
"""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from invoicer.billing import BillingRecord, parse_record
from invoicer.billing.synthetic import generate
from invoicer.delivery.archive import invoice_key
from invoicer.ledger import Ledger
from invoicer.renderer import render

OPERATOR = "oi"
PERIOD = date(2026, 10, 1)


@dataclass(frozen=True)
class Template:
    """A real rendered invoice, archived under many numbers."""

    record: BillingRecord
    pdf: bytes
    pages: int

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.pdf).hexdigest()


def make_templates() -> list[Template]:
    """Invoices of one operator: two of 1 page, two of 2, one of 3, one of 5 or more."""
    want = {1: 2, 2: 2, 3: 1, 5: 1}
    found: dict[int, list[Template]] = {k: [] for k in want}
    for cdrs in (1, 40, 150):  # (1 CDR: the seed gives 1-page invoices early on)
        for raw in generate(120, cdrs, 23):
            if raw["operator"]["id"] != OPERATOR:
                continue
            record = parse_record(json.dumps(raw).encode(), line=1)
            pdf = render(record)
            pages = pdf.count(b"/Type /Page\n")
            kind = min(pages, 5) if pages != 4 else 0
            if kind in found and len(found[kind]) < want[kind]:
                found[kind].append(Template(record, pdf, pages))
            if all(len(found[k]) == n for k, n in want.items()):
                return [t for k in sorted(found) for t in found[k]]
    raise AssertionError(f"templates not found: { {k: len(v) for k, v in found.items()} }")


def queue(ledger: Ledger, archive, templates: list[Template], count: int, *,
          seed: int = 1, prefix: str = "OI-T", operator: str = OPERATOR,
          ) -> dict[int, Template]:
    """Archive ``count`` paper invoices (templates in turn) and put them in the print
    queue; return invoice id -> template."""
    rnd = random.Random(seed)
    made = {}
    for i in range(count):
        template = templates[i % len(templates)]
        number = f"{prefix}-{seed}-{i:06d}"
        account = f"A{rnd.randrange(10**9):09d}"
        postal = f"{rnd.randrange(100000):05d}-{rnd.randrange(1000):03d}"
        claim = ledger.invoices.claim(
            operator, number, account=account, period_start=PERIOD,
            period_end=date(2026, 10, 31), issue_date=date(2026, 11, 5),
            due_date=date(2026, 11, 20), total=Decimal("10.00"), currency="BRL",
            locale="pt_BR", delivery_mode="paper", postal_code=postal, country="BR")
        key = invoice_key(operator, account, PERIOD, number, "pdf")
        archive.put(key, template.pdf, sha256=template.sha256)
        ledger.invoices.mark_archived(claim.invoice.id, sha256=template.sha256,
                                      archive_key=key, renderer_version="1.0.0",
                                      pages=template.pages, size=len(template.pdf))
        ledger.deliveries.ensure(claim.invoice.id, "print")
        made[claim.invoice.id] = template
    return made
