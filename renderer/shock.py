"""The bill-shock explainer: when this period's charges jump, page 1 says so and why.

The change comes from the record itself: this period's charges and taxes against the
last entry of ``history`` (the previous invoice's amount). The categories that moved
most come from the account's **previous invoice**, which the record does not hold: the
pipeline finds it (ledger/archive) and hands its figures to :func:`renderer.render` as
:class:`PreviousInvoice` in ``RenderOptions.previous``; the renderer stays pure. Without
them the sentence names only the change.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from types import MappingProxyType

from invoicer.billing.models import BillingRecord, ChargeCategory

#: Default share of the previous amount beyond which the explainer appears (20 %).
DEFAULT_SHARE = Decimal("0.20")
MOVERS = 3  # categories named at most


@dataclass(frozen=True)
class PreviousInvoice:
    """Figures of the account's previous invoice, as the pipeline hands them over.

    The pipeline finds the account's previous invoice (ledger/archive) and passes these
    to ``render(record, RenderOptions(previous=...))``; the renderer itself never looks.

    - ``period_start`` / ``period_end``: that invoice's billing period. Figures of a
      period that does not end before this invoice's period begins are not compared.
    - ``currency``: that invoice's currency; figures in another currency than the
      record's are not compared.
    - ``charges``: the sum of that invoice's ``services[].charges[].amount`` per charge
      category (``ChargeCategory`` values such as ``"roaming"``, all services together;
      a category without charges may be left out).

    :meth:`from_record` builds it from the previous invoice's parsed record.
    """

    period_start: date
    period_end: date
    currency: str
    charges: Mapping[str, Decimal] = field(default_factory=dict)

    def __post_init__(self) -> None:
        unknown = set(self.charges) - {c.value for c in ChargeCategory}
        if unknown:
            raise ValueError(f"unknown charge categories {sorted(unknown)}")
        object.__setattr__(self, "charges", MappingProxyType(dict(self.charges)))

    @classmethod
    def from_record(cls, record: BillingRecord) -> PreviousInvoice:
        """The figures of a previous invoice's record."""
        return cls(record.invoice.period.start, record.invoice.period.end,
                   record.invoice.currency, by_category(record))


@dataclass(frozen=True)
class Shock:
    """What the sentence says: the change, its share, the month of the history entry
    compared with and the categories that moved most (category, change), largest
    first."""

    change: Decimal
    share: Decimal
    compared_with: date
    movers: tuple[tuple[str, Decimal], ...]


def by_category(record: BillingRecord) -> dict[str, Decimal]:
    """Sum of the record's charges per category, over all services."""
    out: dict[str, Decimal] = {}
    for service in record.services:
        for charge in service.charges:
            key = charge.category.value
            out[key] = out.get(key, Decimal(0)) + charge.amount
    return out


def explain(record: BillingRecord, previous: PreviousInvoice | None,
            share: Decimal = DEFAULT_SHARE) -> Shock | None:
    """The explainer for ``record``, or None when the charges moved by ``share`` or less
    of the previous amount (or there is no previous amount to compare with)."""
    if not record.history:
        return None
    before = record.history[-1]
    now = record.totals.charges + record.totals.taxes
    if before.amount <= 0:
        return None  # no base to measure a share against
    change = now - before.amount
    ratio = change / before.amount
    if abs(ratio) <= share:
        return None
    year, month = map(int, before.period.split("-"))
    compared = date(year, month, 15)
    movers: tuple[tuple[str, Decimal], ...] = ()
    if (previous is not None and previous.currency == record.invoice.currency
            and previous.period_end < record.invoice.period.start):
        current = by_category(record)
        order = [c.value for c in ChargeCategory]
        deltas = [(c, current.get(c, Decimal(0)) - previous.charges.get(c, Decimal(0)))
                  for c in order]
        moved = sorted((d for d in deltas if d[1]), key=lambda d: (-abs(d[1]),
                                                                   order.index(d[0])))
        movers = tuple(moved[:MOVERS])
    return Shock(change, ratio, compared, movers)
