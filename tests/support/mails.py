"""Invoice e-mails for the tests: the sample records, a message builder, and readers
that look at the bytes the way a mail client does."""

from __future__ import annotations

import email
import email.header
import email.utils
from email import policy
from email.headerregistry import Address
from email.message import EmailMessage
from html.parser import HTMLParser

from invoicer.billing import parse_record
from invoicer.billing.models import BillingRecord
from invoicer.delivery.email import build_invoice_message, message_id
from tests.conftest import SAMPLES

PDF = b"%PDF-1.7\n" + bytes(range(256)) * 64 + b"\n%%EOF\n"  # every byte value
SENDER = Address("Faturas", "faturas", "mail.oi.example")
HOSTILE = 'Evil\r\nBcc: x@y "Quoted" <b>Ünïcødé</b>\u2028X-Evil: 1 زهرا قاسمی\u200cنژاد'
HOSTILE_FLAT = 'Evil Bcc: x@y "Quoted" <b>Ünïcødé</b> X-Evil: 1 زهرا قاسمی\u200cنژاد'


def _samples() -> dict[str, BillingRecord]:
    records = {}
    raw = (SAMPLES / "invoices.jsonl").read_bytes()
    for n, line in enumerate(raw.split(b"\n"), 1):
        if line.strip():
            record = parse_record(line, line=n)
            records[record.invoice.number] = record
    return records


SAMPLE = _samples()
BR = SAMPLE["OI-2026-11-0000123"]  # pt_BR, FEBRABAN, attach_pdf
HOSTILE_RECORD = SAMPLE["AM-2026-11-0066666"]  # markup and template syntax everywhere
LOCALE_SAMPLES = {
    "en": "LW-2026-11-000042", "pt_BR": "OI-2026-11-0000123", "ro_RO": "CT-2026-11-0000457",
    "ru_RU": "VT-2026-11-0003345", "nl_NL": "PT-2026-11-0012012",
    "fa_IR": "AB-2026-11-0000721",
}


def with_names(record: BillingRecord, *, customer: str | None = None,
               operator: str | None = None, **delivery) -> BillingRecord:
    """A copy of ``record`` with other names or delivery options, *without* the billing
    contract's cleaning: the e-mail code must hold on its own."""
    account = record.account
    if customer is not None:
        account = account.model_copy(update={
            "customer": account.customer.model_copy(update={"name": customer})})
    op = record.operator if operator is None else record.operator.model_copy(
        update={"name": operator})
    return record.model_copy(update={
        "account": account, "operator": op,
        "delivery": record.delivery.model_copy(update=delivery)})


def build(record: BillingRecord = BR, **overrides) -> EmailMessage:
    """The "invoice issued" message of ``record`` (BR by default), PDF attached."""
    args = {"pdf": PDF, "link": None, "sender": SENDER, "reply_to": None,
            "message_id": message_id(record.operator.id, record.invoice.number, 0,
                                     "mail.oi.example")}
    args.update(overrides)
    return build_invoice_message(record, **args)


def parse(data: bytes) -> EmailMessage:
    """Bytes read back as a mail client would (``policy.default``)."""
    return email.message_from_bytes(data, policy=policy.default)


def display_names(data: bytes, header: str) -> list[tuple[str, str]]:
    """(display name, address) pairs of a header, decoded as RFC 2047 §6.2 says.

    Python 3.11's structured-header parser keeps the space between two adjacent
    encoded words (CPython gh-128110, fixed upstream in 2025), so a long non-ASCII
    name that the folder split mid-word would read "زه را". The legacy decoder below
    joins them as mail clients do; the structure itself is checked with policy.default.
    """
    raw = email.message_from_bytes(data, policy=policy.compat32).get_all(header, [])
    return [(str(email.header.make_header(email.header.decode_header(name))), addr)
            for name, addr in email.utils.getaddresses(raw)]


class Tags(HTMLParser):
    """The tags, link targets and text of an HTML body."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.hrefs: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.hrefs += [v for k, v in attrs if k == "href"]

    def handle_data(self, data):
        self.text.append(data)


def html_facts(html: str) -> Tags:
    """Parse ``html`` into :class:`Tags`."""
    parser = Tags()
    parser.feed(html)
    return parser
