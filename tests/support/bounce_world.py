"""A small world for bounce tests: a ledger, an archive, a memory mailer that keeps the
envelope, a real HTTP SMS gateway, and the intake that records what comes back."""

from __future__ import annotations

import copy
import json

from invoicer.delivery.archive import FileArchive
from invoicer.delivery.bounces import Verp
from invoicer.delivery.email import MemoryMailer
from invoicer.delivery.sms import HttpSmsGateway
from invoicer.pipeline import Services, process_record
from invoicer.workflows.bounces import Intake
from invoicer.workflows.dispatch import Channels
from invoicer.workflows.fallback import Policy
from tests.conftest import SPEC_EXAMPLE

SECRET = b"b" * 32
VERP = Verp(SECRET, "bounce.oi.example")


class World:
    """A ledger, an archive, a memory mailer, a real HTTP SMS gateway, and the intake."""

    def __init__(self, ledger, tmp_path, gateway, policy=None):
        self.ledger, self.gateway = ledger, gateway
        self.mailer = MemoryMailer()
        self.policy = policy or Policy()
        self.channels = Channels(
            mailer=self.mailer, sms=HttpSmsGateway(f"{gateway.url}/v1/sms", "tok",
                                                   timeout=2.0),
            public_url="https://bills.example", link_secret=SECRET,
            sender="faturas@oi.example", verp=VERP, fallback=self.policy)
        self.archive = FileArchive(tmp_path / "archive")
        self.services = Services(ledger=ledger, archive=self.archive, channels=self.channels)
        self.intake = Intake(ledger, self.archive, VERP, self.policy, self.channels)
        self.run = ledger.runs.start("test.jsonl")
        self.lines = 0

    def issue(self, number: str, *, email: str | None = "ana@example.com",
              phone: str | None = "+5521987654321", operator: str = "oi", **delivery):
        data = copy.deepcopy(SPEC_EXAMPLE)
        data["invoice"]["number"] = number
        data["operator"]["id"] = operator
        data["delivery"].update({"sms_notice": False, "email": email, "phone": phone,
                                 **delivery})
        data["delivery"] = {k: v for k, v in data["delivery"].items() if v is not None}
        self.lines += 1
        outcome = process_record(json.dumps(data).encode(), line=self.lines, run_id=self.run,
                                 services=self.services)
        assert outcome.status == "archived", outcome
        return self.ledger.invoices.get(operator, number)

    def rows(self, invoice):
        return {d.channel: d for d in self.ledger.reports.invoice_deliveries(invoice.id)}

    def sms_sent(self):
        return [r.json() for r in self.gateway.received]
