"""Pydantic models of ``billing-record/1`` and ``/1.1`` (``docs/billing-record.md``).

The models check shape and field syntax; cross-field rules (reconciliation, tax lines,
payment codes, date order, what an e-invoice format needs) live in :mod:`billing.checks`
and :mod:`billing.einvoice` so that each rule can name its own field path. Parsed
records are frozen: the renderer only lays out what it is given.

Version 1.1 adds optional fields only (e-invoicing). A version-1 record is read with
those fields dropped before validation (:func:`billing.record.parse_record`), because in
version 1 they were unknown extra fields, which the contract ignores: a 1.0 record keeps
meaning exactly what it meant.
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
    EasCode,
    Email,
    Identifier,
    Instant,
    IsoDate,
    LocaleId,
    Money,
    Month,
    MultilineText,
    OptionalText,
    PaymentText,
    Phone,
    Text,
    VatexCode,
    VatId,
)

#: The first version of the contract; :data:`SCHEMA_VERSIONS` lists every accepted one.
SCHEMA_VERSION = "billing-record/1"
SCHEMA_VERSION_1_1 = "billing-record/1.1"
SCHEMA_VERSIONS = (SCHEMA_VERSION, SCHEMA_VERSION_1_1)


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


class EInvoiceFormat(StrEnum):
    """The structured invoices a customer can ask for (``delivery.einvoice.format``)."""

    factur_x = "factur-x"
    xrechnung_cii = "xrechnung-cii"
    xrechnung_ubl = "xrechnung-ubl"
    peppol_bis3 = "peppol-bis3"
    ro_cius = "ro-cius"


class VatCategory(StrEnum):
    """UNTDID 5305 VAT category codes used by EN 16931 (BT-118, BT-151)."""

    S = "S"
    Z = "Z"
    E = "E"
    AE = "AE"
    K = "K"
    G = "G"
    O = "O"  # noqa: E741 - the code's own letter
    L = "L"
    M = "M"


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


class Endpoint(_Model):
    """An electronic address (BT-34, BT-49) with its EAS scheme (``0088``, ``EM``...)."""

    scheme: EasCode
    id: Text


class Operator(_Model):
    id: Identifier
    name: Text
    tax_id: OptionalText | None = None
    address: Address
    support: Support | None = None
    vat_id: VatId | None = None  # 1.1: BT-31
    endpoint: Endpoint | None = None  # 1.1: BT-34


class Customer(_Model):
    name: Text
    tax_id: OptionalText | None = None
    address: Address
    vat_id: VatId | None = None  # 1.1: BT-48


class Account(_Model):
    number: Identifier
    segment: Segment
    customer: Customer


class EInvoice(_Model):
    """``delivery.einvoice`` (1.1): the structured invoice this customer needs."""

    format: EInvoiceFormat
    buyer_reference: Text | None = None  # BT-10 (the Leitweg-ID for XRechnung)
    endpoint: Endpoint | None = None  # BT-49


class Delivery(_Model):
    mode: DeliveryMode
    email: Email | None = None
    phone: Phone | None = None
    sms_notice: StrictBool = False
    attach_pdf: StrictBool = True
    einvoice: EInvoice | None = None


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
    category: VatCategory | None = None  # 1.1: BT-118
    exemption_reason: Text | None = None  # 1.1: BT-120
    exemption_code: VatexCode | None = None  # 1.1: BT-121


class Totals(_Model):
    charges: Money
    taxes: Money
    adjustments: Money = Field(default=Decimal(0))
    total_due: Money


class DirectDebit(_Model):
    """``payment.debit`` (1.1): the SEPA direct-debit mandate (BT-89, BT-90, BT-91)."""

    mandate: Text
    creditor_id: Text
    iban: Text


class Payment(_Model):
    method: PaymentMethod
    scheme: PaymentScheme | None = None
    # Payment codes and their fields are kept verbatim: they are encoded into the QR
    # payload and compared to it byte for byte, so nothing may be cleaned away.
    code: PaymentText | None = None
    fields: dict[PaymentText, PaymentText] | None = None
    debit: DirectDebit | None = None  # 1.1


class HistoryEntry(_Model):
    period: Month
    amount: Money


class BillingRecord(_Model):
    """A validated ``billing-record/1`` or ``/1.1``: everything one invoice needs."""

    schema_version: Literal["billing-record/1", "billing-record/1.1"] = Field(alias="schema")
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
