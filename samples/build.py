"""Build the sample billing records of ``samples/``.

Writes, next to this script:

- ``invoices.jsonl``: hand-designed valid records, one function each below, that
  together cover every locale, segment, delivery mode, payment method and scheme, and the
  awkward cases (duplicate, zero and heavy usage, unknown operator and locale, optional
  fields absent, hostile text);
- ``invalid.jsonl``: records that each carry exactly one defect (or lines that are not
  records at all), and ``invalid.expected.json``: for each line, the field path a
  validator must name.

Totals are computed here with Decimal, and payment codes built with ``billing.paycodes``,
so every valid sample reconciles to the minor unit. Run ``python samples/build.py``; the
output is the same bytes every time.
"""

from __future__ import annotations

import copy
import json
import random
import sys
from collections.abc import Callable
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # runnable from a checkout without installing

from babel.numbers import get_currency_precision  # noqa: E402

from invoicer.billing.paycodes import epc, febraban, gost  # noqa: E402

Record = dict[str, Any]
Payment = dict[str, Any] | Callable[[Decimal, Record], dict[str, Any]]

# --- building blocks ------------------------------------------------------------------


def quantum(currency: str) -> Decimal:
    """The currency's minor unit as a Decimal exponent: ``0.01`` for BRL, ``1`` for IRR."""
    return Decimal(1).scaleb(-get_currency_precision(currency))


def money(value: Decimal, currency: str) -> str:
    """``value`` as a contract money string with the currency's minor-unit digits."""
    value = value.quantize(quantum(currency), rounding=ROUND_HALF_UP)
    return str(abs(value) if value == 0 else value)  # never "-0.00"


def record(*, number: str, issue: str, due: str, period: tuple[str, str], currency: str,
           locale: str, operator: dict, account: dict, delivery: dict, balance: dict,
           services: list[dict], history: list[dict] | None = None,
           kind: str = "original", schema: str = "billing-record/1") -> Record:
    """A record skeleton in the contract's key order; :func:`finish` adds the figures."""
    rec: Record = {
        "schema": schema,
        "invoice": {"number": number, "kind": kind, "issue_date": issue, "due_date": due,
                    "period": {"start": period[0], "end": period[1]}, "currency": currency,
                    "locale": locale},
        "operator": operator,
        "account": account,
        "delivery": delivery,
        "balance": balance,
        "services": services,
        "taxes": [],
        "totals": {},
        "payment": {},
    }
    if history is not None:
        rec["history"] = history
    return rec


def finish(rec: Record, *, rates: dict[str, str] | None, payment: Payment,
           adjustments_total: bool = True, vat: dict[str, dict] | None = None) -> Record:
    """Compute taxes and totals exactly as the contract reconciles them; set the payment.

    ``rates`` maps a tax code to its rate; the base of each is the sum of the charges
    carrying that code, the tax rounded half-up to the minor unit. ``None`` leaves the
    optional ``taxes`` out. ``payment`` is the payment object, or a function of
    ``total_due`` building it (payable codes carry the amount). ``vat`` adds version 1.1
    fields to a tax line by code (``category``, ``exemption_reason``...).
    """
    cur = rec["invoice"]["currency"]
    charges = [c for s in rec["services"] for c in s["charges"]]
    charges_sum = sum((Decimal(c["amount"]) for c in charges), Decimal(0))
    taxes = []
    for code, rate in (rates or {}).items():
        base = sum((Decimal(c["amount"]) for c in charges if c.get("tax") == code), Decimal(0))
        amount = (base * Decimal(rate)).quantize(quantum(cur), rounding=ROUND_HALF_UP)
        taxes.append({"code": code, "rate": rate, "base": money(base, cur),
                      "amount": money(amount, cur), **(vat or {}).get(code, {})})
    if rates is None:
        del rec["taxes"]
    else:
        rec["taxes"] = taxes
    taxes_sum = sum((Decimal(t["amount"]) for t in taxes), Decimal(0))
    bal = rec["balance"]
    adjustments = sum((Decimal(a["amount"]) for a in bal.get("adjustments", [])), Decimal(0))
    payments = sum((Decimal(p["amount"]) for p in bal.get("payments", [])), Decimal(0))
    total_due = Decimal(bal["previous"]) - payments + adjustments + charges_sum + taxes_sum
    totals = {"charges": money(charges_sum, cur), "taxes": money(taxes_sum, cur)}
    if adjustments_total:
        totals["adjustments"] = money(adjustments, cur)
    totals["total_due"] = money(total_due, cur)
    rec["totals"] = totals
    rec["payment"] = payment(total_due, rec) if callable(payment) else payment
    return rec


def cents(amount: Decimal) -> int:
    """An amount of a two-decimal currency in its minor unit."""
    return int(amount.scaleb(2))


def febraban_payment(company_id: str = "0108") -> Callable[[Decimal, Record], dict]:
    """Telecom (segment 4) collection barcode for total_due, value type 6 (modulo 10).

    The free field is the account number and the due date, as in the contract's example.
    """
    def build(total_due: Decimal, rec: Record) -> dict:
        free = f"{rec['account']['number']:0>16}{rec['invoice']['due_date'].replace('-', '')}0"
        return {"method": "barcode", "scheme": "febraban",
                "code": febraban.build(4, 6, cents(total_due), company_id, free)}
    return build


def gost_payment(requisites: dict[str, str]) -> Callable[[Decimal, Record], dict]:
    """GOST R 56042 QR for total_due: ``requisites`` plus ``Sum`` in kopecks."""
    def build(total_due: Decimal, rec: Record) -> dict:
        fields = {**requisites, "Sum": str(cents(total_due))}
        return {"method": "barcode", "scheme": "gost_qr", "code": gost.build(fields),
                "fields": fields}
    return build


def epc_payment(fields: dict[str, str]) -> Callable[[Decimal, Record], dict]:
    """SEPA credit-transfer QR (EPC069-12) for total_due."""
    def build(total_due: Decimal, rec: Record) -> dict:
        return {"method": "barcode", "scheme": "epc_qr", "code": epc.build(fields, total_due),
                "fields": dict(fields)}
    return build


def charge(code: str, description: str, category: str, amount: str, *, tax: str | None,
           quantity: str | None = "1", unit: str | None = None) -> dict:
    """One line of a service's charges, optional keys left out when not given."""
    c: dict[str, Any] = {"code": code, "description": description, "category": category}
    if quantity is not None:
        c["quantity"] = quantity
    if unit is not None:
        c["unit"] = unit
    c["amount"] = amount
    if tax is not None:
        c["tax"] = tax
    return c


def cdr(start: str, type_: str, destination: str, amount: str, *, called: str | None = None,
        seconds: int | None = None, kb: int | None = None) -> dict:
    """One call-detail record: calls carry seconds, data carries kilobytes, no number."""
    u: dict[str, Any] = {"start": start, "type": type_}
    if called is not None:
        u["called"] = called
    u["destination"] = destination
    if seconds is not None:
        u["duration_s"] = seconds
    if kb is not None:
        u["volume_kb"] = kb
    u["amount"] = amount
    return u


def history(amounts: list[tuple[str, str]]) -> list[dict]:
    """``[(YYYY-MM, amount), ...]`` as history entries."""
    return [{"period": p, "amount": a} for p, a in amounts]


def address(lines: list[str], postal: str, city: str, country: str) -> dict:
    return {"lines": lines, "postal_code": postal, "city": city, "country": country}


# --- operators (the ones the service brands, and one it does not know) ------------------

OI = {
    "id": "oi", "name": "Oi S.A.", "tax_id": "76.535.764/0001-43",
    "address": address(["Rua Humberto de Campos, 425"], "22430-190", "Rio de Janeiro", "BR"),
    "support": {"phone": "*144", "web": "https://www.oi.com.br"},
}
CARPATI = {
    "id": "carpati", "name": "Carpați Telecom S.A.", "tax_id": "RO14399840",
    "address": address(["Bd. Iuliu Maniu nr. 7, Corp A, et. 4"], "061072", "București", "RO"),
    "support": {"phone": "*433", "web": "https://www.carpati-telecom.example"},
}
VOLGA = {
    "id": "volga", "name": "ПАО «Волга Телеком»", "tax_id": "7709874563",
    "address": address(["ул. Большая Якиманка, д. 40, стр. 1"], "119049", "Москва", "RU"),
    "support": {"phone": "8 800 100-00-00", "web": "https://www.volga-telecom.example"},
}
POLDER = {
    "id": "polder", "name": "Polder Telecom B.V.", "tax_id": "NL859176342B01",
    "address": address(["Wilhelminakade 123"], "3072 AP", "Rotterdam", "NL"),
    "support": {"phone": "0800-0123", "web": "https://www.poldertelecom.example"},
}
ALBORZ = {
    "id": "alborz", "name": "شرکت ارتباطات سیار البرز", "tax_id": "10103794125",
    "address": address(["خیابان ولیعصر، بالاتر از میدان ونک، پلاک ۲۵۷۳"], "19697-33141",
                       "تهران", "IR"),
    "support": {"phone": "9990", "web": "https://www.alborz-telecom.example"},
}
ALBION = {
    "id": "albion", "name": "Albion Mobile Ltd", "tax_id": "GB 284 1937 66",
    "address": address(["1 Drummond Gate"], "SW1V 2QQ", "London", "GB"),
    "support": {"phone": "150", "web": "https://www.albionmobile.example"},
}

VOLGA_REQUISITES = {
    "Name": "ПАО «Волга Телеком»",
    "PersonalAcc": "40702810938000012345",
    "BankName": "ПАО Сбербанк",
    "BIC": "044525225",
    "CorrespAcc": "30101810400000000225",
    "PayeeINN": "7709874563",
    "KPP": "770901001",
}

# --- the valid samples ----------------------------------------------------------------


def br_spec_example() -> Record:
    """The contract's own example (pt_BR, febraban, electronic with SMS notice), rebuilt."""
    rec = record(
        number="OI-2026-11-0000123", issue="2026-11-05", due="2026-11-20",
        period=("2026-10-01", "2026-10-31"), currency="BRL", locale="pt_BR", operator=OI,
        account={"number": "1234567890", "segment": "consumer", "customer": {
            "name": "Maria da Conceição Souza", "tax_id": "123.456.789-09",
            "address": address(["Av. Atlântica, 1702", "Apto 501"], "22021-001",
                               "Rio de Janeiro", "BR")}},
        delivery={"mode": "electronic", "email": "maria@example.com",
                  "phone": "+5521987654321", "sms_notice": True, "attach_pdf": True},
        balance={"previous": "120.50",
                 "payments": [{"date": "2026-10-18", "amount": "120.50", "method": "barcode"}],
                 "adjustments": [{"date": "2026-10-20", "description": "Promised payment fee",
                                  "amount": "1.00"}]},
        services=[{
            "id": "+5521987654321", "label": "Oi Mobile — Plano Controle 20GB",
            "charges": [
                charge("SUB", "Monthly subscription", "subscription", "59.90", tax="ICMS"),
                charge("LDI", "International calls", "international", "23.10", tax="ICMS",
                       quantity="14", unit="min"),
            ],
            "usage": [
                cdr("2026-10-03T14:22:05-03:00", "local", "Rio de Janeiro", "0.00",
                    called="+552133334444", seconds=125),
                cdr("2026-10-04T09:01:00-03:00", "sms", "São Paulo", "0.25",
                    called="+5511999998888"),
                cdr("2026-10-04T10:00:00-03:00", "data", "Internet", "0.00", kb=524288),
            ],
        }],
        history=history([("2026-09", "118.20"), ("2026-10", "120.50")]),
    )
    return finish(rec, rates={"ICMS": "0.25"}, payment=febraban_payment())


def br_family_bundle() -> Record:
    """pt_BR family bundle: 4 services (two mobiles, landline, fibre), 150 CDRs on the last."""
    rng = random.Random(4)
    tz = ZoneInfo("America/Sao_Paulo")
    start = datetime(2026, 9, 1, tzinfo=tz).timestamp()
    contacts = [("+5521998761234", "Rio de Janeiro"), ("+552125437788", "Rio de Janeiro"),
                ("+5511987650001", "São Paulo"), ("+5571991234567", "Salvador"),
                ("+5591988887777", "Belém")]
    usage = []
    international_min = 0
    for k, ts in enumerate(sorted(start + rng.randrange(30 * 86400) for _ in range(150))):
        when = datetime.fromtimestamp(ts, tz).isoformat()
        if k % 5 == 4:
            usage.append(cdr(when, "data", "Internet", "0.00", kb=rng.randrange(200, 90_000)))
        elif k % 37 == 11:
            secs = rng.randrange(60, 900)
            international_min += (secs + 59) // 60
            usage.append(cdr(when, "international", "Portugal",
                             f"{Decimal((secs + 59) // 60) * Decimal('3.50'):.2f}",
                             called="+351912345678", seconds=secs))
        else:
            called, city = contacts[k % len(contacts)]
            kind = "local" if city == "Rio de Janeiro" else "long_distance"
            usage.append(cdr(when, kind, city, "0.00", called=called,
                             seconds=rng.randrange(5, 1800)))
    rec = record(
        number="OI-2026-10-0004417", issue="2026-10-04", due="2026-10-15",
        period=("2026-09-01", "2026-09-30"), currency="BRL", locale="pt_BR", operator=OI,
        account={"number": "2200456781", "segment": "consumer", "customer": {
            "name": "João Gonçalves Magalhães", "tax_id": "529.982.247-25",
            "address": address(["Rua das Laranjeiras, 315", "Bloco B, Apto 304"], "22240-003",
                               "Rio de Janeiro", "BR")}},
        delivery={"mode": "electronic", "email": "joao.magalhaes@example.com",
                  "phone": "+5521998765432", "sms_notice": False},
        balance={"previous": "389.70",
                 "payments": [{"date": "2026-09-14", "amount": "389.70", "method": "pix"}]},
        services=[
            {"id": "+5521998765432", "label": "Oi Móvel — Pós Família 80GB (titular)",
             "charges": [charge("SUB", "Assinatura mensal", "subscription", "199.90",
                                tax="ICMS")],
             "usage": []},
            {"id": "+5521998765433", "label": "Oi Móvel — Pós Família 80GB (dependente)",
             "charges": [charge("DEP", "Linha dependente", "subscription", "0.00", tax="ICMS")]},
            {"id": "+552125431100", "label": "Oi Fixo — Fixo Ilimitado Local",
             "charges": [charge("SUB", "Assinatura mensal", "subscription", "34.90",
                                tax="ICMS"),
                         charge("LDN", "Ligações de longa distância (DDD)", "long_distance",
                                "4.47", tax="ICMS", quantity="3", unit="min")],
             "usage": [cdr("2026-09-12T19:04:51-03:00", "long_distance", "São Paulo", "4.47",
                           called="+551133224455", seconds=161)]},
            {"id": "+5521998765434", "label": "Oi Móvel — Controle Essencial 10GB (Ana Luíza)",
             "charges": [charge("SUB", "Assinatura mensal", "subscription", "39.90",
                                tax="ICMS"),
                         charge("LDI", "Ligações internacionais", "international",
                                f"{international_min * Decimal('3.50'):.2f}", tax="ICMS",
                                quantity=str(international_min), unit="min")],
             "usage": usage},
        ],
        history=history([("2026-07", "371.22"), ("2026-08", "402.15"), ("2026-09", "389.70")]),
    )
    return finish(rec, rates={"ICMS": "0.20"}, payment=febraban_payment())


_FLEET_DRIVERS = (
    "Sebastião Araújo", "Raimundo Nonato Lourenço", "Conceição Brandão", "Caio Falcão",
    "Graça Peçanha", "Estêvão Romão", "Thaís Guimarães", "Márcio Damião", "Juçara Simões",
    "Fabrício Antunes", "Letícia Loureiro", "Gonçalo Assunção", "Inês Magalhães",
)
_FLEET_DEPOTS = ("Ribeirão Preto", "São José do Rio Preto", "Araçatuba", "Presidente Prudente")


def br_business_fleet() -> Record:
    """pt_BR business: a haulier's fleet of 52 mobile lines plus a PABX, both delivery."""
    tz = ZoneInfo("America/Sao_Paulo")
    services = []
    for k in range(52):
        driver = _FLEET_DRIVERS[k % len(_FLEET_DRIVERS)]
        depot = _FLEET_DEPOTS[k % len(_FLEET_DEPOTS)]
        number = f"+55169{8100_0000 + 137 * k:08d}"
        usage = []
        rated_min = 0
        for j in range(k % 7):
            ts = datetime(2026, 9, 1 + 4 * j, 7 + j, 5 * k % 60, k % 60, tzinfo=tz)
            secs = 30 + 41 * (k + j) % 600
            if j == 5:
                rated_min += (secs + 59) // 60
                usage.append(cdr(ts.isoformat(), "roaming", "Roaming — Paraguai",
                                 f"{Decimal((secs + 59) // 60) * Decimal('5.90'):.2f}",
                                 called="+5516981000000", seconds=secs))
            else:
                usage.append(cdr(ts.isoformat(), "long_distance", depot, "0.00",
                                 called=f"+5517{3221_0000 + 11 * j:08d}", seconds=secs))
        charges = [charge("SUB", "Assinatura mensal", "subscription", "49.90", tax="ICMS"),
                   charge("DSC", "Desconto corporativo", "discount", "-4.99", tax="ICMS")]
        if rated_min:
            charges.append(charge("ROA", "Roaming internacional", "roaming",
                                  f"{rated_min * Decimal('5.90'):.2f}", tax="ICMS",
                                  quantity=str(rated_min), unit="min"))
        if k % 10 == 3:
            charges.append(charge("EQP", "Aparelho Motorola Moto G — parcela 6/12",
                                  "equipment", "74.92", tax=None, quantity=None))
        services.append({"id": number,
                         "label": f"Oi Empresa — Gestão de Frota 15GB — {driver} ({depot})",
                         "charges": charges, "usage": usage})
    services.append({
        "id": "+551636210000", "label": "Oi Fixo Empresa — PABX 30 ramais",
        "charges": [charge("SUB", "Assinatura PABX", "subscription", "899.00", tax="ICMS"),
                    charge("LOC", "Ligações locais", "local", "37.38", tax="ICMS",
                           quantity="42", unit="min"),
                    charge("OUT", "Serviços de terceiros — 0800 Atendimento", "other", "59.00",
                           tax=None)],
    })
    rec = record(
        number="OI-2026-10-0100052", issue="2026-10-05", due="2026-10-20",
        period=("2026-09-01", "2026-09-30"), currency="BRL", locale="pt_BR", operator=OI,
        account={"number": "9000012345", "segment": "business", "customer": {
            "name": "Transportadora Guaporé Ltda.", "tax_id": "11.222.333/0001-81",
            "address": address(["Av. Presidente Vargas, 2001", "Galpão 3 — Distrito Industrial"],
                               "14020-260", "Ribeirão Preto", "BR")}},
        delivery={"mode": "both", "email": "financeiro@guapore.example",
                  "phone": "+5516981000000", "sms_notice": True, "attach_pdf": True},
        balance={"previous": "3120.44",
                 "payments": [{"date": "2026-09-19", "amount": "3120.44", "method": "barcode"}],
                 "adjustments": [{"date": "2026-09-22", "description":
                                  "Crédito por interrupção do serviço (06/09, 4 h)",
                                  "amount": "-35.00"}]},
        services=services,
        history=history([(f"2025-{m:02d}", f"{2980 + 13 * m}.{m * 7 % 100:02d}")
                         for m in range(10, 13)]
                        + [(f"2026-{m:02d}", f"{3010 + 11 * m}.{m * 9 % 100:02d}")
                           for m in range(1, 9)]
                        + [("2026-09", "3120.44")]),
    )
    return finish(rec, rates={"ICMS": "0.18"}, payment=febraban_payment())


def br_duplicate_second_copy() -> Record:
    """pt_BR "2ª via": kind duplicate of an earlier invoice, paper with SMS notice."""
    rec = record(
        number="OI-2026-09-0007781", kind="duplicate", issue="2026-09-03", due="2026-09-18",
        period=("2026-08-01", "2026-08-31"), currency="BRL", locale="pt_BR", operator=OI,
        account={"number": "3300112233", "segment": "consumer", "customer": {
            "name": "Sebastião Simões Falcão", "tax_id": "111.444.777-35",
            "address": address(["Travessa São João, 12 — Casa 2"], "66015-060", "Belém",
                               "BR")}},
        delivery={"mode": "paper", "phone": "+5591987001122", "sms_notice": True},
        balance={"previous": "0.00"},
        services=[{"id": "+5591987001122", "label": "Oi Móvel — Controle Essencial 10GB",
                   "charges": [charge("SUB", "Assinatura mensal", "subscription", "39.90",
                                      tax="ICMS"),
                               charge("PAC", "Pacote adicional de internet 5GB", "data",
                                      "15.00", tax="ICMS")],
                   "usage": [cdr("2026-08-09T08:15:00-03:00", "local", "Belém", "0.00",
                                 called="+559132240000", seconds=64),
                             cdr("2026-08-21T23:59:59-03:00", "data", "Internet", "0.00",
                                 kb=1_048_576)]}],
        history=[],
    )
    return finish(rec, rates={"ICMS": "0.19"}, payment=febraban_payment())


def br_zero_usage_fibre_tv() -> Record:
    """pt_BR zero usage: fibre and TV only, empty CDR lists, electronic without phone."""
    rec = record(
        number="OI-2026-10-0020001", issue="2026-10-06", due="2026-10-16",
        period=("2026-09-01", "2026-09-30"), currency="BRL", locale="pt_BR", operator=OI,
        account={"number": "4400556677", "segment": "consumer", "customer": {
            "name": "Letícia Conceição Guimarães", "tax_id": "390.533.447-05",
            "address": address(["Rua Açaí, 88"], "69057-010", "Manaus", "BR")}},
        delivery={"mode": "electronic", "email": "leticia.guimaraes@example.net",
                  "attach_pdf": True},
        balance={"previous": "269.80",
                 "payments": [{"date": "2026-09-15", "amount": "269.80",
                               "method": "direct_debit"}]},
        services=[
            {"id": "FIBRA-7730012", "label": "Oi Fibra — Fibra 1 Giga",
             "charges": [charge("SUB", "Banda larga", "internet", "149.90", tax="ICMS")],
             "usage": []},
            {"id": "TV-7730013", "label": "Oi TV — TV Total HD — 180 canais",
             "charges": [charge("SUB", "TV por assinatura", "tv", "129.90", tax="ICMS"),
                         charge("DSC", "Desconto combo Fibra + TV", "discount", "-10.00",
                                tax="ICMS")],
             "usage": []},
        ],
        history=history([("2026-08", "269.80")]),
    )
    return finish(rec, rates={"ICMS": "0.20"}, payment=febraban_payment())


def ro_consumer_code128_paper() -> Record:
    """ro_RO consumer, code128 reference, paper without e-mail, with SMS notice."""
    rec = record(
        number="CT-2026-11-0000457", issue="2026-11-03", due="2026-11-18",
        period=("2026-10-01", "2026-10-31"), currency="RON", locale="ro_RO", operator=CARPATI,
        account={"number": "5500778899", "segment": "consumer", "customer": {
            "name": "Ștefan-Mihăiță Țurcanu",
            "address": address(["Str. Mărășești nr. 14", "bl. A3, sc. 2, et. 4, ap. 17"],
                               "540138", "Târgu Mureș", "RO")}},
        delivery={"mode": "paper", "phone": "+40744123456", "sms_notice": True},
        balance={"previous": "71.40",
                 "payments": [{"date": "2026-10-16", "amount": "71.40", "method": "card"}]},
        services=[{
            "id": "+40744123456", "label": "Carpați Mobil — Abonament Nelimitat 30 GB",
            "charges": [
                charge("SUB", "Abonament lunar", "subscription", "35.00", tax="TVA"),
                charge("INT", "Convorbiri internaționale", "international", "8.40", tax="TVA",
                       quantity="7", unit="min"),
                charge("ROA", "Roaming în afara UE", "roaming", "2.70", tax="TVA",
                       quantity="3", unit="min"),
                charge("DSC", "Reducere fidelitate — 24 de luni", "discount", "-3.50",
                       tax="TVA"),
            ],
            "usage": [
                cdr("2026-10-02T08:12:40+03:00", "local", "Târgu Mureș", "0.00",
                    called="+40265211333", seconds=95),
                cdr("2026-10-05T18:30:02+03:00", "international", "Italia", "8.40",
                    called="+393471234567", seconds=402),
                cdr("2026-10-11T12:00:00+03:00", "sms", "București", "0.00",
                    called="+40722000111"),
                cdr("2026-10-19T21:45:10+03:00", "roaming", "Roaming — Republica Moldova",
                    "2.70", called="+40744000999", seconds=151),
                cdr("2026-10-25T03:30:00+02:00", "data", "Internet mobil", "0.00", kb=20_480),
                cdr("2026-10-28T09:02:00+02:00", "intrazonal", "Sighișoara", "0.00",
                    called="+40265771234", seconds=33),
            ],
        }],
        history=history([("2026-08", "68.10"), ("2026-09", "70.95"), ("2026-10", "71.40")]),
    )
    return finish(rec, rates={"TVA": "0.19"}, payment=lambda total, r: {
        "method": "barcode", "scheme": "code128",
        "code": f"CT5500778899-{r['invoice']['due_date'].replace('-', '')}-{cents(total)}"})


def ro_minimal_optional_absent() -> Record:
    """ro_RO with every optional field absent: no taxes, history, support, tax ids."""
    rec = record(
        number="CT-2026-11-0000999", issue="2026-11-02", due="2026-11-30",
        period=("2026-10-01", "2026-10-31"), currency="RON", locale="ro_RO",
        operator={"id": "carpati", "name": "Carpați Telecom S.A.",
                  "address": address(["Bd. Iuliu Maniu nr. 7"], "061072", "București", "RO")},
        account={"number": "5500000001", "segment": "consumer", "customer": {
            "name": "Ilinca Bălănescu",
            "address": address(["Aleea Trandafirilor nr. 3"], "420010", "Bistrița", "RO")}},
        delivery={"mode": "paper"},
        balance={"previous": "0.00"},
        services=[{"id": "+40263000111", "label": "Carpați Fix — Telefonie fixă națională",
                   "charges": [charge("SUB", "Abonament lunar", "subscription", "12.00",
                                      tax=None, quantity=None)]}],
    )
    return finish(rec, rates=None, payment={"method": "direct_debit"}, adjustments_total=False)


def ru_consumer_gost_qr() -> Record:
    """ru_RU consumer, GOST R 56042 QR, both paper and e-mail, late fee for arrears."""
    rec = record(
        number="VT-2026-11-0003345", issue="2026-11-01", due="2026-11-25",
        period=("2026-10-01", "2026-10-31"), currency="RUB", locale="ru_RU", operator=VOLGA,
        account={"number": "7700123456", "segment": "consumer", "customer": {
            "name": "Журавлёва Алёна Фёдоровна", "tax_id": "500100732259",
            "address": address(["ул. Молодёжная, д. 7, корп. 2, кв. 118"], "630090",
                               "Новосибирск", "RU")}},
        delivery={"mode": "both", "email": "alena.zhuravleva@example.org",
                  "phone": "+79131234567", "sms_notice": False, "attach_pdf": True},
        balance={"previous": "1240.00", "payments": [],
                 "adjustments": [{"date": "2026-10-26", "description":
                                  "Пени за просрочку платежа\n(ст. 54 ФЗ «О связи»)",
                                  "amount": "12.40"}]},
        services=[
            {"id": "+79131234567", "label": "Волга Мобайл — Тариф «Безлимит»",
             "charges": [
                 charge("SUB", "Абонентская плата", "subscription", "690.00", tax="НДС"),
                 charge("INT", "Международные вызовы", "international", "87.00", tax="НДС",
                        quantity="3", unit="мин"),
                 charge("SMS", "SMS-сообщения", "sms", "5.00", tax="НДС", quantity="2",
                        unit="шт."),
             ],
             "usage": [
                 cdr("2026-10-01T00:00:00+03:00", "local", "Новосибирск", "0.00",
                     called="+73832000000", seconds=0),
                 cdr("2026-10-07T12:31:00+03:00", "international", "Казахстан", "87.00",
                     called="+77011234567", seconds=170),
                 cdr("2026-10-07T12:40:00+03:00", "sms", "Алматы", "2.50",
                     called="+77011234567"),
                 cdr("2026-10-08T08:00:00+03:00", "mms", "Санкт-Петербург", "2.50",
                     called="+79211234567"),
                 cdr("2026-10-15T14:00:00+03:00", "data", "Интернет", "0.00", kb=0),
                 cdr("2026-10-31T23:59:59+03:00", "long_distance", "Екатеринбург", "0.00",
                     called="+73433000000", seconds=3599),
             ]},
            {"id": "+73833334455", "label": "Волга Телефон — Городской телефон, безлимитный",
             "charges": [charge("SUB", "Абонентская плата", "subscription", "550.00",
                                tax="НДС")],
             "usage": []},
        ],
        history=history([("2026-09", "1180.00"), ("2026-10", "1240.00")]),
    )
    return finish(rec, rates={"НДС": "0.20"}, payment=gost_payment({
        **VOLGA_REQUISITES, "Purpose": "Оплата услуг связи по счёту № VT-2026-11-0003345",
        "PersAcc": "7700123456", "LastName": "Журавлёва"}))


def ru_heavy_usage_5000_cdrs() -> Record:
    """ru_RU heavy user: one line with 5,000 CDRs across a DST-free month, GOST QR."""
    rng = random.Random(5000)
    tz = ZoneInfo("Europe/Moscow")
    start = datetime(2026, 10, 1, tzinfo=tz).timestamp()
    contacts = [("+79161112233", "Москва"), ("+74951234567", "Москва"),
                ("+78121234567", "Санкт-Петербург"), ("+73432345678", "Екатеринбург"),
                ("+78432223344", "Казань"), ("+79031112299", "Москва")]
    usage, rated = [], {"international": [0, Decimal(0)], "sms": [0, Decimal(0)]}
    for k, ts in enumerate(sorted(start + rng.randrange(31 * 86400) for _ in range(5000))):
        when = datetime.fromtimestamp(ts, tz).isoformat()
        if k % 3 == 0:
            usage.append(cdr(when, "data", "Интернет", "0.00", kb=rng.randrange(1, 250_000)))
        elif k % 7 == 1:
            called, city = contacts[k % len(contacts)]
            amount = Decimal("2.50") if k % 14 == 1 else Decimal(0)
            rated["sms"][0] += 1 if amount else 0
            rated["sms"][1] += amount
            usage.append(cdr(when, "sms", city, f"{amount:.2f}", called=called))
        elif k % 101 == 2:
            secs = rng.randrange(20, 1200)
            amount = Decimal((secs + 59) // 60) * Decimal("29.00")
            rated["international"][0] += (secs + 59) // 60
            rated["international"][1] += amount
            usage.append(cdr(when, "international", "Узбекистан", f"{amount:.2f}",
                             called="+998901234567", seconds=secs))
        else:
            called, city = contacts[k % len(contacts)]
            kind = "local" if city == "Москва" else "long_distance"
            usage.append(cdr(when, kind, city, "0.00", called=called,
                             seconds=int(rng.lognormvariate(4.0, 1.1)) + 1))
    rec = record(
        number="VT-2026-11-0005000", issue="2026-11-02", due="2026-11-25",
        period=("2026-10-01", "2026-10-31"), currency="RUB", locale="ru_RU", operator=VOLGA,
        account={"number": "7700500000", "segment": "consumer", "customer": {
            "name": "Эйдельман Пётр Ильич",
            "address": address(["Невский пр-т, д. 28, кв. 5"], "191186", "Санкт-Петербург",
                               "RU")}},
        delivery={"mode": "electronic", "email": "p.eidelman@example.com",
                  "phone": "+79161234500", "sms_notice": True, "attach_pdf": False},
        balance={"previous": "2512.50",
                 "payments": [{"date": "2026-10-20", "amount": "2512.50", "method": "card"}]},
        services=[{"id": "+79161234500", "label": "Волга Мобайл — Тариф «Семейный»",
                   "charges": [
                       charge("SUB", "Абонентская плата", "subscription", "990.00", tax="НДС"),
                       charge("INT", "Международные вызовы", "international",
                              f"{rated['international'][1]:.2f}", tax="НДС",
                              quantity=str(rated["international"][0]), unit="мин"),
                       charge("SMS", "SMS-сообщения", "sms", f"{rated['sms'][1]:.2f}",
                              tax="НДС", quantity=str(rated["sms"][0]), unit="шт."),
                   ],
                   "usage": usage}],
        history=history([(f"2025-{m:02d}", f"{2300 + 17 * m}.00") for m in range(11, 13)]
                        + [(f"2026-{m:02d}", f"{2400 + 12 * m}.50") for m in range(1, 11)]),
    )
    return finish(rec, rates={"НДС": "0.20"}, payment=gost_payment({
        **VOLGA_REQUISITES, "Purpose": "Оплата услуг связи по счёту № VT-2026-11-0005000",
        "PersAcc": "7700500000"}))


def nl_consumer_epc_qr_link() -> Record:
    """nl_NL consumer, EPC QR with an RF reference, electronic with a link (no PDF)."""
    rec = record(
        number="PT-2026-11-0012012", issue="2026-11-04", due="2026-11-18",
        period=("2026-10-01", "2026-10-31"), currency="EUR", locale="nl_NL", operator=POLDER,
        account={"number": "6600123412", "segment": "consumer", "customer": {
            "name": "IJsbrand van der Wijk",
            "address": address(["Vijzelstraat 68-2"], "1017 HL", "Amsterdam", "NL")}},
        delivery={"mode": "electronic", "email": "ijsbrand.vanderwijk@example.org",
                  "phone": "+31612345678", "sms_notice": True, "attach_pdf": False},
        balance={"previous": "66.53",
                 "payments": [{"date": "2026-10-15", "amount": "66.53",
                               "method": "bank_transfer"}]},
        services=[
            {"id": "+31612345678", "label": "Polder Mobiel — Onbeperkt Bellen + 50 GB",
             "charges": [
                 charge("SUB", "Abonnementskosten", "subscription", "30.00", tax="BTW"),
                 charge("INT", "Gesprekken naar het buitenland", "international", "1.40",
                        tax="BTW", quantity="4", unit="min"),
             ],
             "usage": [
                 cdr("2026-10-03T10:00:00+02:00", "international", "België", "1.40",
                     called="+32471123456", seconds=212),
                 cdr("2026-10-26T01:30:00+01:00", "data", "Internet", "0.00", kb=3_300),
                 cdr("2026-10-26T02:30:00+01:00", "local", "IJmuiden", "0.00",
                     called="+31255123456", seconds=60),
             ]},
            {"id": "FIBER-0012012", "label": "Polder Internet — Glasvezel 1 Gbit/s",
             "charges": [charge("SUB", "Internet", "internet", "60.00", tax="BTW"),
                         charge("DSC", "Korting op je bundel", "discount", "-10.00",
                                tax="BTW")],
             "usage": []},
        ],
        history=history([("2026-09", "66.53"), ("2026-10", "66.53")]),
    )
    return finish(rec, rates={"BTW": "0.21"}, payment=epc_payment({
        "IBAN": epc.make_iban("NL", "INGB0006543210"), "BIC": "INGBNL2A",
        "beneficiary": "Polder Telecom B.V.", "remittance_reference": epc.make_rf("6600123412")}))


def nl_credit_balance_none() -> Record:
    """nl_NL credit balance (paid twice last month): total_due < 0, payment method none."""
    rec = record(
        number="PT-2026-11-0012999", issue="2026-11-04", due="2026-11-18",
        period=("2026-10-01", "2026-10-31"), currency="EUR", locale="nl_NL", operator=POLDER,
        account={"number": "6600999000", "segment": "consumer", "customer": {
            "name": "Noëlle de Bruijn",
            "address": address(["Koningin Julianalaan 5"], "5211 AB", "'s-Hertogenbosch",
                               "NL")}},
        delivery={"mode": "electronic", "email": "noelle.debruijn@example.com"},
        balance={"previous": "22.39",
                 "payments": [{"date": "2026-10-02", "amount": "22.39",
                               "method": "direct_debit"},
                              {"date": "2026-10-09", "amount": "22.39",
                               "method": "bank_transfer"}],
                 "adjustments": [{"date": "2026-10-12", "description": "Compensatie storing "
                                  "glasvezel 11 oktober", "amount": "-5.00"}]},
        services=[{"id": "+31687654321", "label": "Polder Mobiel — Sim Only 20 GB",
                   "charges": [charge("SUB", "Abonnementskosten", "subscription", "18.50",
                                      tax="BTW")],
                   "usage": []}],
        history=history([("2026-10", "22.39")]),
    )
    return finish(rec, rates={"BTW": "0.21"}, payment={"method": "none"})


def fa_consumer_code128() -> Record:
    """fa_IR consumer in IRR (no minor unit), code128, Persian digits in the address."""
    rec = record(
        number="AB-2026-11-0000721", issue="2026-11-03", due="2026-11-17",
        period=("2026-10-01", "2026-10-31"), currency="IRR", locale="fa_IR", operator=ALBORZ,
        account={"number": "8800012345", "segment": "consumer", "customer": {
            "name": "زهرا قاسمی‌نژاد", "tax_id": "0012345679",
            "address": address(["خیابان چهارباغ عباسی، کوچه نسترن، پلاک ۱۲", "طبقه ۳، واحد ۷"],
                               "81746-73441", "اصفهان", "IR")}},
        delivery={"mode": "electronic", "email": "zahra.ghaseminejad@example.com",
                  "phone": "+989121234567", "sms_notice": True, "attach_pdf": True},
        balance={"previous": "3850000",
                 "payments": [{"date": "2026-10-10", "amount": "3850000", "method": "card"}]},
        services=[{
            "id": "+989121234567", "label": "البرز همراه — طرح دائمی ۳۰ گیگ",
            "charges": [
                charge("SUB", "آبونمان ماهانه", "subscription", "3500000", tax="VAT"),
                charge("INT", "مکالمات بین‌المللی", "international", "300000", tax="VAT",
                       quantity="5", unit="دقیقه"),
                charge("SMS", "پیامک", "sms", "900", tax="VAT", quantity="3", unit="پیامک"),
            ],
            "usage": [
                cdr("2026-10-02T09:15:00+03:30", "local", "اصفهان", "0", called="+983132221100",
                    seconds=75),
                cdr("2026-10-09T20:40:00+03:30", "international", "ترکیه", "300000",
                    called="+905321234567", seconds=281),
                cdr("2026-10-10T10:00:00+03:30", "sms", "تهران", "300", called="+989351112233"),
                cdr("2026-10-10T10:01:00+03:30", "sms", "تهران", "300", called="+989351112233"),
                cdr("2026-10-10T10:02:00+03:30", "sms", "شیراز", "300", called="+989171112233"),
                cdr("2026-10-20T22:10:00+03:30", "data", "اینترنت", "0", kb=2_097_152),
            ],
        }],
        history=history([("2026-08", "3790000"), ("2026-09", "3815500"), ("2026-10", "3850000")]),
    )
    return finish(rec, rates={"VAT": "0.10"}, payment=lambda total, r: {
        "method": "barcode", "scheme": "code128", "code": f"8800012345{int(total):012d}"})


def fa_business_direct_debit() -> Record:
    """fa_IR business with three lines, paid by direct debit, paper and e-mail."""
    lines = (("+989121110001", "مدیرعامل"), ("+989121110002", "واحد فروش"),
             ("+982188776655", "تلفن دفتر مرکزی"))
    services = []
    for number, who in lines:
        fixed = number.startswith("+9821")
        services.append({
            "id": number,
            "label": f"البرز {'ثابت' if fixed else 'همراه'} — {who}",
            "charges": [charge("SUB", "آبونمان ماهانه", "subscription",
                               "450000" if fixed else "5000000", tax="VAT"),
                        charge("DSC", "تخفیف سازمانی", "discount",
                               "-45000" if fixed else "-500000", tax="VAT")],
            "usage": [cdr("2026-10-14T11:11:11+03:30", "long_distance", "مشهد", "0",
                          called="+985138001234", seconds=300)],
        })
    rec = record(
        number="AB-2026-11-0900001", issue="2026-11-03", due="2026-11-17",
        period=("2026-10-01", "2026-10-31"), currency="IRR", locale="fa_IR", operator=ALBORZ,
        account={"number": "8899000001", "segment": "business", "customer": {
            "name": "شرکت مهندسی پارس", "tax_id": "10320870123",
            "address": address(["تهران، بلوار کشاورز، پلاک 210", "طبقه 4"], "14167-53811",
                               "تهران", "IR")}},
        delivery={"mode": "both", "email": "finance@parseng.example"},
        balance={"previous": "11395000",
                 "payments": [{"date": "2026-10-05", "amount": "11395000",
                               "method": "direct_debit"}]},
        services=services,
        history=history([("2026-10", "11395000")]),
    )
    return finish(rec, rates={"VAT": "0.10"}, payment={"method": "direct_debit"})


def en_uk_direct_debit_paper() -> Record:
    """en (UK) consumer on Direct Debit, paper only, no SMS notice."""
    rec = record(
        number="AM-2026-11-0031337", issue="2026-11-02", due="2026-11-16",
        period=("2026-10-01", "2026-10-31"), currency="GBP", locale="en", operator=ALBION,
        account={"number": "4400313370", "segment": "consumer", "customer": {
            "name": "Siobhan O'Brien",
            "address": address(["Flat 3", "12 St John's Close"], "CF10 1AA", "Cardiff", "GB")}},
        delivery={"mode": "paper", "phone": "+447700900123", "sms_notice": False},
        balance={"previous": "38.40",
                 "payments": [{"date": "2026-10-16", "amount": "38.40",
                               "method": "direct_debit"}]},
        services=[{"id": "+447700900123", "label": "Albion Mobile — Unlimited Max",
                   "charges": [
                       charge("SUB", "Monthly plan", "subscription", "32.00", tax="VAT"),
                       charge("ROA", "Roaming outside Europe", "roaming", "3.75", tax="VAT",
                              quantity="5", unit="min"),
                   ],
                   "usage": [
                       cdr("2026-10-14T16:20:00+01:00", "roaming", "Roaming — United States",
                           "3.75", called="+447700900456", seconds=255),
                       cdr("2026-10-25T01:59:59+01:00", "local", "London", "0.00",
                           called="+442079460123", seconds=42),
                       cdr("2026-10-25T01:00:30+00:00", "local", "London", "0.00",
                           called="+442079460123", seconds=12),
                   ]}],
        history=history([("2026-10", "38.40")]),
    )
    return finish(rec, rates={"VAT": "0.20"}, payment={"method": "direct_debit"})


def en_unknown_operator_neutral_brand() -> Record:
    """en (US) record from an operator id the service has no brand for: neutral brand."""
    rec = record(
        number="LW-2026-11-000042", issue="2026-11-01", due="2026-11-21",
        period=("2026-10-01", "2026-10-31"), currency="USD", locale="en",
        operator={"id": "lakeshore-wireless", "name": "Lakeshore Wireless Inc.",
                  "address": address(["200 E Randolph St", "Suite 5100"], "60601", "Chicago",
                                     "US"),
                  "support": {"phone": "611", "web": "https://www.lakeshore-wireless.example"}},
        account={"number": "LW-000042", "segment": "consumer", "customer": {
            "name": "Priya Patel",
            "address": address(["1060 W Addison St", "Apt 2B"], "60613", "Chicago", "US")}},
        delivery={"mode": "electronic", "email": "priya.patel@example.com",
                  "phone": "+13125550142", "sms_notice": True},
        balance={"previous": "0.00"},
        services=[{"id": "+13125550142", "label": "Unlimited Talk & Text 15GB",
                   "charges": [charge("SUB", "Monthly plan", "subscription", "45.00",
                                      tax="STATE"),
                               charge("E911", "911 service fee", "other", "1.50", tax=None)],
                   "usage": [cdr("2026-10-04T18:00:00-05:00", "long_distance", "New York, NY",
                                 "0.00", called="+12125550100", seconds=600)]}],
    )
    return finish(rec, rates={"STATE": "0.1025"}, payment=lambda total, r: {
        "method": "barcode", "scheme": "code128", "code": f"LW000042 {total}"})


def de_ch_unknown_locale() -> Record:
    """de_CH: a locale the service does not translate (English labels, with a warning)."""
    rec = record(
        number="AF-2026-11-000777", issue="2026-11-03", due="2026-11-30",
        period=("2026-10-01", "2026-10-31"), currency="CHF", locale="de_CH",
        operator={"id": "alpenfunk", "name": "Alpenfunk AG", "tax_id": "CHE-123.456.788 MWST",
                  "address": address(["Bahnhofstrasse 10"], "8001", "Zürich", "CH")},
        account={"number": "CH-4477001", "segment": "consumer", "customer": {
            "name": "Jürg Müller-Käser",
            "address": address(["Gässli 4"], "3011", "Bern", "CH")}},
        delivery={"mode": "both", "email": "juerg.mueller@example.org",
                  "phone": "+41791234567", "sms_notice": False, "attach_pdf": True},
        balance={"previous": "59.45",
                 "payments": [{"date": "2026-10-28", "amount": "59.45",
                               "method": "direct_debit"}]},
        services=[{"id": "+41791234567", "label": "Alpenfunk Mobil — Grenzenlos Schweiz",
                   "charges": [charge("SUB", "Monatliche Grundgebühr", "subscription", "55.00",
                                      tax="MWST")],
                   "usage": [cdr("2026-10-30T10:00:00+01:00", "local", "Zürich", "0.00",
                                 called="+41441234567", seconds=61)]}],
        history=history([("2026-10", "59.45")]),
    )
    return finish(rec, rates={"MWST": "0.081"}, payment={"method": "direct_debit"})


LONG_TEXT = ("Zusatzleistung " + "ﷺ ش ș <> & 𝄞 " * 10 + "x" * 5000)[:5000]
HOSTILE_NAME = '<b>Bold</b> <a href="javascript:x">Tom</a> <img src=x onerror=alert(1)> O\'Brien'


def en_hostile_text() -> Record:
    """Hostile text in every free-text field: markup, templates, bidi, controls, 5,000 chars."""
    rec = record(
        number="AM-2026-11-0066666", issue="2026-11-02", due="2026-11-16",
        period=("2026-10-01", "2026-10-31"), currency="GBP", locale="en",
        operator={**ALBION, "name": "Albion Mobile Ltd <script>alert('op')</script>"},
        account={"number": "4400666666", "segment": "consumer", "customer": {
            "name": HOSTILE_NAME, "tax_id": "{{7*7}} ${7*7} <%= 7*7 %>",
            "address": address(["1 < 2 Street", "Flat &amp; 5 &lt;b&gt;", "\u202eevil.exe\u202c"
                                " Lane \u2066isolated\u2069"], "SW1A 1AA",
                               "London\x07\x1b[31m red\x00", "GB")}},
        delivery={"mode": "electronic", "email": "o.brien+test@example.com",
                  "phone": "+447700900666", "sms_notice": True, "attach_pdf": True},
        balance={"previous": "10.00",
                 "payments": [{"date": "2026-10-15", "amount": "10.00",
                               "method": "card <b>"}],
                 "adjustments": [{"date": "2026-10-16",
                                  "description": "Line one\r\nLine two\twith tab\n{{7*7}}\n"
                                                 "</td></tr></table><h1>Injected</h1>",
                                  "amount": "0.49"}]},
        services=[{"id": "+447700900666",
                   "label": "{% for x in range(9) %}{{ x }}{% endfor %} — \u202eMax\u202c",
                   "charges": [
                       charge("SUB<", "Monthly plan <i>Unlimited</i> & more", "subscription",
                              "32.00", tax="VAT"),
                       charge("LONG", LONG_TEXT, "other", "0.01", tax="VAT"),
                       charge("CTL", "Tab\there, bell\x07, escape\x1b[0m, DEL\x7f, NEL\x85",
                              "other", "0.00", tax=None),
                   ],
                   "usage": [cdr("2026-10-05T12:00:00+01:00", "local",
                                 '<img src=x> "quoted" \'single\' & <', "0.00",
                                 called="+447700900667", seconds=1),
                             cdr("2026-10-06T12:00:00+01:00", "sms", "\u202e123 4567\u202c",
                                 "0.00", called="+447700900668")]}],
        history=history([("2026-10", "10.00")]),
    )
    return finish(rec, rates={"VAT": "0.20"}, payment=lambda total, r: {
        "method": "barcode", "scheme": "code128", "code": f"<b>&amp;{{{{7*7}}}}</b> {total}"})


# --- e-invoices (billing-record/1.1) --------------------------------------------------

V11 = "billing-record/1.1"
SPREEWELLE = {
    "id": "spreewelle", "name": "Spreewelle Telekom GmbH", "tax_id": "HRB 201934 B",
    "address": address(["Friedrichstraße 123"], "10117", "Berlin", "DE"),
    "support": {"phone": "+49 30 2200 4400", "web": "https://www.spreewelle.example"},
    "vat_id": "DE811907980",
    "endpoint": {"scheme": "EM", "id": "rechnungen@spreewelle.example"},
}
POLDER_11 = {**POLDER, "vat_id": "NL859176342B01",
             "endpoint": {"scheme": "0106", "id": "24301234"}}
CARPATI_11 = {**CARPATI, "vat_id": "RO14399840"}
POLDER_IBAN = epc.make_iban("NL", "INGB0006543210")
SPREEWELLE_IBAN = epc.make_iban("DE", "100500000190012345")


def _fleet(prefix: str, lines: int, plan: tuple[str, str], extras: list[tuple], *,
           tax: str, discount: str | None = None, number: str = "+49151{:08d}") -> list[dict]:
    """``lines`` mobile lines of a business account, each with a plan, the ``extras``
    (code, description, category, amount, quantity, unit) and an optional discount."""
    services = []
    for k in range(lines):
        charges = [charge("SUB", plan[0], "subscription", plan[1], tax=tax)]
        for code, desc, cat, amount, qty, unit in extras[k % len(extras):] + extras[
                :k % len(extras)][:1]:
            charges.append(charge(code, desc, cat, amount, tax=tax, quantity=qty, unit=unit))
        if discount:
            charges.append(charge("DSC", "Business discount", "discount", discount, tax=tax))
        services.append({"id": number.format(20_450_000 + 37 * k),
                         "label": f"{prefix} — line {k + 1}", "charges": charges})
    return services


def de_xrechnung_cii_direct_debit() -> Record:
    """XRechnung CII for a Berlin public authority (Leitweg-ID), SEPA direct debit."""
    rec = record(
        number="SW-2026-11-0004711", issue="2026-11-03", due="2026-11-17",
        period=("2026-10-01", "2026-10-31"), currency="EUR", locale="en", operator=SPREEWELLE,
        account={"number": "SW-7700123", "segment": "business", "customer": {
            "name": "Bezirksamt Mitte von Berlin", "vat_id": "DE136630206",
            "address": address(["Karl-Marx-Allee 31", "Serviceeinheit Finanzen"], "10178",
                               "Berlin", "DE")}},
        delivery={"mode": "electronic", "email": "rechnungseingang@ba-mitte.example",
                  "einvoice": {"format": "xrechnung-cii", "buyer_reference": "11001-0A1B2C-45",
                               "endpoint": {"scheme": "EM",
                                            "id": "xrechnung@ba-mitte.example"}}},
        balance={"previous": "412.17",
                 "payments": [{"date": "2026-10-20", "amount": "412.17",
                               "method": "direct_debit"}]},
        services=_fleet("Spreewelle Business Mobil 20 GB", 6, ("Monthly plan", "29.90"), [
            ("ROA", "Roaming outside the EU", "roaming", "7.47", "3", "min"),
            ("DAT", "Extra data 5 GB", "data", "9.99", "5", "GB"),
            ("INT", "International calls", "international", "2.38", "7", "min"),
        ], tax="MwSt", discount="-2.99"),
        history=history([("2026-09", "398.40"), ("2026-10", "412.17")]), schema=V11,
    )
    return finish(rec, rates={"MwSt": "0.19"}, vat={"MwSt": {"category": "S"}}, payment={
        "method": "direct_debit", "debit": {"mandate": "SW-MANDATE-7700123",
                                            "creditor_id": "DE98ZZZ09999999999",
                                            "iban": epc.make_iban("DE", "120300000012345678")}})


def de_xrechnung_ubl_exempt_line() -> Record:
    """XRechnung UBL with an exempt line (category E) beside 19 %, paid by transfer."""
    rec = record(
        number="SW-2026-11-0004712", issue="2026-11-03", due="2026-11-24",
        period=("2026-10-01", "2026-10-31"), currency="EUR", locale="en", operator=SPREEWELLE,
        account={"number": "SW-7700456", "segment": "business", "customer": {
            "name": "Landesamt für Bürger- und Ordnungsangelegenheiten",
            "address": address(["Friedrichstraße 219"], "10969", "Berlin", "DE")}},
        delivery={"mode": "both", "email": "buchhaltung@labo.example",
                  "einvoice": {"format": "xrechnung-ubl", "buyer_reference": "11001-0X9Y8Z-12",
                               "endpoint": {"scheme": "EM", "id": "e-rechnung@labo.example"}}},
        balance={"previous": "0.00"},
        services=[
            {"id": "+493022004411", "label": "Spreewelle Festnetz Business — Anlage 30",
             "charges": [
                 charge("SUB", "PBX line, 30 extensions", "subscription", "249.00", tax="MwSt"),
                 charge("LDN", "National calls", "long_distance", "18.36", tax="MwSt",
                        quantity="204", unit="min"),
                 charge("INT", "International calls", "international", "10.00", tax="MwSt",
                        quantity="3", unit="min"),
                 charge("POS", "Postal fee for the paper copy", "other", "1.80", tax="Porto"),
             ]},
        ],
        history=[], schema=V11,
    )
    return finish(rec, rates={"MwSt": "0.19", "Porto": "0"}, vat={
        "MwSt": {"category": "S"},
        "Porto": {"category": "E", "exemption_reason": "Postal services exempt (§ 4 Nr. 11b "
                  "UStG)", "exemption_code": "VATEX-EU-132-1A"}},
        payment=epc_payment({"IBAN": SPREEWELLE_IBAN, "BIC": "BELADEBEXXX",
                             "beneficiary": "Spreewelle Telekom GmbH",
                             "remittance_reference": epc.make_rf("SW7700456")}))


def nl_factur_x_business() -> Record:
    """Factur-X (EN 16931) for a Dutch business: 20 charges, a discount, EPC QR."""
    rec = record(
        number="PT-2026-11-0900020", issue="2026-11-04", due="2026-11-18",
        period=("2026-10-01", "2026-10-31"), currency="EUR", locale="nl_NL",
        operator=POLDER_11,
        account={"number": "6690000020", "segment": "business", "customer": {
            "name": "Bakkerij De Gouden Korenaar B.V.", "vat_id": "NL001234567B01",
            "tax_id": "KvK 56789012",
            "address": address(["Oudegracht 140"], "3511 AZ", "Utrecht", "NL")}},
        delivery={"mode": "electronic", "email": "administratie@goudenkorenaar.example",
                  "einvoice": {"format": "factur-x"}},
        balance={"previous": "301.22",
                 "payments": [{"date": "2026-10-14", "amount": "301.22",
                               "method": "bank_transfer"}],
                 "adjustments": [{"date": "2026-10-21", "description": "Compensatie storing",
                                  "amount": "-7.50"}]},
        services=_fleet("Polder Zakelijk Onbeperkt", 5, ("Abonnementskosten", "24.50"), [
            ("INT", "Gesprekken naar het buitenland", "international", "3.50", "10", "min"),
            ("DAT", "Extra data 2 GB", "data", "7.50", "2", "GB"),
            ("SMS", "SMS buitenland", "sms", "1.20", "8", "sms"),
        ], tax="BTW", discount="-2.45", number="+3161{:07d}"),
        history=history([("2026-09", "280.01"), ("2026-10", "301.22")]), schema=V11,
    )
    return finish(rec, rates={"BTW": "0.21"}, vat={"BTW": {"category": "S"}},
                  payment=epc_payment({"IBAN": POLDER_IBAN, "BIC": "INGBNL2A",
                                       "beneficiary": "Polder Telecom B.V.",
                                       "remittance_reference": epc.make_rf("6690000020")}))


def be_peppol_reverse_charge() -> Record:
    """Peppol BIS 3 to a Belgian business: reverse charge (AE), endpoints 0106 / 0208."""
    rec = record(
        number="PT-2026-11-0900021", issue="2026-11-04", due="2026-12-04",
        period=("2026-10-01", "2026-10-31"), currency="EUR", locale="nl_NL",
        operator=POLDER_11,
        account={"number": "6690000021", "segment": "business", "customer": {
            "name": "Brouwerij Het Zwarte Schaap BV", "vat_id": "BE0123456749",
            "address": address(["Grote Markt 7"], "2000", "Antwerpen", "BE")}},
        delivery={"mode": "electronic", "email": "facturen@zwarteschaap.example",
                  "einvoice": {"format": "peppol-bis3", "buyer_reference": "PO-2026-0931",
                               "endpoint": {"scheme": "0208", "id": "0123456749"}}},
        balance={"previous": "0.00"},
        services=[{"id": "IOT-0021", "label": "Polder IoT — 40 SIM-kaarten",
                   "charges": [
                       charge("SUB", "IoT-abonnement, 40 SIM-kaarten", "subscription",
                              "160.00", tax="VRL", quantity="40", unit="pc"),
                       charge("DAT", "Data boven bundel", "data", "12.33", tax="VRL",
                              quantity="3", unit="GB"),
                       charge("DSC", "Volumekorting", "discount", "-16.00", tax="VRL"),
                   ]}],
        history=[], schema=V11,
    )
    return finish(rec, rates={"VRL": "0"}, vat={"VRL": {
        "category": "AE", "exemption_reason": "Verlegd / Autoliquidation / Reverse charge",
        "exemption_code": "VATEX-EU-AE"}},
        payment=epc_payment({"IBAN": POLDER_IBAN, "BIC": "INGBNL2A",
                             "beneficiary": "Polder Telecom B.V.",
                             "remittance_text": "Factuur PT-2026-11-0900021"}))


def ro_cius_business_code128() -> Record:
    """RO_CIUS (RO e-Factura) for a Romanian company, code128 reference, in RON."""
    rec = record(
        number="CT-2026-11-0900005", issue="2026-11-03", due="2026-11-18",
        period=("2026-10-01", "2026-10-31"), currency="RON", locale="ro_RO",
        operator=CARPATI_11,
        account={"number": "5590000005", "segment": "business", "customer": {
            "name": "Brutăria Țărănească S.R.L.", "vat_id": "RO18547290",
            "tax_id": "J26/1234/2010",
            "address": address(["Str. Gheorghe Doja nr. 51"], "540015", "Târgu Mureș",
                               "RO")}},
        delivery={"mode": "both", "email": "contabilitate@brutaria.example",
                  "einvoice": {"format": "ro-cius"}},
        balance={"previous": "211.30",
                 "payments": [{"date": "2026-10-16", "amount": "211.30", "method": "card"}]},
        services=_fleet("Carpați Business Nelimitat", 4, ("Abonament lunar", "45.00"), [
            ("INT", "Convorbiri internaționale", "international", "6.00", "5", "min"),
            ("ROA", "Roaming în afara UE", "roaming", "8.10", "9", "min"),
        ], tax="TVA", discount="-4.50", number="+40744{:06d}"),
        history=history([("2026-09", "205.10"), ("2026-10", "211.30")]), schema=V11,
    )
    return finish(rec, rates={"TVA": "0.19"}, vat={"TVA": {"category": "S"}},
                  payment=lambda total, r: {
                      "method": "barcode", "scheme": "code128",
                      "code": f"CT5590000005-{r['invoice']['due_date'].replace('-', '')}"
                              f"-{cents(total)}"})


EINVOICE_SAMPLES: tuple[Callable[[], Record], ...] = (
    nl_factur_x_business, de_xrechnung_cii_direct_debit, de_xrechnung_ubl_exempt_line,
    be_peppol_reverse_charge, ro_cius_business_code128,
)


SAMPLES: tuple[Callable[[], Record], ...] = (
    br_spec_example, br_family_bundle, br_business_fleet, br_duplicate_second_copy,
    br_zero_usage_fibre_tv, ro_consumer_code128_paper, ro_minimal_optional_absent,
    ru_consumer_gost_qr, ru_heavy_usage_5000_cdrs, nl_consumer_epc_qr_link,
    nl_credit_balance_none, fa_consumer_code128, fa_business_direct_debit,
    en_uk_direct_debit_paper, en_unknown_operator_neutral_brand, de_ch_unknown_locale,
    en_hostile_text, *EINVOICE_SAMPLES,
)

# --- the invalid samples --------------------------------------------------------------


def dumps(rec: Any) -> str:
    return json.dumps(rec, ensure_ascii=False, separators=(",", ":"))


def direct_debit_base() -> Record:
    """The spec example paid by direct debit: totals can be broken without a code check."""
    rec = br_spec_example()
    rec["payment"] = {"method": "direct_debit"}
    return rec


def shift_totals(rec: Record, key: str, delta: str) -> None:
    """Make one stated subtotal wrong; total_due stays right (it adds up the items)."""
    t = rec["totals"]
    t[key] = f"{Decimal(t[key]) + Decimal(delta):.2f}"


def invalid_cases() -> list[tuple[str, str, str]]:
    """``(line, path, reason)`` for every invalid line, the line as it goes in the file."""
    cases: list[tuple[str, str, str]] = []

    def bad(path: str, reason: str, breaker: Callable[[Record], Any],
            base: Callable[[], Record] = br_spec_example) -> None:
        """Register a defect: ``breaker`` edits a fresh copy of ``base`` in place."""
        rec = copy.deepcopy(base())
        rec["invoice"]["number"] = f"BAD-{len(cases) + 1:02d}"
        breaker(rec)
        cases.append((dumps(rec), path, reason))

    def raw(reason: str, line: str) -> None:
        """Register a line that is not a record at all (no field to name: path "")."""
        cases.append((line, "", reason))

    spec = dumps(br_spec_example())
    raw("not JSON at all", 'this is not JSON {"schema": 1')
    raw("truncated record (JSON object cut off mid-line)", spec[: len(spec) // 2])
    raw("bare NaN token: not JSON, not money",
        spec.replace('"previous":"120.50"', '"previous":NaN'))
    raw("a JSON array, not an object", "[" + spec + "]")
    bad("schema", "unknown schema version billing-record/2",
        lambda r: r.update(schema="billing-record/2"))
    bad("schema", "schema missing", lambda r: r.pop("schema"))
    bad("totals", "required top-level object totals missing", lambda r: r.pop("totals"))
    bad("invoice.due_date", "required field missing", lambda r: r["invoice"].pop("due_date"))
    bad("account.customer.address.city", "required field missing, four levels down",
        lambda r: r["account"]["customer"]["address"].pop("city"))
    bad("services[0].charges[1].amount", "charge without an amount",
        lambda r: r["services"][0]["charges"][1].pop("amount"))
    bad("services[0].usage[2].start", "CDR without a start instant",
        lambda r: r["services"][0]["usage"][2].pop("start"))
    bad("invoice.currency", "not an ISO 4217 currency",
        lambda r: r["invoice"].update(currency="R$"))
    bad("totals.total_due", "money as a JSON number",
        lambda r: r["totals"].update(total_due=104.75))
    bad("services[0].charges[1].amount", '"NaN" as an amount',
        lambda r: r["services"][0]["charges"][1].update(amount="NaN"))
    bad("taxes[0].base", 'exponent notation "1e3"', lambda r: r["taxes"][0].update(base="1e3"))
    bad("balance.payments[0].amount", 'decimal comma "12,30"',
        lambda r: r["balance"]["payments"][0].update(amount="12,30"))
    bad("balance.adjustments[0].amount", 'three decimals in BRL ("1.234")',
        lambda r: r["balance"]["adjustments"][0].update(amount="1.234"))
    bad("history[0].amount", 'a decimal in IRR, which has no minor unit ("10.5")',
        lambda r: r["history"][0].update(amount="10.5"), fa_consumer_code128)
    bad("invoice.issue_date", "impossible date 2026-02-30",
        lambda r: r["invoice"].update(issue_date="2026-02-30"))
    bad("services[0].usage[0].start", "instant without an offset",
        lambda r: r["services"][0]["usage"][0].update(start="2026-10-03T14:22:05"))
    bad("delivery.phone", "phone not in E.164",
        lambda r: r["delivery"].update(phone="(21) 98765-4321"))
    bad("delivery.email", "e-mail with CR LF (header injection)",
        lambda r: r["delivery"].update(email="maria@example.com\r\nBcc: all@example.net"))
    bad("delivery.mode", "unknown delivery mode", lambda r: r["delivery"].update(mode="fax"))
    bad("services[0].charges[0].category", "unknown charge category",
        lambda r: r["services"][0]["charges"][0].update(category="gadgets"))
    bad("services[0].usage[1].type", "unknown usage type",
        lambda r: r["services"][0]["usage"][1].update(type="video_call"))
    bad("payment.method", "unknown payment method", lambda r: r["payment"].update(method="cash"))
    bad("payment.scheme", "unknown payment scheme", lambda r: r["payment"].update(scheme="pix"))
    bad("invoice.number", "path traversal in invoice number",
        lambda r: r["invoice"].update(number="../x"))
    bad("account.number", "slash in account number", lambda r: r["account"].update(number="a/b"))
    bad("operator.id", "'..' inside operator id", lambda r: r["operator"].update(id="a..b"))
    bad("invoice.number", "invoice number of 65 characters",
        lambda r: r["invoice"].update(number="N" * 65))
    bad("services[3].usage[120].duration_s", "negative duration",
        lambda r: r["services"][3]["usage"][120].update(duration_s=-125), br_family_bundle)
    bad("services[0].usage[0].duration_s", "fractional duration",
        lambda r: r["services"][0]["usage"][0].update(duration_s=125.5))
    bad("totals.charges", "totals.charges is not the sum of the charges",
        lambda r: shift_totals(r, "charges", "1.00"), direct_debit_base)
    bad("totals.taxes", "totals.taxes is not the sum of the taxes",
        lambda r: shift_totals(r, "taxes", "-0.01"), direct_debit_base)
    bad("totals.adjustments", "totals.adjustments is not the sum of the adjustments",
        lambda r: shift_totals(r, "adjustments", "0.10"), direct_debit_base)
    bad("totals.total_due", "total_due does not add up",
        lambda r: r["totals"].update(total_due="104.76"), direct_debit_base)
    bad("payment.code", "febraban general check digit wrong",
        lambda r: r["payment"].update(code=bump_digit(r["payment"]["code"], 3)))
    bad("payment.code", "febraban code for R$ 104.76 on a total_due of 104.75",
        lambda r: r["payment"].update(code=febraban.build(4, 6, 10476, "0108",
                                                          "0000001234567890202611200")))
    bad("payment.fields.IBAN", "EPC IBAN with wrong check digits (code agrees)",
        lambda r: swap_in_payment(r, "NL67INGB", "NL68INGB"), nl_consumer_epc_qr_link)
    bad("payment.fields.BIC", "EPC BIC of 7 characters (code agrees)",
        lambda r: swap_in_payment(r, "INGBNL2A", "INGBNL2"), nl_consumer_epc_qr_link)
    bad("payment.fields.BankName", "GOST QR without the mandatory BankName",
        lambda r: drop_gost_field(r, "BankName"), ru_consumer_gost_qr)
    bad("payment.fields.Sum", "GOST QR Sum one rouble short (code agrees)",
        lambda r: swap_in_payment(r, f"Sum={r['payment']['fields']['Sum']}",
                                  f"Sum={int(r['payment']['fields']['Sum']) - 100}"),
        ru_consumer_gost_qr)
    bad("payment.code", "code128 reference with non-ASCII letters",
        lambda r: r["payment"].update(code="CT-Ștefan-5500778899"), ro_consumer_code128_paper)
    bad("payment.code", "direct_debit carrying a payable code",
        lambda r: r.update(payment={"method": "direct_debit", "code": "123456"}))
    # Version 1.1 and the rules it made explicit for every record.
    bad("schema", "unknown schema version billing-record/1.2",
        lambda r: r.update(schema="billing-record/1.2"))
    bad("taxes[0].amount", "tax line is not base x rate (tax_mismatch), totals agree",
        lambda r: shift_tax(r, "0.05"), direct_debit_base)
    bad("taxes[0].base", "tax base is not the sum of the charges naming it (tax_mismatch)",
        lambda r: r["taxes"][0].update(base="84.00", amount="21.00")
        or shift_tax(r, "0.00"), direct_debit_base)
    marker = "SURROGATE-MARKER"
    rec = copy.deepcopy(br_spec_example())
    rec["invoice"]["number"] = f"BAD-{len(cases) + 1:02d}"
    rec["account"]["customer"]["name"] = f"Maria {marker}"
    # A lone surrogate can only be written as a JSON escape: UTF-8 cannot hold one.
    cases.append((dumps(rec).replace(marker, "\\ud800"), "account.customer.name",
                  "lone surrogate \\ud800 in a text field (text)"))
    bad("operator.vat_id", "e-invoice without the seller VAT identifier",
        lambda r: r["operator"].pop("vat_id"), nl_factur_x_business)
    bad("delivery.einvoice.buyer_reference", "XRechnung without the Leitweg-ID",
        lambda r: r["delivery"]["einvoice"].pop("buyer_reference"),
        de_xrechnung_cii_direct_debit)
    bad("delivery.einvoice.endpoint", "Peppol without the buyer's electronic address",
        lambda r: r["delivery"]["einvoice"].pop("endpoint"), be_peppol_reverse_charge)
    bad("operator.endpoint", "Peppol without the seller's electronic address",
        lambda r: r["operator"].pop("endpoint"), be_peppol_reverse_charge)
    bad("taxes[0].category", "e-invoice tax line without a VAT category",
        lambda r: r["taxes"][0].pop("category"), ro_cius_business_code128)
    bad("taxes[1].exemption_reason", "exempt (E) tax line without an exemption reason",
        lambda r: [r["taxes"][1].pop(k) for k in ("exemption_reason", "exemption_code")],
        de_xrechnung_ubl_exempt_line)
    bad("account.customer.vat_id", "reverse charge (AE) without the buyer VAT identifier",
        lambda r: r["account"]["customer"].pop("vat_id"), be_peppol_reverse_charge)
    bad("payment.debit", "direct-debit e-invoice without the SEPA mandate",
        lambda r: r["payment"].pop("debit"), de_xrechnung_cii_direct_debit)
    bad("payment.debit.iban", "SEPA mandate with a wrong IBAN check digit",
        lambda r: r["payment"]["debit"].update(iban=bump_digit(
            r["payment"]["debit"]["iban"], 3)), de_xrechnung_cii_direct_debit)
    bad("services[0].charges[5].tax", "e-invoice charge (free of charge) naming no tax line",
        lambda r: r["services"][0]["charges"].append(
            charge("CLIP", "Nummerweergave", "other", "0.00", tax=None)), nl_factur_x_business)
    bad("delivery.einvoice.format", "unknown e-invoice format",
        lambda r: r["delivery"]["einvoice"].update(format="fatturapa"), nl_factur_x_business)
    bad("delivery.einvoice.endpoint.scheme", "electronic address with an unknown EAS scheme",
        lambda r: r["delivery"]["einvoice"]["endpoint"].update(scheme="PHONE"),
        be_peppol_reverse_charge)
    return cases


def shift_tax(rec: Record, delta: str) -> None:
    """Move the first tax line's amount by ``delta`` and carry it into the totals, so the
    tax line itself is the only figure that does not add up."""
    tax = rec["taxes"][0]
    tax["amount"] = f"{Decimal(tax['amount']) + Decimal(delta):.2f}"
    taxes = sum(Decimal(t["amount"]) for t in rec["taxes"])
    old = Decimal(rec["totals"]["taxes"])
    rec["totals"]["taxes"] = f"{taxes:.2f}"
    rec["totals"]["total_due"] = f"{Decimal(rec['totals']['total_due']) + taxes - old:.2f}"


def bump_digit(code: str, index: int) -> str:
    """``code`` with the digit at ``index`` changed (a wrong check digit)."""
    return code[:index] + str((int(code[index]) + 1) % 10) + code[index + 1:]


def swap_in_payment(rec: Record, old: str, new: str) -> None:
    """Replace ``old`` by ``new`` in the payment's code and fields alike, so that the
    code and its fields still agree and the only defect is the value itself."""
    pay = rec["payment"]
    assert old in pay["code"], old
    pay["code"] = pay["code"].replace(old, new)
    key = old.partition("=")[0] if "=" in old else None
    for k, v in pay["fields"].items():
        if key is None and old in v:
            pay["fields"][k] = v.replace(old, new)
        elif k == key:
            pay["fields"][k] = new.partition("=")[2]


def drop_gost_field(rec: Record, key: str) -> None:
    """Remove a requisite from a GOST payment's fields and code alike."""
    pay = rec["payment"]
    value = pay["fields"].pop(key)
    pay["code"] = pay["code"].replace(f"|{key}={value}", "")


# --- output ---------------------------------------------------------------------------


def main() -> None:
    """Write invoices.jsonl, invalid.jsonl and invalid.expected.json beside this script."""
    with open(HERE / "invoices.jsonl", "w", encoding="utf-8", newline="\n") as out:
        for build in SAMPLES:
            out.write(dumps(build()) + "\n")
    cases = invalid_cases()
    with open(HERE / "invalid.jsonl", "w", encoding="utf-8", newline="\n") as out:
        for line, _, _ in cases:
            out.write(line + "\n")
    expected = [{"line": n, "path": path, "reason": reason}
                for n, (_, path, reason) in enumerate(cases, start=1)]
    with open(HERE / "invalid.expected.json", "w", encoding="utf-8", newline="\n") as out:
        json.dump(expected, out, ensure_ascii=False, indent=1)
        out.write("\n")
    print(f"{len(SAMPLES)} valid records, {len(cases)} invalid lines written to {HERE}")


if __name__ == "__main__":
    main()
