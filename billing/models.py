"""Pydantic models of ``billing-record/1`` (``shared/spec/billing-record.md``).

The models check shape and field syntax; cross-field rules (reconciliation, payment
codes, date order) live in :mod:`billing.checks` so that each rule can name its own
field path. Parsed records are frozen: the renderer only lays out what it is given.
"""

from __future__ import annotations

from decimal import Decimal
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool
from pydantic.dataclasses import dataclass as pydantic_dataclass

from invoicer.billing.fields import (
    Count,
    Country,
    Currency,
    DecimalText,
    Email,
    Identifier,
    Instant,
    IsoDate,
    LocaleId,
    Money,
    Month,
    MultilineText,
    OptionalText,
    Phone,
    Text,
)

SCHEMA_VERSION = "billing-record/1"


class _Model(BaseModel):
    # Unknown fields are ignored (the spec lets billing systems add some); records are
    # immutable once parsed.
    model_config = ConfigDict(frozen=True, extra="ignore")


class InvoiceKind(StrEnum):
    original = "original"
    duplicate = "duplicate"


class Segment(StrEnum):
    consumer = "consumer"
    business = "business"


class DeliveryMode(StrEnum):
    electronic = "electronic"
    paper = "paper"
    both = "both"


class ChargeCategory(StrEnum):
    subscription = "subscription"
    local = "local"
    long_distance = "long_distance"
    intrazonal = "intrazonal"
    international = "international"
    roaming = "roaming"
    sms = "sms"
    data = "data"
    tv = "tv"
    internet = "internet"
    equipment = "equipment"
    discount = "discount"
    other = "other"


class UsageType(StrEnum):
    local = "local"
    long_distance = "long_distance"
    intrazonal = "intrazonal"
    international = "international"
    roaming = "roaming"
    sms = "sms"
    mms = "mms"
    data = "data"


class PaymentMethod(StrEnum):
    barcode = "barcode"
    direct_debit = "direct_debit"
    none = "none"


class PaymentScheme(StrEnum):
    febraban = "febraban"
    gost_qr = "gost_qr"
    epc_qr = "epc_qr"
    code128 = "code128"


class Period(_Model):
    start: IsoDate
    end: IsoDate


class InvoiceHeader(_Model):
    number: Identifier
    kind: InvoiceKind
    issue_date: IsoDate
    due_date: IsoDate
    period: Period
    currency: Currency
    locale: LocaleId


class Address(_Model):
    lines: list[Text] = Field(min_length=1)
    postal_code: OptionalText
    city: Text
    country: Country


class Support(_Model):
    phone: OptionalText | None = None
    web: OptionalText | None = None


class Operator(_Model):
    id: Identifier
    name: Text
    tax_id: OptionalText | None = None
    address: Address
    support: Support | None = None


class Customer(_Model):
    name: Text
    tax_id: OptionalText | None = None
    address: Address


class Account(_Model):
    number: Identifier
    segment: Segment
    customer: Customer


class Delivery(_Model):
    mode: DeliveryMode
    email: Email | None = None
    phone: Phone | None = None
    sms_notice: StrictBool = False
    attach_pdf: StrictBool = True


class BalancePayment(_Model):
    date: IsoDate
    amount: Money
    method: Text


class Adjustment(_Model):
    date: IsoDate
    description: MultilineText
    amount: Money


class Balance(_Model):
    previous: Money
    payments: list[BalancePayment] = Field(default_factory=list)
    adjustments: list[Adjustment] = Field(default_factory=list)


class Charge(_Model):
    code: Text
    description: Text
    category: ChargeCategory
    quantity: DecimalText = Field(default=Decimal(1))
    unit: Text | None = None
    amount: Money
    tax: Text | None = None


# A slotted dataclass rather than a model: a record may carry 100,000 of these, and a
# model's per-instance __dict__ and fields-set would take 1.4 KB a row instead of 0.2 KB.
@pydantic_dataclass(frozen=True, slots=True, kw_only=True, config=ConfigDict(extra="ignore"))
class Usage:
    """One call detail record (call, SMS/MMS or data session), rated."""

    start: Instant
    type: UsageType
    called: Phone | None = None
    destination: Text
    duration_s: Count | None = None
    volume_kb: Count | None = None
    amount: Money


class Service(_Model):
    """One line/number/contract of the account, with its charges and usage."""

    id: Text
    label: Text
    charges: list[Charge]
    usage: list[Usage] = Field(default_factory=list)


class Tax(_Model):
    code: Text
    rate: DecimalText
    base: Money
    amount: Money


class Totals(_Model):
    charges: Money
    taxes: Money
    adjustments: Money = Field(default=Decimal(0))
    total_due: Money


class Payment(_Model):
    method: PaymentMethod
    scheme: PaymentScheme | None = None
    code: str | None = None
    # Payment-code fields are kept verbatim: they are encoded into the QR payload and
    # compared to it byte for byte, so nothing may be cleaned away.
    fields: dict[str, str] | None = None


class HistoryEntry(_Model):
    period: Month
    amount: Money


class BillingRecord(_Model):
    """A validated ``billing-record/1``: everything one invoice needs."""

    schema_version: Literal["billing-record/1"] = Field(alias="schema")
    invoice: InvoiceHeader
    operator: Operator
    account: Account
    delivery: Delivery
    balance: Balance
    services: list[Service]
    taxes: list[Tax] = Field(default_factory=list)
    totals: Totals
    payment: Payment
    history: list[HistoryEntry] = Field(default_factory=list, max_length=13)


#: The parsed, checked record as the rest of the pipeline sees it.
Invoice = BillingRecord
