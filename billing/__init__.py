"""The billing-record contract (``billing-record/1`` and ``/1.1``): models, checks, reader."""

from invoicer.billing.errors import Issue, RecordError
from invoicer.billing.models import SCHEMA_VERSION, SCHEMA_VERSIONS, BillingRecord, Invoice
from invoicer.billing.record import parse_record

__all__ = ["SCHEMA_VERSION", "SCHEMA_VERSIONS", "BillingRecord", "Invoice", "Issue", "RecordError",
           "parse_record"]
