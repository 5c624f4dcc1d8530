"""Invoice shapes for the layout test and ``bench/layout.py``: a Hypothesis strategy of
valid, reconciling records covering the ranges a layout must survive.

0–13 history periods, 0–60 calls, 0–10 payments and 0–10 adjustments, 1–5 services,
very long names, addresses, labels and descriptions (Latin, Cyrillic, Persian, markup),
every locale and payment method (barcode in the locale's scheme, direct debit, none),
original and duplicate, consumer and business, full and summary, with and without the
previous invoice's figures.

Records start from :mod:`billing.synthetic` (so names, codes and taxes are realistic and
valid) and are changed so that ``totals.total_due`` stays what the payment code carries:
payments, adjustments and added (untaxed) services are balanced by the previous
balance. Every record goes through :func:`billing.parse_record`, the one entry point.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from functools import cache
from typing import Any

from hypothesis import strategies as st

from invoicer.billing import BillingRecord, parse_record, synthetic
from invoicer.billing.fields import currency_minor_units
from invoicer.renderer import RenderOptions
from invoicer.renderer.shock import PreviousInvoice

LOCALES = ("en", "pt_BR", "ro_RO", "ru_RU", "nl_NL", "fa_IR")
METHODS = ("barcode", "direct_debit", "none")
CATEGORIES = ("subscription", "local", "roaming", "sms", "data", "international", "tv",
              "equipment", "discount", "other")

WORDS = {
    "latin": ("Rua", "Avenida", "Apartamento", "Bloco", "Edifício", "Conceição", "Ștefan",
              "Großstraße", "Hoofdweg", "Wireless", "unlimited", "roaming", "Ĳsselmeer",
              "O'Brien", "Smith-Johnson", "<b>bold</b>", "{{7*7}}", "&amp;", "12B", "Nº 45"),
    "cyrillic": ("улица", "Ленинградский", "проспект", "дом", "корпус", "квартира",
                 "Александровна", "Константинопольский", "тариф", "безлимитный"),
    "persian": ("خیابان", "کوچه", "پلاک", "طبقه", "واحد", "شهرک", "اصفهان", "مشهد",
                "می‌خواهم", "ارتباطات", "سیار", "۱۲", "بلوار", "فاطمی"),
}
METHOD_TEXTS = ("card", "pix", "bank_transfer", "direct_debit", "barcode", "cash",
                "Agência 1234 <b>", "карта Мир", "کارت بانکی")
DESTINATIONS = ("Rio de Janeiro", "São Paulo", "Москва", "Санкт-Петербург", "تهران",
                "Internet", "Amsterdam", "Cluj-Napoca", "International — United Kingdom",
                "Roaming: Deutschland / Германия / آلمان")


@cache
def _pool() -> dict[str, list[dict[str, Any]]]:
    """Synthetic barcode records per locale (each scheme's code is valid for its total)."""
    out: dict[str, list[dict[str, Any]]] = {loc: [] for loc in LOCALES}
    for record in synthetic.generate(800, 4, 20260101):
        loc = record["invoice"]["locale"]
        if record["payment"]["method"] == "barcode" and len(record["services"]) <= 5:
            out[loc].append(record)
    return out


def _words(rng: random.Random, scripts: list[str], count: int) -> str:
    return " ".join(rng.choice(WORDS[rng.choice(scripts)]) for _ in range(count))


@dataclass(frozen=True)
class Shape:
    """One generated invoice: the record as JSON, how to render it, and a short label."""

    data: dict[str, Any]
    options: RenderOptions
    label: str

    def __repr__(self) -> str:
        return f"Shape({self.label})"

    def record(self) -> BillingRecord:
        return parse_record(json.dumps(self.data, ensure_ascii=False))


@st.composite
def shapes(draw) -> Shape:
    """A valid record within the ranges the layout must survive."""
    locale = draw(st.sampled_from(LOCALES))
    services_n = draw(st.integers(1, 5))
    candidates = [r for r in _pool()[locale] if len(r["services"]) <= services_n]
    base = draw(st.sampled_from(candidates))
    data = json.loads(json.dumps(base))  # a fresh copy
    digits = currency_minor_units(data["invoice"]["currency"]) or 0
    quantum = Decimal(1).scaleb(-digits)

    def money(low: int, high: int) -> Decimal:
        return Decimal(draw(st.integers(low, high))) * quantum

    def fmt(d: Decimal) -> str:
        return format(d.quantize(quantum), "f")

    scripts = draw(st.lists(st.sampled_from(sorted(WORDS)), min_size=1, max_size=3,
                            unique=True))
    long = draw(st.booleans())
    # The bulk (words, call details) from one drawn seed: cheap to generate, and the
    # counts and choices that matter to the layout are drawn (and shrunk) by Hypothesis.
    rng = random.Random(draw(st.integers(0, 2**32 - 1)))

    def text(low: int, high: int) -> str:
        return _words(rng, scripts, rng.randint(low, high))

    start = date.fromisoformat(data["invoice"]["period"]["start"])
    total_due = Decimal(data["totals"]["total_due"])

    # -- who and where -----------------------------------------------------------------
    cust = data["account"]["customer"]
    if long:
        cust["name"] = text(3, 14)
        cust["address"]["lines"] = [text(1, 16)
                                    for _ in range(draw(st.integers(1, 4)))]
        cust["address"]["city"] = text(1, 4)
    if draw(st.booleans()):
        cust["address"]["country"] = draw(st.sampled_from(["DE", "IR", "BR", "RU", "US"]))
    if long and draw(st.booleans()):
        # Identifiers at their longest (64 characters) and a long tax identifier.
        number = data["invoice"]["number"]
        data["invoice"]["number"] = (number + "-" + "7" * 64)[:64]
        cust["tax_id"] = "-".join(["1234567890"] * rng.randint(1, 12))
    data["account"]["segment"] = draw(st.sampled_from(["consumer", "business"]))
    data["invoice"]["kind"] = draw(st.sampled_from(["original", "duplicate"]))

    # -- services, charges and calls -----------------------------------------------------
    services = data["services"]
    added = Decimal(0)
    while len(services) < services_n:
        k = len(services)
        charges = []
        for _ in range(draw(st.integers(1, 6))):
            amount = money(-2000, 20000)
            added += amount
            charges.append({"code": f"X{k}", "category": draw(st.sampled_from(CATEGORIES)),
                            "description": (text(1, 40)
                                            if long else "Extra"),
                            "amount": fmt(amount)})
        services.append({"id": f"+4420794600{k:04d}",
                         "label": (text(2, 30) if long
                                   else f"Line {k}"),
                         "charges": charges})
    if long:
        services[0]["label"] = text(5, 40)
        services[0]["charges"][0]["description"] = text(5, 60)
    calls = draw(st.integers(0, 60))
    usage = []
    for i in range(calls):
        kind = rng.choice(["local", "long_distance", "international", "roaming", "sms",
                           "data"])
        cdr: dict[str, Any] = {
            "start": f"{start + timedelta(days=i % 28)}T{8 + i % 12:02d}:{i % 60:02d}:07+00:00",
            "type": kind,
            "destination": (text(1, 12) if long and rng.random() < 0.5
                            else rng.choice(DESTINATIONS)),
            "amount": fmt(Decimal(rng.randint(0, 99999)) * quantum)}
        if kind == "data":
            cdr["volume_kb"] = rng.randint(1, 3 * 1024 * 1024)
        else:
            cdr["called"] = f"+{rng.randint(10**9, 10**14)}"
            if kind != "sms":
                cdr["duration_s"] = rng.randint(1, 14400)
        usage.append(cdr)
    services[draw(st.integers(0, len(services) - 1))]["usage"] = usage

    # -- balance: payments and adjustments, balanced by the previous balance ----------------
    payments = [{"date": str(start + timedelta(days=draw(st.integers(0, 27)))),
                 "amount": fmt(money(1, 500000)),
                 "method": draw(st.sampled_from(METHOD_TEXTS))}
                for _ in range(draw(st.integers(0, 10)))]
    adjustments = [{"date": str(start + timedelta(days=draw(st.integers(0, 27)))),
                    "description": (text(1, 50)
                                    + ("\n" + text(3, 3) if rng.random() < 0.5
                                       else "")) if long else "Goodwill credit",
                    "amount": fmt(money(-50000, 50000))}
                   for _ in range(draw(st.integers(0, 10)))]
    data["balance"]["payments"] = payments
    data["balance"]["adjustments"] = adjustments
    adj_total = sum((Decimal(a["amount"]) for a in adjustments), Decimal(0))
    pay_total = sum((Decimal(p["amount"]) for p in payments), Decimal(0))
    charges = Decimal(data["totals"]["charges"]) + added
    taxes = Decimal(data["totals"]["taxes"])

    method = draw(st.sampled_from(METHODS))
    if method == "none":
        total_due = -money(0, 100000)
        data["payment"] = {"method": "none"}
    elif method == "direct_debit":
        data["payment"] = {"method": "direct_debit"}
    previous = total_due + pay_total - adj_total - charges - taxes
    data["balance"]["previous"] = fmt(previous)
    data["totals"].update(charges=fmt(charges), adjustments=fmt(adj_total),
                          total_due=fmt(total_due))

    # -- history and the previous invoice's figures -----------------------------------------
    months = draw(st.integers(0, 13))
    first = (start.replace(day=1) - timedelta(days=31 * months)).replace(day=1)
    history = []
    for k in range(months):
        m = first.year * 12 + first.month - 1 + k
        history.append({"period": f"{m // 12}-{m % 12 + 1:02d}",
                        "amount": fmt(money(0, 2_000_000))})
    data["history"] = history
    prior = None
    if draw(st.booleans()):
        prior = PreviousInvoice(start - timedelta(days=30), start - timedelta(days=1),
                                data["invoice"]["currency"],
                                {c: money(-5000, 90000) for c in draw(st.lists(
                                    st.sampled_from(CATEGORIES), max_size=6, unique=True))})
    detail = draw(st.sampled_from(["full", "summary"]))
    options = RenderOptions(detail=detail, previous=prior)
    label = (f"{data['invoice']['number']} {locale} {method} services={services_n} "
             f"calls={calls} payments={len(payments)} adjustments={len(adjustments)} "
             f"history={months} {data['invoice']['kind']} {detail} long={long}")
    return Shape(data, options, label)
