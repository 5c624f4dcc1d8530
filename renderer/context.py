"""What every part of one invoice's layout needs: the record, its labels, formats, brand.

Built once per render; the parts only read it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

from invoicer.billing.fields import currency_minor_units
from invoicer.billing.models import BillingRecord
from invoicer.l10n import Formats, formats
from invoicer.renderer.brand import Brand
from invoicer.renderer.i18n import InvoiceLocale

BODY = 8.5      # table text
SMALL = 7       # captions, footers
TITLE = 16      # the document title


@dataclass(frozen=True)
class Context:
    """One invoice's record, labels (with the brand's own wording), formats and brand."""

    record: BillingRecord
    loc: InvoiceLocale
    fmt: Formats
    brand: Brand
    overrides: dict[str, str] = field(repr=False)
    #: minor-unit digits of the invoice's currency
    digits: int = 0

    @classmethod
    def of(cls, record: BillingRecord, loc: InvoiceLocale, brand: Brand) -> Context:
        return cls(record, loc, formats(record.invoice.locale), brand,
                   brand.labels_for(loc.requested),
                   currency_minor_units(record.invoice.currency) or 0)

    @property
    def rtl(self) -> bool:
        return self.loc.rtl

    @property
    def invoice(self) -> str:
        """The invoice number: every layout error names it."""
        return self.record.invoice.number

    @property
    def currency(self) -> str:
        return self.record.invoice.currency

    def label(self, key: str, **values: str) -> str:
        """A label in the invoice's language; the brand's own wording wins."""
        override = self.overrides.get(key)
        if override is not None:
            return override.format_map(values) if values else override
        return self.loc.label(key, **values)

    def money(self, amount: Decimal) -> str:
        """With the currency: ``R$ 104,75``."""
        return self.fmt.money(amount, self.currency)

    def amount(self, amount: Decimal) -> str:
        """Without the currency, for table columns: ``104,75``."""
        return self.fmt.number(amount, self.digits)

    def date(self, value: date) -> str:
        return self.fmt.date(value)

    def count(self, value: int) -> str:
        return self.fmt.integer(value)
