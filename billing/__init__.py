"""The billing-record contract (``billing-record/1``): models, checks and reader."""

from invoicer.billing.errors import Issue, RecordError
from invoicer.billing.models import SCHEMA_VERSION, BillingRecord, Invoice
from invoicer.billing.record import parse_record

__all__ = ["SCHEMA_VERSION", "BillingRecord", "Invoice", "Issue", "RecordError",
           "parse_record"]
